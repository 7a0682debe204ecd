r"""Compiled kernels for the hot loops of a step, each with a numpy twin.

A step of the flows at small d is a few dozen numpy calls on small arrays; call overhead,
not data, sets its speed (docs/performance.md). The kernels here fuse those calls into one
pass each. Every kernel has a numpy **twin** that makes the same IEEE operations in the
same order (no fused multiply-add: numba compiles without ``fastmath``), so both give the
same bits; the tests check that for every kernel (``tests/test_kernels.py``).

The kernels are compiled with numba on first use (cached on disk next to this file); when
numba cannot be imported, or ``STFLOW_KERNELS=numpy`` is set, the twins run instead, with
the same results, only slower.

- :func:`topk_apply`: the greedy sparsifier's ``C(Z)`` for k <= 8 (k rounds of "first
  largest ``|z_j|``", ties to the lower index), exactly what ``argmax`` rounds pick;
- :func:`gram_grad`: the least-squares gradient ``G_i x_i - A_i^T b_i`` from Gram matrices,
  summed over j = 0..d-1 in order; rows may share matrices (``index``), which is how a
  batch of runs on one problem reads each matrix once;
- :func:`primal_dual_update`, :func:`observer_copy`, :func:`predict_update`: the flows'
  elementwise updates (SPEC section 5), gains and ``h`` a number or a per-row column.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["topk_apply", "csr_matmul", "gram_grad", "primal_dual_update", "observer_copy",
           "predict_update", "predict_point", "compiled"]

_COMPILED = None  # the numba kernels (a namespace), False when numba is not used


def _load():
    global _COMPILED
    if _COMPILED is None:
        _COMPILED = False
        if os.environ.get("STFLOW_KERNELS", "").lower() != "numpy":
            try:
                from . import _numba_kernels
            except ImportError:
                pass
            else:
                _COMPILED = _numba_kernels
    return _COMPILED


def compiled() -> bool:
    """Whether the numba kernels run (else the numpy twins)."""
    return bool(_load())


_F8 = np.dtype(np.float64)
_SCALARS: dict[float, np.ndarray] = {}  # a number as a read-only 1-element array


def _col(x) -> np.ndarray:
    """A gain or step as a 1-D float64 array: one value, or one per row (from a column)."""
    if type(x) is float:
        a = _SCALARS.get(x)
        if a is None:
            if len(_SCALARS) > 1024:
                _SCALARS.clear()
            a = _SCALARS[x] = np.array([x])
            a.setflags(write=False)
        return a
    return np.ascontiguousarray(np.asarray(x, dtype=np.float64).reshape(-1))


def _args(arrays, params):
    """The (n, d) float64 arrays and the parameters as 1-D arrays of length 1 or n, or
    ``None`` when an input has another shape or type (its twin then runs: numpy
    broadcasting)."""
    shape = arrays[0].shape
    if len(shape) != 2:
        return None
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype != _F8 or a.shape != shape:
            return None
    out = list(arrays)
    for p in params:
        q = _col(p)
        if q.shape[0] != 1 and q.shape[0] != shape[0]:
            return None
        out.append(q)
    return out


# -- top-k --------------------------------------------------------------------------------


def topk_apply(Z: np.ndarray, k: int):
    """``C(Z)`` of the greedy sparsifier with ``k`` <= 8, or ``None`` when a row holds NaN
    (the caller then takes its mask path)."""
    kern = _load()
    if kern and Z.dtype == np.float64 and Z.ndim == 2 and Z.shape[1] > 0:
        Z = np.ascontiguousarray(Z)
        out = np.zeros_like(Z)
        return out if kern.topk_apply(Z, int(k), out) else None
    return topk_apply_numpy(Z, k)


def topk_picked_numpy(Z: np.ndarray, k: int):
    """(n, k) picked indices in the order found, or ``None`` on a NaN row."""
    n, d = Z.shape
    A = np.abs(Z)
    flat = A.reshape(-1)
    base = np.arange(0, n * d, d)
    idx = np.empty((n, k), dtype=np.intp)
    for j in range(k):
        col = A.argmax(axis=1)
        idx[:, j] = col
        pos = base + col
        if j == 0 and np.isnan(flat[pos]).any():
            return None
        if j < k - 1:
            flat[pos] = -1.0  # below every |z_j|
    return idx


def topk_apply_numpy(Z: np.ndarray, k: int):
    n, d = Z.shape
    pos = topk_picked_numpy(Z, k)
    if pos is None:
        return None
    pos += np.arange(0, n * d, d)[:, None]
    pos = pos.reshape(-1)
    out = np.zeros_like(Z)
    out.reshape(-1)[pos] = Z.reshape(-1)[pos]
    return out


# -- sparse products ----------------------------------------------------------------------


def csr_matmul(A, X: np.ndarray) -> np.ndarray:
    """``A @ X`` for a scipy CSR matrix ``A`` and a float64 ``(n, d)`` array, the same bits
    as scipy's product (each row summed from 0.0 over its stored entries in order)."""
    kern = _load()
    if (kern and X.ndim == 2 and X.dtype == np.float64 and A.dtype == np.float64
            and getattr(A, "format", None) == "csr" and A.shape[1] == X.shape[0]):
        X = np.ascontiguousarray(X)
        out = np.empty((A.shape[0], X.shape[1]))
        kern.csr_matmul(A.data, A.indices, A.indptr, X, out)
        return out
    return A @ X


