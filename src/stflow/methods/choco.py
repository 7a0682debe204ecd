r"""CHOCO-SGD: decentralized (stochastic) gradient descent with compressed gossip."""

from __future__ import annotations

import numpy as np

from ._peer import PeerMethod, lr_param
from .base import Param

__all__ = ["CHOCO"]


class CHOCO(PeerMethod):
    r"""CHOCO-SGD: decentralized GD with CHOCO-gossip on public copies.

    Source: Koloskova, Stich & Jaggi, "Decentralized stochastic optimization and gossip
    algorithms with compressed communication", ICML 2019, Algorithm 2. Every agent keeps a
    public copy :math:`\hat x_i` that all its neighbours hold too (:math:`\hat X^0 = 0`);
    with step :math:`\eta` = ``lr`` and consensus step :math:`\gamma` = ``gamma``:

    .. math::

        X^{k+\frac12} = X^k - \eta \nabla F(X^k), \qquad
        Q^k = C(X^{k+\frac12} - \hat X^k, t_k), \qquad
        \hat X^{k+1} = \hat X^k + Q^k,

        X^{k+1} = X^{k+\frac12} + \gamma (W - I) \hat X^{k+1}.

    With a constant step it stalls at an :math:`O(\eta)` floor like DGD (the paper
    uses decaying steps for exactness). Only :math:`q_i` is sent. Local steps (SPEC 7):
    :math:`x_i \leftarrow x_i - \eta g_i(x_i)`.

    Examples
    --------
    >>> from stflow.compressors import make_compressor
    >>> from stflow.graphs import make_graph
    >>> from stflow.problems import make_problem
    >>> from stflow import solve
    >>> p = make_problem("quadratic", agents=6, dim=4, seed=0)
    >>> m = CHOCO(p, make_graph("ring", 6), make_compressor("topk:k=2", 4), lr=0.05, gamma=0.5)
    >>> sol = solve(m, step=1.0, horizon=4000)
    >>> m.bits_per_message, sol.status, round(sol.final_relative_error, 2)
    (132, 'stalled', 0.64)
    """

    kind = "choco"
    title = "CHOCO"
    auto_lr = 0.5
    params = (
        lr_param(auto_lr),
        Param("gamma", 0.1, "consensus step gamma in (0, 1]", high=1.0),
    )
    state_keys = ("X", "Xhat")
    copies = ("Xhat",)
    channels = ("compressed",)
    local_steps_ok = True

    def init_block(self, X, V):
        return {"X": X, "Xhat": np.zeros((self.block.n_cols, self.dim))}

    def send(self, state, t, h):
        self._half = state["X"] - self.lr * self.grad(state["X"])
        return [self._half - state["Xhat"][self.block.own]]

    def receive(self, state, messages, t, h):
        xhat = state["Xhat"] + messages[0]
        X = self._half + self.gamma * (self.W @ xhat - xhat[self.block.own])
        self._half = None
        return {"X": X, "Xhat": xhat}

    def local_update(self, state, t, h):
        return {**state, "X": state["X"] - self.lr * self.grad(state["X"])}
