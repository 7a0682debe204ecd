r"""Any PyTorch model as N local costs: ``[problem] kind = "torch"`` (docs/torch.md).

The contract of ``[problem] model = "py:FILE:ATTR[:key=value,...]"``: ``ATTR`` is a factory
called as ``ATTR(in_features=p, classes=K, **pairs)`` (``pairs``: the ``key=value`` pairs
of the ``py:`` string) that returns a ``torch.nn.Module`` mapping a ``(B, p)`` float batch of
data-table rows to ``(B, K)`` outputs (logits for ``loss = "cross_entropy"``). stflow calls it
once, with the default dtype float64 and ``torch.manual_seed(seed)`` (in a forked RNG, so
the caller's torch RNG is untouched): the initialized parameters, flattened in
``named_parameters()`` order, are every agent's x_i(0), the same on every MPI rank. The
model then runs in eval mode (dropout off, batch norm on its stored statistics); its
buffers are constants and its forward must be a function of its parameters and input
(no randomness, no in-place changes of buffers), as ``torch.func`` requires.

``loss``: ``"cross_entropy"`` (the default), ``"mse"`` (mean squared error against the
one-hot labels, averaged over the K outputs), or ``"py:FILE:ATTR"``, a function
``loss(outputs (B, K), targets (B,) int64) -> scalar`` that is the MEAN over the B rows of
a per-row loss (stflow evaluates it one row at a time and sums the real rows, so padding
never counts). Agent i's cost is the SUM over its m_i rows (SPEC section 7), so
``stochastic_grad`` scales a batch of B rows by m_i / B.

The N agents' gradients come from one batched call, ``torch.func.vmap`` over
``torch.func.grad`` of the loss through ``torch.func.functional_call``, the parameters
sliced out of each agent's flat float64 row. ``dtype = "float32"`` runs forward and
backward in float32: parameters are cast in, gradients cast back to float64 (the state
stflow keeps is float64 either way).

:class:`~stflow.problems.mlp.MLPProblem` (``kind = "mlp"``) is this class with the built-in
factory (``Linear``/``ReLU`` layers of widths ``hidden``).
"""

from __future__ import annotations

import copy
import math
import numbers
from functools import cached_property
from typing import Any

import numpy as np

from stflow.errors import InputError

from ..params import Param
from .base import Problem, block_bounds
from .minibatch import RowCounts
from .registry import BATCH, TABLE_PARAMS
from .sampling import BatchSampler

__all__ = ["TorchProblem", "LOSSES", "DTYPES", "MODEL", "LOSS", "DTYPE"]

_POWER_ITERATIONS = 20
#: The built-in losses (besides ``py:FILE:ATTR``).
LOSSES = ("cross_entropy", "mse")
#: The compute dtypes.
DTYPES = ("float64", "float32")
#: Rows of agent 0 the model is checked on when it is built.
_CHECK_ROWS = 4

MODEL = Param("model", None, "py:FILE:ATTR[:key=value,...]: a factory called as "
              "ATTR(in_features=..., classes=...) returning a torch.nn.Module (B, p) -> "
              "(B, classes) (docs/torch.md)", type="str", none=True,
              example="py:net.py:make", section="problem")
LOSS = Param("loss", "cross_entropy", "cross_entropy | mse (one-hot targets) | "
             "py:FILE:ATTR, loss(outputs, targets) -> mean over rows", type="str",
             section="problem")
DTYPE = Param("dtype", "float64", "float64 | float32: the dtype forward and backward run in "
              "(the state stays float64; docs/torch.md)", choices=DTYPES, tunable=False,
              section="problem")


def _import_torch(kind: str):
    try:
        import torch
        import torch.func  # noqa: F401
    except ImportError:
        raise InputError(
            f'kind = "{kind}" needs PyTorch (got no importable torch): '
            'pip install "stflow[torch]"'
        ) from None
    from ..threads import set_torch_threads

    set_torch_threads(torch)
    return torch


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


