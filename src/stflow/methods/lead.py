r"""LEAD: linearly convergent decentralized optimization with compression."""

from __future__ import annotations

import numpy as np

from ._peer import PeerMethod, lr_param
from .base import Param

__all__ = ["LEAD"]


class LEAD(PeerMethod):
    r"""LEAD (Liu, Li, Wang, Tang & Yan, ICLR 2021, Algorithm 1, deterministic gradients).

    With step :math:`\eta` = ``lr``, dual step :math:`\gamma` and state-tracking weight
    :math:`\alpha`; :math:`D^0 = H^0 = H_w^0 = 0` (so :math:`H_w = W H` throughout):

    .. math::

        Y^k = X^k - \eta \nabla F(X^k) - \eta D^k, \qquad
        Q^k = C(Y^k - H^k, t_k)

        \hat Y^k = H^k + Q^k, \qquad \hat Y^k_w = H^k_w + W Q^k, \qquad
        D^{k+1} = D^k + \tfrac{\gamma}{2\eta} (\hat Y^k - \hat Y^k_w)

        X^{k+1} = X^k - \eta \nabla F(X^k) - \eta D^{k+1}, \qquad
        H^{k+1} = (1-\alpha) H^k + \alpha \hat Y^k, \qquad
        H^{k+1}_w = (1-\alpha) H^k_w + \alpha \hat Y^k_w.

    Exact: with the identity compressor it is NIDS. Only :math:`q_i` is sent; every agent
    keeps the copies :math:`H_j` of its neighbours. Since :math:`H_w = W H` holds exactly in
    exact arithmetic, :math:`\hat Y_w = W \hat Y` is computed from :math:`\hat Y` instead of
    being stored: updating :math:`H_w` separately lets :math:`\mathbf 1^T (H - H_w)` drift by
    rounding, which :math:`D` integrates into an error that grows quadratically in time
    (measured: 1e-10 -> 2.5e-8 over 3e4 rounds).

    Examples
    --------
    >>> from stflow.compressors import make_compressor
    >>> from stflow.graphs import make_graph
    >>> from stflow.problems import make_problem
    >>> from stflow import solve
    >>> p = make_problem("quadratic", agents=6, dim=4, seed=0)
    >>> m = LEAD(p, make_graph("ring", 6), make_compressor("quantize:bits=4", 4))
    >>> sol = solve(m, step=1.0, horizon=2000, tolerance=1e-8)
    >>> m.bits_per_message, sol.status
    (80, 'converged')
    """

    kind = "lead"
    title = "LEAD"
    auto_lr = 0.5
    params = (
        lr_param(auto_lr),
        Param("alpha", 0.1, "weight alpha in (0, 1] of the compressed-state tracking H",
              high=1.0),
        Param("gamma", 1.0, "dual step gamma in (0, 2]", high=2.0),
    )
    state_keys = ("X", "D", "H")
    copies = ("H",)
    channels = ("compressed",)

    def init_block(self, X, V):
        return {"X": X, "D": np.zeros_like(X), "H": np.zeros((self.block.n_cols, self.dim))}

    def send(self, state, t, h):
        lr = self.lr
        self._base = state["X"] - lr * self.grad(state["X"])
        Y = self._base - lr * state["D"]
        return [Y - state["H"][self.block.own]]

    def receive(self, state, messages, t, h):
        a, lr, own = self.alpha, self.lr, self.block.own
        yhat = state["H"] + messages[0]
        D = state["D"] + (self.gamma / (2.0 * lr)) * (yhat[own] - self.W @ yhat)
        X = self._base - lr * D
        self._base = None
        return {"X": X, "D": D, "H": (1.0 - a) * state["H"] + a * yhat}
