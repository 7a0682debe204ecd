"""Local costs f_i of the agents, their data (.npz), and the centralized optimum x*.

Three kinds (`PROBLEM_KINDS`), each evaluated for all N agents at once on stacked
iterates ``X: (N, d)`` (SPEC section 1):

- ``quadratic``:     f_i(x) = 1/2 x^T Q_i x - b_i^T x,            arrays Q (N, d, d), b (N, d)
- ``least_squares``: f_i(x) = 1/2 ||A_i x - b_i||^2,              arrays A (N, m, d), b (N, m)
- ``logistic``:      f_i(x) = sum_j log(1 + exp(-y_ij a_ij^T x)) + (reg/2) ||x||^2,
                     arrays A (N, m, d), y (N, m) with labels in {-1, +1}

`make_problem` generates seeded data or loads it (`load_problem_data`, `save_problem_data`);
``Problem.x_star`` is the minimizer of sum_i f_i used by the metrics of SPEC section 6.
"""

from __future__ import annotations

import abc
import numbers
import os
import zipfile
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import numpy as np
from scipy.special import expit

from stflow.errors import InputError

__all__ = [
    "PROBLEM_KINDS",
    "LeastSquaresProblem",
    "LogisticProblem",
    "Problem",
    "QuadraticProblem",
    "centralized_solution",
    "load_problem_data",
    "make_problem",
    "save_problem_data",
]

PROBLEM_KINDS = ("quadratic", "least_squares", "logistic")
_KEYS = {"quadratic": ("Q", "b"), "least_squares": ("A", "b"), "logistic": ("A", "y")}
_NEWTON_POLISH_STEPS = 3


