"""Least-squares local costs ``f_i(x) = 1/2 ||A_i x - b_i||^2``."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from ._validate import _validate_arrays
from .base import Problem, _smallest_eigenvalue
from .minibatch import RowCosts

__all__ = [
    "LeastSquaresProblem",
]


class LeastSquaresProblem(RowCosts, Problem):
    r"""Least-squares costs :math:`f_i(x) = \tfrac12 \|A_i x - b_i\|^2`.

    ``x_star`` is the minimum-norm minimizer when :math:`\sum_i A_i^T A_i` is singular
    (then ``strong_convexity`` is 0.0).

    Parameters
    ----------
    A : array_like, shape (N, m, d)
    b : array_like, shape (N, m)
    x_star, f_star : optional
        A known optimum (skips the solve).
    batch, seed, agent_ids : optional
        Minibatches of SPEC section 7 (:meth:`stochastic_grad`): B rows per evaluation (None:
        full gradients), the ``[problem] seed``, the agents' global ids (default 0..N-1).

    Examples
    --------
    >>> A = np.array([[[1.0, 0.0]], [[0.0, 2.0]]])
    >>> p = LeastSquaresProblem(A, np.array([[1.0], [2.0]]))
    >>> p.x_star.tolist(), p.smoothness, p.strong_convexity
    ([1.0, 1.0], 4.0, 1.0)
    """

    kind = "least_squares"

    def __init__(
        self,
        A: Any,
        b: Any,
        *,
        x_star: Any = None,
        f_star: Any = None,
        batch: int | None = None,
        seed: int = 0,
        agent_ids: Any = None,
    ):
        arr = _validate_arrays("least_squares", {"A": A, "b": b}, fix="fix the data arrays")
        self.A, self.b = arr["A"], arr["b"]
        super().__init__(self.A.shape[0], self.A.shape[2], x_star=x_star, f_star=f_star)
        self._init_rows(batch=batch, seed=seed, agent_ids=agent_ids)

    def _residual(self, X: np.ndarray) -> np.ndarray:
        return (self.A @ X[:, :, None])[:, :, 0] - self.b

    def values(self, X: np.ndarray) -> np.ndarray:
        r = self._residual(self._check_X(X))
        return 0.5 * np.einsum("nm,nm->n", r, r)

    def grad(self, X: np.ndarray) -> np.ndarray:
        r = self._residual(self._check_X(X))
        return (r[:, None, :] @ self.A)[:, 0, :]

    def _rows_grad(self, X: np.ndarray, idx: np.ndarray) -> np.ndarray:
        agent = np.arange(idx.shape[0])[:, None]
        a = self.A[agent, idx]  # (n, B, d)
        r = np.einsum("nbd,nd->nb", a, X) - self.b[agent, idx]
        return np.einsum("nb,nbd->nd", r, a)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"A": self.A, "b": self.b}

    @cached_property
    def _gram_sum(self) -> np.ndarray:
        a = self.A.reshape(-1, self.dim)
        return a.T @ a

    def _hessian_sum(self, x: np.ndarray) -> np.ndarray:
        return self._gram_sum

    @cached_property
    def smoothness(self) -> float:
        return float(np.linalg.svd(self.A, compute_uv=False)[:, 0].max() ** 2)

    @cached_property
    def strong_convexity(self) -> float:
        return _smallest_eigenvalue(self._gram_sum)

    def _minimize(self) -> np.ndarray:
        return np.linalg.lstsq(self.A.reshape(-1, self.dim), self.b.ravel(), rcond=None)[0]

    def _from_arrays(self, arrays: dict[str, np.ndarray], **kw: Any) -> Problem:
        return LeastSquaresProblem(arrays["A"], arrays["b"], **self._row_options(arrays, kw))
