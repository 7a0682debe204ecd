r"""Multinomial logistic (softmax) regression local costs with a ridge term.

Parameter layout: the decision variable :math:`x \in \mathbb{R}^{d}`, ``d = p K`` (p features,
K classes), is the row-major flattening of the weight matrix :math:`W \in \mathbb{R}^{p
\times K}`: ``x[f * K + k] = W[f, k]`` (``W = x.reshape(p, K)``), so the scores of a row
:math:`a \in \mathbb{R}^p` are :math:`z = W^T a \in \mathbb{R}^K`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from stflow.errors import InputError

from ._validate import _check_regularization, _validate_arrays
from .base import Problem
from .logistic import trust_exact_minimize
from .minibatch import ClassifierRows
from .registry import BATCH, CLASSES, REGULARIZATION, SAMPLES, TABLE_PARAMS

__all__ = [
    "SoftmaxProblem",
]


def _log_softmax_parts(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ``logsumexp`` of scores ``Z: (..., K)`` and the probabilities, stably."""
    top = Z.max(axis=-1, keepdims=True)
    E = np.exp(Z - top)
    s = E.sum(axis=-1, keepdims=True)
    return (np.log(s) + top)[..., 0], E / s


class SoftmaxProblem(ClassifierRows, Problem):
    r"""Multinomial logistic regression (cross-entropy of a softmax) with a ridge term.

    .. math:: f_i(x) = \sum_{j < m} \Big(\log \sum_{k} e^{z_{ijk}} - z_{ij y_{ij}}\Big)
              + \tfrac{r}{2}\|x\|^2, \qquad z_{ij} = W^T a_{ij},\ W = x.\mathrm{reshape}(p, K).

    Gradient :math:`\nabla f_i = \operatorname{vec}(A_i^T (P_i - Y_i)) + r x` (P the softmax
    probabilities, Y the one-hot labels), Hessian
    :math:`\sum_j (\operatorname{diag}(p_{ij}) - p_{ij} p_{ij}^T) \otimes a_{ij} a_{ij}^T + r I`
    (in the layout of the module docstring, the class index varies fastest).

    The loss does not change when one vector is added to every class column of W, so with
    ``r > 0`` the sum is ``N r``-strongly convex and x* has class columns summing to zero;
    with ``r = 0`` x* is the minimizer with that property (when one exists: linearly
    separable labels have none, and reading ``x_star`` raises `InputError`). Use ``r > 0``.

    ``smoothness`` is :math:`\max_i \tfrac12 \|A_i\|_2^2 + r`: Böhning's bound
    :math:`\operatorname{diag}(p) - p p^T \preceq \tfrac12 (I - \tfrac1K 1 1^T)` gives
    :math:`\nabla^2 f_i \preceq \tfrac12 (I - \tfrac1K 11^T) \otimes A_i^T A_i + r I`.

    Parameters
    ----------
    A : array_like, shape (N, m, p)
        Features; a block shorter than m is padded at its end with all-zero rows (any label).
    y : array_like, shape (N, m)
        Class labels, integers 0..K-1 (stored as floats).
    classes : int, optional
        K (default: the largest label + 1).
    regularization : float
        Ridge weight ``r >= 0`` of each local cost.
    batch, seed, agent_ids : optional
        Minibatches of SPEC section 7 (:meth:`stochastic_grad`): B rows per evaluation (None:
        full gradients), the ``[problem] seed``, the agents' global ids (default 0..N-1).
    test : (A_test (t, p), y_test (t,)), optional
        Held-out rows shared by all agents, for :meth:`test_accuracy`.
    x_star, f_star : optional
        A known optimum (skips the solve).

    Examples
    --------
    >>> A = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]]])
    >>> p = SoftmaxProblem(A, np.array([[0, 2], [1, 0]]), regularization=0.5)
    >>> p.dim, p.classes, p.rows_per_agent.tolist()
    (6, 3, [2, 1])
    >>> bool(np.isclose(p.values(np.zeros((2, 6)))[0], 2 * np.log(3)))
    True
    >>> bool(np.linalg.norm(p.total_grad(p.x_star)) < 1e-10)
    True
    """

    kind = "softmax"
    title = "multinomial logistic regression, K classes"
    params = (SAMPLES, CLASSES, REGULARIZATION, BATCH, *TABLE_PARAMS)
    data_keys = ("A", "y")
    data_shapes = (("N", "m", "p"), ("N", "m"))

    @classmethod
    def build(cls, arrays, *, generated, regularization=0.0, classes=None, test=None,
              batch=None, seed=0, **options):
        """The problem of validated or generated arrays (K = 2 for generated data unless
        ``classes``; a file's largest label + 1 otherwise)."""
        return cls(arrays["A"], arrays["y"], regularization=regularization, test=test,
                   batch=batch, seed=seed,
                   classes=2 if classes is None and generated else classes)

    @classmethod
    def generate(cls, stream, d, *, samples=None, classes=None) -> dict:
        """:math:`a_{ij} \\sim N(0, I/p)`, labels argmax of a random :math:`W_{true}`, 10%
        redrawn (all agents at once: not blockwise)."""
        from ._validate import _check_count

        rng, m = stream.rng, cls._samples(d, samples)
        k = 2 if classes is None else _check_count(classes, "classes", "set [problem] classes")
        if k < 2 or d % k:
            raise InputError(
                f"softmax: `dim` must be a multiple of `classes` >= 2, since d = features x "
                f"classes (got dim={d}, classes={k}): e.g. dim = {max(k, 2) * max(d // k, 1)}"
            )
        p = d // k
        a = stream.keep(rng.standard_normal, (m, p)) / np.sqrt(p)
        w_true = rng.standard_normal((p, k))
        y = np.argmax(a @ w_true, axis=2).astype(np.float64)
        flip = stream.keep(rng.random, (m,)) < 0.1
        y[flip] = rng.integers(0, k, size=int(flip.sum()))
        return {"A": a, "y": y}

    def __init__(
        self,
        A: Any,
        y: Any,
        *,
        classes: int | None = None,
        regularization: float = 0.0,
        batch: int | None = None,
        seed: int = 0,
        agent_ids: Any = None,
        test: Any = None,
        x_star: Any = None,
        f_star: Any = None,
    ):
        arr = _validate_arrays("softmax", {"A": A, "y": y}, fix="fix the data arrays")
        self.A, self.y = arr["A"], arr["y"]
        if classes is None:
            classes = int(self.y.max()) + 1 if np.all(self.y >= 0) else 0
        if isinstance(classes, bool) or not isinstance(classes, int | np.integer) or classes < 2:
            raise InputError(
                f"softmax `classes` must be an integer >= 2 (got {classes!r}): give labels "
                "0..K-1 with K >= 2, or set [problem] classes"
            )
        self.classes = int(classes)
        self._check_labels(self.y, "y")
        self._labels = self.y.astype(np.intp)
        self.n_features = self.A.shape[2]
        self.regularization = _check_regularization(regularization)
        super().__init__(
            self.A.shape[0], self.n_features * self.classes, x_star=x_star, f_star=f_star
        )
        self._init_rows(batch=batch, seed=seed, agent_ids=agent_ids)
        self._init_test(test)

    @property
    def _row_constant(self) -> float:  # the loss of an all-zero (padding) row
        return float(np.log(self.classes))

    def _check_labels(self, y: np.ndarray, where: str) -> None:
        ok = (y >= 0) & (y < self.classes) & (y == np.round(y))
        if not np.all(ok):
            bad = float(y[~ok].ravel()[0])
            raise InputError(
                f"softmax `{where}` must hold integer class labels 0..{self.classes - 1} (got "
                f"{bad:g}): map the classes to 0..K-1, or raise [problem] classes"
            )

    def _weights(self, X: np.ndarray) -> np.ndarray:
        return X.reshape(X.shape[0], self.n_features, self.classes)

    def _ce_grad(self, A: np.ndarray, labels: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Cross-entropy gradients summed over rows ``A: (n, r, p)``, shape (n, d)."""
        _, P = _log_softmax_parts(A @ self._weights(X))
        n, r = labels.shape
        P[np.arange(n)[:, None], np.arange(r)[None, :], labels] -= 1.0  # P - Y
        return (np.swapaxes(A, 1, 2) @ P).reshape(X.shape[0], self.dim)

    def values(self, X: np.ndarray) -> np.ndarray:
        X = self._check_X(X)
        Z = self.A @ self._weights(X)  # (N, m, K)
        lse, _ = _log_softmax_parts(Z)
        n, m = self._labels.shape
        zy = Z[np.arange(n)[:, None], np.arange(m)[None, :], self._labels]
        return (lse - zy).sum(axis=1) + 0.5 * self.regularization * np.einsum("nd,nd->n", X, X)

    def grad(self, X: np.ndarray) -> np.ndarray:
        X = self._check_X(X)
        return self._ce_grad(self.A, self._labels, X) + self.regularization * X

    def _rows_grad(self, X: np.ndarray, idx: np.ndarray) -> np.ndarray:
        agent = np.arange(idx.shape[0])[:, None]
        return self._ce_grad(self.A[agent, idx], self._labels[agent, idx], X)  # (n, B, p)

    def _predict(self, X: np.ndarray, A: np.ndarray) -> np.ndarray:
        scores = A @ self._weights(X)  # (r, t, K)
        return np.argmax(scores, axis=2)  # ties -> the lower class index

    def arrays(self) -> dict[str, np.ndarray]:
        return {"A": self.A, "y": self.y}

    def _hessian_sum(self, x: np.ndarray) -> np.ndarray:
        p, K = self.n_features, self.classes
        a = self.A.reshape(-1, p)
        _, P = _log_softmax_parts(a @ x.reshape(p, K))  # (M, K)
        H = np.zeros((p, K, p, K))
        k = np.arange(K)
        H[:, k, :, k] = (a.T[None, :, :] * P.T[:, None, :]) @ a  # diag(p) part, (K, p, p)
        G = (a[:, :, None] * P[:, None, :]).reshape(-1, p * K)
        H = H.reshape(p * K, p * K) - G.T @ G
        return H + self.n_agents * self.regularization * np.eye(self.dim)

    @cached_property
    def smoothness(self) -> float:
        top = np.linalg.svd(self.A, compute_uv=False)[:, 0].max()
        return float(0.5 * top**2 + self.regularization)

    @property
    def strong_convexity(self) -> float:
        return float(self.n_agents * self.regularization)

    def _minimize(self) -> np.ndarray:
        x = trust_exact_minimize(self, self.dim)
        W = x.reshape(self.n_features, self.classes)
        x = (W - W.mean(axis=1, keepdims=True)).ravel()  # the loss is blind to this shift
        gnorm = float(np.linalg.norm(self.total_grad(x)))
        separable = False
        if self.regularization == 0.0:
            Z = self.A @ self._weights(np.broadcast_to(x, (self.n_agents, self.dim)))
            zy = np.take_along_axis(Z, self._labels[:, :, None], axis=2)
            np.put_along_axis(Z, self._labels[:, :, None], -np.inf, axis=2)
            real = np.arange(self.A.shape[1])[None, :] < self.rows_per_agent[:, None]
            separable = bool(np.all((zy[:, :, 0] > Z.max(axis=2))[real]))
        if separable or gnorm > 1e-6 * max(1.0, self._grad_scale(x)):
            raise InputError(
                "softmax data: sum of f_i has no finite minimizer (the classes are linearly "
                f"separable, or nearly so: ||grad|| = {gnorm:.2g} at ||x|| = "
                f"{np.linalg.norm(x):.3g}): set [problem] regularization > 0"
            )
        return x

    def _from_arrays(self, arrays: dict[str, np.ndarray], **kw: Any) -> Problem:
        kw = self._test_options(self._row_options(arrays, kw))
        return SoftmaxProblem(
            arrays["A"], arrays["y"], classes=self.classes,
            regularization=self.regularization, **kw,
        )
