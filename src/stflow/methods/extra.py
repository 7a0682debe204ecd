r"""EXTRA: the exact first-order method of Shi, Ling, Wu & Yin; uncompressed, one vector."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ._peer import PeerMethod
from .base import Param

__all__ = ["EXTRA"]


class EXTRA(PeerMethod):
    r"""EXTRA, uncompressed (exact with a constant step, linear rate if strongly convex).

    Source: Shi, Ling, Wu & Yin, "EXTRA: An exact first-order algorithm for decentralized
    consensus optimization", SIAM J. Optim. 25(2), 2015, Algorithm 1 with
    :math:`\tilde W = (I + W)/2` (W Metropolis, :math:`\alpha` = ``lr``):

    .. math::

        X^1 = W X^0 - \alpha \nabla F(X^0), \qquad
        X^{k+2} = (I + W) X^{k+1} - \tilde W X^k
                  - \alpha \big(\nabla F(X^{k+1}) - \nabla F(X^k)\big).

    Computed in the paper's summed form (its eq. (2.13)), whose state
    :math:`E^k = \sum_{t<k} (\tilde W - W) X^t` is a running sum instead of a second
    iterate (the same numbers in exact arithmetic; no :math:`1/\alpha` in the state):

    .. math:: X^{k+1} = W X^k - \alpha \nabla F(X^k) - E^k, \qquad
              E^{k+1} = E^k + \tfrac12 (I - W) X^k, \qquad E^0 = 0.

    Agents broadcast :math:`x_i`: 64 d bits per round, one gradient per round.
    ``lr = "auto"`` is :math:`1.8 \lambda_{\min}(\tilde W) / L`, 90 % of the bound
    :math:`\alpha < 2 \lambda_{\min}(\tilde W) / L_f` under which the paper's Theorem 3.3
    proves convergence (with Metropolis W,
    :math:`\lambda_{\min}(\tilde W) = (1 + \lambda_{\min}(W))/2 > 0`), with ``L`` the
    curvature estimate every method's auto values use
    (:func:`stflow.problems.curvature_estimate`): :math:`L_f` itself for constant Hessians,
    the largest local curvature at :math:`x^\star` otherwise (the local form of the bound).

    Examples
    --------
    >>> from stflow.graphs import make_graph
    >>> from stflow.problems import make_problem
    >>> from stflow import solve
    >>> p = make_problem("quadratic", agents=6, dim=3, seed=0)
    >>> m = EXTRA(p, make_graph("ring", 6))
    >>> sol = solve(m, step=1.0, horizon=2000, tolerance=1e-8)
    >>> m.bits_per_message, sol.status
    (192, 'converged')
    """

    kind = "extra"
    title = "EXTRA"
    #: ``lr = "auto"`` is ``auto_lr * lambda_min(W~) / L``: 90 % of the paper's bound
    #: ``2 lambda_min(W~) / L_f`` (Theorem 3.3) with ``L`` the shared curvature estimate.
    auto_lr: ClassVar[float] = 1.8
    params = (
        Param("lr", "auto", 'step size alpha (> 0, or "auto" = 1.8 lambda_min((I + W)/2) / L, '
              "90 % of the bound 2 lambda_min(W~) / L_f of Shi et al. 2015, Thm 3.3, with "
              "L = max_i curvature of f_i at x*)",
              auto=True),
    )
    state_keys = ("X", "E")

    def auto_value(self, name: str) -> float:
        """``lr = "auto"``: :math:`1.8 \\lambda_{\\min}((I + W)/2) / L` (:attr:`curvature`)."""
        if name == "lr":
            return type(self).auto_lr * self.lambda_min_tilde() / self.curvature
        return super().auto_value(name)

    def lambda_min_tilde(self) -> float:
        r"""Smallest eigenvalue of :math:`\tilde W = (I + W)/2` (W: the full Metropolis matrix)."""
        W = self.mixing
        if W.shape[0] <= 2000:
            lam = float(np.linalg.eigvalsh(W.toarray())[0])
        else:  # pragma: no cover - large graphs
            from scipy.sparse.linalg import eigsh

            lam = float(eigsh(W, k=1, which="SA", return_eigenvectors=False)[0])
        return 0.5 * (1.0 + lam)

    def init_block(self, X, V):
        return {"X": X, "E": np.zeros_like(X)}

    def send(self, state, t, h):
        return [state["X"]]

    def receive(self, state, messages, t, h):
        X = state["X"]
        WX = self.W @ messages[0]
        new = WX - self.lr * self.grad(X) - state["E"]
        return {"X": new, "E": state["E"] + 0.5 * (X - WX)}

    def divergence_cause(self, step: float) -> str:
        bound = 2.0 * self.lambda_min_tilde() / self.lf
        return (
            f"step size too large for extra: lr = {self.lr:.3g} against the bound "
            f"2 lambda_min(W~) / L_f = {bound:.3g} (Shi et al. 2015, Thm 3.3); lower "
            f'[method] lr (e.g. lr = "auto" = {0.9 * bound:.3g})'
        )
