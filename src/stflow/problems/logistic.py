"""Logistic-regression local costs with an optional ridge term."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from stflow.errors import InputError

from ._validate import _check_regularization, _validate_arrays
from .base import Problem
from .minibatch import ClassifierRows
from .registry import BATCH, REGULARIZATION, SAMPLES, TABLE_PARAMS

__all__ = [
    "trust_exact_minimize",
    "LogisticProblem",
]


def trust_exact_minimize(objective, dim: int) -> np.ndarray:
    """Minimize a smooth convex sum by trust-region Newton, then Newton polishing.

    ``objective`` offers ``total_value``, ``total_grad`` and ``_hessian_sum`` (a
    :class:`Problem`, or the MPI backend's distributed sums, so both find x* the same way).
    """
    from scipy.optimize import minimize

    res = minimize(
        objective.total_value,
        np.zeros(dim),
        jac=objective.total_grad,
        hess=objective._hessian_sum,
        method="trust-exact",
        options={"gtol": 1e-12, "maxiter": 500},
    )
    return Problem._polish(objective, res.x)


class LogisticProblem(ClassifierRows, Problem):
    r"""Logistic-regression costs with optional ridge term.

    .. math:: f_i(x) = \sum_j \log(1 + e^{-y_{ij} a_{ij}^T x}) + \tfrac{r}{2}\|x\|^2

    evaluated stably with ``numpy.logaddexp`` and ``scipy.special.expit``. Without
    regularization (``r = 0``) a finite minimizer exists only when the labels are not
    linearly separable; otherwise reading ``x_star`` raises `InputError`.

    Parameters
    ----------
    A : array_like, shape (N, m, d)
        Features, row j of ``A[i]`` is :math:`a_{ij}`.
    y : array_like, shape (N, m)
        Labels in {-1, +1}.
    regularization : float
        Ridge weight ``r >= 0`` of each local cost.
    x_star, f_star : optional
        A known optimum (skips the solve).
    batch, seed, agent_ids : optional
        Minibatches of SPEC section 7 (:meth:`stochastic_grad`): B rows per evaluation (None:
        full gradients), the ``[problem] seed``, the agents' global ids (default 0..N-1).
    test : (A_test (t, d), y_test (t,)), optional
        Held-out rows shared by all agents, for :meth:`test_accuracy`.

    Examples
    --------
    >>> A = np.array([[[1.0], [1.0]], [[-1.0], [1.0]]])
    >>> p = LogisticProblem(A, np.array([[1.0, -1.0], [1.0, 1.0]]), regularization=0.5)
    >>> round(float(p.values(np.zeros((2, 1)))[0]), 6), p.strong_convexity
    (1.386294, 1.0)
    """

    kind = "logistic"
    title = "logistic regression, labels in {-1, +1}"
    params = (SAMPLES, REGULARIZATION, BATCH, *TABLE_PARAMS)
    data_keys = ("A", "y")
    data_shapes = (("N", "m", "d"), ("N", "m"))

    @classmethod
    def check_arrays(cls, arrays, fix):
        """Labels in {-1, +1}."""
        if not np.all(np.abs(arrays["y"]) == 1.0):
            seen = ", ".join(f"{v:g}" for v in np.unique(arrays["y"])[:5])
            raise InputError(
                f"problem data: `y` must contain only -1 and +1 (got values {seen}): "
                "map 0/1 labels with y = 2 y - 1"
            )
    blocks = True

    @property
    def hessian_ridge(self) -> float:
        return self.regularization

    def block_hessians(self, x):
        from scipy.special import expit

        s = expit(self.A @ np.asarray(x, dtype=np.float64))
        return np.swapaxes(self.A, 1, 2) @ ((s * (1.0 - s))[:, :, None] * self.A)

    @classmethod
    def distributed_minimize(cls, sums):
        """``trust-exact``, refusing separable data (no finite minimizer)."""
        import math

        loc = sums.local
        x = trust_exact_minimize(sums, sums.dim)
        z = loc._margins(sums._stack(x))
        gnorm = float(np.linalg.norm(sums.total_grad(x)))
        all_positive = not sums.max(0.0 if np.all(z > 0) else 1.0)
        scale = float(sums.gather_all(np.linalg.norm(loc.grad(sums._stack(x)), axis=1)).sum())
        separable = loc.regularization == 0.0 and all_positive
        if separable or gnorm > 1e-6 * max(1.0, scale) or not math.isfinite(gnorm):
            raise InputError(
                "logistic data: sum of f_i has no finite minimizer (labels are linearly "
                f"separable, or nearly so: ||grad|| = {gnorm:.2g} at ||x|| = "
                f"{np.linalg.norm(x):.3g}): set [problem] regularization > 0 or add samples"
            )
        return x

    @classmethod
    def from_block(cls, arrays, section, **optimum):
        reg = section.get("regularization", 0.0)
        return cls(arrays["A"], arrays["y"], regularization=reg, **optimum)

    @classmethod
    def build(cls, arrays, *, regularization=0.0, test=None, batch=None, seed=0, **options):
        """The problem of validated or generated arrays."""
        return cls(arrays["A"], arrays["y"], regularization=regularization, test=test,
                   batch=batch, seed=seed)

    @classmethod
    def generate(cls, stream, d, *, samples=None, classes=None) -> dict:
        """:math:`a_{ij} \\sim N(0, I/d)`, labels of a random :math:`x_{true}`, 10% flipped."""
        rng, m = stream.rng, cls._samples(d, samples)
        a = stream.keep(rng.standard_normal, (m, d)) / np.sqrt(d)
        x_true = rng.standard_normal(d)
        y = np.where(a @ x_true >= 0, 1.0, -1.0)
        y[stream.keep(rng.random, (m,)) < 0.1] *= -1.0
        return {"A": a, "y": y}

    def __init__(
        self,
        A: Any,
        y: Any,
        *,
        regularization: float = 0.0,
        x_star: Any = None,
        f_star: Any = None,
        batch: int | None = None,
        seed: int = 0,
        agent_ids: Any = None,
        test: Any = None,
    ):
        arr = _validate_arrays("logistic", {"A": A, "y": y}, fix="fix the data arrays")
        self.A, self.y = arr["A"], arr["y"]
        self.regularization = _check_regularization(regularization)
        super().__init__(self.A.shape[0], self.A.shape[2], x_star=x_star, f_star=f_star)
        self._init_rows(batch=batch, seed=seed, agent_ids=agent_ids)
        self._init_test(test)

    def _margins(self, X: np.ndarray) -> np.ndarray:
        return self.y * (self.A @ X[:, :, None])[:, :, 0]

    def values(self, X: np.ndarray) -> np.ndarray:
        X = self._check_X(X)
        loss = np.logaddexp(0.0, -self._margins(X)).sum(axis=1)
        return loss + 0.5 * self.regularization * np.einsum("nd,nd->n", X, X)

    def grad(self, X: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        X = self._check_X(X)
        weights = -self.y * expit(-self._margins(X))
        return (weights[:, None, :] @ self.A)[:, 0, :] + self.regularization * X

    _row_constant = float(np.log(2.0))  # the loss of an all-zero (padding) row

    def _rows_grad(self, X: np.ndarray, idx: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        agent = np.arange(idx.shape[0])[:, None]
        a, y = self.A[agent, idx], self.y[agent, idx]  # (n, B, d), (n, B)
        weights = -y * expit(-y * np.einsum("nbd,nd->nb", a, X))
        return np.einsum("nb,nbd->nd", weights, a)

    def _predict(self, X: np.ndarray, A: np.ndarray) -> np.ndarray:
        return np.where(X @ A.T >= 0.0, 1.0, -1.0)  # (r, t); a zero score counts as +1

    def _check_labels(self, y: np.ndarray, where: str) -> None:
        if not np.all(np.abs(y) == 1.0):
            raise InputError(
                f"`{where}` must contain only -1 and +1 (got values "
                f"{', '.join(f'{v:g}' for v in np.unique(y)[:5])}): map 0/1 labels with 2 y - 1"
            )

    def arrays(self) -> dict[str, np.ndarray]:
        return {"A": self.A, "y": self.y}

    def _hessian_sum(self, x: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        a = self.A.reshape(-1, self.dim)
        s = expit(a @ x)
        h = a.T @ ((s * (1.0 - s))[:, None] * a)
        return h + self.n_agents * self.regularization * np.eye(self.dim)

    @cached_property
    def smoothness(self) -> float:
        top = np.linalg.svd(self.A, compute_uv=False)[:, 0].max()
        return float(top**2 / 4.0 + self.regularization)

    @property
    def strong_convexity(self) -> float:
        return float(self.n_agents * self.regularization)

    def _minimize(self) -> np.ndarray:
        x = trust_exact_minimize(self, self.dim)
        z = self._margins(np.broadcast_to(x, (self.n_agents, self.dim)))
        gnorm = float(np.linalg.norm(self.total_grad(x)))
        separable = self.regularization == 0.0 and bool(np.all(z > 0))
        if separable or gnorm > 1e-6 * max(1.0, self._grad_scale(x)):
            raise InputError(
                "logistic data: sum of f_i has no finite minimizer (labels are linearly "
                f"separable, or nearly so: ||grad|| = {gnorm:.2g} at ||x|| = "
                f"{np.linalg.norm(x):.3g}): set [problem] regularization > 0 or add samples"
            )
        return x

    def _from_arrays(self, arrays: dict[str, np.ndarray], **kw: Any) -> Problem:
        kw = self._test_options(self._row_options(arrays, kw))
        return LogisticProblem(
            arrays["A"], arrays["y"], regularization=self.regularization, **kw
        )