def _count(value, name: str, low: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise InputError(f"`{name}` must be an integer >= {low} (got {value!r}): {fix}")
    return int(value)


class _Factory:
    """A model factory with the text that names it in messages."""

    def __init__(self, fn, kwargs: dict, where: str, call: str):
        self.fn, self.kwargs, self.where, self.call = fn, kwargs, where, call


def _factory(model, base_dir=None) -> _Factory:
    """``model`` (a ``py:`` reference or a callable) as a :class:`_Factory`."""
    from ..user_code import is_py, load_attr, parse_ref

    if isinstance(model, _Factory):
        return model
    if is_py(model):
        where = f"[problem] model = {model.strip()!r}"
        fn, pairs = load_attr(model, "[problem] model", base_dir,
                              expect="a model factory (a function or nn.Module class)")
        attr = parse_ref(model, "[problem] model").attr
        if not callable(fn):
            raise InputError(
                f"{where}: {attr!r} is a {type(fn).__name__}, not callable: name a function "
                "that returns the torch.nn.Module (docs/torch.md)"
            )
        return _Factory(fn, pairs, where, attr)
    if callable(model):
        name = getattr(model, "__name__", type(model).__name__)
        return _Factory(model, {}, f"`model` ({name})", name)
    raise InputError(
        f'[problem] model must be py:FILE:ATTR, a factory of the network (got {model!r}): '
        'e.g. model = "py:net.py:make" (docs/torch.md)'
    )


def _loss_text(loss) -> str:
    return loss if isinstance(loss, str) else getattr(loss, "__name__", "loss")


class TorchProblem(RowCounts, Problem):
    r"""A PyTorch model on a data table, one local cost per agent (``kind = "torch"``).

    .. math:: f_i(x) = \sum_{j < m_i} \ell\big(g(a_{ij}; x), y_{ij}\big),

    g the user's network with parameters x (flattened), :math:`\ell` the per-row loss
    (cross-entropy, squared error against the one-hot label averaged over the K outputs,
    or the user's). Rows ``j >= m_i`` (padding) never count. No x* (``x_star = None``):
    the metrics report loss and accuracy.

    Parameters
    ----------
    features : array_like, shape (N, m, p)
        Row j of agent i is :math:`a_{ij}`.
    labels : array_like of int, shape (N, m)
        Classes 0 .. ``classes`` - 1.
    model : str or callable
        ``"py:FILE:ATTR[:key=value,...]"`` or a callable, the factory
        ``model(in_features=p, classes=K, **pairs) -> torch.nn.Module``.
    classes : int
        Number of classes K (outputs).
    loss : str or callable
        ``"cross_entropy"``, ``"mse"``, ``"py:FILE:ATTR"`` or a callable
        ``loss(outputs, targets) -> scalar`` (the mean over rows).
    dtype : {"float64", "float32"}
        The dtype forward and backward run in.
    batch : int or None
        B rows per stochastic gradient (``None``: full gradients only).
    seed : int
        Seeds the model's initialization (:meth:`initial_point`) and the batches.
    test_features, test_labels : array_like, optional
        Held-out rows, shapes (n_test, p) and (n_test,), shared by all agents.
    rows_per_agent : array_like of int, shape (N,), optional
        :math:`m_i` (default: m for everyone).
    agent_ids : array_like of int, shape (N,), optional
        Global agent ids (default ``0 .. N-1``; ``subset`` keeps the parent's).
    test : (test_features, test_labels), optional
        The same held-out rows as one pair.
    base_dir : path, optional
        Folder a relative ``py:`` file of ``model`` or ``loss`` is read from.

    Examples
    --------
    >>> import pytest; torch = pytest.importorskip("torch")
    >>> def make(in_features, classes):
    ...     return torch.nn.Linear(in_features, classes)
    >>> F = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]]])
    >>> p = TorchProblem(F, [[0, 1], [1, 0]], model=make, classes=2, rows_per_agent=[2, 1])
    >>> p.dim, p.param_shapes
    (6, [('weight', (2, 2)), ('bias', (2,))])
    >>> p.values(np.zeros((2, 6))).round(6).tolist()  # m_i log 2
    [1.386294, 0.693147]
    """

    kind = "torch"
    title = "any PyTorch model (a py:FILE:ATTR factory) on a data table"
    params = (MODEL, LOSS, DTYPE, BATCH, *TABLE_PARAMS)
    x_star = None
    f_star = None
    strong_convexity = 0.0

    # -- config --------------------------------------------------------------------------

    @classmethod
    def from_config(cls, section: dict):
        """The model on a data table (``dataset = "digits"`` unless ``data`` is given)."""
        from ..datasets import problem_from_config

        section = cls._with_default_table(section)
        cls._model_options(section)  # a missing model is named before the table is split
        return problem_from_config(section, network=lambda split: cls.from_split(split,
                                                                                 section))

    @classmethod
    def from_split(cls, split, section: dict):
        """The problem of a :class:`stflow.datasets.Split` (the softmax split of a table)
        with the section's ``batch``, ``seed`` and model options."""
        test = (split.X_test, split.y_test) if split.info["n_test"] > 0 else None
        return cls(split.arrays["A"], split.arrays["y"], classes=split.classes,
                   batch=section.get("batch"), seed=section.get("seed", 0),
                   rows_per_agent=split.block_sizes, test=test, **cls._model_options(section))

    @staticmethod
    def _with_default_table(section: dict) -> dict:
        if section.get("dataset") is None and section.get("data") is None:
            return {**section, "dataset": "digits"}
        return section

    @classmethod
    def _model_options(cls, section: dict) -> dict:
        """The constructor's model keywords of a resolved section."""
        if section.get("model") is None:
            raise InputError(
                '[problem] model is required for kind = "torch" (got none): e.g. model = '
                '"py:net.py:make", a factory returning a torch.nn.Module (docs/torch.md)'
            )
        return {"model": section["model"], "loss": section.get("loss", "cross_entropy"),
                "dtype": section.get("dtype", "float64")}

    @classmethod
    def table_shape(cls, section: dict) -> tuple[int, int, int]:
        """``(N, in_features, classes)`` of a resolved section's data table, read without
        splitting it (for :meth:`data_bytes`)."""
        from ..datasets import DATASETS, load_dataset, load_table

        section = cls._with_default_table(section)
        source = section.get("dataset") or section.get("data")
        table = (load_dataset(source, target=section.get("target")) if source in DATASETS
                 else load_table(source, target=section.get("target")))
        p = table.n_features + int(bool(section.get("intercept", True)))
        return int(section["agents"]), p, int(np.unique(table.y).size)

    @classmethod
    def parameter_count(cls, section: dict) -> int | None:
        """Parameters d of the section's model, counted on PyTorch's ``meta`` device (no
        memory allocated); None when the factory cannot run there."""
        torch = _import_torch(cls.kind)
        _n, p, k = cls.table_shape(section)
        factory = cls._factory_of(section)
        try:
            with torch.random.fork_rng(devices=[]), torch.device("meta"):
                module = factory.fn(in_features=p, classes=k, **factory.kwargs)
            return sum(q.numel() for q in module.parameters())
        except KeyboardInterrupt:
            raise
        except BaseException:  # SystemExit too: the real build names what is wrong
            return None

    @classmethod
    def _factory_of(cls, section: dict) -> _Factory:
        return _factory(cls._model_options(section)["model"])

    @classmethod
    def data_bytes(cls, section: dict) -> int:
        r"""Bytes of the per-agent copies a gradient call holds: the (N, d) parameters in
        float64 and in the compute dtype, their gradients in both, and the model itself,
        :math:`8 N d \cdot 4 + 8 d` (the data table comes from a file: its size bounds it).
        0 when the model cannot be counted before it is built."""
        d = cls.parameter_count(section)
        if d is None:
            return 0
        return 8 * int(section["agents"]) * d * 4 + 8 * d

    @classmethod
    def dim_of(cls, section: dict) -> int:
        """d of the section: the model's parameter count (0 when it cannot be counted)."""
        return cls.parameter_count(section) or 0

    @classmethod
    def size_text(cls, section: dict) -> tuple[str, str]:
        d = cls.dim_of(section)
        return (f'[problem] kind = "{cls.kind}": agents = {section["agents"]} copies of a '
                f"model with d = {d:,} parameters",
                "lower agents or the model's size (its layer widths)")

    # -- the problem ---------------------------------------------------------------------

    def __init__(
        self,
        features: Any,
        labels: Any,
        *,
        model,
        classes: int,
        loss="cross_entropy",
        dtype: str = "float64",
        batch: int | None = None,
        seed: int = 0,
        test_features: Any = None,
        test_labels: Any = None,
        rows_per_agent: Any = None,
        agent_ids: Any = None,
        test: Any = None,
        base_dir=None,
    ):
        torch = _import_torch(self.kind)
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
        if isinstance(classes, bool) or not isinstance(classes, numbers.Integral) or classes < 2:
            raise InputError(
                f"`classes` must be an integer >= 2 (got {classes!r}): pass the number of "
                "classes, e.g. 10 for digits"
            )
        self.classes = int(classes)
        self.seed = _count(seed, "seed", 0, "set [problem] seed >= 0")
        if dtype not in DTYPES:
            raise InputError(
                f"[problem] dtype must be one of {', '.join(DTYPES)} (got {dtype!r}): "
                'e.g. dtype = "float64"'
            )
        self.dtype = dtype
        self._dt = torch.float64 if dtype == "float64" else torch.float32
        self.batch = None if batch is None else _count(
            batch, "batch", 1, "e.g. batch = 16, or omit it for full gradients")
        labels = _check_labels(labels, "labels", (n, m), self.classes)
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
        rpa = np.full(n, m) if rows_per_agent is None else np.asarray(rows_per_agent)
        if rpa.shape != (n,) or not np.all((rpa >= 1) & (rpa <= m) & (rpa == np.round(rpa))):
            raise InputError(
                f"`rows_per_agent` must be N = {n} integers in 1 .. m = {m} (got "
                f"{np.asarray(rows_per_agent).tolist()!r}): give each agent's real row count"
            )
        ids = np.arange(n) if agent_ids is None else np.asarray(agent_ids)
        if ids.shape != (n,) or not np.all(ids == np.round(ids)) or np.any(ids < 0):
            raise InputError(
                f"`agent_ids` must be N = {n} integers >= 0 (got {np.asarray(agent_ids)!r}): "
                "pass the global ids of these agents"
            )
        self._factory = _factory(model, base_dir)
        self.model_text = self._factory.where
        module, x0, self.param_shapes = self._instantiate(torch, p)
        self._sizes = [math.prod(s) for _, s in self.param_shapes]
        super().__init__(n, sum(self._sizes), x_star=None)
        self._agent_ids = ids.astype(np.int64)  # read by Problem.agent_ids
        self._agent_ids.setflags(write=False)
        self._x0 = x0
        self.loss = _loss_text(loss)
        self._build(torch, module, loss, base_dir)
        self._set_rows(F, labels, rpa.astype(np.int64))
        self._check_model(module)

    def _set_rows(self, F: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> None:
        """Hold these agents' rows (and their tensors, mask and batch sampler)."""
        self.features, self.labels = F, labels
        self._rows = rows
        self._rows.setflags(write=False)
        m = F.shape[1]
        self._mask = (np.arange(m)[None, :] < rows[:, None]).astype(np.float64)
        self._sampler = None
        if self.batch is not None:
            self._sampler = BatchSampler(self.seed, agents=self.agent_ids,
                                         rows_per_agent=self.rows_per_agent, batch=self.batch)
        t = self._tensor
        self._F, self._y, self._w = t(self.features), t(self.labels), t(self._mask)

    # -- torch side ------------------------------------------------------------------------

    def _instantiate(self, torch, p: int):
        """``(module, x0, param_shapes)``: the factory's network, built seeded in float64."""
        from ..user_code import call_user

        fac = self._factory
        pairs = "".join(f", {k}={v!r}" for k, v in fac.kwargs.items())
        call = f"{fac.call}(in_features={p}, classes={self.classes}{pairs})"
        default = torch.get_default_dtype()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            torch.set_default_dtype(torch.float64)
            try:
                module = call_user(
                    f"{fac.where}: {call}", fac.fn, in_features=p, classes=self.classes,
                    fix="fix the factory (it must return a torch.nn.Module, docs/torch.md)",
                    **fac.kwargs)
            finally:
                torch.set_default_dtype(default)
        if not isinstance(module, torch.nn.Module):
            raise InputError(
                f"{fac.where}: {call} returned {type(module).__name__}, not a "
                "torch.nn.Module: return the network, e.g. nn.Sequential(...) (docs/torch.md)"
            )
        named = list(module.named_parameters())
        if not named:
            raise InputError(
                f"{fac.where}: {call} returned a {type(module).__name__} without parameters: "
                "nothing to train; return a network with at least one layer"
            )
        shapes = [(name, tuple(q.shape)) for name, q in named]
        with torch.no_grad():
            x0 = torch.cat([q.detach().reshape(-1).to(torch.float64) for _, q in named])
        x0 = x0.numpy().copy()
        x0.setflags(write=False)
        module.eval()
        module.to(self._dt)
        self._call = call
        return module, x0, shapes

    def _per_row_loss(self, torch, loss, base_dir):
        """``per_row(outputs (B, K), targets (B,)) -> (B,)`` of the ``loss`` option."""
        from ..user_code import is_py, load_attr

        nnf = torch.nn.functional
        K = self.classes
        if loss == "cross_entropy":
            return lambda out, y: nnf.cross_entropy(out, y, reduction="none")
        if loss == "mse":  # one-hot by comparison: one_hot's range check cannot be vmapped
            classes = torch.arange(K)
            return lambda out, y: ((out - (y[:, None] == classes).to(out.dtype)) ** 2).mean(
                dim=1)
        if is_py(loss):
            self._loss_where = f"[problem] loss = {loss.strip()!r}"
            fn, pairs = load_attr(loss, "[problem] loss", base_dir,
                                  expect="a loss function loss(outputs, targets)")
            if pairs:
                from functools import partial

                fn = partial(fn, **pairs)
        elif callable(loss):
            fn = loss
            self._loss_where = f"`loss` ({_loss_text(loss)})"
        else:
            raise InputError(
                f"[problem] loss must be cross_entropy, mse or py:FILE:ATTR (got {loss!r}): "
                'e.g. loss = "cross_entropy"'
            )
        if not callable(fn):
            raise InputError(
                f"{self._loss_where} is a {type(fn).__name__}, not callable: name a function "
                "loss(outputs, targets) -> scalar (docs/torch.md)"
            )
        self._user_loss = fn
        from torch.func import vmap

        one = vmap(lambda o, t: fn(o[None], t[None]))
        return lambda out, y: one(out, y)

    def _build(self, torch, module, loss, base_dir) -> None:
        from torch.func import functional_call, grad, vmap

        self._model = module
        names = [name for name, _ in self.param_shapes]
        shapes = [shape for _, shape in self.param_shapes]
        sizes = self._sizes
        self._user_loss = None
        per_row = self._per_row_loss(torch, loss, base_dir)

        def forward(x, F):
            parts = torch.split(x, sizes)
            params = {k: v.view(s) for k, v, s in zip(names, parts, shapes, strict=True)}
            return functional_call(module, params, (F,))

        def loss_fn(x, F, y, w):
            return (per_row(forward(x, F), y) * w).sum()

        self._batched_grad = vmap(grad(loss_fn))
        self._batched_loss = vmap(loss_fn)
        self._batched_logits = vmap(forward, in_dims=(0, None))
        self._forward = forward
        self._loss = loss_fn

    def _check_model(self, module) -> None:
        """Refuse, with one line, a model or loss that cannot be trained: a forward that
        raises or returns the wrong shape or NaN, a loss that is not a finite scalar mean,
        a forward ``torch.func`` cannot batch."""
        from ..user_code import call_user

        torch, where = self._torch, self.model_text
        k = int(min(_CHECK_ROWS, self.rows_per_agent[0]))
        rows = self._F[0, :k]
        shape = (k, self.classes)
        with torch.no_grad():
            out = call_user(f"{where}: the forward of {self._call} on {k} rows of "
                            f"{self.features.shape[2]} features", module, rows,
                            fix="the model must map (B, in_features) float rows to "
                                "(B, classes) outputs (docs/torch.md)")
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputError(
                f"{where}: the forward returned {got} for a batch of shape "
                f"{tuple(rows.shape)}: return (B, classes) = {shape} outputs, one row per "
                "input row and one column per class (docs/torch.md)"
            )
        if not torch.isfinite(out).all():
            raise InputError(
                f"{where}: the forward returned NaN or inf at the initial point (rows 0..{k - 1}"
                " of agent 0): fix the model's initialization or forward"
            )
        if self._user_loss is not None:
            self._check_user_loss(out, self._y[0, :k])
        X0 = self._tensor(np.tile(self._x0, (self.n_agents, 1)))
        few = int(min(2, self.rows_per_agent.min()))
        call_user(
            f"{where}: torch.func.vmap(grad(loss)) over the agents", self._batched_grad, X0,
            self._F[:, :few], self._y[:, :few], self._w[:, :few],
            fix="write the forward and loss with tensor operations only (no .item(), "
                ".numpy(), in-place changes of inputs or buffers, random draws or "
                "data-dependent Python branches), as torch.func requires (docs/torch.md)")

    def _check_user_loss(self, out, y) -> None:
        from ..user_code import call_user

        torch, where = self._torch, self._loss_where
        with torch.no_grad():
            value = call_user(f"{where}: loss(outputs {tuple(out.shape)}, targets "
                              f"{tuple(y.shape)})", self._user_loss, out, y,
                              fix="it must return the mean over rows of a per-row loss "
                                  "(docs/torch.md)")
            ok = isinstance(value, torch.Tensor) and value.dim() == 0
            if not ok:
                got = (tuple(value.shape) if isinstance(value, torch.Tensor)
                       else type(value).__name__)
                raise InputError(
                    f"{where} returned {got}, not a scalar tensor: return the mean over the B "
                    "rows, e.g. ((outputs - t) ** 2).sum(dim=1).mean()"
                )
            if not torch.isfinite(value):
                raise InputError(
                    f"{where} returned {float(value)} at the initial point: make it finite"
                )
            rows = torch.stack([self._user_loss(out[j:j + 1], y[j:j + 1])
                                for j in range(out.shape[0])])
            mean = float(rows.mean())
        tol = 1e-5 if self._dt == torch.float32 else 1e-9
        if abs(mean - float(value)) > tol * max(1.0, abs(float(value))):
            raise InputError(
                f"{where} is not a mean over rows: on {out.shape[0]} rows it gave "
                f"{float(value):.6g}, the mean of its one-row values is {mean:.6g}: return "
                "the mean of a per-row loss (stflow sums it over each agent's real rows)"
            )

    def _tensor(self, a: np.ndarray):
        a = np.ascontiguousarray(a)
        if not a.flags.writeable:  # torch.from_numpy warns on read-only memory
            a = a.copy()
        t = self._torch.from_numpy(a)
        return t.to(self._dt) if t.is_floating_point() else t

    def _out(self, t) -> np.ndarray:
        """A result tensor as float64 numpy (a float32 result is cast back)."""
        return t.to(self._torch.float64).numpy() if t.dtype != self._torch.float64 \
            else t.numpy()

    def _gather(self, draw: int):
        """Features, labels and weights m_i / B of evaluation ``draw``: (n, B, p), (n, B)."""
        rows = np.stack(self._sampler.rows(int(draw)))
        agents = np.arange(self.n_agents)[:, None]
        w = np.broadcast_to(self.rows_per_agent[:, None] / self.batch, rows.shape)
        t = self._tensor
        return t(self.features[agents, rows]), t(self.labels[agents, rows]), t(w)

    def state_dict_at(self, x: np.ndarray) -> dict:
        """The network's ``state_dict`` with the flat parameters ``x: (d,)`` (buffers as the
        factory built them), as float64 CPU tensors: ``model.load_state_dict`` takes it."""
        torch = self._torch
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        out = {k: v.detach().clone() for k, v in self._model.state_dict().items()}
        for (name, shape), part in zip(self.param_shapes, np.split(x, np.cumsum(
                self._sizes)[:-1]), strict=True):
            out[name] = torch.from_numpy(part.reshape(shape).copy())
        return out

    # -- costs -----------------------------------------------------------------------------

    def values(self, X: np.ndarray) -> np.ndarray:
        r"""Local costs :math:`f_i(x_i)` (sums over real rows): X (N, d) -> (N,)."""
        X = self._check_X(X)
        with self._torch.no_grad():
            return self._out(self._batched_loss(self._tensor(X), self._F, self._y, self._w))

    def grad(self, X: np.ndarray) -> np.ndarray:
        r"""Full gradients :math:`\nabla f_i(x_i)` in one batched call: X (N, d) -> (N, d)."""
        X = self._check_X(X)
        return self._out(self._batched_grad(self._tensor(X), self._F, self._y, self._w))

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
        return self._out(self._batched_grad(self._tensor(X), F, y, w))

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
        ``xbar[None]``) on the held-out rows, shape (r,); NaN without held-out rows. The
        predicted class is the largest output."""
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
        """The factory's parameters, flattened in ``named_parameters()`` order, shape (d,):
        the model built once in float64 after ``torch.manual_seed(seed)`` (in a forked RNG).
        Give it to every agent as x_i(0)."""
        return self._x0.copy()

    @cached_property
    def smoothness(self) -> float:
        r"""Estimate of :math:`\max_i \|\nabla^2 f_i\|` at ``initial_point()``.

        A network's gradient has no global Lipschitz constant; this is the largest Hessian
        eigenvalue magnitude at the initial point, from 20 power iterations of batched
        Hessian-vector products (``grad`` of ``grad``, in the compute dtype) over every
        agent's full data, started from ``default_rng(seed)``. Curvature can grow during
        training: treat it as a scale for step sizes, not a bound.
        """
        torch = self._torch
        from torch.func import grad, vmap

        loss = self._loss

        def hvp(x, v, F, y, w):  # reverse over reverse (forward AD warns inside torch)
            return grad(lambda z: torch.dot(grad(loss)(z, F, y, w), v))(x)

        batched = vmap(hvp)
        X = self._tensor(np.tile(self.initial_point(), (self.n_agents, 1)))
        V = self._tensor(np.random.default_rng(self.seed).standard_normal(X.shape))
        lam = torch.zeros(self.n_agents, dtype=self._dt)
        for _ in range(_POWER_ITERATIONS):
            V = V / V.norm(dim=1, keepdim=True).clamp_min(1e-300 if self._dt ==
                                                          torch.float64 else 1e-30)
            HV = batched(X, V, self._F, self._y, self._w)
            lam = HV.norm(dim=1)
            V = HV
        return float(lam.max())

    # -- Problem interface -------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        return {"features": self.features, "labels": self.labels}

    def _hessian_sum(self, x):
        raise NotImplementedError(f"{type(self).__name__} has no x_star: no Hessian sum is "
                                  "needed")

    def _minimize(self):
        raise NotImplementedError(f"{type(self).__name__} has no x_star: nothing to minimize")

    def _from_arrays(self, arrays, **kw):
        raise NotImplementedError(f"use {type(self).__name__}.subset")

    def subset(self, rows: slice, **_: Any):
        """The same problem on the agents ``rows`` (a contiguous slice): the same model
        object and initial point, global agent ids, seed, batch and test rows kept, so the
        block draws the parent's batches (one MPI rank's block).

        Examples
        --------
        >>> import pytest; torch = pytest.importorskip("torch")
        >>> F = np.arange(24.0).reshape(3, 4, 2) / 24
        >>> p = TorchProblem(F, np.zeros((3, 4), int), classes=2, batch=2,
        ...                  model=lambda in_features, classes: torch.nn.Linear(2, 2))
        >>> p.subset(slice(1, 3)).agent_ids.tolist()
        [1, 2]
        """
        start, stop = block_bounds(rows, self.n_agents)
        sl = slice(start, stop)
        child = copy.copy(self)
        child.__dict__.pop("smoothness", None)  # a cached value is the parent's
        child.n_agents = stop - start
        child._agent_ids = self.agent_ids[sl].copy()
        child._agent_ids.setflags(write=False)
        child._set_rows(self.features[sl], self.labels[sl], self.rows_per_agent[sl].copy())
        child._is_subset = True
        return child
