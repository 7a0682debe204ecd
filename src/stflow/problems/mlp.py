r"""A fully connected ReLU network (multilayer perceptron) as N local costs, in PyTorch.

Each agent i holds ``m_i`` labelled rows and the cross-entropy of a small network
``Linear(p, h_1), ReLU, ..., Linear(h_L, classes)`` summed over them; its decision variable
x_i is the network's parameters flattened into one float64 vector (d = number of
parameters, layer by layer, each ``nn.Linear``'s weight (out, in) row-major, then its
bias). Every method and compressor of stflow works on x_i unchanged; ``param_shapes`` tells
shape-aware compressors (``lowrank``) where the matrices are.

The N agents' gradients come from ONE batched call: ``torch.func.vmap`` over
``torch.func.grad`` of the loss, the loss running the model through
``torch.func.functional_call`` with the parameters sliced out of the agent's flat vector.
numpy in, numpy out (``torch.from_numpy``, no copies of writable float64 arrays).

PyTorch is optional (``pip install "stflow[torch]"``); this module imports without it and
building :class:`MLPProblem` without it raises :class:`~stflow.errors.InputError`.
"""

from __future__ import annotations

import math
import numbers
from functools import cached_property
from typing import Any

import numpy as np

from stflow.errors import InputError

from .base import Problem, block_bounds
from .minibatch import RowCounts
from .registry import BATCH, HIDDEN, TABLE_PARAMS
from .sampling import BatchSampler

__all__ = ["MLPProblem", "make_mlp_problem", "mlp_param_shapes"]

_POWER_ITERATIONS = 20


def _import_torch():
    try:
        import torch
        import torch.func  # noqa: F401
    except ImportError:
        raise InputError(
            'kind = "mlp" needs PyTorch (got no importable torch): '
            'pip install "stflow[torch]"'
        ) from None
    return torch


def mlp_param_shapes(n_features: int, hidden, classes: int) -> list[tuple[str, tuple]]:
    """``(name, shape)`` of every parameter of the network, in flat order (no torch needed).

    Names are those of ``torch.nn.Sequential``: layer ``2 j`` is the j-th ``Linear``
    (odd indices are the ReLUs), so ``"0.weight"`` has shape ``(h_1, p)``.

    Examples
    --------
    >>> mlp_param_shapes(64, [32], 10)
    [('0.weight', (32, 64)), ('0.bias', (32,)), ('2.weight', (10, 32)), ('2.bias', (10,))]
    """
    widths = [int(n_features), *[int(h) for h in hidden], int(classes)]
    out = []
    for j, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        out.append((f"{2 * j}.weight", (fan_out, fan_in)))
        out.append((f"{2 * j}.bias", (fan_out,)))
    return out


def _check_hidden(hidden) -> tuple[int, ...]:
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
        hidden = (hidden,)
    try:
        widths = tuple(hidden)
    except TypeError:
        widths = None
    ok = widths is not None and all(
        isinstance(h, numbers.Integral) and not isinstance(h, bool) and h >= 1 for h in widths
    )
    if not ok:
        raise InputError(
            f"`hidden` must be a list of positive integer widths (got {hidden!r}): "
            "e.g. hidden = [64]"
        )
    return tuple(int(h) for h in widths)


