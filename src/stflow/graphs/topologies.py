"""Topologies: :func:`make_graph` and the edge-list generators behind each of
:data:`GRAPH_KINDS` (ring with chords, path, star, complete, grid, Erdos-Renyi, random
geometric, explicit edges)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from stflow.errors import InputError

from ._validate import (
    _check_n,
    _check_nonneg_int,
    _check_options_belong,
    _check_seed,
    _check_weight_values,
    _component_count,
    _scalar_weight,
)
from .graph import Graph

__all__ = [
    "GRAPH_KINDS",
    "make_graph",
]

GRAPH_KINDS = ("ring", "path", "star", "complete", "grid", "erdos_renyi", "geometric", "edges")

_MAX_REDRAWS = 100  # random kinds: seeded redraws until the graph is connected


def make_graph(
    kind: str,
    n: int | None,
    *,
    seed: int = 0,
    edges: Any = None,
    weights: Any = None,
    p: float | None = None,
    radius: float | None = None,
    chords: int | None = 0,
) -> Graph:
    r"""Build a connected communication graph of a given kind.

    Kinds (`GRAPH_KINDS`):

    - ``ring``: edges ``(i, i+1 mod n)``; ``n == 2`` gives the single edge. ``chords``
      extra seeded random edges between non-adjacent agents turn it into a ring with chords.
    - ``path``: edges ``(i, i+1)``. ``star``: centre 0 joined to every other agent.
    - ``complete``: every pair.
    - ``grid``: ``rows x cols`` lattice, agent ``r * cols + c``, with ``rows`` the largest
      divisor of ``n`` not above :math:`\sqrt n` (so a prime ``n`` gives a ``1 x n`` grid,
      which is the path).
    - ``erdos_renyi``: each pair independently with probability ``p`` (default
      :math:`\min(1, 2 \ln n / n)`), redrawn from the seeded generator until connected.
    - ``geometric``: ``n`` points uniform in the unit square, joined when closer than
      ``radius`` (default :math:`\min(1.5, \sqrt{2.5 \ln n / n})`), redrawn until connected.
    - ``edges``: an explicit list of ``[i, j]`` pairs (either order; duplicates merged, they
      must then carry equal weights); ``n=None`` infers ``n = max index + 1``.

    Options that belong to another kind (``p`` for a ring, ...) are an `InputError`.

    Parameters
    ----------
    kind : str
        One of `GRAPH_KINDS`.
    n : int or None
        Number of agents, ``n >= 2`` (``None`` only for ``kind="edges"``).
    seed : int
        Seed of ``numpy.random.default_rng`` for the random kinds and for ``chords``.
    edges : array_like of shape (E, 2), optional
        The edge list for ``kind="edges"``.
    weights : float or array_like of shape (E,), optional
        Edge weights, finite and ``> 0``: a scalar for every kind, or one per given edge for
        ``kind="edges"``. Default 1.
    p : float, optional
        Edge probability for ``erdos_renyi``, ``0 < p <= 1``.
    radius : float, optional
        Connection radius for ``geometric``, ``> 0``.
    chords : int
        Extra random edges for ``ring``.

    Returns
    -------
    Graph

    Raises
    ------
    InputError
        Unknown kind, bad option, or a disconnected graph.

    Examples
    --------
    >>> make_graph("grid", 6).edges.tolist()
    [[0, 1], [0, 3], [1, 2], [1, 4], [2, 5], [3, 4], [4, 5]]
    >>> make_graph("edges", None, edges=[[1, 0], [1, 2]], weights=[2.0, 0.5]).weights.tolist()
    [2.0, 0.5]
    >>> g = make_graph("erdos_renyi", 30, seed=1)
    >>> bool(np.array_equal(g.edges, make_graph("erdos_renyi", 30, seed=1).edges))
    True
    """
    if kind not in GRAPH_KINDS:
        raise InputError(
            f"`kind` must be one of {', '.join(GRAPH_KINDS)} (got {kind!r}): "
            "set [graph] kind to a known topology"
        )
    _check_options_belong(kind, edges=edges, p=p, radius=radius, chords=chords)
    if isinstance(weights, (list, tuple, np.ndarray)) and kind != "edges":
        raise InputError(
            f"`weights` must be a scalar for kind={kind!r} (got an array): "
            "give per-edge weights with kind='edges'"
        )
    if kind == "edges":
        edge_arr, w = _explicit_edges(edges, weights, n)
        n = int(edge_arr.max()) + 1 if n is None else n
        n = _check_n(n)
        if edge_arr.size and edge_arr.max() >= n:
            raise InputError(
                f"`edges` indices must lie in [0, n-1] = [0, {n - 1}] (got index "
                f"{int(edge_arr.max())}): raise n or fix the edge list"
            )
        return Graph(n, edge_arr, w, kind)

    n = _check_n(n)
    rng = np.random.default_rng(_check_seed(seed))
    if kind == "ring":
        e = _ring_edges(n)
        count = _check_nonneg_int(chords or 0, "chords", "set [graph] chords >= 0")
        if count:
            e = np.concatenate([e, _random_new_edges(n, e, count, rng)])
    elif kind == "path":
        e = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
    elif kind == "star":
        e = np.stack([np.zeros(n - 1, dtype=np.int64), np.arange(1, n)], axis=1)
    elif kind == "complete":
        e = np.stack(np.triu_indices(n, k=1), axis=1)
    elif kind == "grid":
        e = _grid_edges(n)
    elif kind == "erdos_renyi":
        e = _erdos_renyi_edges(n, p, rng)
    else:
        e = _geometric_edges(n, radius, rng)
    e = _canonical(np.asarray(e, dtype=np.int64), n)
    w = np.full(e.shape[0], _scalar_weight(weights))
    return Graph(n, e, w, kind)


# ------------------------------------------------------------------------------ builders


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """``np.unique`` for int64 keys by sort + diff (faster than the hash path for big E)."""
    keys = np.sort(keys)
    return keys[np.concatenate([[True], np.diff(keys) != 0])] if keys.size else keys


def _canonical(e: np.ndarray, n: int) -> np.ndarray:
    """Rows as (min, max), sorted lexicographically, duplicates removed."""
    e = np.sort(e.reshape(-1, 2), axis=1)
    keys = _sorted_unique(e[:, 0] * n + e[:, 1])
    return np.stack([keys // n, keys % n], axis=1).astype(np.int64)


def _first_bool(value: Any, where: str = ""):
    """``(index text, value)`` of the first boolean nested in lists/tuples, else None.

    Examples
    --------
    >>> _first_bool([[0, 1], [1, True]])
    ('[1][1]', True)
    >>> _first_bool([[0, 1]]) is None
    True
    """
    if isinstance(value, bool | np.bool_):
        return where, bool(value)
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _first_bool(item, f"{where}[{i}]")
            if found is not None:
                return found
    return None


def _explicit_edges(edges: Any, weights: Any, n: Any) -> tuple[np.ndarray, np.ndarray]:
    if edges is None:
        raise InputError("`edges` is required for kind='edges' (got none): give [[i, j], ...]")
    for name, value in (("edges", edges), ("weights", weights)):
        found = _first_bool(value)
        if found is not None:  # numpy would read true/false as 1/0
            raise InputError(
                f"`{name}` must hold numbers, not booleans (got {str(found[1]).lower()} at "
                f"{name}{found[0]}): write agent indices (or weights) as numbers"
            )
    try:
        raw = np.asarray(edges)
    except ValueError as exc:
        raise InputError(
            f"`edges` must be a list of [i, j] pairs (got a ragged list): fix the edge list "
            f"({exc})"
        ) from None
    if raw.size == 0:
        raise InputError("`edges` must list at least one [i, j] pair (got none): add edges")
    if raw.ndim != 2 or raw.shape[1] != 2:
        raise InputError(
            f"`edges` must have shape (E, 2) (got {raw.shape}): give a list of [i, j] pairs"
        )
    if not np.issubdtype(raw.dtype, np.integer):
        if not (np.issubdtype(raw.dtype, np.floating) and np.all(raw == np.round(raw))):
            raise InputError(
                f"`edges` entries must be integers (got dtype {raw.dtype}): "
                "use integer agent indices"
            )
    e = raw.astype(np.int64)
    if e.min() < 0:
        raise InputError(
            f"`edges` indices must be >= 0 (got {int(e.min())}): agents are numbered from 0"
        )
    loops = e[:, 0] == e[:, 1]
    if np.any(loops):
        raise InputError(
            f"`edges` must not contain self loops (got [{e[loops][0, 0]}, {e[loops][0, 1]}]): "
            "remove edges from an agent to itself"
        )
    if weights is None or isinstance(weights, numbers.Real) and not isinstance(weights, bool):
        w = np.full(e.shape[0], _scalar_weight(weights))
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (e.shape[0],):
            raise InputError(
                f"`weights` must have shape (E,) = ({e.shape[0]},) to match `edges` "
                f"(got {w.shape}): give one weight per edge"
            )
        _check_weight_values(w)
    size = int(e.max()) + 1 if n is None else max(int(e.max()) + 1, _check_n(n))
    e = np.sort(e, axis=1)
    keys = e[:, 0] * size + e[:, 1]
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    if np.any(w != w[first][inverse]):
        k = int(np.flatnonzero(w != w[first][inverse])[0])
        raise InputError(
            f"`weights` of the duplicated edge [{e[k, 0]}, {e[k, 1]}] disagree "
            f"({w[first][inverse][k]} vs {w[k]}): list each edge once"
        )
    return np.stack([uniq // size, uniq % size], axis=1).astype(np.int64), w[first]


def _ring_edges(n: int) -> np.ndarray:
    i = np.arange(n)
    e = np.stack([i, (i + 1) % n], axis=1)
    return e[:1] if n == 2 else e


def _grid_edges(n: int) -> np.ndarray:
    rows = max(r for r in range(1, math.isqrt(n) + 1) if n % r == 0)
    cols = n // rows
    ids = np.arange(n).reshape(rows, cols)
    horizontal = np.stack([ids[:, :-1].ravel(), ids[:, 1:].ravel()], axis=1)
    vertical = np.stack([ids[:-1, :].ravel(), ids[1:, :].ravel()], axis=1)
    return np.concatenate([horizontal, vertical])


def _pair_from_index(k: np.ndarray) -> np.ndarray:
    """Invert k = j (j - 1) / 2 + i over pairs i < j (column-major upper triangle)."""
    j = np.floor((1.0 + np.sqrt(1.0 + 8.0 * k.astype(np.float64))) / 2.0).astype(np.int64)
    j -= j * (j - 1) // 2 > k
    j += (j + 1) * j // 2 <= k
    return np.stack([k - j * (j - 1) // 2, j], axis=1)


def _random_new_edges(n: int, existing: np.ndarray, count: int, rng: np.random.Generator):
    """``count`` distinct uniformly random pairs i < j that are not in ``existing``."""
    total = n * (n - 1) // 2
    ex = np.sort(existing, axis=1)
    taken = _sorted_unique(ex[:, 1] * (ex[:, 1] - 1) // 2 + ex[:, 0])
    free = total - taken.size
    if count > free:
        raise InputError(
            f"`chords` must be at most the {free} missing pairs of a ring with n={n} "
            f"(got {count}): lower chords"
        )
    if total <= 4_000_000:
        candidates = np.setdiff1d(np.arange(total), taken, assume_unique=True)
        return _pair_from_index(rng.choice(candidates, size=count, replace=False))
    chosen = np.empty(0, dtype=np.int64)
    while chosen.size < count:
        draw = rng.integers(0, total, size=2 * (count - chosen.size) + 16)
        draw = draw[~np.isin(draw, taken) & ~np.isin(draw, chosen)]
        _, first = np.unique(draw, return_index=True)
        chosen = np.concatenate([chosen, draw[np.sort(first)]])[:count]
    return _pair_from_index(chosen)


def _is_connected(n: int, e: np.ndarray) -> bool:
    if e.shape[0] < n - 1:
        return False
    return _component_count(n, e) == 1


def _erdos_renyi_edges(n: int, p: float | None, rng: np.random.Generator) -> np.ndarray:
    if p is None:
        p = min(1.0, 2.0 * math.log(n) / n)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 < p <= 1.0:
        raise InputError(f"`p` must satisfy 0 < p <= 1 (got {p!r}): set [graph] p in (0, 1]")
    total = n * (n - 1) // 2
    for _ in range(_MAX_REDRAWS):
        m = int(rng.binomial(total, p))
        e = _pair_from_index(np.sort(rng.choice(total, size=m, replace=False)))
        if _is_connected(n, e):
            return e
    suggestion = min(1.0, max(3.0 * math.log(n) / n, 2.0 * p))
    raise InputError(
        f"erdos_renyi graph with n={n}, p={p:.4g} was disconnected in {_MAX_REDRAWS} seeded "
        f"draws: raise p above ln(n)/n = {math.log(n) / n:.4g} (e.g. p = {suggestion:.4g})"
    )


def _geometric_edges(n: int, radius: float | None, rng: np.random.Generator) -> np.ndarray:
    from scipy.spatial import cKDTree

    if radius is None:
        radius = min(1.5, math.sqrt(2.5 * math.log(n) / n))
    if isinstance(radius, bool) or not isinstance(radius, numbers.Real) or not radius > 0:
        raise InputError(f"`radius` must be > 0 (got {radius!r}): set [graph] radius > 0")
    for _ in range(_MAX_REDRAWS):
        points = rng.random((n, 2))
        e = cKDTree(points).query_pairs(float(radius), output_type="ndarray").astype(np.int64)
        if _is_connected(n, e):
            return e
    raise InputError(
        f"geometric graph with n={n}, radius={radius:.4g} was disconnected in {_MAX_REDRAWS} "
        f"seeded draws: raise radius (e.g. radius = {min(1.5, 2 * radius):.4g})"
    )