class Problem(abc.ABC):
    """Base class: N local costs f_i on R^d, evaluated batched on ``X: (N, d)``.

    Subclasses: `QuadraticProblem`, `LeastSquaresProblem`, `LogisticProblem`.

    Attributes
    ----------
    kind : str
        One of `PROBLEM_KINDS`.
    n_agents : int
        Number of agents N.
    dim : int
        Dimension d of each decision variable.

    Examples
    --------
    >>> p = make_problem("quadratic", agents=3, dim=2, seed=0)
    >>> p.values(np.zeros((3, 2))).tolist()
    [0.0, 0.0, 0.0]
    >>> bool(np.linalg.norm(p.total_grad(p.x_star)) < 1e-10)
    True
    """

    kind: str = ""

    def __init__(self, n_agents: int, dim: int, *, x_star: Any = None, f_star: Any = None):
        self.n_agents = int(n_agents)
        self.dim = int(dim)
        self._is_subset = False
        self._given_f_star = None if f_star is None else float(f_star)
        self._given_x_star = None
        if x_star is not None:
            x = np.array(x_star, dtype=np.float64)
            if x.shape != (self.dim,) or not np.all(np.isfinite(x)):
                raise InputError(
                    f"`x_star` must be a finite array of shape (d,) = ({self.dim},) "
                    f"(got shape {x.shape}): pass the parent's x_star"
                )
            x.setflags(write=False)
            self._given_x_star = x

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_agents={self.n_agents}, dim={self.dim})"

    # -- batched local costs -------------------------------------------------------------

    @abc.abstractmethod
    def values(self, X: np.ndarray) -> np.ndarray:
        """Local costs ``f_i(x_i)``: X (N, d) -> (N,)."""

    @abc.abstractmethod
    def grad(self, X: np.ndarray) -> np.ndarray:
        """Local gradients ``grad f_i(x_i)`` stacked row-wise: X (N, d) -> (N, d)."""

    @abc.abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """The data arrays, keyed as in the .npz file."""

    @abc.abstractmethod
    def _hessian_sum(self, x: np.ndarray) -> np.ndarray:
        """Sum of the local Hessians at x, (d, d)."""

    @abc.abstractmethod
    def _minimize(self) -> np.ndarray:
        """A minimizer of sum_i f_i before Newton polishing."""

    @property
    @abc.abstractmethod
    def smoothness(self) -> float:
        """max_i of the Lipschitz constant of grad f_i."""

    @property
    @abc.abstractmethod
    def strong_convexity(self) -> float:
        """Strong-convexity modulus mu of sum_i f_i (0.0: convex only)."""

    def _check_X(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.shape != (self.n_agents, self.dim):
            raise InputError(
                f"`X` must have shape (N, d) = ({self.n_agents}, {self.dim}) (got {X.shape}): "
                "stack one row per agent"
            )
        return X

    def _stack(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise InputError(
                f"`x` must have shape (d,) = ({self.dim},) (got {x.shape}): pass one point"
            )
        return np.broadcast_to(x, (self.n_agents, self.dim))

    # -- the sum -------------------------------------------------------------------------

    def total_value(self, x: np.ndarray) -> float:
        r""":math:`\sum_i f_i(x)` for one point ``x: (d,)``.

        Examples
        --------
        >>> p = make_problem("least_squares", agents=2, dim=3, seed=1)
        >>> bool(np.isclose(p.total_value(np.zeros(3)), 0.5 * np.sum(p.arrays()["b"] ** 2)))
        True
        """
        return float(self.values(self._stack(x)).sum())

    def total_grad(self, x: np.ndarray) -> np.ndarray:
        r""":math:`\sum_i \nabla f_i(x)` for one point ``x: (d,)``, shape (d,).

        Examples
        --------
        >>> p = make_problem("quadratic", agents=2, dim=3, seed=1)
        >>> bool(np.allclose(p.total_grad(np.zeros(3)), -p.arrays()["b"].sum(axis=0)))
        True
        """
        return self.grad(self._stack(x)).sum(axis=0)

    @cached_property
    def x_star(self) -> np.ndarray:
        r"""Centralized minimizer :math:`x^\star \in \arg\min_x \sum_i f_i(x)`, shape (d,).

        Closed form for quadratic and least squares (``numpy.linalg.solve`` / minimum-norm
        ``lstsq``), ``scipy.optimize.minimize(method="trust-exact")`` for logistic, then up
        to three Newton steps with the exact Hessian (iterative refinement).

        Examples
        --------
        >>> p = make_problem("logistic", agents=4, dim=3, seed=0)
        >>> bool(np.linalg.norm(p.total_grad(p.x_star)) < 1e-10)
        True
        """
        if self._given_x_star is not None:
            return self._given_x_star
        if self._is_subset:
            raise RuntimeError(
                "this problem is a subset of a larger one and carries no x_star: "
                "pass x_star= (the parent's) to Problem.subset"
            )
        x = self._polish(self._minimize())
        x.setflags(write=False)
        return x

    @cached_property
    def f_star(self) -> float:
        r"""Optimal value :math:`\sum_i f_i(x^\star)`.

        Examples
        --------
        >>> p = make_problem("quadratic", agents=2, dim=2, seed=0)
        >>> bool(p.f_star <= p.total_value(np.zeros(2)))
        True
        """
        if self._given_f_star is not None:
            return self._given_f_star
        return self.total_value(self.x_star)

    def _polish(self, x: np.ndarray) -> np.ndarray:
        g = self.total_grad(x)
        for _ in range(_NEWTON_POLISH_STEPS):
            if not np.linalg.norm(g) > 0:
                break
            step = np.linalg.lstsq(self._hessian_sum(x), g, rcond=None)[0]
            g_new = self.total_grad(x - step)
            if not np.linalg.norm(g_new) < np.linalg.norm(g):
                break
            x, g = x - step, g_new
        return np.array(x, dtype=np.float64)

    def _grad_scale(self, x: np.ndarray) -> float:
        """sum_i ||grad f_i(x)||: the size of the terms that cancel in the total gradient."""
        return float(np.linalg.norm(self.grad(self._stack(x)), axis=1).sum())

    # -- distribution ----------------------------------------------------------------------

    def subset(self, rows: slice, *, x_star: Any = None, f_star: Any = None) -> Problem:
        """The same costs restricted to the agents ``rows`` (a contiguous slice).

        The result holds copies of only those agents' arrays (one MPI rank's share). It
        does not solve anything: its ``x_star`` is the one passed here (an error to read
        otherwise) and its ``f_star`` defaults to this problem's full sum at ``x_star``.

        Examples
        --------
        >>> p = make_problem("least_squares", agents=6, dim=3, seed=0)
        >>> X = np.ones((6, 3))
        >>> bool(np.array_equal(p.subset(slice(2, 5)).grad(X[2:5]), p.grad(X)[2:5]))
        True
        """
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise InputError(
                f"`rows` must be a contiguous slice such as slice(2, 5) (got {rows!r}): "
                "give each rank a contiguous block of agents"
            )
        start, stop, _ = rows.indices(self.n_agents)
        if stop <= start:
            raise InputError(
                f"`rows` must select at least one of the {self.n_agents} agents (got {rows!r}):"
                " give each rank one agent or more"
            )
        part = {k: v[start:stop].copy() for k, v in self.arrays().items()}
        if x_star is not None and f_star is None:
            f_star = self.total_value(np.asarray(x_star, dtype=np.float64))
        child = self._from_arrays(part, x_star=x_star, f_star=f_star)
        child._is_subset = True
        return child

    @abc.abstractmethod
    def _from_arrays(self, arrays: dict[str, np.ndarray], **kw: Any) -> Problem:
        """A problem of the same kind and options on other arrays."""


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


class LeastSquaresProblem(Problem):
    r"""Least-squares costs :math:`f_i(x) = \tfrac12 \|A_i x - b_i\|^2`.

    ``x_star`` is the minimum-norm minimizer when :math:`\sum_i A_i^T A_i` is singular
    (then ``strong_convexity`` is 0.0).

    Parameters
    ----------
    A : array_like, shape (N, m, d)
    b : array_like, shape (N, m)
    x_star, f_star : optional
        A known optimum (skips the solve).

    Examples
    --------
    >>> A = np.array([[[1.0, 0.0]], [[0.0, 2.0]]])
    >>> p = LeastSquaresProblem(A, np.array([[1.0], [2.0]]))
    >>> p.x_star.tolist(), p.smoothness, p.strong_convexity
    ([1.0, 1.0], 4.0, 1.0)
    """

    kind = "least_squares"

    def __init__(self, A: Any, b: Any, *, x_star: Any = None, f_star: Any = None):
        arr = _validate_arrays("least_squares", {"A": A, "b": b}, fix="fix the data arrays")
        self.A, self.b = arr["A"], arr["b"]
        super().__init__(self.A.shape[0], self.A.shape[2], x_star=x_star, f_star=f_star)

    def _residual(self, X: np.ndarray) -> np.ndarray:
        return (self.A @ X[:, :, None])[:, :, 0] - self.b

    def values(self, X: np.ndarray) -> np.ndarray:
        r = self._residual(self._check_X(X))
        return 0.5 * np.einsum("nm,nm->n", r, r)

    def grad(self, X: np.ndarray) -> np.ndarray:
        r = self._residual(self._check_X(X))
        return (r[:, None, :] @ self.A)[:, 0, :]

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
        return LeastSquaresProblem(arrays["A"], arrays["b"], **kw)


class LogisticProblem(Problem):
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

    Examples
    --------
    >>> A = np.array([[[1.0], [1.0]], [[-1.0], [1.0]]])
    >>> p = LogisticProblem(A, np.array([[1.0, -1.0], [1.0, 1.0]]), regularization=0.5)
    >>> round(float(p.values(np.zeros((2, 1)))[0]), 6), p.strong_convexity
    (1.386294, 1.0)
    """

    kind = "logistic"

    def __init__(
        self,
        A: Any,
        y: Any,
        *,
        regularization: float = 0.0,
        x_star: Any = None,
        f_star: Any = None,
    ):
        arr = _validate_arrays("logistic", {"A": A, "y": y}, fix="fix the data arrays")
        self.A, self.y = arr["A"], arr["y"]
        self.regularization = _check_regularization(regularization)
        super().__init__(self.A.shape[0], self.A.shape[2], x_star=x_star, f_star=f_star)

    def _margins(self, X: np.ndarray) -> np.ndarray:
        return self.y * (self.A @ X[:, :, None])[:, :, 0]

    def values(self, X: np.ndarray) -> np.ndarray:
        X = self._check_X(X)
        loss = np.logaddexp(0.0, -self._margins(X)).sum(axis=1)
        return loss + 0.5 * self.regularization * np.einsum("nd,nd->n", X, X)

    def grad(self, X: np.ndarray) -> np.ndarray:
        X = self._check_X(X)
        weights = -self.y * expit(-self._margins(X))
        return (weights[:, None, :] @ self.A)[:, 0, :] + self.regularization * X

    def arrays(self) -> dict[str, np.ndarray]:
        return {"A": self.A, "y": self.y}

    def _hessian_sum(self, x: np.ndarray) -> np.ndarray:
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
        from scipy.optimize import minimize

        res = minimize(
            self.total_value,
            np.zeros(self.dim),
            jac=self.total_grad,
            hess=self._hessian_sum,
            method="trust-exact",
            options={"gtol": 1e-12, "maxiter": 500},
        )
        x = self._polish(res.x)
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
        return LogisticProblem(
            arrays["A"], arrays["y"], regularization=self.regularization, **kw
        )


def centralized_solution(problem: Problem) -> np.ndarray:
    """A copy of ``problem.x_star``, the minimizer of the sum of the local costs.

    Examples
    --------
    >>> p = make_problem("quadratic", agents=3, dim=2)
    >>> bool(np.array_equal(centralized_solution(p), p.x_star))
    True
    """
    return np.array(problem.x_star)


_CLASSES: dict[str, type[Problem]] = {
    "quadratic": QuadraticProblem,
    "least_squares": LeastSquaresProblem,
    "logistic": LogisticProblem,
}


def make_problem(
    kind: str,
    *,
    agents: int,
    dim: int,
    seed: int = 0,
    data: Any = None,
    regularization: float = 0.0,
    samples: int | None = None,
) -> Problem:
    r"""Build a problem from seeded synthetic data, a .npz file or a dict of arrays.

    Synthetic data (``numpy.random.default_rng(seed)``), all per agent i:

    - quadratic: :math:`Q_i = M_i M_i^T / d + 0.1 I` with :math:`M_i` a d x d standard
      Gaussian matrix (each f_i 0.1-strongly convex; the largest eigenvalue is about 4 for
      large d, Marchenko-Pastur), :math:`b_i \sim N(0, I)`.
    - least_squares: m = ``samples`` (default d) rows, :math:`A_i \sim N(0, 1/m)`,
      :math:`b_i = A_i x_{true} + 0.1\,\varepsilon`, :math:`x_{true}, \varepsilon \sim N(0, I)`.
    - logistic: m = ``samples`` (default 20) rows :math:`a_{ij} \sim N(0, I/d)`,
      :math:`y_{ij} = \operatorname{sign}(a_{ij}^T x_{true})` with 10% of the labels
      flipped; with ``regularization == 0`` this needs N m well above d, else the labels
      are separable and ``x_star`` raises.

    With ``data`` (a path to a .npz or a dict of arrays), N and d come from the arrays and
    ``agents``, ``dim``, ``seed`` and ``samples`` are ignored.

    Parameters
    ----------
    kind : str
        One of `PROBLEM_KINDS`.
    agents : int
        Number of agents N >= 1 (synthetic data).
    dim : int
        Dimension d >= 1 (synthetic data).
    seed : int
        Seed of the data generator.
    data : str, os.PathLike or Mapping, optional
        Arrays ``Q, b`` / ``A, b`` / ``A, y`` (see `load_problem_data`).
    regularization : float
        Ridge weight of the logistic costs (must be 0 for the other kinds).
    samples : int, optional
        Rows m per agent for least_squares and logistic.

    Returns
    -------
    Problem

    Examples
    --------
    >>> p = make_problem("logistic", agents=5, dim=3, seed=2, regularization=0.1)
    >>> p.n_agents, p.dim, p.A.shape, p.strong_convexity
    (5, 3, (5, 20, 3), 0.5)
    """
    if kind not in PROBLEM_KINDS:
        raise InputError(
            f"`kind` must be one of {', '.join(PROBLEM_KINDS)} (got {kind!r}): "
            "set [problem] kind to a known cost"
        )
    reg = _check_regularization(regularization)
    if reg != 0.0 and kind != "logistic":
        raise InputError(
            f"`regularization` applies to kind='logistic' only (got {reg} with kind={kind!r}):"
            " remove [problem] regularization"
        )
    if data is None:
        arrays = _generate(kind, agents, dim, seed, samples)
    elif isinstance(data, (str, os.PathLike)):
        arrays = load_problem_data(kind, data)
    elif isinstance(data, Mapping):
        arrays = dict(data)
    else:
        raise InputError(
            f"`data` must be a path to a .npz file or a dict of arrays (got "
            f"{type(data).__name__}): set [problem] data to a file path"
        )
    if set(arrays) != set(_KEYS[kind]):
        _raise_keys(kind, arrays, "fix the data arrays")
    if kind == "logistic":
        return LogisticProblem(arrays["A"], arrays["y"], regularization=reg)
    problem = _CLASSES[kind](**arrays)
    if kind == "quadratic" and problem.strong_convexity == 0.0:
        problem._minimize()  # raises the singular-sum error
    return problem


def load_problem_data(kind: str, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load and validate the arrays of a problem from a .npz file.

    Keys: ``Q, b`` (quadratic), ``A, b`` (least_squares), ``A, y`` (logistic); shapes as in
    the module docstring; all entries finite, logistic labels in {-1, +1}.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ls.npz"
    >>> save_problem_data(make_problem("least_squares", agents=2, dim=3), path)
    >>> {k: v.shape for k, v in load_problem_data("least_squares", path).items()}
    {'A': (2, 3, 3), 'b': (2, 3)}
    """
    if kind not in PROBLEM_KINDS:
        raise InputError(
            f"`kind` must be one of {', '.join(PROBLEM_KINDS)} (got {kind!r}): "
            "set [problem] kind to a known cost"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"problem data: cannot read {os.fspath(path)!r} as .npz ({exc}): check the path "
            "and write it with numpy.savez"
        ) from None
    return _validate_arrays(kind, arrays, fix=f"fix the arrays in {os.fspath(path)!r}")


def save_problem_data(problem: Problem, path: str | os.PathLike) -> None:
    """Write ``problem.arrays()`` to ``path`` (exactly that name) with ``numpy.savez``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "q.npz"
    >>> p = make_problem("quadratic", agents=2, dim=2)
    >>> save_problem_data(p, path)
    >>> q = make_problem("quadratic", agents=2, dim=2, data=path)
    >>> bool(np.array_equal(q.x_star, p.x_star))
    True
    """
    if not isinstance(problem, Problem):
        raise InputError(
            f"`problem` must be a stflow Problem (got {type(problem).__name__}): "
            "build it with make_problem"
        )
    with open(path, "wb") as fh:
        np.savez(fh, **problem.arrays())


# ---------------------------------------------------------------------------- internals


def _smallest_eigenvalue(h: np.ndarray) -> float:
    """Smallest eigenvalue of a PSD matrix, 0.0 when within rounding of singular."""
    eig = np.linalg.eigvalsh(h)
    tol = h.shape[0] * np.finfo(np.float64).eps * max(float(np.abs(eig).max()), 1e-300)
    return float(eig[0]) if eig[0] > tol else 0.0


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


def _generate(kind: str, agents: Any, dim: Any, seed: Any, samples: Any) -> dict:
    n = _check_count(agents, "agents", "set [problem] agents >= 1")
    d = _check_count(dim, "dim", "set [problem] dim >= 1")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"`seed` must be a non-negative integer (got {seed!r}): set seed >= 0")
    if kind == "quadratic" and samples is not None:
        raise InputError(
            f"`samples` applies to least_squares and logistic only (got {samples!r} with "
            "kind='quadratic'): remove [problem] samples"
        )
    rng = np.random.default_rng(int(seed))
    if kind == "quadratic":
        mm = rng.standard_normal((n, d, d))
        q = mm @ np.swapaxes(mm, 1, 2) / d + 0.1 * np.eye(d)
        return {"Q": 0.5 * (q + np.swapaxes(q, 1, 2)), "b": rng.standard_normal((n, d))}
    m = _check_count(
        (d if kind == "least_squares" else 20) if samples is None else samples,
        "samples", "set [problem] samples >= 1",
    )
    if kind == "least_squares":
        a = rng.standard_normal((n, m, d)) / np.sqrt(m)
        x_true = rng.standard_normal(d)
        return {"A": a, "b": a @ x_true + 0.1 * rng.standard_normal((n, m))}
    a = rng.standard_normal((n, m, d)) / np.sqrt(d)
    x_true = rng.standard_normal(d)
    y = np.where(a @ x_true >= 0, 1.0, -1.0)
    y[rng.random((n, m)) < 0.1] *= -1.0
    return {"A": a, "y": y}


def _raise_keys(kind: str, arrays: Mapping, fix: str) -> None:
    raise InputError(
        f"problem data for kind={kind!r} must hold exactly the arrays "
        f"{', '.join(_KEYS[kind])} (got {', '.join(sorted(map(str, arrays))) or 'none'}): {fix}"
    )


def _validate_arrays(kind: str, arrays: Mapping, *, fix: str) -> dict[str, np.ndarray]:
    """Check keys, dtypes, shapes, finiteness and kind-specific rules; float64 read-only."""
    if set(arrays) != set(_KEYS[kind]):
        _raise_keys(kind, arrays, fix)
    out = {}
    for key in _KEYS[kind]:
        try:
            a = np.array(arrays[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(
                f"problem data: `{key}` must be a numeric array (got "
                f"{type(arrays[key]).__name__}): {fix}"
            ) from None
        out[key] = a
    first = out["Q"] if kind == "quadratic" else out["A"]
    name = "Q" if kind == "quadratic" else "A"
    want = "(N, d, d)" if kind == "quadratic" else "(N, m, d)"
    bad = first.ndim != 3 or 0 in first.shape
    if bad or (kind == "quadratic" and first.shape[1] != first.shape[2]):
        raise InputError(
            f"problem data: `{name}` must have shape {want} (got {first.shape}): {fix}"
        )
    n, m, d = first.shape
    second, shape = ("b", (n, d)) if kind == "quadratic" else (_KEYS[kind][1], (n, m))
    if out[second].shape != shape:
        axes = "(N, d)" if kind == "quadratic" else "(N, m)"
        raise InputError(
            f"problem data: `{second}` must have shape {axes} = {shape} "
            f"(got {out[second].shape}): {fix}"
        )
    for key, a in out.items():
        if not np.all(np.isfinite(a)):
            where = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
            raise InputError(
                f"problem data: `{key}` contains NaN or inf (first at index {where}): {fix}"
            )
    if kind == "quadratic":
        _check_quadratic(out, fix)
    if kind == "logistic" and not np.all(np.abs(out["y"]) == 1.0):
        seen = ", ".join(f"{v:g}" for v in np.unique(out["y"])[:5])
        raise InputError(
            f"problem data: `y` must contain only -1 and +1 (got values {seen}): "
            "map 0/1 labels with y = 2 y - 1"
        )
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
