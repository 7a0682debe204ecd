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
