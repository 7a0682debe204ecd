"""Sparse eigenvalue helpers for large graphs: ``lambda_max`` and ``lambda_2`` of a CSR
Laplacian by ARPACK, with shift-invert fall-backs when Lanczos converges slowly."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = [
    "_sparse_lambda_max",
    "_sparse_lambda_2",
]


def _start_vector(n: int) -> np.ndarray:
    v0 = np.random.default_rng(0).standard_normal(n)
    return v0 - v0.mean()


def _sparse_lambda_max(lap: sp.csr_matrix) -> float:
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    n = lap.shape[0]
    v0 = np.random.default_rng(0).standard_normal(n)
    try:
        val = eigsh(lap, k=1, which="LA", v0=v0, ncv=32, maxiter=60, tol=1e-12,
                    return_eigenvectors=False)[0]
    except ArpackNoConvergence:
        # Clustered top of the spectrum (rings, paths): shift-invert just above the
        # Gershgorin bound 2 max_i L_ii >= lambda_max; factorising is cheap for such graphs.
        upper = 2.0 * float(lap.diagonal().max())
        val = eigsh(lap.tocsc(), k=1, sigma=upper * (1.0 + 1e-6), which="LM", v0=v0,
                    return_eigenvectors=False)[0]
    return float(val)


def _sparse_lambda_2(lap: sp.csr_matrix, weights: np.ndarray) -> float:
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    n = lap.shape[0]
    v0 = _start_vector(n)
    shift = 2.0 * float(lap.diagonal().max())  # >= lambda_max: moves the zero mode on top

    def matvec(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x).ravel()
        return lap @ x + shift * x.mean()

    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    try:
        _, vec = eigsh(op, k=1, which="SA", v0=v0, ncv=32, maxiter=60, tol=1e-12)
    except ArpackNoConvergence:
        # Long thin graphs: shift-invert at a negative shift well below lambda_2
        # (lambda_2 >= 4 min a_ij / n^2 for a connected graph, Mohar 1991).
        sigma = -1e-3 * 4.0 * float(weights.min()) / n**2
        vals, vecs = eigsh(lap.tocsc(), k=2, sigma=sigma, which="LM", v0=v0)
        vec = vecs[:, [int(np.argmax(vals))]]
    v = vec[:, 0] - vec[:, 0].mean()
    return float(v @ (lap @ v) / (v @ v))  # Rayleigh quotient polish
