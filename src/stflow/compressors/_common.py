"""Argument checks, the key=value parser and time-windowed shared draws used by several
compressor modules."""

from __future__ import annotations

import functools
import math

import numpy as np

from ..errors import InputError

__all__ = [
    "_BASES",
    "_MAX_LEVEL_BITS",
    "_EXAMPLE_VALUE",
    "_check_k",
    "_positive",
    "_nonnegative_int",
    "_shared_draw",
    "_window",
    "_parse_pairs",
]


_BASES = ("cyclic", "sinusoid", "random", "constant")
_MAX_LEVEL_BITS = 53  # levels and s must be exact float64 integers


@functools.lru_cache(maxsize=64)
def _shared_draw(kind: str, seed: int, window: int, d: int, k: int) -> np.ndarray:
    """Read-only draw shared by all agents: a k-subset (``"subset"``) or a unit vector."""
    rng = np.random.default_rng([seed, window])
    if kind == "subset":
        out = np.sort(rng.choice(d, k, replace=False))
    else:
        g = rng.standard_normal(d)
        out = g / np.linalg.norm(g)
    out.setflags(write=False)
    return out


def _window(t: float, tau: float) -> int:
    """Index floor(t / tau + 1e-9) of the window holding time t."""
    if not t >= 0.0:
        raise InputError(f"`t` must be >= 0 (got t={t}): compressor time starts at 0")
    return math.floor(t / tau + 1e-9)


def _check_k(k: int, d: int) -> None:
    if not 1 <= k <= d:
        raise InputError(f"`k` must satisfy 1 <= k <= d (got k={k}, d={d}): lower k or raise dim")


def _positive(key: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise InputError(
            f"`{key}` must be a finite number > 0 (got {key}={value}): pass e.g. "
            f"{key}={_EXAMPLE_VALUE.get(key, 1.0)}"
        )
    return value


def _nonnegative_int(key: str, value: int) -> int:
    if int(value) != value or value < 0:
        raise InputError(f"`{key}` must be an integer >= 0 (got {key}={value}): pass e.g. {key}=0")
    return int(value)


_EXAMPLE_VALUE = {"tau": 0.01, "freq": 5.0, "step": 0.1}


def _parse_pairs(text: str, stage: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in text.split(","):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise InputError(
                f"compressor `{stage}`: {item.strip()!r} is not key=value: "
                "write name:key=value,key=value"
            )
        if key in pairs:
            raise InputError(f"compressor `{stage}`: key `{key}` given twice: keep one")
        pairs[key] = value
    return pairs