def _check_labels(labels: Any, name: str, shape: tuple, classes: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != shape:
        raise InputError(f"`{name}` must have shape {shape} (got {y.shape}): one label per row")
    if y.size and (
        not np.issubdtype(y.dtype, np.number)
        or not np.all(np.isfinite(y))
        or not np.all(y == np.round(y))
        or y.min() < 0
        or y.max() >= classes
    ):
        raise InputError(
            f"`{name}` must hold integers 0 <= label < classes = {classes} (got values in "
            f"[{y.min()!r}, {y.max()!r}]): map the labels to 0 .. classes - 1"
        )
    return y.astype(np.int64)


def _features(a: Any, name: str, ndim: int) -> np.ndarray:
    try:
        F = np.array(a, dtype=np.float64)  # a private writable copy (torch.from_numpy)
    except (TypeError, ValueError):
        raise InputError(
            f"`{name}` must be a numeric array (got {type(a).__name__}): pass float features"
        ) from None
    if F.ndim != ndim or 0 in F.shape:
        want = "(N, m, p)" if ndim == 3 else "(n_test, p)"
        raise InputError(f"`{name}` must have shape {want} (got {F.shape}): fix the data arrays")
    if not np.all(np.isfinite(F)):
        raise InputError(f"`{name}` contains NaN or inf: clean or impute the data")
    return F


class MLPProblem(RowCounts, Problem):
    r"""Cross-entropy of a ReLU network, one local cost per agent (``kind = "mlp"``).

    .. math:: f_i(x) = \sum_{j < m_i} \Big(\log \sum_c e^{g_c(a_{ij}; x)} -
              g_{y_{ij}}(a_{ij}; x)\Big),
              \qquad g(a; x) = W_L \sigma(\cdots \sigma(W_1 a + b_1) \cdots) + b_L,

    :math:`\sigma = \max(0, \cdot)`: a SUM over the agent's real rows (SPEC section 7), so
    ``grad`` is the gradient of that sum and ``stochastic_grad`` scales a batch of B rows by
    :math:`m_i / B` (unbiased). Rows ``j >= m_i`` (padding) never count. Not convex: there
    is no x* (``x_star = None``, ``f_star = None``), and the metrics report loss and
    accuracy instead of relative error.

    Parameters
    ----------
    features : array_like, shape (N, m, p)
        Row j of agent i is :math:`a_{ij}` (an intercept column is allowed, just redundant).
    labels : array_like of int, shape (N, m)
        Classes 0 .. ``classes`` - 1.
    hidden : sequence of int
        Widths of the hidden layers (``()`` gives multinomial logistic regression).
    classes : int
        Number of classes (outputs).
    batch : int or None
        B rows per stochastic gradient (``None``: full gradients only).
    seed : int
        The problem seed: batches (:class:`~stflow.problems.sampling.BatchSampler`) and
        ``initial_point``.
    test_features, test_labels : array_like, optional
        Held-out rows, shapes (n_test, p) and (n_test,), shared by all agents.
    rows_per_agent : array_like of int, shape (N,), optional
        :math:`m_i` (default: m for everyone).
    agent_ids : array_like of int, shape (N,), optional
        Global agent ids (default ``0 .. N-1``; ``subset`` keeps the parent's).
    test : (test_features, test_labels), optional
        The same held-out rows as one pair (the softmax problem's keyword).

    Attributes
    ----------
    param_shapes : list of (str, tuple)
        Name and shape of every parameter in flat order (see :func:`mlp_param_shapes`).

    Examples
    --------
    >>> import pytest; _ = pytest.importorskip("torch")
    >>> F = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]]])
    >>> p = MLPProblem(F, [[0, 1], [1, 0]], hidden=[3], classes=2, rows_per_agent=[2, 1])
    >>> p.dim, p.param_shapes[0]  # 3 * 2 + 3 + 2 * 3 + 2
    (17, ('0.weight', (3, 2)))
    >>> p.grad(np.zeros((2, 17))).shape, p.values(np.zeros((2, 17))).round(6).tolist()
    ((2, 17), [1.386294, 0.693147])
    """

    kind = "mlp"
    title = "a ReLU network (PyTorch), cross-entropy"
    params = (HIDDEN, BATCH, *TABLE_PARAMS)

    @classmethod
    def from_config(cls, section: dict):
        """The network on a data table (``dataset = "digits"`` unless ``data`` is given)."""
        from ..datasets import problem_from_config

        if section.get("dataset") is None and section.get("data") is None:
            section = {**section, "dataset": "digits"}
        return problem_from_config(section)
    x_star = None
    f_star = None
    strong_convexity = 0.0

    def __init__(
        self,
        features: Any,
        labels: Any,
        *,
        hidden=(64,),
        classes: int,
        batch: int | None = None,
        seed: int = 0,
        test_features: Any = None,
        test_labels: Any = None,
        rows_per_agent: Any = None,
        agent_ids: Any = None,
        test: Any = None,
    ):
        torch = _import_torch()
        if test is not None:
            if test_features is not None or test_labels is not None:
                raise InputError(
                    "`test` and `test_features`/`test_labels` were both given: pass the "
                    "held-out rows once"
                )
            try:
                test_features, test_labels = test
            except (TypeError, ValueError):
                raise InputError(
                    f"`test` must be a pair (test_features, test_labels) (got "
                    f"{type(test).__name__}): pass the held-out rows"
                ) from None
        self._torch = torch
        F = _features(features, "features", 3)
        n, m, p = F.shape
        self.hidden = _check_hidden(hidden)
        if isinstance(classes, bool) or not isinstance(classes, numbers.Integral) or classes < 2:
            raise InputError(
                f"`classes` must be an integer >= 2 (got {classes!r}): pass the number of "
                "classes, e.g. 10 for digits"
            )
        self.classes = int(classes)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise InputError(
                f"`seed` must be a non-negative integer (got {seed!r}): set [problem] seed >= 0"
            )
        self.seed = int(seed)
        self.features = F
        self.labels = _check_labels(labels, "labels", (n, m), self.classes)
        rpa = np.full(n, m) if rows_per_agent is None else np.asarray(rows_per_agent)
        if rpa.shape != (n,) or not np.all((rpa >= 1) & (rpa <= m) & (rpa == np.round(rpa))):
            raise InputError(
                f"`rows_per_agent` must be N = {n} integers in 1 .. m = {m} (got "
                f"{np.asarray(rows_per_agent).tolist()!r}): give each agent's real row count"
            )
        self._rows = rpa.astype(np.int64)
        self._rows.setflags(write=False)
        ids = np.arange(n) if agent_ids is None else np.asarray(agent_ids)
        if ids.shape != (n,) or not np.all(ids == np.round(ids)) or np.any(ids < 0):
            raise InputError(
                f"`agent_ids` must be N = {n} integers >= 0 (got {np.asarray(agent_ids)!r}): "
                "pass the global ids of these agents"
            )
        self._agent_ids = ids.astype(np.int64)  # read by Problem.agent_ids
        self._agent_ids.setflags(write=False)
        self.batch = None
        self._sampler = None
        if batch is not None:
            if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
                raise InputError(
                    f"[problem] batch must be a positive integer (got {batch!r}): e.g. batch = 16"
                    ", or omit it for full gradients"
                )
            self.batch = int(batch)
            self._sampler = BatchSampler(
                self.seed, agents=self.agent_ids, rows_per_agent=self.rows_per_agent,
                batch=self.batch,
            )
        if (test_features is None) != (test_labels is None):
            raise InputError(
                "`test_features` and `test_labels` must be given together (got only one): "
                "pass both or neither"
            )
        self.test_features = self.test_labels = None
        if test_features is not None:
            T = _features(test_features, "test_features", 2)
            if T.shape[1] != p:
                raise InputError(
                    f"`test_features` must have p = {p} columns like `features` (got "
                    f"{T.shape[1]}): split train and test from the same table"
                )
            self.test_features = T
            self.test_labels = _check_labels(test_labels, "test_labels", (T.shape[0],),
                                             self.classes)
        self.param_shapes = mlp_param_shapes(p, self.hidden, self.classes)
        sizes = [math.prod(s) for _, s in self.param_shapes]
        super().__init__(n, sum(sizes), x_star=None)
        self._sizes = sizes
        self._mask = (np.arange(m)[None, :] < self.rows_per_agent[:, None]).astype(np.float64)
        self._build(torch)

    # -- torch side ------------------------------------------------------------------------

    def _build(self, torch) -> None:
        from torch import nn
        from torch.func import functional_call, grad, vmap

        widths = [self.features.shape[2], *self.hidden, self.classes]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(fan_in, fan_out, dtype=torch.float64, device="meta"), nn.ReLU()]
        self._model = nn.Sequential(*layers[:-1])
        names = [name for name, _ in self.param_shapes]
        shapes = [shape for _, shape in self.param_shapes]
        model, sizes = self._model, self._sizes
        cross_entropy = torch.nn.functional.cross_entropy

        def forward(x, F):
            parts = torch.split(x, sizes)
            params = {k: v.view(s) for k, v, s in zip(names, parts, shapes, strict=True)}
            return functional_call(model, params, (F,))

        def loss(x, F, y, w):
            return (cross_entropy(forward(x, F), y, reduction="none") * w).sum()

        self._batched_grad = vmap(grad(loss))
        self._batched_loss = vmap(loss)
        self._batched_logits = vmap(forward, in_dims=(0, None))
        self._forward = forward
        self._loss = loss
        t = self._tensor
        self._F, self._y, self._w = t(self.features), t(self.labels), t(self._mask)

    def _tensor(self, a: np.ndarray):
        a = np.ascontiguousarray(a)
        if not a.flags.writeable:  # torch.from_numpy warns on read-only memory
            a = a.copy()
        return self._torch.from_numpy(a)

    def _gather(self, draw: int):
        """Features, labels and weights m_i / B of evaluation ``draw``: (n, B, p), (n, B)."""
        rows = np.stack(self._sampler.rows(int(draw)))
        agents = np.arange(self.n_agents)[:, None]
        w = np.broadcast_to(self.rows_per_agent[:, None] / self.batch, rows.shape)
        t = self._tensor
        return t(self.features[agents, rows]), t(self.labels[agents, rows]), t(w)

    # -- costs -----------------------------------------------------------------------------

    def values(self, X: np.ndarray) -> np.ndarray:
        r"""Local costs :math:`f_i(x_i)` (sums over real rows): X (N, d) -> (N,)."""
        X = self._check_X(X)
        with self._torch.no_grad():
            return self._batched_loss(self._tensor(X), self._F, self._y, self._w).numpy()

    def grad(self, X: np.ndarray) -> np.ndarray:
        r"""Full gradients :math:`\nabla f_i(x_i)` in one batched call: X (N, d) -> (N, d)."""
        X = self._check_X(X)
        return self._batched_grad(self._tensor(X), self._F, self._y, self._w).numpy()

    def stochastic_grad(self, X: np.ndarray, draw: int) -> np.ndarray:
        r"""Minibatch gradients of evaluation ``draw`` (SPEC section 7): X (N, d) -> (N, d).

        .. math:: g_i(x) = \frac{m_i}{B} \sum_{j \in S_{i,\mathrm{draw}}}
                  \nabla \ell(x; a_{ij}, y_{ij}),

        the rows :math:`S_{i,\mathrm{draw}}` from
        :class:`~stflow.problems.sampling.BatchSampler` (seed, global agent ids, m_i, B);
        full gradients when ``batch`` is None.
        """
        X = self._check_X(X)
        if self._sampler is None:
            return self.grad(X)
        F, y, w = self._gather(draw)
        return self._batched_grad(self._tensor(X), F, y, w).numpy()

    # -- learning metrics ------------------------------------------------------------------

    @property
    def has_test(self) -> bool:
        """True when held-out rows were given."""
        return self.test_features is not None

    @property
    def test_set(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The held-out rows ``(test_features (t, p), test_labels (t,))``, or None."""
        return None if self.test_features is None else (self.test_features, self.test_labels)

    def test_accuracy(self, X: np.ndarray) -> np.ndarray:
        """Accuracy of each model (row of ``X: (r, d)``, e.g. every agent's own x_i, or
        ``xbar[None]``) on the held-out rows, shape (r,); NaN without held-out rows."""
        X = self._models(X)
        if not self.has_test:
            return np.full(X.shape[0], np.nan)
        with self._torch.no_grad():
            logits = self._batched_logits(self._tensor(X), self._tensor(self.test_features))
        hits = logits.argmax(dim=2).numpy() == self.test_labels[None, :]
        return hits.mean(axis=1)

    def accuracy_at(self, x: np.ndarray) -> float:
        """Held-out accuracy of one model ``x: (d,)`` (e.g. the average xbar); NaN without
        held-out rows."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise InputError(
                f"`x` must have shape (d,) = ({self.dim},) (got {x.shape}): pass one point"
            )
        return float(self.test_accuracy(x[None, :])[0])

    def train_loss(self, x: np.ndarray) -> float:
        r""":math:`\sum_i f_i(x) / \sum_i m_i` at one point ``x: (d,)`` (this block's agents)."""
        return self.total_value(x) / float(self.rows_per_agent.sum())

    # -- initial point and curvature -------------------------------------------------------

    def initial_point(self) -> np.ndarray:
        """PyTorch's default ``nn.Linear`` initialization from ``torch.Generator`` seeded with
        ``seed``: every weight and bias uniform in :math:`\\pm 1/\\sqrt{\\text{fan\\_in}}`
        (``kaiming_uniform_(a=sqrt(5))``, then the bias), layer by layer; shape (d,).

        The same numbers as ``torch.manual_seed(seed)`` followed by building the network
        with ``nn.Linear(..., dtype=torch.float64)``; give it to every agent as x_i(0).
        """
        torch = self._torch
        gen = torch.Generator().manual_seed(self.seed)
        parts = []
        for _, shape in self.param_shapes:
            if len(shape) == 2:
                w = torch.empty(shape, dtype=torch.float64)
                torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
                bound = 1.0 / math.sqrt(shape[1])
                parts.append(w.reshape(-1))
            else:
                b = torch.empty(shape, dtype=torch.float64)
                torch.nn.init.uniform_(b, -bound, bound, generator=gen)
                parts.append(b)
        return torch.cat(parts).numpy()

    @cached_property
    def smoothness(self) -> float:
        r"""Estimate of :math:`\max_i \|\nabla^2 f_i\|` at ``initial_point()``.

        A network's gradient has no global Lipschitz constant; this is the largest Hessian
        eigenvalue magnitude at the initial point, from 20 power iterations of batched
        Hessian-vector products (``grad`` of ``grad``) over every agent's full data, started
        from ``default_rng(seed)``. Curvature can grow during training: treat it as a scale
        for step sizes, not a bound.
        """
        torch = self._torch
        from torch.func import grad, vmap

        loss = self._loss

        def hvp(x, v, F, y, w):  # reverse over reverse (forward AD warns inside torch)
            return grad(lambda z: torch.dot(grad(loss)(z, F, y, w), v))(x)

        batched = vmap(hvp)
        X = torch.from_numpy(np.tile(self.initial_point(), (self.n_agents, 1)))
        V = torch.from_numpy(np.random.default_rng(self.seed).standard_normal(X.shape))
        lam = torch.zeros(self.n_agents, dtype=torch.float64)
        for _ in range(_POWER_ITERATIONS):
            V = V / V.norm(dim=1, keepdim=True).clamp_min(1e-300)
            HV = batched(X, V, self._F, self._y, self._w)
            lam = HV.norm(dim=1)
            V = HV
        return float(lam.max())

    # -- Problem interface -------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        return {"features": self.features, "labels": self.labels}

    def _hessian_sum(self, x):
        raise NotImplementedError("MLPProblem has no x_star: no Hessian sum is needed")

    def _minimize(self):
        raise NotImplementedError("MLPProblem has no x_star: nothing to minimize")

    def _from_arrays(self, arrays, **kw):
        raise NotImplementedError("use MLPProblem.subset")

    def subset(self, rows: slice, **_: Any) -> MLPProblem:
        """The same problem on the agents ``rows`` (a contiguous slice); global agent ids,
        seed, batch and test rows are kept, so the block draws the parent's batches.

        Examples
        --------
        >>> import pytest; _ = pytest.importorskip("torch")
        >>> F = np.arange(24.0).reshape(3, 4, 2) / 24
        >>> p = MLPProblem(F, np.zeros((3, 4), int), hidden=[2], classes=2, batch=2)
        >>> p.subset(slice(1, 3)).agent_ids.tolist()
        [1, 2]
        """
        start, stop = block_bounds(rows, self.n_agents)
        sl = slice(start, stop)
        child = MLPProblem(
            self.features[sl], self.labels[sl], hidden=self.hidden, classes=self.classes,
            batch=self.batch, seed=self.seed, test_features=self.test_features,
            test_labels=self.test_labels, rows_per_agent=self.rows_per_agent[sl],
            agent_ids=self.agent_ids[sl],
        )
        child._is_subset = True
        return child


