r"""Shared plumbing of the peer methods: Metropolis mixing, step-size checks, the base class.

Users import everything from :mod:`stflow.peers`; this module exists so that
:mod:`stflow.peers` and :mod:`stflow.peers_compressed` can both build on it.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from .errors import InputError
from .flows import _initial_array

__all__ = ["AUTO_LR", "metropolis_weights", "PeerMethod"]

#: ``lr = "auto"`` means ``AUTO_LR[kind] / L_f`` with ``L_f = max_i`` Lipschitz constant of
#: ``grad f_i`` (measured to converge on the default problems, ``docs/peers.md``).
AUTO_LR = {"dgd": 0.5, "gradient_tracking": 0.3, "nids": 1.0, "choco": 0.5, "lead": 0.5}


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


def _positive(name: str, value, *, upper: float = math.inf, fix: str = "") -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and 0.0 < value <= upper):
        rng = "> 0" if math.isinf(upper) else f"in (0, {upper:g}]"
        raise InputError(f"[flow] {name} must be a number {rng} (got {value!r}): {fix}")
    return float(value)


class PeerMethod:
    """Shared plumbing of the peer methods (not used directly).

    Subclasses set ``kind``, ``_keys`` and implement ``_init(X)`` and ``step``.
    """

    kind = ""
    _keys: tuple[str, ...] = ("X",)
    _message_vectors = 1  # uncompressed d-vectors one agent broadcasts per round

    def __init__(self, problem, graph, compressor=None, *, lr="auto"):
        self.problem = problem
        self.graph = graph
        self.compressor = compressor
        self.n_agents = problem.n_agents
        self.dim = problem.dim
        if graph.n != self.n_agents:
            raise InputError(
                f"`graph` has {graph.n} agents but the problem has {self.n_agents}: "
                "build both with the same N"
            )
        lf = float(getattr(problem, "smoothness", 0.0) or 1.0)
        if lr == "auto" or lr is None:
            lr = AUTO_LR[self.kind] / lf
        self.lr = _positive("lr", lr, fix=f'e.g. lr = {AUTO_LR[self.kind] / lf:.3g} or "auto"')
        self.mixing = metropolis_weights(graph)

    @property
    def bits_per_message(self) -> int:
        """Bits one agent broadcasts per round (SPEC section 6)."""
        if self.compressor is not None:
            return int(self.compressor.bits_per_message())
        return 64 * self.dim * self._message_vectors

    @property
    def state_keys(self) -> tuple[str, ...]:
        """Names of the state arrays (each (N, d))."""
        return self._keys

    def initial_state(self, x0=None, v0=None) -> dict[str, np.ndarray]:
        """``X^0 = x0`` (default 0) and the method's auxiliary arrays; ``v0`` must be None."""
        if v0 is not None:
            raise InputError(
                f"[init] v0 is only for the primal-dual flows (got it with [flow] kind = "
                f"{self.kind!r}): remove v0"
            )
        X = _initial_array("x0", x0, (self.n_agents, self.dim))
        return self._init(X)

    def _init(self, X):  # pragma: no cover - overridden
        return {"X": X}

    def vector_field(self, t, state):
        """Peers are discrete-time: always an :class:`InputError`."""
        raise InputError(
            f"[flow] kind = {self.kind!r} is a discrete-time method (got [solver] method = "
            '"continuous"): use method = "euler"'
        )

    def divergence_cause(self, step: float) -> str:
        """The most likely reason a run blew up: the method's step size against 1/L_f."""
        lf = float(getattr(self.problem, "smoothness", 0.0) or 1.0)
        return (
            f"step size too large for {self.kind}: lr * L_f = {self.lr * lf:.3g}; "
            f'lower [flow] lr (e.g. lr = "auto" = {AUTO_LR[self.kind] / lf:.3g})'
        )

    def __repr__(self) -> str:
        spec = getattr(self.compressor, "spec", None)
        extra = f", compressor={spec!r}" if spec else ""
        return f"{type(self).__name__}(lr={self.lr:.4g}{extra})"
