"""Argument checks shared by :class:`Graph` and :func:`make_graph`: agent count, seed,
option ownership, edge weights and connectivity."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from stflow.errors import InputError

__all__ = [
    "_check_n",
    "_check_seed",
    "_check_nonneg_int",
    "_check_options_belong",
    "_check_weight_values",
    "_scalar_weight",
    "_check_connected",
]


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
        raise InputError(
            f"`n` must be an integer >= 2 (got {n!r}): set [graph] n (number of agents) >= 2"
        )
    return int(n)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"`seed` must be a non-negative integer (got {seed!r}): set seed >= 0")
    return int(seed)


def _check_nonneg_int(value: Any, name: str, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InputError(f"`{name}` must be a non-negative integer (got {value!r}): {fix}")
    return int(value)


def _check_options_belong(kind: str, **opts: Any) -> None:
    owner = {"edges": "edges", "p": "erdos_renyi", "radius": "geometric", "chords": "ring"}
    for name, value in opts.items():
        unset = value is None or (
            name == "chords" and isinstance(value, numbers.Integral) and value == 0
        )
        if not unset and owner[name] != kind:
            raise InputError(
                f"`{name}` applies to kind={owner[name]!r} only (got {name}={value!r} with "
                f"kind={kind!r}): remove {name} or set kind = {owner[name]!r}"
            )


def _check_weight_values(w: np.ndarray) -> None:
    if w.size and not (np.all(np.isfinite(w)) and np.all(w > 0)):
        bad = w[~(np.isfinite(w) & (w > 0))][0]
        raise InputError(
            f"`weights` must be finite and > 0 (got {bad!r}): use positive edge weights"
        )


def _scalar_weight(weights: Any) -> float:
    if weights is None:
        return 1.0
    if isinstance(weights, bool) or not isinstance(weights, numbers.Real):
        raise InputError(
            f"`weights` must be a positive number (got {weights!r}): set weights > 0"
        )
    w = float(weights)
    _check_weight_values(np.array([w]))
    return w


def _check_connected(n: int, edges: np.ndarray) -> None:
    adj = sp.coo_matrix((np.ones(edges.shape[0]), (edges[:, 0], edges[:, 1])), shape=(n, n))
    count, _ = connected_components(adj, directed=False)
    if count > 1:
        raise InputError(
            f"graph is disconnected ({count} components): add edges so every agent is reachable"
        )