def make_mlp_problem(
    features: Any,
    labels: Any,
    *,
    hidden=(64,),
    classes: int | None = None,
    test_features: Any = None,
    test_labels: Any = None,
    rows_per_agent: Any = None,
    **kwargs: Any,
) -> MLPProblem:
    """Build an :class:`MLPProblem` from split arrays, inferring ``classes``.

    ``features`` (N, m, p) and integer ``labels`` (N, m) are the per-agent arrays of a split
    (the softmax problem's ``A`` and labels: the digits split of ``[problem] split``);
    ``classes`` defaults to 1 + the largest label in train and test; ``rows_per_agent``
    defaults to the rows up to each agent's last row that is not all zeros (the padding
    convention of :mod:`stflow.datasets`: padded rows are all zeros, real ones carry the
    intercept 1). Other keywords (``batch``, ``seed``, ``agent_ids``) go to
    :class:`MLPProblem`.

    Examples
    --------
    >>> import pytest; _ = pytest.importorskip("torch")
    >>> F = np.ones((2, 3, 4))
    >>> F[1, 2] = 0.0  # agent 1: two rows and one padding row
    >>> p = make_mlp_problem(F, [[0, 1, 2], [2, 1, 0]], hidden=[5])
    >>> p.classes, p.dim, p.rows_per_agent.tolist()  # dim: 5 * 4 + 5 + 3 * 5 + 3
    (3, 43, [3, 2])
    """
    if classes is None:
        ys = [np.asarray(labels).ravel()]
        if test_labels is not None:
            ys.append(np.asarray(test_labels).ravel())
        y = np.concatenate(ys)
        classes = max(2, int(np.max(y)) + 1) if y.size and np.issubdtype(y.dtype, np.number) \
            else 2
    if rows_per_agent is None:
        nonzero = np.any(np.asarray(features) != 0, axis=2)
        rows_per_agent = nonzero.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return MLPProblem(
        features, labels, hidden=hidden, classes=classes, test_features=test_features,
        test_labels=test_labels, rows_per_agent=rows_per_agent, **kwargs,
    )
