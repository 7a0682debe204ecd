r"""Costs that are sums over data rows: minibatch gradients (SPEC section 7) and held-out
accuracy.

:class:`RowCosts` is mixed into the problems whose local cost is a sum over agent i's rows
plus a regularizer (least squares, logistic, softmax):

.. math:: f_i(x) = \sum_{j < m_i} \ell(a_{ij}, t_{ij}; x) + \tfrac{r}{2}\|x\|^2 .

Rows are stored stacked, ``A: (N, m, p)`` with ``m = max_i m_i``; a shorter block is padded
at its end with all-zero rows (:mod:`stflow.datasets`). An all-zero row has zero gradient
in every one of these models, so padding changes no gradient; ``rows_per_agent`` (the m_i)
counts the rows up to and including each agent's last non-zero row, so padding rows are
never sampled (a zero row in the middle of real data is counted and sampled, which is
harmless: its gradient is zero, and it is a real row).

:class:`ClassifierRows` adds the held-out test set and the per-row accuracy of the
classification problems (logistic, softmax).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from stflow.errors import InputError

from .sampling import BatchSampler

__all__ = [
    "RowCounts",
    "RowCosts",
    "ClassifierRows",
]


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(
            f"`seed` must be a non-negative integer (got {seed!r}): set [problem] seed >= 0"
        )
    return int(seed)


class RowCounts:
    """Mixin: ``rows_per_agent`` (the m_i, kept in ``self._rows``) and ``samples_per_eval``
    of a problem whose costs are sums over rows (this module, and the MLP)."""

    batch: int | None = None

    @property
    def rows_per_agent(self) -> np.ndarray:
        """m_i, the real (unpadded) rows of each agent, shape (n,)."""
        return self._rows

    @property
    def samples_per_eval(self) -> np.ndarray:
        """Rows one gradient evaluation touches per agent: B, or m_i for full gradients."""
        if self.batch is None:
            return self._rows.copy()
        return np.full(self.n_agents, self.batch, dtype=np.int64)

    def _models(self, X) -> np.ndarray:
        """``X`` as an (r, d) float array of models, one per row (for the accuracies)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise InputError(
                f"`X` must have shape (r, d) with d = {self.dim} (got {X.shape}): one model "
                "per row"
            )
        return X


class RowCosts(RowCounts):
    """Mixin: the minibatch API of a cost that is a sum over data rows (SPEC section 7).

    A subclass sets ``self.A: (N, m, p)``, calls :meth:`_init_rows` after
    ``Problem.__init__``, and implements ``_rows_grad(X, idx)`` (the sum over the rows
    ``idx: (n, B)`` of each agent's row-loss gradients, without the regularizer).
    """

    regularization: float = 0.0

    def _init_rows(self, *, batch: Any, seed: Any, agent_ids: Any, rows: Any = None) -> None:
        self.seed = _check_seed(seed)
        if rows is not None:  # counted by the subclass (least squares in Gram form holds no A)
            m = np.array(rows, dtype=np.int64)
        else:
            nonzero = np.any(self.A != 0.0, axis=2)
            last = self.A.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
            m = np.where(nonzero.any(axis=1), last, 0).astype(np.int64)
        m.setflags(write=False)
        self._rows = m
        if agent_ids is None:
            ids = np.arange(self.n_agents, dtype=np.int64)
        else:
            ids = np.array(agent_ids)
            ok = ids.shape == (self.n_agents,) and ids.dtype.kind in "iu"
            if not ok or (ids.size and ids.min() < 0):
                raise InputError(
                    f"`agent_ids` must be {self.n_agents} non-negative integers, one per agent "
                    f"(got {agent_ids!r}): pass the global ids of these agents"
                )
            ids = ids.astype(np.int64)
        ids.setflags(write=False)
        self._agent_ids = ids
        if batch is not None:
            if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
                raise InputError(
                    f"[problem] batch must be a positive integer (got {batch!r}): set "
                    "batch >= 1, or omit it for full gradients"
                )
            batch = int(batch)
            if batch > m.min():
                j = int(np.argmin(m))
                raise InputError(
                    f"[problem] batch must satisfy batch <= m_i, the rows of every agent (got "
                    f"batch={batch}, m_i={int(m[j])} for agent {int(ids[j])}): lower batch to "
                    f"{int(m[j])} or less, or omit it for full gradients"
                )
        self.batch = batch
        self._sampler: BatchSampler | None = None

    def _reg_grad(self, X: np.ndarray) -> np.ndarray:
        return self.regularization * X

    def batch_rows(self, draw: int) -> np.ndarray:
        """Row indices of gradient evaluation ``draw`` of every agent, shape (n, B)."""
        if self.batch is None:
            raise InputError("batch_rows needs [problem] batch: set batch = B")
        if isinstance(draw, bool) or not isinstance(draw, numbers.Integral) or draw < 0:
            raise InputError(
                f"`draw` must be a non-negative integer (got {draw!r}): count gradient "
                "evaluations from 0"
            )
        if self._sampler is None:
            self._sampler = BatchSampler(
                self.seed, agents=self._agent_ids, rows_per_agent=self._rows, batch=self.batch
            )
        return np.stack(self._sampler.rows(int(draw)))

    def stochastic_grad(self, X: np.ndarray, draw: int) -> np.ndarray:
        r"""Minibatch gradients of every agent, (n, d), for gradient evaluation ``draw``.

        .. math:: g_i = \frac{m_i}{B} \sum_{j \in S_i(\text{draw})} \nabla \ell_{ij}(x_i)
                        + r x_i

        with the rows :math:`S_i` of :func:`stflow.problems.sampling.batch_rows` (seeded by
        the problem's ``seed`` and the agent's global id). Unbiased:
        :math:`\mathbb{E}\, g_i = \nabla f_i(x_i)`. Without ``batch`` it is ``grad(X)``.

        Examples
        --------
        >>> from stflow.problems import make_problem
        >>> p = make_problem("least_squares", agents=2, dim=3, samples=4, seed=0, batch=2)
        >>> X = np.ones((2, 3))
        >>> epoch = (p.stochastic_grad(X, 0) + p.stochastic_grad(X, 1)) / 2
        >>> bool(np.allclose(epoch, p.grad(X)))
        True
        """
        X = self._check_X(X)
        if self.batch is None:
            return self.grad(X)
        idx = self.batch_rows(draw)
        scale = self._rows / self.batch
        return scale[:, None] * self._rows_grad(X, idx) + self._reg_grad(X)

    def _row_options(self, arrays: dict, kw: dict) -> dict:
        """Options of :meth:`_from_arrays`: the same batch and seed; the same agent ids when
        the arrays hold as many agents (``Problem.subset`` sets its own)."""
        kw.setdefault("batch", self.batch)
        kw.setdefault("seed", self.seed)
        if "agent_ids" not in kw and len(arrays["A"]) == self.n_agents:
            kw["agent_ids"] = self._agent_ids
        return kw


