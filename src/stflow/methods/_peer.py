r"""Shared plumbing of the established (peer) methods: Metropolis mixing and the step size.

One round of a peer method is one iteration of its paper's algorithm; the solver's step
``h`` only sets the clock :math:`t_k = k h` handed to time-varying compressors. All peers mix
with the Metropolis-Hastings matrix :func:`metropolis_weights`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from .base import Method, Param

__all__ = ["metropolis_weights", "PeerMethod", "lr_param"]


def lr_param(factor: float) -> Param:
    """The ``lr`` declaration of a peer whose ``lr = "auto"`` is ``factor / L``, ``L`` the
    curvature estimate of every method's auto values
    (:func:`stflow.problems.curvature_estimate`)."""
    return Param("lr", "auto", f'step size (> 0, or "auto" = {factor} / L, '
                 "L = max_i curvature of f_i at x* (L_f without x*), the flows' auto gains' L)",
                 auto=True)


def metropolis_weights(graph) -> sp.csr_matrix:
    r"""Metropolis-Hastings mixing matrix of a graph, (N, N) sparse CSR.

    .. math:: W_{ij} = \frac{1}{1 + \max(\deg_i, \deg_j)} \ \ (ij \in E), \qquad
              W_{ii} = 1 - \sum_{j \ne i} W_{ij},

    with unweighted degrees: symmetric, doubly stochastic, eigenvalues in (-1, 1]
    (Xiao, Boyd & Kim 2007). Edge weights :math:`a_{ij}` of the graph are not used.

    Examples
    --------
    >>> from stflow.graphs import make_graph
    >>> metropolis_weights(make_graph("path", 3)).toarray().round(4).tolist()
    [[0.6667, 0.3333, 0.0], [0.3333, 0.3333, 0.3333], [0.0, 0.3333, 0.6667]]
    """
    n = graph.n
    i, j = graph.edges[:, 0], graph.edges[:, 1]
    deg = np.asarray(graph.degree, dtype=float)
    w = 1.0 / (1.0 + np.maximum(deg[i], deg[j]))
    off = sp.coo_matrix(
        (np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n)
    ).tocsr()
    diag = 1.0 - np.asarray(off.sum(axis=1)).ravel()
    W = (off + sp.diags(diag)).tocsr()
    W.sort_indices()
    return W


class PeerMethod(Method):
    """A peer method: declared parameters (``lr`` first) resolved, Metropolis mixing bound.

    Subclasses set ``kind``, ``params`` (starting from :attr:`params`, the ``lr`` key),
    ``state_keys``, ``copies``, ``channels`` and implement ``init_block``, ``send`` and
    ``receive``.
    """

    #: ``lr = "auto"`` means ``auto_lr / L`` with ``L`` the curvature estimate every method's
    #: auto values use (:func:`stflow.problems.curvature_estimate`: the largest local
    #: curvature at x*, ``L_f`` for constant Hessians; measured to converge on the default
    #: problems, ``docs/peers.md``).
    auto_lr: ClassVar[float] = 0.5
    #: The step size ``lr`` (``"auto"`` by default): a subclass of your own extends it,
    #: ``params = PeerMethod.params + (Param("beta", ...),)``; the built-in peers declare
    #: their own (:func:`lr_param` with their :attr:`auto_lr`).
    params: ClassVar[tuple[Param, ...]] = (lr_param(0.5),)

    def __init__(self, problem, graph, compressor=None, **values):
        self.lf = float(getattr(problem, "smoothness", 0.0) or 1.0)
        super().__init__(problem, graph, compressor if "compressed" in self.channels else None,
                         **values)
        self.lr0 = getattr(self, "lr", None)

    @property
    def curvature(self) -> float:
        """``L`` of the auto rules: :func:`stflow.problems.curvature_estimate` of the
        problem, the same number the flows' auto gains use."""
        from ..problems import curvature_estimate

        return curvature_estimate(self.problem)

    def auto_value(self, name: str) -> float:
        """``lr = "auto"``: :attr:`auto_lr` / L (:attr:`curvature`)."""
        if name == "lr":
            return type(self).auto_lr / self.curvature
        return super().auto_value(name)

    def set_step_scale(self, scale: float) -> None:
        """``[solver] step_decay``: this round's step size is ``lr0 * scale``."""
        if self.lr0 is not None:
            self.lr = self.lr0 * scale

    @property
    def mixing(self) -> sp.csr_matrix:
        """The full Metropolis matrix W (N, N)."""
        if getattr(self, "_W", None) is None:
            self._W = metropolis_weights(self.graph)
        return self._W

    def bind_block(self, block) -> None:
        self.W = block.restrict(self.mixing)

    def mixing_matrices(self) -> dict:
        """``{"W": W}``: every peer mixes with the Metropolis matrix."""
        return {"W": self.mixing}

    stall_hint = ("tune [method] lr and its other settings (stflow tune), or change the "
                  "compressor (docs/peers.md)")

    def divergence_cause(self, step: float) -> str:
        """The most likely reason a run blew up: the method's step size against 1/L_f."""
        if not isinstance(getattr(self, "lr", None), float):
            return "unknown (the method declares no step size lr)"
        auto = type(self).auto_lr / self.curvature
        if self.lr <= auto * (1 + 1e-12):  # already at or below "auto": say so, no circle
            return (
                f"lr = {self.lr:.3g} is at or below \"auto\" ({auto:.3g}; lr * L_f = "
                f"{self.lr * self.lf:.3g}), so not the step alone: lower lr further, or look at "
                "the compressor and, on a lossy network, at [network] and [graph] schedule"
            )
        return (
            f"step size too large for {self.kind}: lr * L_f = {self.lr * self.lf:.3g}; "
            f'lower [method] lr (e.g. lr = "auto" = {auto:.3g})'
        )
