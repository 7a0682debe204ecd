r"""NIDS / exact diffusion: exact, uncompressed, one vector per round."""

from __future__ import annotations

import numpy as np

from ._peer import PeerMethod, lr_param
from .base import Param

__all__ = ["NIDS"]


class NIDS(PeerMethod):
    r"""NIDS, uncompressed (exact, linear rate); ``c = 1/2`` is exact diffusion.

    Source: Li, Shi & Yan, "A decentralized proximal-gradient method with network
    independent step-sizes and separated convergence rates", IEEE TSP 2019; with
    :math:`c = 1/2` it is exact diffusion (Yuan, Ying, Zhao & Sayed, IEEE TSP 2019):

    .. math:: X^{k+1} = \tilde W \big(2X^k - X^{k-1} - \eta(\nabla F(X^k) - \nabla F(X^{k-1}))\big),
              \qquad \tilde W = I - c (I - W), \qquad X^1 = \tilde W (X^0 - \eta \nabla F(X^0)).

    Computed in the equivalent primal-dual form (LEAD's uncompressed case, Liu et al. 2021,
    with :math:`D^0 = 0`), whose invariant :math:`\mathbf 1^T D = 0` does not drift in
    floating point (the two-step form above loses about 1e-16 relative per round):

    .. math:: Y^k = X^k - \eta \nabla F(X^k) - \eta D^k, \quad
              D^{k+1} = D^k + \tfrac{c}{\eta} (I - W) Y^k, \quad
              X^{k+1} = X^k - \eta \nabla F(X^k) - \eta D^{k+1} = \tilde W Y^k.

    Agents broadcast :math:`y_i`: 64 d bits per round.

    Examples
    --------
    >>> from stflow.graphs import make_graph
    >>> from stflow.problems import make_problem
    >>> from stflow import solve
    >>> p = make_problem("quadratic", agents=6, dim=3, seed=0)
    >>> sol = solve(NIDS(p, make_graph("ring", 6)), step=1.0, horizon=1000, tolerance=1e-8)
    >>> sol.status
    'converged'
    """

    kind = "nids"
    title = "NIDS"
    auto_lr = 1.0
    params = (
        lr_param(auto_lr),
        Param("c", 0.5, "mixing W~ = I - c (I - W), c in (0, 1]; 0.5 = exact diffusion",
              high=1.0, log=False),
    )
    state_keys = ("X", "D")

    def init_block(self, X, V):
        return {"X": X, "D": np.zeros_like(X)}

    def send(self, state, t, h):
        lr = self.lr
        self._base = state["X"] - lr * self.grad(state["X"])
        self._Y = self._base - lr * state["D"]
        return [self._Y]

    def receive(self, state, messages, t, h):
        lr = self.lr
        D = state["D"] + (self.c / lr) * (self._Y - self.W @ messages[0])
        X = self._base - lr * D
        self._base = self._Y = None
        return {"X": X, "D": D}
