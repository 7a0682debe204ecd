r"""BEER: gradient tracking with compressed models and compressed tracking variables."""

from __future__ import annotations

import numpy as np

from ._peer import PeerMethod, lr_param
from .base import Param

__all__ = ["BEER"]


class BEER(PeerMethod):
    r"""BEER (Zhao, Li, Li, Richtárik & Chi, NeurIPS 2022, Algorithm 1).

    Source: "BEER: Fast O(1/T) rate for decentralized nonconvex optimization with
    communication compression", NeurIPS 2022; the recursion is transcribed from the
    authors' implementation, repository ``liboyue/beer``, file ``beer/optim/BEER.py``
    (its ``init`` and ``step``; the numpy version ``experiments/BEER.py`` is the same
    recursion). With step :math:`\eta` = ``lr``, mixing step :math:`\gamma` = ``gamma``,
    compressor :math:`C`, :math:`H^0 = G^0 = 0` and :math:`V^0 = \nabla F(X^0)`:

    .. math::

        X^{t+1} = X^t + \gamma (W - I) H^t - \eta V^t, \qquad
        H^{t+1} = H^t + C(X^{t+1} - H^t, t_k),

        V^{t+1} = V^t + \gamma (W - I) G^t + \nabla F(X^{t+1}) - \nabla F(X^t), \qquad
        G^{t+1} = G^t + C(V^{t+1} - G^t, t_k).

    :math:`H` and :math:`G` are public copies (every agent keeps its neighbours'); each
    round an agent sends the two compressed differences :math:`C(x_i^{t+1} - h_i^t)` and
    :math:`C(v_i^{t+1} - g_i^t)`: twice the compressor's bits. Both are computable before
    the round's messages arrive (they use :math:`H^t, G^t` only), so they travel in one
    round. As in the authors' ``init`` (which takes the first step
    :math:`X^1 = X^0 - \eta V^0` before the loop), the state after ``k`` rounds holds
    :math:`X^{k+1}` and :math:`V^{k+1}` (computed from :math:`H^k, G^k`) together with
    :math:`H^k, G^k` and the last gradient :math:`\nabla F(X^{k+1})`; the starting state
    costs two gradients, every round one. Metropolis W (the authors average
    uniformly over the closed neighbourhood; the recursion is the same).

    With ``[problem] batch`` the gradients are SPEC-7 minibatch estimates, one fresh
    minibatch per round, and :math:`V` tracks their differences as in the paper's
    Algorithm 1 and the authors' ``experiments/BEER.py`` (their torch ``step`` evaluates
    both gradients of a difference on the same minibatch instead).

    ``lr = "auto"`` is :math:`0.3 / L` (gradient tracking's: with :math:`C = I` and
    :math:`\gamma = 1`, BEER is DIGing). The paper's theory asks for
    :math:`\gamma = O(\alpha\rho)` and :math:`\eta = O(\gamma\rho^2\alpha/L)` (compression
    quality :math:`\alpha`, spectral gap :math:`\rho`), far below what converges; the
    defaults were measured (``docs/peers.md``).

    Examples
    --------
    >>> from stflow.compressors import make_compressor
    >>> from stflow.graphs import make_graph
    >>> from stflow.problems import make_problem
    >>> from stflow import solve
    >>> p = make_problem("quadratic", agents=6, dim=4, seed=0)
    >>> m = BEER(p, make_graph("ring", 6), make_compressor("quantize:bits=4", 4))
    >>> sol = solve(m, step=1.0, horizon=3000, tolerance=1e-8)
    >>> m.bits_per_message, sol.status  # 2 x (64 + 4 x 4) bits
    (160, 'converged')
    """

    kind = "beer"
    title = "BEER"
    auto_lr = 0.3
    params = (
        lr_param(auto_lr),
        Param("gamma", 0.5, "mixing step gamma in (0, 1] of the compressed copies H and G",
              high=1.0),
    )
    state_keys = ("X", "V", "P", "H", "G")
    copies = ("H", "G")
    channels = ("compressed", "compressed")

    def init_block(self, X, V):
        P0 = self.grad(X)
        X1 = X - self.lr * P0  # X^1 = X^0 + gamma (W - I) H^0 - eta V^0, H^0 = 0
        P1 = self.grad(X1)
        zeros = np.zeros((self.block.n_cols, self.dim))
        # V^1 = V^0 + gamma (W - I) G^0 + grad F(X^1) - grad F(X^0) = grad F(X^1)
        return {"X": X1, "V": P1.copy(), "P": P1, "H": zeros, "G": zeros.copy()}

    def send(self, state, t, h):
        own = self.block.own
        return [state["X"] - state["H"][own], state["V"] - state["G"][own]]

    def receive(self, state, messages, t, h):
        own, gamma = self.block.own, self.gamma
        H = state["H"] + messages[0]
        G = state["G"] + messages[1]
        X = state["X"] + gamma * (self.W @ H - H[own]) - self.lr * state["V"]
        P = self.grad(X)
        V = state["V"] + gamma * (self.W @ G - G[own]) + (P - state["P"])
        return {"X": X, "V": V, "P": P, "H": H, "G": G}
