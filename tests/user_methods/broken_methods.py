"""Methods that break one rule of docs/methods.md each (tests/test_user_method.py)."""

import numpy as np

from stflow.methods import Method, Param, metropolis_weights


class _Base(Method):
    """DGD, the shared part."""

    params = (Param("lr", 0.05, "step"),)
    state_keys = ("X",)
    channels = ("raw",)

    def bind_block(self, block):
        self.W = block.restrict(metropolis_weights(self.graph))

    def init_block(self, X, V):
        return {"X": X}

    def send(self, state, t, h):
        return [state["X"]]


class GlobalNoise(_Base):
    def receive(self, state, messages, t, h):
        noise = 1e-3 * np.random.standard_normal(state["X"].shape)  # noqa: NPY002 (the broken rule)
        return {"X": self.W @ messages[0] - self.lr * self.grad(state["X"]) + noise}


class RowNoise(_Base):
    def receive(self, state, messages, t, h):
        rng = np.random.default_rng(int(round(t)))
        noise = 1e-3 * rng.standard_normal(state["X"].shape)
        return {"X": self.W @ messages[0] - self.lr * self.grad(state["X"]) + noise}


class MomentumOnSelf(_Base):
    def receive(self, state, messages, t, h):
        X = state["X"]
        prev = getattr(self, "prev", X)
        self.prev = X
        return {"X": self.W @ messages[0] - self.lr * self.grad(X) + 0.5 * (X - prev)}


class WrongShape(_Base):
    def send(self, state, t, h):
        return [state["X"][:, :1]]

    def receive(self, state, messages, t, h):
        return {"X": state["X"]}


class Float32(_Base):
    def send(self, state, t, h):
        return [state["X"].astype(np.float32)]


class Nan(_Base):
    def receive(self, state, messages, t, h):
        return {"X": state["X"] * np.nan}


class Raises(_Base):
    def receive(self, state, messages, t, h):
        raise ValueError("boom")


class Exits(_Base):
    def receive(self, state, messages, t, h):
        raise SystemExit(3)


class NotAMethod:
    pass


class BadBind(_Base):
    def bind_block(self, block):
        self.W = block.restrict(metropolis_weights(self.graph)) @ np.ones(3)

    def receive(self, state, messages, t, h):
        return {"X": state["X"]}


class InPlace(_Base):
    """Updates the state it was given in place (rule 1: return new arrays)."""

    def receive(self, state, messages, t, h):
        X = state["X"]
        X -= self.lr * self.grad(X)
        return {"X": X}


class TwoMessages(_Base):
    """Sends two arrays on its one channel."""

    def send(self, state, t, h):
        return [state["X"], state["X"]]

    def receive(self, state, messages, t, h):
        return {"X": state["X"]}
