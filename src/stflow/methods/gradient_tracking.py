r"""Gradient tracking (DIGing): exact, uncompressed, two vectors per round."""

from __future__ import annotations

from ._peer import PeerMethod, lr_param

__all__ = ["GradientTracking"]


class GradientTracking(PeerMethod):
    r"""DIGing / gradient tracking, uncompressed (exact, linear rate).

    Source: Nedic, Olshevsky & Shi, "Achieving geometric convergence for distributed
    optimization over time-varying graphs", SIAM J. Optim. 2017 (DIGing). Update:

    .. math:: X^{k+1} = W X^k - \eta Y^k, \qquad
              Y^{k+1} = W Y^k + \nabla F(X^{k+1}) - \nabla F(X^k), \qquad
              Y^0 = \nabla F(X^0)

    Each agent broadcasts x_i and y_i every round (two channels): 128 d bits. One gradient
    per round (kept in the state as ``G``).

    Examples
    --------
    >>> from stflow.graphs import make_graph
    >>> from stflow.problems import make_problem
    >>> from stflow import solve
    >>> p = make_problem("quadratic", agents=6, dim=3, seed=0)
    >>> m = GradientTracking(p, make_graph("ring", 6))
    >>> sol = solve(m, step=1.0, horizon=2000, tolerance=1e-8)
    >>> m.bits_per_message, sol.status
    (384, 'converged')
    """

    kind = "gradient_tracking"
    title = "gradient tracking"
    auto_lr = 0.3
    params = (lr_param(auto_lr),)
    state_keys = ("X", "Y", "G")
    channels = ("raw", "raw")

    def init_block(self, X, V):
        G = self.grad(X)
        return {"X": X, "Y": G.copy(), "G": G}

    def send(self, state, t, h):
        return [state["X"], state["Y"]]

    def receive(self, state, messages, t, h):
        MX, MY = messages
        X = self.W @ MX - self.lr * state["Y"]
        G = self.grad(X)
        Y = self.W @ MY + (G - state["G"])
        return {"X": X, "Y": Y, "G": G}
