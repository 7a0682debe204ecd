"""The :class:`Graph` class: an undirected, connected, weighted graph stored as a sorted edge
list, with its sparse Laplacian, degrees, neighbour lists and eigenvalues."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from stflow.errors import InputError

from ._validate import _check_connected, _check_n, _check_weight_values
from .spectrum import _sparse_lambda_2, _sparse_lambda_max

__all__ = [
    "Graph",
]

_DENSE_MAX_N = 2000  # eigenvalues by dense eigvalsh up to this size, ARPACK above


@dataclass(frozen=True, eq=False)
class Graph:
    r"""An undirected, connected, weighted communication graph on ``n`` agents.

    The weighted Laplacian is

    .. math:: L_{ii} = \sum_j a_{ij}, \qquad L_{ij} = -a_{ij} \quad (i \ne j),

    (SPEC section 1). Build graphs with `make_graph`; the constructor only checks its input.

    Parameters
    ----------
    n : int
        Number of agents, ``n >= 2``.
    edges : numpy.ndarray, shape (E, 2), int64
        Each undirected edge once with ``i < j``, rows sorted lexicographically.
    weights : numpy.ndarray, shape (E,), float64
        Edge weights ``a_ij > 0``.
    kind : str
        The topology it was built as (one of `GRAPH_KINDS`).

    Examples
    --------
    >>> from stflow.graphs import make_graph
    >>> g = make_graph("ring", 4)
    >>> g.edges.tolist()
    [[0, 1], [0, 3], [1, 2], [2, 3]]
    >>> g.laplacian.toarray()[0].tolist()
    [2.0, -1.0, 0.0, -1.0]
    >>> round(g.lambda_2, 12), round(g.lambda_max, 12)
    (2.0, 4.0)
    """

    n: int
    edges: np.ndarray
    weights: np.ndarray
    kind: str

    def __post_init__(self) -> None:
        n = _check_n(self.n)
        edges = np.asarray(self.edges)
        if edges.ndim != 2 or edges.shape[1] != 2 or not np.issubdtype(edges.dtype, np.integer):
            raise InputError(
                f"`edges` must be an integer array of shape (E, 2) (got dtype {edges.dtype}, "
                f"shape {edges.shape}): build graphs with make_graph"
            )
        edges = edges.astype(np.int64)
        weights = np.asarray(self.weights, dtype=np.float64)
        if weights.shape != (edges.shape[0],):
            raise InputError(
                f"`weights` must have shape (E,) = ({edges.shape[0]},) (got {weights.shape}): "
                "give one weight per edge"
            )
        if edges.size and (edges.min() < 0 or edges.max() >= n):
            raise InputError(
                f"`edges` indices must lie in [0, {n - 1}] (got {edges.min()}..{edges.max()}): "
                "fix the edge list or raise n"
            )
        if np.any(edges[:, 0] >= edges[:, 1]):
            raise InputError(
                "`edges` rows must satisfy i < j: build graphs with make_graph, which "
                "canonicalises edge lists"
            )
        keys = edges[:, 0] * n + edges[:, 1]
        if np.any(np.diff(keys) <= 0):
            raise InputError(
                "`edges` must be sorted lexicographically without duplicates: build graphs "
                "with make_graph, which canonicalises edge lists"
            )
        _check_weight_values(weights)
        _check_connected(n, edges)
        edges.setflags(write=False)
        weights = weights.copy()
        weights.setflags(write=False)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "kind", str(self.kind))

    def __repr__(self) -> str:
        return f"Graph(kind={self.kind!r}, n={self.n}, edges={self.edges.shape[0]})"

    @cached_property
    def _adjacency(self) -> sp.csr_matrix:
        """Weighted adjacency, (n, n) CSR, both directions stored."""
        i, j = self.edges[:, 0], self.edges[:, 1]
        w = self.weights
        a = sp.coo_matrix(
            (np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))),
            shape=(self.n, self.n),
        ).tocsr()
        a.sort_indices()
        return a

    @cached_property
    def laplacian(self) -> sp.csr_matrix:
        r"""Weighted graph Laplacian :math:`L = D - A`, (n, n) CSR float64.

        Examples
        --------
        >>> from stflow.graphs import make_graph
        >>> make_graph("path", 3).laplacian.toarray().tolist()
        [[1.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 1.0]]
        """
        a = self._adjacency
        lap = (sp.diags(np.asarray(a.sum(axis=1)).ravel()) - a).tocsr()
        lap.sort_indices()
        return lap

    @cached_property
    def degree(self) -> np.ndarray:
        """Number of neighbours of each agent, (n,) int64 (unweighted).

        Examples
        --------
        >>> from stflow.graphs import make_graph
        >>> make_graph("star", 4).degree.tolist()
        [3, 1, 1, 1]
        """
        deg = np.bincount(self.edges.ravel(), minlength=self.n).astype(np.int64)
        deg.setflags(write=False)
        return deg

    def neighbors(self, i: int) -> np.ndarray:
        """Sorted indices of the neighbours of agent ``i``, int64.

        Examples
        --------
        >>> from stflow.graphs import make_graph
        >>> make_graph("ring", 5).neighbors(0).tolist()
        [1, 4]
        """
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < self.n:
            raise InputError(
                f"agent index `i` must be an integer in [0, {self.n - 1}] (got {i!r}): "
                "pick an existing agent"
            )
        a = self._adjacency
        return a.indices[a.indptr[i] : a.indptr[i + 1]].astype(np.int64)

    @cached_property
    def lambda_2(self) -> float:
        r"""Algebraic connectivity: the second smallest eigenvalue of :math:`L`.

        Dense ``numpy.linalg.eigvalsh`` for ``n <= 2000``. Above, ARPACK: Lanczos on
        :math:`L + c\,\mathbf{1}\mathbf{1}^T/n` (the zero mode moved to the top) and, when
        that is slow (long thin graphs such as rings), shift-invert with a small negative
        shift; the result is polished by a Rayleigh quotient.

        Examples
        --------
        >>> import math
        >>> from stflow.graphs import make_graph
        >>> n = 8
        >>> bool(abs(make_graph("ring", n).lambda_2 - 4 * math.sin(math.pi / n) ** 2) < 1e-12)
        True
        """
        if self.n <= _DENSE_MAX_N:
            return float(self._dense_eigenvalues[1])
        return _sparse_lambda_2(self.laplacian, self.weights)

    @cached_property
    def lambda_max(self) -> float:
        """Largest eigenvalue of :math:`L`.

        Examples
        --------
        >>> from stflow.graphs import make_graph
        >>> round(make_graph("star", 6).lambda_max, 12)
        6.0
        """
        if self.n <= _DENSE_MAX_N:
            return float(self._dense_eigenvalues[-1])
        return _sparse_lambda_max(self.laplacian)

    @cached_property
    def _dense_eigenvalues(self) -> np.ndarray:
        return np.linalg.eigvalsh(self.laplacian.toarray())

    def to_networkx(self) -> Any:
        """The graph as a ``networkx.Graph`` with nodes ``0..n-1`` and edge attribute ``weight``.

        Examples
        --------
        >>> from stflow.graphs import make_graph
        >>> g = make_graph("path", 3).to_networkx()
        >>> sorted(g.edges(data="weight"))
        [(0, 1, 1.0), (1, 2, 1.0)]
        """
        import networkx as nx

        g = nx.Graph()
        g.add_nodes_from(range(self.n))
        g.add_weighted_edges_from(
            zip(self.edges[:, 0].tolist(), self.edges[:, 1].tolist(), self.weights.tolist(),
                strict=True)
        )
        return g
