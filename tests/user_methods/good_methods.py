"""A user method with public copies and a compressed channel (tests/test_user_method.py):
CHOCO-gossip on DGD, written against docs/methods.md, with its gradient in the state."""

import numpy as np

from stflow.methods import Method, Param, metropolis_weights


class CompressedGossip(Method):
    """``X+ = X - lr G + gamma (W - I) Xhat+``, ``Xhat+ = Xhat + C(X - lr G - Xhat)``."""

    params = (Param("lr", 0.05, "step size"), Param("gamma", 0.5, "consensus step", high=1.0))
    state_keys = ("X", "Xhat", "Half")
    copies = ("Xhat",)
    channels = ("compressed",)

    def bind_block(self, block):
        self.W = block.restrict(metropolis_weights(self.graph))

    def init_block(self, X, V):
        half = X - self.lr * self.grad(X)
        return {"X": X, "Xhat": np.zeros((self.block.n_cols, self.dim)), "Half": half}

    def send(self, state, t, h):
        return [state["Half"] - state["Xhat"][self.block.own]]

    def receive(self, state, messages, t, h):
        xhat = state["Xhat"] + messages[0]
        X = state["Half"] + self.gamma * (self.W @ xhat - xhat[self.block.own])
        return {"X": X, "Xhat": xhat, "Half": X - self.lr * self.grad(X)}


from stflow.methods import PeerMethod  # noqa: E402


class HeavyPeer(PeerMethod):
    """DGD with heavy-ball momentum on PeerMethod: ``lr`` comes from PeerMethod.params."""

    params = PeerMethod.params + (Param("beta", 0.3, "momentum", high=0.999, log=False),)
    state_keys = ("X", "Xprev")
    channels = ("raw",)

    def init_block(self, X, V):
        return {"X": X, "Xprev": X.copy()}

    def send(self, state, t, h):
        return [state["X"]]

    def receive(self, state, messages, t, h):
        X = state["X"]
        new = self.W @ messages[0] - self.lr * self.grad(X) + self.beta * (X - state["Xprev"])
        return {"X": new, "Xprev": X}
