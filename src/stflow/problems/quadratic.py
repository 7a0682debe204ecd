"""Quadratic local costs ``f_i(x) = 1/2 x^T Q_i x - b_i^T x``."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from stflow.errors import InputError

from ._validate import _validate_arrays
from .base import Problem, _smallest_eigenvalue

__all__ = [
    "QuadraticProblem",
]


class QuadraticProblem(Problem):
    r"""Quadratic costs :math:`f_i(x) = \tfrac12 x^T Q_i x - b_i^T x`.

    Parameters
    ----------
    Q : array_like, shape (N, d, d)
        Symmetric positive semidefinite matrices (symmetric within 1e-10, then symmetrized).
    b : array_like, shape (N, d)
    x_star, f_star : optional
        A known optimum (skips the solve), as `Problem.subset` passes it.

    Examples
    --------
    >>> p = QuadraticProblem(np.stack([np.eye(2), 3 * np.eye(2)]), np.ones((2, 2)))
    >>> p.x_star.tolist(), p.smoothness, p.strong_convexity
    ([0.5, 0.5], 3.0, 4.0)
    """

    kind = "quadratic"
    title = "f_i(x) = 1/2 x^T Q_i x - b_i^T x"
    params = ()
    data_keys = ("Q", "b")
    data_shapes = (("N", "d", "d"), ("N", "d"))

    @classmethod
    def check_arrays(cls, arrays, fix):
        """Each Q_i symmetric within 1e-10 and positive semidefinite (symmetrized in place)."""
        from ._validate import _check_quadratic

        _check_quadratic(arrays, fix)
    blocks = True

    hessian_is_constant = True

    def block_hessians(self, x):
        return self.Q

    @classmethod
    def distributed_minimize(cls, sums):
        """:math:`(\\sum_i Q_i)^{-1} \\sum_i b_i` (bit for bit the simulator's)."""
        q_sum = sums._hessian_sum(np.zeros(sums.dim))
        low = np.linalg.eigvalsh(q_sum)[0]
        if low <= 0.0:
            raise InputError(
                f"quadratic data: sum of Q_i is singular (smallest eigenvalue {low:.3g}), so "
                "x* is not unique: make the sum of the Q_i positive definite"
            )
        return np.linalg.solve(q_sum, sums.chain_sum(sums.local.b))

    @classmethod
    def from_block(cls, arrays, section, **optimum):
        return cls(arrays["Q"], arrays["b"], **optimum)

    @classmethod
    def build(cls, arrays, *, owned, generated, keep_rows, **options):
        """The problem of validated or generated arrays (:func:`stflow.problems.make_problem`)."""
        problem = cls(**arrays)
        if problem.strong_convexity == 0.0:
            problem._minimize()  # raises the singular-sum error
        return problem

    @classmethod
    def generate(cls, stream, d, *, samples=None, classes=None) -> dict:
        """:math:`Q_i = M_i M_i^T / d + 0.1 I`, :math:`b_i \\sim N(0, I)`."""
        rng = stream.rng
        mm = stream.keep(rng.standard_normal, (d, d))
        q = mm @ np.swapaxes(mm, 1, 2) / d + 0.1 * np.eye(d)
        return {"Q": 0.5 * (q + np.swapaxes(q, 1, 2)), "b": stream.keep(rng.standard_normal, (d,))}

    @classmethod
    def data_bytes(cls, section: dict) -> int:
        """``N d^2 + N d`` float64 entries, the centralized solve's ``3 d^2``, and the
        generation's temporaries: building the ``N`` random ``d x d`` blocks grows the
        process by about 4 times the stored blocks (measured with ``ru_maxrss``: 247 MB for
        N = 50, d = 400 and 89 MB for N = 30, d = 300, whose blocks are 64 and 22 MB), so
        ``5 N d^2`` are counted, a margin for the modules the build imports (issue 21: the
        estimate was 4x low)."""
        if section.get("data") is not None:
            return 0
        n, d = int(section["agents"]), int(section["dim"])
        return 8 * (5 * n * d * d + n * d + 3 * d * d)

    def __init__(self, Q: Any, b: Any, *, x_star: Any = None, f_star: Any = None):
        arr = _validate_arrays("quadratic", {"Q": Q, "b": b}, fix="fix the data arrays")
        self.Q, self.b = arr["Q"], arr["b"]
        super().__init__(self.b.shape[0], self.b.shape[1], x_star=x_star, f_star=f_star)

    def values(self, X: np.ndarray) -> np.ndarray:
        X = self._check_X(X)
        return np.einsum("ni,ni->n", X, 0.5 * (self.Q @ X[:, :, None])[:, :, 0] - self.b)

    def grad(self, X: np.ndarray) -> np.ndarray:
        X = self._check_X(X)
        return (self.Q @ X[:, :, None])[:, :, 0] - self.b

    def arrays(self) -> dict[str, np.ndarray]:
        return {"Q": self.Q, "b": self.b}

    @cached_property
    def _Q_sum(self) -> np.ndarray:
        return self.Q.sum(axis=0)

    def _hessian_sum(self, x: np.ndarray) -> np.ndarray:
        return self._Q_sum

    @cached_property
    def smoothness(self) -> float:
        return float(np.linalg.eigvalsh(self.Q)[:, -1].max())

    @cached_property
    def strong_convexity(self) -> float:
        return _smallest_eigenvalue(self._Q_sum)

    @property
    def solution_curvature(self) -> float:
        """The Hessian is constant: ``smoothness`` itself."""
        return self.smoothness

    def _minimize(self) -> np.ndarray:
        if self.strong_convexity == 0.0:
            raise InputError(
                "quadratic data: sum of Q_i is singular (smallest eigenvalue "
                f"{np.linalg.eigvalsh(self._Q_sum)[0]:.3g}), so x* is not unique: make the sum "
                "of the Q_i positive definite"
            )
        return np.linalg.solve(self._Q_sum, self.b.sum(axis=0))

    def _from_arrays(self, arrays: dict[str, np.ndarray], **kw: Any) -> Problem:
        return QuadraticProblem(arrays["Q"], arrays["b"], **kw)