class ClassifierRows(RowCosts):
    """Mixin on top of :class:`RowCosts` for classifiers: held-out rows and accuracy.

    A subclass sets ``_row_constant`` (the loss of an all-zero row: log 2 or log K),
    implements ``_predict(X, A)`` (labels, (r, t), of the models X (r, d) on rows A (t, p))
    and ``_check_labels(y, where)``, and calls :meth:`_init_test`.
    """

    #: Holds held-out rows (``make_problem(..., test=)``, ``test_accuracy``).
    classifies = True

    _row_constant: float = 0.0

    def _init_test(self, test: Any) -> None:
        self._test = None
        if test is None:
            return
        try:
            At, yt = (np.array(a, dtype=np.float64) for a in test)
        except (TypeError, ValueError):
            raise InputError(
                "`test` must be a pair (A_test (t, p), y_test (t,)) of numeric arrays: pass "
                "the held-out rows"
            ) from None
        p = self.A.shape[2]
        if At.ndim != 2 or At.shape[1] != p or yt.shape != (At.shape[0],):
            raise InputError(
                f"`test` must be (A_test (t, {p}), y_test (t,)) (got {At.shape} and "
                f"{yt.shape}): one row of {p} features per held-out label"
            )
        if not (np.all(np.isfinite(At)) and np.all(np.isfinite(yt))):
            raise InputError("`test` contains NaN or inf: clean the held-out rows")
        self._check_labels(yt, "y_test")
        At.setflags(write=False)
        yt.setflags(write=False)
        self._test = (At, yt)

    @property
    def has_test(self) -> bool:
        """True when the problem holds at least one held-out row."""
        return self._test is not None and self._test[1].size > 0

    @property
    def test_set(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The held-out rows ``(A_test (t, p), y_test (t,))``, or None."""
        return self._test

    def test_accuracy(self, X: np.ndarray) -> np.ndarray:
        """Accuracy of each model (row of ``X: (r, d)``) on the held-out rows, shape (r,).

        The held-out rows are shared by all agents; NaN without a test set.
        """
        X = self._models(X)
        if not self.has_test:
            return np.full(X.shape[0], np.nan)
        At, yt = self._test
        return np.mean(self._predict(X, At) == yt, axis=1)

    def _padding_rows(self) -> int:
        return int(self.A.shape[0] * self.A.shape[1] - self._rows.sum())

    def train_loss(self, x: np.ndarray) -> float:
        r"""Training objective per row: :math:`\sum_i f_i(x) / \sum_i m_i` (regularizer
        included, the constant loss of padding rows excluded)."""
        total = self.total_value(x) - self._padding_rows() * self._row_constant
        return float(total / max(int(self._rows.sum()), 1))

    def _test_options(self, kw: dict) -> dict:
        kw.setdefault("test", self._test)
        return kw
