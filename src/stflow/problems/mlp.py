r"""A fully connected ReLU network (multilayer perceptron) as N local costs, in PyTorch:
``kind = "mlp"``, one instance of ``kind = "torch"`` (:mod:`stflow.problems.torch_model`).

Each agent i holds ``m_i`` labelled rows and the cross-entropy of a small network
``Linear(p, h_1), ReLU, ..., Linear(h_L, classes)`` summed over them; its decision variable
x_i is the network's parameters flattened into one float64 vector (d = number of
parameters, layer by layer, each ``nn.Linear``'s weight (out, in) row-major, then its
bias). Every method and compressor of stflow works on x_i unchanged; ``param_shapes`` tells
shape-aware compressors (``lowrank``) where the matrices are.

The network is the built-in model factory :func:`mlp_network` given to
:class:`~stflow.problems.torch_model.TorchProblem`, which batches the N agents' gradients
in ONE call (``torch.func.vmap`` over ``torch.func.grad`` through
``torch.func.functional_call``).

PyTorch is optional (``pip install "stflow[torch]"``); this module imports without it and
building :class:`MLPProblem` without it raises :class:`~stflow.errors.InputError`.
"""

from __future__ import annotations

import numbers
from functools import partial
from typing import Any

import numpy as np

from stflow.errors import InputError

from .registry import BATCH, HIDDEN, TABLE_PARAMS
from .torch_model import DTYPE, LOSS, TorchProblem, _Factory

__all__ = ["MLPProblem", "make_mlp_problem", "mlp_param_shapes", "mlp_network"]


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


def mlp_network(in_features: int, classes: int, *, hidden=(64,)):
    """The built-in model factory: ``Linear(p, h_1), ReLU, ..., Linear(h_L, classes)`` as a
    ``torch.nn.Sequential`` (PyTorch's default initialization).

    Examples
    --------
    >>> import pytest; _ = pytest.importorskip("torch")
    >>> mlp_network(4, 3, hidden=[5])
    Sequential(
      (0): Linear(in_features=4, out_features=5, bias=True)
      (1): ReLU()
      (2): Linear(in_features=5, out_features=3, bias=True)
    )
    """
    from torch import nn

    widths = [int(in_features), *[int(h) for h in hidden], int(classes)]
    layers: list = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


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


def _mlp_factory(hidden) -> _Factory:
    hidden = _check_hidden(hidden)
    return _Factory(partial(mlp_network, hidden=hidden), {},
                    f'[problem] kind = "mlp" with hidden = {list(hidden)}', "mlp_network")


class MLPProblem(TorchProblem):
    r"""Cross-entropy of a ReLU network, one local cost per agent (``kind = "mlp"``).

    .. math:: f_i(x) = \sum_{j < m_i} \Big(\log \sum_c e^{g_c(a_{ij}; x)} -
              g_{y_{ij}}(a_{ij}; x)\Big),
              \qquad g(a; x) = W_L \sigma(\cdots \sigma(W_1 a + b_1) \cdots) + b_L,

    :math:`\sigma = \max(0, \cdot)`: a SUM over the agent's real rows (SPEC section 7), so
    ``grad`` is the gradient of that sum and ``stochastic_grad`` scales a batch of B rows by
    :math:`m_i / B` (unbiased). Rows ``j >= m_i`` (padding) never count. Not convex: there
    is no x* (``x_star = None``, ``f_star = None``), and the metrics report loss and
    accuracy instead of relative error. A :class:`~stflow.problems.torch_model.TorchProblem`
    whose model is :func:`mlp_network`; ``loss`` and ``dtype`` as there.

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
    batch, seed, test_features, test_labels, rows_per_agent, agent_ids, test, loss, dtype
        As for :class:`~stflow.problems.torch_model.TorchProblem`.

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
    params = (HIDDEN, LOSS, DTYPE, BATCH, *TABLE_PARAMS)

    @classmethod
    def _model_options(cls, section: dict) -> dict:
        return {"hidden": section.get("hidden", HIDDEN.default),
                "loss": section.get("loss", "cross_entropy"),
                "dtype": section.get("dtype", "float64")}

    @classmethod
    def _factory_of(cls, section: dict) -> _Factory:
        return _mlp_factory(section.get("hidden", HIDDEN.default))

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
        loss="cross_entropy",
        dtype: str = "float64",
    ):
        factory = _mlp_factory(hidden)
        self.hidden = factory.fn.keywords["hidden"]
        super().__init__(
            features, labels, model=factory, classes=classes, loss=loss, dtype=dtype,
            batch=batch, seed=seed, test_features=test_features, test_labels=test_labels,
            rows_per_agent=rows_per_agent, agent_ids=agent_ids, test=test,
        )

    def initial_point(self) -> np.ndarray:
        """PyTorch's default ``nn.Linear`` initialization after ``torch.manual_seed(seed)``:
        every weight and bias uniform in :math:`\\pm 1/\\sqrt{\\text{fan\\_in}}`
        (``kaiming_uniform_(a=sqrt(5))``, then the bias), layer by layer, in float64; shape
        (d,). Give it to every agent as x_i(0)."""
        return super().initial_point()


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
