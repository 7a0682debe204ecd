"""Robust regression with the Huber loss: a cost of your own, in numpy, for stflow.

Agent i holds m rows (a_ij, b_ij) with a few gross outliers and the cost

    f_i(x) = sum_j huber_delta(a_ij^T x - b_ij) + (reg / 2) ||x||^2,

    huber_delta(r) = r^2 / 2            if |r| <= delta
                     delta (|r| - delta / 2)  otherwise.

The contract (docs/problems.md): `make(**keys)` is called with the [problem] section's
other keys, and returns an object with `n_agents`, `dim`, `values(X) -> (N,)` and
`grad(X) -> (N, d)` for X of shape (N, d). `smoothness` is optional; stflow solves for
x* itself (this class gives none), so relative error is reported.
"""

import numpy as np


class Huber:
    def __init__(self, A, b, delta, reg):
        self.A, self.b, self.delta, self.reg = A, b, float(delta), float(reg)
        self.n_agents, _, self.dim = A.shape
        # max_i ||A_i||_2^2 + reg bounds the curvature of every f_i
        self.smoothness = float(max(np.linalg.norm(a, 2) ** 2 for a in A) + reg)

    def _residuals(self, X):
        return np.einsum("nmd,nd->nm", self.A, X) - self.b

    def values(self, X):
        r = np.abs(self._residuals(X))
        d = self.delta
        loss = np.where(r <= d, 0.5 * r**2, d * (r - 0.5 * d)).sum(axis=1)
        return loss + 0.5 * self.reg * np.einsum("nd,nd->n", X, X)

    def grad(self, X):
        psi = np.clip(self._residuals(X), -self.delta, self.delta)
        return np.einsum("nmd,nm->nd", self.A, psi) + self.reg * X

    def subset(self, agent_ids):
        """The costs of some agents only (one MPI rank's block)."""
        return Huber(self.A[agent_ids], self.b[agent_ids], self.delta, self.reg)


def make(agents=8, dim=5, samples=30, delta=1.0, reg=0.01, outliers=0.1, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((agents, samples, dim)) / np.sqrt(dim)
    x_true = rng.standard_normal(dim)
    b = A @ x_true + 0.1 * rng.standard_normal((agents, samples))
    wild = rng.random((agents, samples)) < outliers
    b[wild] += 20.0 * rng.standard_normal(int(wild.sum()))
    return Huber(A, b, delta, reg)
