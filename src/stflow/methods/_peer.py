r"""Shared plumbing of the established (peer) methods: Metropolis mixing and the step size.

One round of a peer method is one iteration of its paper's algorithm; the solver's step
``h`` only sets the clock :math:`t_k = k h` handed to time-varying compressors. All peers mix
with the Metropolis-Hastings matrix :func:`metropolis_weights`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .base import Method, Param

__all__ = ["AUTO_LR", "metropolis_weights", "PeerMethod", "lr_param"]

#: ``lr = "auto"`` means ``AUTO_LR[kind] / L_f`` with ``L_f = max_i`` Lipschitz constant of
#: ``grad f_i`` (measured to converge on the default problems, ``docs/peers.md``).
AUTO_LR = {"dgd": 0.5, "gradient_tracking": 0.3, "nids": 1.0, "choco": 0.5, "lead": 0.5}


def lr_param(kind: str) -> Param:
    """The ``lr`` declaration of peer ``kind`` (``"auto"`` = ``AUTO_LR[kind] / L_f``)."""
    return Param("lr", "auto", f'step size (> 0, or "auto" = {AUTO_LR[kind]} / L_f, '
                 "L_f = max_i Lipschitz constant of grad f_i)", auto=True)


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

    Subclasses set ``kind``, ``params``, ``state_keys``, ``copies``, ``channels`` and
    implement ``init_block``, ``send`` and ``receive``.
    """

    def __init__(self, problem, graph, compressor=None, **values):
        unknown = set(values) - {p.name for p in self.params}
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown parameters {sorted(unknown)}")
        self.lf = float(getattr(problem, "smoothness", 0.0) or 1.0)
        for p in self.params:
            value = values.get(p.name, p.default)
            if value is None:
                value = p.default
            value = p.check(value, self.kind)
            if value == "auto":  # only lr is "auto"
                value = AUTO_LR[self.kind] / self.lf
            setattr(self, p.name, value)
        self.lr0 = self.lr
        super().__init__(problem, graph, compressor if "compressed" in self.channels else None)

    def set_step_scale(self, scale: float) -> None:
        """``[solver] step_decay``: this round's step size is ``lr0 * scale``."""
        self.lr = self.lr0 * scale

    @property
    def mixing(self) -> sp.csr_matrix:
        """The full Metropolis matrix W (N, N)."""
        if getattr(self, "_W", None) is None:
            self._W = metropolis_weights(self.graph)
        return self._W

    def _bind(self, block) -> None:
        self.W = block.restrict(self.mixing)

    def divergence_cause(self, step: float) -> str:
        """The most likely reason a run blew up: the method's step size against 1/L_f."""
        return (
            f"step size too large for {self.kind}: lr * L_f = {self.lr * self.lf:.3g}; "
            f'lower [method] lr (e.g. lr = "auto" = {AUTO_LR[self.kind] / self.lf:.3g})'
        )
