"""Argument and data checks shared by the problem classes, :func:`make_problem` and the MPI
block loader: counts, the ridge weight, and the keys, shapes and values of problem arrays."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from stflow.errors import InputError

__all__ = [
    "_KEYS",
    "_check_regularization",
    "_check_count",
    "_raise_keys",
    "_validate_arrays",
    "_check_quadratic",
    "_first_nonfinite",
]


class _Keys:
    """``kind -> data_keys`` of the built-in classes (their declarations)."""

    def __getitem__(self, kind):
        from .registry import problem_class

        return problem_class(kind).data_keys


_KEYS = _Keys()


def _check_regularization(reg: Any) -> float:
    ok = isinstance(reg, numbers.Real) and not isinstance(reg, bool)
    if not ok or not np.isfinite(reg) or reg < 0:
        raise InputError(
            f"`regularization` must be a finite number >= 0 (got {reg!r}): "
            "set [problem] regularization >= 0"
        )
    return float(reg)


def _check_count(value: Any, name: str, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"`{name}` must be a positive integer (got {value!r}): {fix}")
    return int(value)


def _raise_keys(kind: str, arrays: Mapping, fix: str) -> None:
    raise InputError(
        f"problem data for kind={kind!r} must hold exactly the arrays "
        f"{', '.join(_KEYS[kind])} (got {', '.join(sorted(map(str, arrays))) or 'none'}): {fix}"
    )


def _first_nonfinite(a: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN or inf of ``a`` (C order), or None; chunked along axis 0, so
    the temporary mask is small whatever the size of ``a``."""
    if a.ndim == 0 or a.size == 0:
        return None if a.ndim or np.isfinite(a) else ()
    per = max(1, a.size // max(1, a.shape[0]))
    step = max(1, (1 << 20) // per)
    for start in range(0, a.shape[0], step):
        part = a[start : start + step]
        if not np.isfinite(part).all():
            where = np.argwhere(~np.isfinite(part))[0]
            return (start + int(where[0]), *(int(i) for i in where[1:]))
    return None


def _validate_arrays(
    kind: str, arrays: Mapping, *, fix: str, copy: bool = True, freeze: bool = True
) -> dict[str, np.ndarray]:
    """Check keys, dtypes, shapes, finiteness and kind-specific rules; float64.

    ``copy=False`` uses arrays that are already float64 as they are (for arrays the caller
    hands over, or only reads once); ``freeze`` makes the results read-only (only for
    arrays the problem owns: a copy, or handed-over arrays).
    """
    if set(arrays) != set(_KEYS[kind]):
        _raise_keys(kind, arrays, fix)
    out = {}
    for key in _KEYS[kind]:
        try:
            a = (np.array if copy else np.asarray)(arrays[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(
                f"problem data: `{key}` must be a numeric array (got "
                f"{type(arrays[key]).__name__}): {fix}"
            ) from None
        out[key] = a
    from .registry import problem_class

    cls = problem_class(kind)
    sizes: dict[str, int] = {}
    for key, axes in zip(cls.data_keys, cls.data_shapes, strict=True):
        a = out[key]
        want = "(" + ", ".join(axes) + ")"
        if a.ndim != len(axes) or 0 in a.shape:
            raise InputError(f"problem data: `{key}` must have shape {want} (got {a.shape}): {fix}")
        for axis, size in zip(axes, a.shape, strict=True):
            if sizes.setdefault(axis, size) != size:
                shape = tuple(sizes.get(x, "?") for x in axes)
                raise InputError(
                    f"problem data: `{key}` must have shape {want} = {shape} (got {a.shape}): "
                    f"{fix}"
                )
    for key, a in out.items():
        where = _first_nonfinite(a)
        if where is not None:
            raise InputError(
                f"problem data: `{key}` contains NaN or inf (first at index {where}): {fix}"
            )
    cls.check_arrays(out, fix)
    if freeze:
        for a in out.values():
            a.setflags(write=False)
    return out


def _check_quadratic(out: dict[str, np.ndarray], fix: str) -> None:
    q = out["Q"]
    scale = max(1.0, float(np.abs(q).max()))
    asym = np.abs(q - np.swapaxes(q, 1, 2)).max(axis=(1, 2))
    if np.any(asym > 1e-10 * scale):
        i = int(np.argmax(asym))
        raise InputError(
            f"problem data: `Q[{i}]` must be symmetric within 1e-10 (got max |Q - Q^T| = "
            f"{asym[i]:.3g}): {fix}"
        )
    q = 0.5 * (q + np.swapaxes(q, 1, 2))
    low = np.linalg.eigvalsh(q)[:, 0]
    if np.any(low < -1e-10 * scale):
        i = int(np.argmin(low))
        raise InputError(
            f"problem data: `Q[{i}]` must be positive semidefinite so f_{i} is convex (got "
            f"smallest eigenvalue {low[i]:.3g}): {fix}"
        )
    out["Q"] = q