# -- least-squares gradient ---------------------------------------------------------------


_IDENTITY: dict[int, np.ndarray] = {}  # n -> arange(n), the rows' own matrices


def _identity(n: int) -> np.ndarray:
    a = _IDENTITY.get(n)
    if a is None:
        if len(_IDENTITY) > 64:
            _IDENTITY.clear()
        a = _IDENTITY[n] = np.arange(n)
        a.setflags(write=False)
    return a


def gram_grad(X: np.ndarray, gram: np.ndarray, atb: np.ndarray, index=None) -> np.ndarray:
    r"""``g_r = x_r^T G_{m(r)} - (A^T b)_{m(r)}`` for every row r (``m = index``, default
    the identity), the sum over j taken in order: ``((x_0 G_0 + x_1 G_1) + ...) - atb``."""
    kern = _load()
    if kern and X.ndim == 2 and X.shape[1] > 0 and X.dtype == np.float64:
        X = np.ascontiguousarray(X)
        gram, atb = np.ascontiguousarray(gram), np.ascontiguousarray(atb)
        out = np.empty_like(X)
        kern.gram_grad(X, gram, atb, _identity(X.shape[0]) if index is None else index, out)
        return out
    return gram_grad_numpy(X, gram, atb, index)


def gram_grad_numpy(X, gram, atb, index=None):
    if index is not None:
        gram, atb = gram[index], atb[index]
    out = X[:, 0:1] * gram[:, 0, :]
    for j in range(1, X.shape[1]):
        out += X[:, j : j + 1] * gram[:, j, :]
    out -= atb
    return out


# -- the flows' elementwise updates -------------------------------------------------------


def primal_dual_update(X, V, LXc, G, h, alpha, beta, eta):
    r"""SPEC section 5's pinned Euler update, in the order
    ``X + h * (((-alpha * LXc) - beta * V) - eta * G)`` and ``V + h * (beta * LXc)``."""
    kern = _load()
    args = kern and _args([X, V, LXc, G], [h, alpha, beta, eta])
    if args:
        Xn, Vn = np.empty_like(args[0]), np.empty_like(args[0])
        kern.primal_dual_update(*args, Xn, Vn)
        return Xn, Vn
    return primal_dual_update_numpy(X, V, LXc, G, h, alpha, beta, eta)


def primal_dual_update_numpy(X, V, LXc, G, h, alpha, beta, eta):
    # (a * b == b * a and a + b == b + a exactly, so in-place forms are the formula)
    acc = np.multiply(LXc, -alpha)
    tmp = np.multiply(V, beta)
    acc -= tmp
    np.multiply(G, eta, out=tmp)
    acc -= tmp
    acc *= h
    acc += X
    np.multiply(LXc, beta, out=tmp)
    tmp *= h
    tmp += V
    return acc, tmp


def observer_copy(Xhat, M, gamma, h):
    """The observer copies after a round: ``Xhat + h * (gamma * M)``."""
    kern = _load()
    args = kern and _args([Xhat, M], [gamma, h])
    if args:
        out = np.empty_like(args[0])
        kern.observer_copy(*args, out)
        return out
    return observer_copy_numpy(Xhat, M, gamma, h)


def observer_copy_numpy(Xhat, M, gamma, h):
    out = np.multiply(M, gamma)
    out *= h
    out += Xhat
    return out


def predict_update(Y, V, LXc, h, alpha, beta):
    """The predict scheme's correction: ``Y + h * (-alpha * LXc)``, ``V + h * (beta * LXc)``."""
    kern = _load()
    args = kern and _args([Y, V, LXc], [h, alpha, beta])
    if args:
        Xn, Vn = np.empty_like(args[0]), np.empty_like(args[0])
        kern.predict_update(*args, Xn, Vn)
        return Xn, Vn
    return predict_update_numpy(Y, V, LXc, h, alpha, beta)


def predict_update_numpy(Y, V, LXc, h, alpha, beta):
    X = np.multiply(LXc, -alpha)
    X *= h
    X += Y
    Vn = np.multiply(LXc, beta)
    Vn *= h
    Vn += V
    return X, Vn


def predict_point(X, V, G, h, beta, eta):
    """The predict scheme's point ``X + h * ((-beta * V) - eta * G)``."""
    kern = _load()
    args = kern and _args([X, V, G], [h, beta, eta])
    if args:
        out = np.empty_like(args[0])
        kern.predict_point(*args, out)
        return out
    return predict_point_numpy(X, V, G, h, beta, eta)


def predict_point_numpy(X, V, G, h, beta, eta):
    Y = np.multiply(V, -beta)
    Y -= np.multiply(G, eta)
    Y *= h
    Y += X
    return Y
