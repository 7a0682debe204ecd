r"""Least-squares local costs ``f_i(x) = 1/2 ||A_i x - b_i||^2``, in Gram or row form.

Two exact representations of the same costs, chosen by the shape of the data:

- **Gram form** (``m >= d``): :math:`G_i = A_i^T A_i` (d x d), :math:`c_i = A_i^T b_i` and
  :math:`\|b_i\|^2`. A full gradient :math:`G_i x - c_i` reads ``N d^2`` floats once, which
  is at most the ``N m d`` of ``A`` (and ``m / d`` times less when ``m > d``).
- **row form** (``m < d``): ``A`` and ``b`` themselves; a gradient
  :math:`A_i^T (A_i x - b_i)` reads ``A`` twice (``N m d`` floats, fewer than ``N d^2``).

In Gram form the rows are kept only when asked (``keep_rows=True``) or needed (``batch``:
minibatch gradients read rows); :func:`stflow.problems.make_problem` drops them otherwise,
so that a large run holds the data once (the Gram matrices overwrite ``A``'s memory when
``m == d``).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from stflow import kernels
from stflow.errors import InputError

from ._validate import _validate_arrays
from .base import Problem, _smallest_eigenvalue
from .minibatch import RowCosts
from .registry import BATCH, SAMPLES, TABLE_PARAMS

__all__ = [
    "LeastSquaresProblem",
]

_CHUNK_FLOATS = 1 << 20  # 8 MB of float64 per chunk of agents (set-up temporaries)
_SMALL_D = 16  # below this d the batched numpy product beats one BLAS call per agent
_TOP_CANDIDATES = 16  # agents whose top eigenvalue is computed first (largest traces)
_EXCLUSION_MARGIN = 1e-10  # relative margin of the Cholesky exclusion test


def _chunks(n: int, per_agent: int):
    step = max(1, _CHUNK_FLOATS // max(1, per_agent))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _chunk_gram(a: np.ndarray) -> np.ndarray:
    """``a_j^T a_j`` for every agent j of a chunk ``a: (c, m, d)``, exactly symmetric."""
    c, _, d = a.shape
    if d < _SMALL_D:
        return np.swapaxes(a, 1, 2) @ a
    out = np.empty((c, d, d))
    for j in range(c):  # set-up only: numpy turns a^T a into one BLAS syrk, symmetrized
        aj = a[j]
        out[j] = aj.T @ aj
    return out


def _chunk_rows(a: np.ndarray) -> np.ndarray:
    """m_i of each agent of a chunk ``a: (c, m, d)``: rows up to its last non-zero row (as
    :class:`stflow.problems.minibatch.RowCosts` counts them)."""
    nonzero = np.any(a != 0.0, axis=2)
    last = a.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last, 0).astype(np.int64)


def _rows_per_agent(A: np.ndarray) -> np.ndarray:
    n, m, d = A.shape
    out = np.empty(n, dtype=np.int64)
    for s in _chunks(n, m * d):
        out[s] = _chunk_rows(A[s])
    return out


def _gram_form(A: np.ndarray, b: np.ndarray, *, overwrite: bool = False):
    r"""``(G, c, bb, rows)``: :math:`A_i^T A_i` (N, d, d), :math:`A_i^T b_i` (N, d),
    :math:`\|b_i\|^2` (N,) and the m_i (N,).

    Computed chunk of agents by chunk of agents (one read of ``A``, no copy of it). With
    ``overwrite`` and ``m == d`` the Gram matrices are written over ``A`` (which must be
    writeable and owned by the caller): the data then lives in memory once.
    """
    n, m, d = A.shape
    in_place = overwrite and m == d and A.flags.writeable and A.flags.c_contiguous
    gram = A if in_place else np.empty((n, d, d))
    atb = np.empty((n, d))
    rows = np.empty(n, dtype=np.int64)
    for s in _chunks(n, m * d):
        a = A[s]
        atb[s] = (b[s][:, None, :] @ a)[:, 0, :]
        rows[s] = _chunk_rows(a)
        gram[s] = _chunk_gram(a)  # a is read before its slots are written (in place)
    bb = np.einsum("nm,nm->n", b, b)
    return gram, atb, bb, rows


def _max_top_eigenvalue(gram: np.ndarray) -> float:
    r""":math:`\max_i \lambda_{max}(G_i)` of PSD matrices ``gram: (N, d, d)``, exact to rounding.

    ``numpy.linalg.eigvalsh`` of every :math:`G_i` costs about 4/3 d^3 flops per agent. Here
    only the few agents that can hold the maximum get it: first the agents with the
    largest traces give a value :math:`\lambda` attained by some :math:`G_i`; then every
    other agent is excluded when the Cholesky factorization of :math:`t I - G_i` succeeds
    (:math:`t = (1 - 10^{-10}) \lambda`, so :math:`\lambda_{max}(G_i) < t` up to rounding),
    and the agents not excluded get ``eigvalsh`` too. The result is the largest
    ``eigvalsh`` value over the agents, as computing all of them would give.
    """
    n, d, _ = gram.shape
    if n <= 4 * _TOP_CANDIDATES:
        return float(np.linalg.eigvalsh(gram)[:, -1].max())
    from scipy.linalg.lapack import dpotrf

    trace = np.trace(gram, axis1=1, axis2=2)
    top = np.argpartition(-trace, _TOP_CANDIDATES - 1)[:_TOP_CANDIDATES]
    best = float(np.linalg.eigvalsh(gram[top])[:, -1].max())
    shifted = np.eye(d) * (best * (1.0 - _EXCLUSION_MARGIN))
    rest = np.ones(n, dtype=bool)
    rest[top] = False
    keep = []
    buf = np.empty((d, d))
    for i in np.flatnonzero(rest):  # set-up only: one d^3/3 Cholesky per agent
        np.subtract(shifted, gram[i], out=buf)
        if dpotrf(buf.T, lower=0, clean=0, overwrite_a=1)[1] != 0:
            keep.append(i)
    if keep:
        best = max(best, float(np.linalg.eigvalsh(gram[np.array(keep)])[:, -1].max()))
    return best


class LeastSquaresProblem(RowCosts, Problem):
    r"""Least-squares costs :math:`f_i(x) = \tfrac12 \|A_i x - b_i\|^2`.

    With ``m >= d`` rows per agent the costs are evaluated from the Gram form
    :math:`G_i = A_i^T A_i`, :math:`c_i = A_i^T b_i` (module docstring):

    .. math::

        \nabla f_i(x) = G_i x - c_i, \qquad
        f_i(x) = \tfrac12 x^T G_i x - c_i^T x + \tfrac12 \|b_i\|^2,

    equal to the row formulas up to rounding. (A value near zero loses about
    :math:`\varepsilon \|b_i\|^2` to cancellation in this form; the gradients do not.)
    With ``m < d`` the rows are used. ``x_star`` solves the normal equations
    :math:`(\sum_i G_i) x = \sum_i c_i` (minimum norm when the sum is singular, then
    ``strong_convexity`` is 0.0), then up to three Newton steps; ``smoothness`` is
    :math:`\max_i \lambda_{max}(G_i)`.

    Parameters
    ----------
    A : array_like, shape (N, m, d)
    b : array_like, shape (N, m)
    keep_rows : bool
        Keep a copy of ``A`` and ``b`` (``arrays()`` returns them). False in Gram form:
        only :math:`G_i, c_i, \|b_i\|^2` and the m_i are kept and ``arrays()`` returns
        those (keys ``gram``, ``atb``, ``btb``, ``rows``). The row form, and any ``batch``,
        always keep the rows.
    x_star, f_star : optional
        A known optimum (skips the solve).
    batch, seed, agent_ids : optional
        Minibatches of SPEC section 7 (:meth:`stochastic_grad`): B rows per evaluation (None:
        full gradients), the ``[problem] seed``, the agents' global ids (default 0..N-1).

    Attributes
    ----------
    form : {"gram", "rows"}
        Which representation the gradient uses.

    Examples
    --------
    >>> A = np.array([[[1.0, 0.0]], [[0.0, 2.0]]])
    >>> p = LeastSquaresProblem(A, np.array([[1.0], [2.0]]))
    >>> p.form, p.x_star.tolist(), p.smoothness, p.strong_convexity
    ('rows', [1.0, 1.0], 4.0, 1.0)
    >>> q = LeastSquaresProblem(np.eye(2)[None] * 2.0, np.array([[2.0, 4.0]]), keep_rows=False)
    >>> q.form, q.grad(np.zeros((1, 2))).tolist(), sorted(q.arrays())
    ('gram', [[-4.0, -8.0]], ['atb', 'btb', 'gram', 'rows'])
    """

    kind = "least_squares"
    title = "f_i(x) = 1/2 ||A_i x - b_i||^2"
    params = (SAMPLES, BATCH, *TABLE_PARAMS)
    data_keys = ("A", "b")
    data_shapes = (("N", "m", "d"), ("N", "m"))
    blocks = True

    hessian_is_constant = True

    def block_hessians(self, x):
        return self.gram if self.form == "gram" else np.swapaxes(self.A, 1, 2) @ self.A

    def _atb_sum(self, sums) -> np.ndarray:
        atb = self.atb if self.form == "gram" else (self.b[:, None, :] @ self.A)[:, 0, :]
        return sums.cached("atb", lambda: sums.chain_sum(atb))

    def distributed_grad(self, sums, x):
        """Gram form: :math:`(\\sum_i G_i) x - \\sum_i c_i`, like the simulator."""
        if self.form != "gram":
            return super().distributed_grad(sums, x)
        return sums._hessian_sum(x) @ sums._stack(x)[0] - self._atb_sum(sums)

    @classmethod
    def distributed_minimize(cls, sums):
        """The minimum-norm solution of the summed normal equations."""
        gram = sums._hessian_sum(np.zeros(sums.dim))
        return np.linalg.lstsq(gram, sums.local._atb_sum(sums), rcond=None)[0]

    @classmethod
    def from_block(cls, arrays, section, **optimum):
        """Fresh arrays, handed over: the Gram form without the rows."""
        from ._validate import _validate_arrays

        arr = _validate_arrays(cls.kind, arrays, fix="fix the data arrays", copy=False,
                               freeze=False)
        return cls._adopt(arr["A"], arr["b"], keep_rows=False, **optimum)

    @classmethod
    def build(cls, arrays, *, owned, generated, keep_rows, batch=None, seed=0, **options):
        """The problem of validated or generated arrays: fresh arrays are handed over (Gram
        form without a copy), a caller's arrays are copied."""
        rows = {"batch": batch, "seed": seed}
        if owned:
            arr = _validate_arrays(  # a loaded file was validated already
                cls.kind, arrays, fix="fix the data arrays", copy=False, freeze=False
            ) if generated else arrays
            return cls._adopt(arr["A"], arr["b"], keep_rows=keep_rows, **rows)
        return cls(arrays["A"], arrays["b"], keep_rows=keep_rows, **rows)

    @classmethod
    def generate(cls, stream, d, *, samples=None, classes=None) -> dict:
        """:math:`A_i \\sim N(0, 1/m)`, :math:`b_i = A_i x_{true} + 0.1 \\varepsilon`."""
        rng, m = stream.rng, cls._samples(d, samples)
        a = stream.keep(rng.standard_normal, (m, d))
        a /= np.sqrt(m)  # in place: the same numbers as a / sqrt(m), without a second copy
        x_true = rng.standard_normal(d)
        return {"A": a, "b": a @ x_true + 0.1 * stream.keep(rng.standard_normal, (m,))}
    default_samples = 0  # m = d

    def __init__(
        self,
        A: Any,
        b: Any,
        *,
        keep_rows: bool = True,
        x_star: Any = None,
        f_star: Any = None,
        batch: int | None = None,
        seed: int = 0,
        agent_ids: Any = None,
    ):
        shape = np.shape(A)
        keep = keep_rows or batch is not None
        gram_only = len(shape) == 3 and shape[1] >= shape[2] and not keep
        arr = _validate_arrays(
            "least_squares", {"A": A, "b": b}, fix="fix the data arrays",
            copy=not gram_only, freeze=not gram_only,
        )
        rows = self._set(arr["A"], arr["b"], keep_rows=keep, overwrite=False)
        Problem.__init__(self, self.n_agents, self.dim, x_star=x_star, f_star=f_star)
        self._init_rows(batch=batch, seed=seed, agent_ids=agent_ids, rows=rows)

    def _set(self, A: np.ndarray, b: np.ndarray, *, keep_rows: bool, overwrite: bool):
        n, m, d = A.shape
        self.n_agents, self.dim = n, d
        self.form = "gram" if m >= d else "rows"
        self._A = self._b = None
        self.gram = self.atb = self.btb = None
        if self.form == "rows" or keep_rows:
            self._A, self._b = A, b
            A.setflags(write=False)
            b.setflags(write=False)
        if self.form == "rows":
            return _rows_per_agent(A)
        self.gram, self.atb, self.btb, rows = _gram_form(
            A, b, overwrite=overwrite and not keep_rows
        )
        for a in (self.gram, self.atb, self.btb):
            a.setflags(write=False)
        return rows

    @classmethod
    def _adopt(cls, A: np.ndarray, b: np.ndarray, *, keep_rows: bool, batch: Any = None,
               seed: Any = 0, agent_ids: Any = None, **kw: Any):
        """Build from validated arrays the caller hands over (no copy; ``A`` may be reused
        for the Gram matrices)."""
        self = cls.__new__(cls)
        rows = self._set(A, b, keep_rows=keep_rows or batch is not None, overwrite=True)
        Problem.__init__(self, self.n_agents, self.dim, **kw)
        self._init_rows(batch=batch, seed=seed, agent_ids=agent_ids, rows=rows)
        return self

    @classmethod
    def _from_gram(cls, gram: Any, atb: Any, btb: Any, rows: Any, *, seed: Any = 0,
                   agent_ids: Any = None, batch: Any = None, **kw: Any):
        """Build from a Gram form ``(G (N, d, d), c (N, d), ||b||^2 (N,), m_i (N,))``."""
        gram, atb, btb = (np.asarray(a, dtype=np.float64) for a in (gram, atb, btb))
        rows = np.asarray(rows, dtype=np.int64)
        n = gram.shape[0] if gram.ndim == 3 else -1
        ok = gram.ndim == 3 and gram.shape[1] == gram.shape[2] and atb.shape == gram.shape[:2]
        if not ok or btb.shape != (n,) or rows.shape != (n,) or batch is not None:
            raise InputError(
                f"least-squares Gram data must have shapes gram (N, d, d), atb (N, d), btb (N,)"
                f", rows (N,) and no batch (got {gram.shape}, {atb.shape}, {btb.shape}, "
                f"{rows.shape}, batch={batch!r}): pass arrays() of a problem without batch"
            )
        self = cls.__new__(cls)
        self.n_agents, self.dim = n, gram.shape[2]
        self.form = "gram"
        self._A = self._b = None
        self.gram, self.atb, self.btb = gram, atb, btb
        Problem.__init__(self, self.n_agents, self.dim, **kw)
        self._init_rows(batch=None, seed=seed, agent_ids=agent_ids, rows=rows)
        return self

    @property
    def A(self) -> np.ndarray:
        """The rows ``A: (N, m, d)`` (only when kept, see ``keep_rows``)."""
        return self._rows_arrays()[0]

    @property
    def b(self) -> np.ndarray:
        """The targets ``b: (N, m)`` (only when kept, see ``keep_rows``)."""
        return self._rows_arrays()[1]

    @property
    def keeps_rows(self) -> bool:
        """Whether ``A`` and ``b`` are held (row form, or ``keep_rows=True``)."""
        return self._A is not None

    def _rows_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._A is None:
            raise InputError(
                "this least-squares problem keeps only the Gram form of its data (A_i^T A_i, "
                "A_i^T b_i), not A and b: build it with keep_rows=True "
                "(make_problem(..., keep_rows=True)) to keep the rows"
            )
        return self._A, self._b

    def _rows_grad(self, X: np.ndarray, idx: np.ndarray) -> np.ndarray:
        A, b = self._rows_arrays()
        agent = np.arange(idx.shape[0])[:, None]
        a = A[agent, idx]  # (n, B, d)
        r = np.einsum("nbd,nd->nb", a, X) - b[agent, idx]
        return np.einsum("nb,nbd->nd", r, a)

    def _residual(self, X: np.ndarray) -> np.ndarray:
        return (self._A @ X[:, :, None])[:, :, 0] - self._b

    def _tiled(self, copies: int) -> LeastSquaresProblem | None:
        """``copies`` copies of this problem's agents as one problem that reads the same Gram
        matrices (no copy of the data: row r uses agent ``r mod N``'s matrices); a batch of
        runs on one problem (:mod:`stflow.engines.batch`). ``None`` for the row form or a
        minibatch, which have no shared form."""
        if self.form != "gram" or self.batch is not None:
            return None
        n = self.n_agents
        index = np.tile(np.arange(n), copies)
        out = LeastSquaresProblem._from_gram(self.gram, self.atb, self.btb, self._rows,
                                             seed=self.seed)
        out.n_agents = n * copies
        out._gram_index = index
        out.btb = self.btb[index]
        out._rows = self._rows[index]
        return out

    _gram_index = None  # rows -> Gram matrices when several rows share one (_tiled)

    def values(self, X: np.ndarray) -> np.ndarray:
        X = self._check_X(X)
        if self.form == "gram":
            idx = self._gram_index  # rows sharing matrices (_tiled): each row's own copy
            G, c = (self.gram, self.atb) if idx is None else (self.gram[idx], self.atb[idx])
            # x_i^T G_i = (G_i x_i)^T (G_i exactly symmetric); the row-vector product is the
            # faster of numpy's two batched forms at small d
            half = np.matmul(X[:, None, :], G)[:, 0, :]
            half *= 0.5
            half -= c
            return np.einsum("nd,nd->n", X, half) + 0.5 * self.btb
        r = self._residual(X)
        return 0.5 * np.einsum("nm,nm->n", r, r)

    def grad(self, X: np.ndarray) -> np.ndarray:
        X = self._check_X(X)
        if self.form == "gram":  # summed over j in order (stflow.kernels.gram_grad)
            return kernels.gram_grad(X, self.gram, self.atb, self._gram_index)
        r = self._residual(X)
        return (r[:, None, :] @ self._A)[:, 0, :]

    def arrays(self) -> dict[str, np.ndarray]:
        if self._A is None:
            return {"gram": self.gram, "atb": self.atb, "btb": self.btb, "rows": self._rows}
        return {"A": self._A, "b": self._b}

    @cached_property
    def _normal_equations(self) -> tuple[np.ndarray, np.ndarray]:
        if self.form == "gram":
            return self.gram.sum(axis=0), self.atb.sum(axis=0)
        a = self._A.reshape(-1, self.dim)
        return a.T @ a, a.T @ self._b.ravel()

    def _hessian_sum(self, x: np.ndarray) -> np.ndarray:
        return self._normal_equations[0]

    def total_grad(self, x: np.ndarray) -> np.ndarray:
        r""":math:`\sum_i \nabla f_i(x) = (\sum_i G_i) x - \sum_i c_i` in Gram form (d x d work,
        no pass over the data); the stacked sum in row form.

        Examples
        --------
        >>> p = LeastSquaresProblem(np.eye(2)[None] * 2.0, np.array([[2.0, 4.0]]))
        >>> p.total_grad(np.ones(2)).tolist()
        [0.0, -4.0]
        """
        if self.form != "gram":
            return super().total_grad(x)
        h, c = self._normal_equations
        return h @ self._stack(x)[0] - c

    @cached_property
    def smoothness(self) -> float:
        if self.form == "gram":
            return _max_top_eigenvalue(self.gram)
        return float(np.linalg.svd(self._A, compute_uv=False)[:, 0].max() ** 2)

    @cached_property
    def strong_convexity(self) -> float:
        return _smallest_eigenvalue(self._normal_equations[0])

    @property
    def solution_curvature(self) -> float:
        """The Hessian is constant: ``smoothness`` itself."""
        return self.smoothness

    def _minimize(self) -> np.ndarray:
        h, c = self._normal_equations
        return np.linalg.lstsq(h, c, rcond=None)[0]

    def _from_arrays(self, arrays: dict[str, np.ndarray], **kw: Any) -> Problem:
        if "gram" in arrays:
            kw.setdefault("seed", self.seed)
            if "agent_ids" not in kw and len(arrays["gram"]) == self.n_agents:
                kw["agent_ids"] = self._agent_ids
            return LeastSquaresProblem._from_gram(
                arrays["gram"], arrays["atb"], arrays["btb"], arrays["rows"], **kw
            )
        return LeastSquaresProblem(arrays["A"], arrays["b"], **self._row_options(arrays, kw))
