"""The numba side of :mod:`stflow.kernels` (imported on first use; see there).

Every kernel writes into an output array its caller allocated and makes the IEEE operations
of its numpy twin in the same order; a per-row parameter (gain, step) is a 1-D array of
length 1 (one value for every row) or n (one per row).
"""

from __future__ import annotations

import numba as nb
import numpy as np

_jit = nb.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")


@_jit
def topk_apply(Z, k, out):
    """``out`` (zeros) gets Z's k largest |z_j| per row, ties to the lower index; False (and
    ``out`` partly written) when a row holds NaN.

    k = 1, 2: one pass keeping the best (and second best) so far, replaced only by a
    strictly larger |z_j|; k > 2: k scans for the first largest remaining entry. Both pick
    the set that ``argmax`` rounds pick. (inf - inf is NaN too: a row with an infinite
    entry also takes the caller's mask path, which keeps the same entries.)"""
    n, d = Z.shape
    if k <= 2:
        for r in range(n):
            b1, b2, i1, i2 = -1.0, -1.0, 0, 0
            nan = 0.0
            for c in range(d):  # arithmetic, not branches (the data decide them at random)
                v = abs(Z[r, c])
                nan += v - v  # NaN once any v is NaN
                g1 = np.int64(v > b1)  # a new best (the old best becomes the second)
                g2 = np.int64(v > b2)  # a new second best
                i2 = i2 + g2 * (c - i2)
                i2 = i2 + g1 * (i1 - i2)
                i1 = i1 + g1 * (c - i1)
                b2 = max(b2, min(b1, v))
                b1 = max(b1, v)
            if nan != nan:
                return False
            out[r, i1] = Z[r, i1]
            if k == 2:
                out[r, i2] = Z[r, i2]
        return True
    buf = np.empty(d)
    for r in range(n):
        for c in range(d):
            v = abs(Z[r, c])
            if v != v:
                return False
            buf[c] = v
        for _j in range(k):
            best = 0
            bv = buf[0]
            for c in range(1, d):
                if buf[c] > bv:
                    bv = buf[c]
                    best = c
            out[r, best] = Z[r, best]
            buf[best] = -1.0
    return True


@_jit
def csr_matmul(data, indices, indptr, X, out):
    """``out = A @ X`` for a CSR matrix, as scipy's ``csr_matvecs`` sums: from 0.0, the
    stored entries of a row in order."""
    n, d = out.shape
    for r in range(n):
        for i in range(d):
            out[r, i] = 0.0
        for jj in range(indptr[r], indptr[r + 1]):
            a = data[jj]
            c = indices[jj]
            for i in range(d):
                out[r, i] += a * X[c, i]


@_jit
def gram_grad(X, gram, atb, index, out):
    """Row r: ``x_r^T G_m - c_m`` with m = index[r], summed over j in order."""
    n, d = X.shape
    for r in range(n):
        m = index[r]
        x0 = X[r, 0]
        for i in range(d):
            out[r, i] = x0 * gram[m, 0, i]
        for j in range(1, d):
            x = X[r, j]
            for i in range(d):
                out[r, i] += x * gram[m, j, i]
        for i in range(d):
            out[r, i] -= atb[m, i]


@_jit
def primal_dual_update(X, V, LXc, G, h, alpha, beta, eta, Xn, Vn):
    n, d = X.shape
    for r in range(n):
        hr = h[r if h.shape[0] > 1 else 0]
        a = alpha[r if alpha.shape[0] > 1 else 0]
        b = beta[r if beta.shape[0] > 1 else 0]
        e = eta[r if eta.shape[0] > 1 else 0]
        for i in range(d):
            lx = LXc[r, i]
            acc = lx * (-a)
            acc -= V[r, i] * b
            acc -= G[r, i] * e
            Xn[r, i] = acc * hr + X[r, i]
            Vn[r, i] = (lx * b) * hr + V[r, i]


@_jit
def observer_copy(Xhat, M, gamma, h, out):
    n, d = Xhat.shape
    for r in range(n):
        hr = h[r if h.shape[0] > 1 else 0]
        g = gamma[r if gamma.shape[0] > 1 else 0]
        for i in range(d):
            out[r, i] = (M[r, i] * g) * hr + Xhat[r, i]


@_jit
def predict_update(Y, V, LXc, h, alpha, beta, Xn, Vn):
    n, d = Y.shape
    for r in range(n):
        hr = h[r if h.shape[0] > 1 else 0]
        a = alpha[r if alpha.shape[0] > 1 else 0]
        b = beta[r if beta.shape[0] > 1 else 0]
        for i in range(d):
            lx = LXc[r, i]
            Xn[r, i] = (lx * (-a)) * hr + Y[r, i]
            Vn[r, i] = (lx * b) * hr + V[r, i]


@_jit
def predict_point(X, V, G, h, beta, eta, out):
    n, d = X.shape
    for r in range(n):
        hr = h[r if h.shape[0] > 1 else 0]
        b = beta[r if beta.shape[0] > 1 else 0]
        e = eta[r if eta.shape[0] > 1 else 0]
        for i in range(d):
            out[r, i] = ((V[r, i] * (-b)) - G[r, i] * e) * hr + X[r, i]
