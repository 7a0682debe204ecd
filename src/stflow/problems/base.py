"""The :class:`Problem` base class: stacked local costs, their sums, and the centralized
optimum x* (solved, then Newton-polished)."""

from __future__ import annotations

import abc
import math
from functools import cached_property
from typing import Any

import numpy as np

from stflow.errors import InputError

__all__ = [
    "Problem",
    "curvature_estimate",
]


_NEWTON_POLISH_STEPS = 3
#: Power iterations of :attr:`Problem.solution_curvature`.
_CURVATURE_ITERATIONS = 100


def curvature_estimate(problem) -> float:
    r"""The one curvature number every method's ``"auto"`` values are computed from: the
    flows' auto gains (:func:`stflow.config.resolve_auto_gains`) and the peers'
    ``lr = "auto"`` (``auto_lr / L``), so every method's tuning box
    (:func:`stflow.tune.search_space`) is centred with the same information (issue 19).

    .. math:: L = L_\star = \max_i \lambda_{max}(\nabla^2 f_i(x^\star)) \le L_f,

    :attr:`Problem.solution_curvature`, which every problem kind has: the largest local
    curvature at the solution, equal to ``smoothness`` (:math:`L_f`) for costs with a
    constant Hessian (quadratic, least squares) and for a problem without ``x*`` (the MLP,
    a ``py:`` cost whose ``x_star`` is None); a ``py:`` cost gets it by power iteration on
    finite-difference Hessian-vector products of its ``grad`` at ``x*``, capped at its
    ``smoothness``. An object without ``solution_curvature`` (an engine's stand-in) falls
    back to its ``smoothness``; 1.0 when neither is a positive number.

    Examples
    --------
    >>> from stflow.problems import make_problem
    >>> q = make_problem("least_squares", agents=3, dim=2, seed=0)
    >>> curvature_estimate(q) == q.smoothness
    True
    >>> p = make_problem("logistic", agents=4, dim=3, seed=0)
    >>> curvature_estimate(p) == p.solution_curvature < p.smoothness
    True
    """
    for name in ("solution_curvature", "smoothness"):
        value = getattr(problem, name, None)
        if isinstance(value, int | float | np.floating) and math.isfinite(value) and value > 0:
            return float(value)
    return 1.0


class Problem(abc.ABC):
    """Base class: N local costs f_i on R^d, evaluated batched on ``X: (N, d)``.

    Subclasses: `QuadraticProblem`, `LeastSquaresProblem`, `LogisticProblem`,
    `SoftmaxProblem`.

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
    >>> from stflow.problems import make_problem
    >>> p = make_problem("quadratic", agents=3, dim=2, seed=0)
    >>> p.values(np.zeros((3, 2))).tolist()
    [0.0, 0.0, 0.0]
    >>> bool(np.linalg.norm(p.total_grad(p.x_star)) < 1e-10)
    True
    """

    #: ``[problem] kind`` name, one-line title and own keys (:mod:`.registry`).
    kind: str = ""
    title: str = ""
    params: tuple = ()

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

    #: Names of the arrays of a ``.npz`` of this kind (``[problem] data``), and their axes
    #: (one name per axis; equal names must have equal sizes), checked by ``make_problem``.
    data_keys: tuple[str, ...] = ()
    data_shapes: tuple[tuple[str, ...], ...] = ()

    @classmethod
    def check_arrays(cls, arrays: dict, fix: str) -> None:
        """Rules of this kind beyond shapes and finiteness (may fix ``arrays`` in place);
        none by default."""
        return None
    #: True when the MPI engine can generate or read one rank's block of agents alone
    #: (:meth:`generate` on a partial :class:`Stream`, and a distributed optimum).
    blocks: bool = False

    @classmethod
    def generate(cls, stream: Stream, d: int, *, samples=None, classes=None) -> dict:
        """Seeded synthetic arrays of this kind for the stream's agents (docs/problems.md)."""
        raise InputError(
            f"[problem] kind = {cls.kind!r} has no generated data: give [problem] data or "
            "dataset"
        )

    @classmethod
    def from_block(cls, arrays: dict, section: dict, **optimum) -> Problem:
        """The problem of one MPI rank's arrays (fresh, handed over), with the section's
        options and the run's optimum (``x_star=``, ``f_star=``)."""
        raise NotImplementedError(f"kind {cls.kind!r} has no MPI blocks")  # blocks = False

    # -- the MPI engine's optimum from rank-local sums (kinds with blocks = True) -----
    #: True when the Hessians do not depend on x (the engine sums them once).
    hessian_is_constant: bool = False

    def block_hessians(self, x: np.ndarray) -> np.ndarray:
        """Each own agent's Hessian at ``x`` (n, d, d), without a ridge term
        (``hessian_ridge``), for :class:`stflow.engines.mpi.data.DistributedSums`."""
        raise NotImplementedError(f"kind {self.kind!r} has no MPI blocks")

    def distributed_grad(self, sums, x: np.ndarray) -> np.ndarray:
        """:math:`\\sum_i \\nabla f_i(x)` over every rank (``sums``: the run's
        :class:`~stflow.engines.mpi.data.DistributedSums`)."""
        return sums.chain_sum(self.grad(sums._stack(x)))

    @classmethod
    def distributed_minimize(cls, sums) -> np.ndarray:
        """A minimizer of the sum over every rank before Newton polishing (collective):
        ``trust-exact`` on ``sums``' total value, gradient and Hessian."""
        from .logistic import trust_exact_minimize

        return trust_exact_minimize(sums, sums.dim)

    @classmethod
    def distributed_strong_convexity(cls, sums, x_star) -> float:
        """``strong_convexity`` of the sum over every rank (collective): the smallest
        eigenvalue of the summed Hessian at x* (a ridge kind: N r, as its own
        ``strong_convexity`` says)."""
        if hasattr(sums.local, "hessian_ridge"):
            return sums.n_agents * float(sums.local.hessian_ridge)
        return _smallest_eigenvalue(sums._hessian_sum(x_star))

    @classmethod
    def _samples(cls, d: int, samples) -> int:
        from ._validate import _check_count

        m = (cls.default_samples or d) if samples is None else samples
        return _check_count(m, "samples", "set [problem] samples >= 1")

    #: Rows per agent of generated data when ``samples`` is not given (data-row kinds).
    default_samples: int = 20

    @classmethod
    def data_bytes(cls, section: dict) -> int:
        """Bytes of the generated data a resolved ``[problem]`` section asks for (0 when the
        data comes from a file: the file's size bounds it): float64 rows ``N m (d + 1)``
        and the centralized solve's ``3 d^2``."""
        if section.get("data") is not None or section.get("dataset") is not None:
            return 0
        n, d = int(section["agents"]), int(section["dim"])
        m = section.get("samples") or (cls.default_samples or d)
        return 8 * (n * m * d + n * m + 3 * d * d)

    @classmethod
    def dim_of(cls, section: dict) -> int:
        """d of a resolved ``[problem]`` section, known before anything is built (the
        preflight's state estimate): ``dim`` (0 when it is not an integer)."""
        d = section.get("dim")
        return d if isinstance(d, int) and not isinstance(d, bool) else 0

    @classmethod
    def size_text(cls, section: dict) -> tuple[str, str]:
        """``(what, fix)`` of the preflight's too-much-memory message."""
        return (f"[problem] agents = {section.get('agents')}, dim = {section.get('dim')}",
                "lower agents, dim or samples")

    @classmethod
    def from_config(cls, section: dict) -> Problem:
        """The problem of a resolved ``[problem]`` section of this kind: seeded data, a
        ``.npz`` of the kind's arrays, or a data table (``dataset``, ``target`` or a ``.csv``
        ``data``: :func:`stflow.datasets.problem_from_config`)."""
        from .io import make_problem

        p = section
        data = p.get("data")
        if p.get("dataset") is not None or p.get("target") is not None or str(
                data).endswith(".csv"):
            from ..datasets import problem_from_config

            return problem_from_config(p)
        if data is not None:
            from ..datasets import check_npz_file

            check_npz_file(data)
        if p.get("split", "iid") != "iid":
            raise InputError(
                f"[problem] split = {p['split']!r} needs a data table: set dataset = \"digits\""
                " (or data/target), or remove split"
            )
        for key, default in (("concentration", 0.5), ("labels_per_agent", 2)):
            if p.get(key, default) != default:
                raise InputError(
                    f"[problem] {key} applies to the split of a data table (got {key} = "
                    f'{p[key]!r} without one): set dataset = "digits" (or data/target) and '
                    "split, or remove it"
                )
        own = {k: p[k] for k in ("regularization", "samples", "classes", "batch") if k in p}
        return make_problem(cls.kind, agents=p["agents"], dim=p["dim"], seed=p["seed"],
                            data=data, **own)

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
        >>> from stflow.problems import make_problem
        >>> p = make_problem("least_squares", agents=2, dim=3, seed=1, keep_rows=True)
        >>> bool(np.isclose(p.total_value(np.zeros(3)), 0.5 * np.sum(p.arrays()["b"] ** 2)))
        True
        """
        return float(self.values(self._stack(x)).sum())

    def total_grad(self, x: np.ndarray) -> np.ndarray:
        r""":math:`\sum_i \nabla f_i(x)` for one point ``x: (d,)``, shape (d,).

        Examples
        --------
        >>> from stflow.problems import make_problem
        >>> p = make_problem("quadratic", agents=2, dim=3, seed=1)
        >>> bool(np.allclose(p.total_grad(np.zeros(3)), -p.arrays()["b"].sum(axis=0)))
        True
        """
        return self.grad(self._stack(x)).sum(axis=0)

    @cached_property
    def x_star(self) -> np.ndarray:
        r"""Centralized minimizer :math:`x^\star \in \arg\min_x \sum_i f_i(x)`, shape (d,).

        Closed form for quadratic and least squares (``numpy.linalg.solve`` / minimum-norm
        ``lstsq`` of the normal equations), ``scipy.optimize.minimize(method="trust-exact")`` for logistic, then up
        to three Newton steps with the exact Hessian (iterative refinement).

        Examples
        --------
        >>> from stflow.problems import make_problem
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
        >>> from stflow.problems import make_problem
        >>> p = make_problem("quadratic", agents=2, dim=2, seed=0)
        >>> bool(p.f_star <= p.total_value(np.zeros(2)))
        True
        """
        if self._given_f_star is not None:
            return self._given_f_star
        return self.total_value(self.x_star)

    @cached_property
    def solution_curvature(self) -> float:
        r"""Largest local curvature at the solution,
        :math:`L_\star = \max_i \lambda_{max}(\nabla^2 f_i(x^\star)) \le L_f`.

        ``smoothness`` (:math:`L_f`) bounds the curvature everywhere; near the solution, where
        a linearly converging run spends most of its rounds, :math:`L_\star` is what limits a
        gradient step (``"auto"`` gains, ``docs/gains.md``). Computed for all agents at once
        by :data:`_CURVATURE_ITERATIONS` power iterations on Hessian-vector products taken as
        central differences of ``grad`` (every agent starts from the same vector, drawn from
        ``default_rng(0)``, so a block of agents gets the same values), Rayleigh
        quotient of the last one, capped at ``smoothness``. Costs with a constant Hessian
        (quadratic, least squares) return ``smoothness`` itself; a problem without ``x_star``
        (the MLP) too.

        Examples
        --------
        >>> from stflow.problems import make_problem
        >>> p = make_problem("logistic", agents=4, dim=3, seed=0)
        >>> bool(0 < p.solution_curvature <= p.smoothness)
        True
        >>> q = make_problem("least_squares", agents=3, dim=2, seed=0)
        >>> q.solution_curvature == q.smoothness
        True
        """
        if self.x_star is None:
            return float(self.smoothness)
        curvature = self._curvature_at(np.asarray(self.x_star, dtype=np.float64))
        return float(min(curvature, float(self.smoothness)))

    def _curvature_at(self, x: np.ndarray, iterations: int = _CURVATURE_ITERATIONS) -> float:
        """Largest local curvature at ``x`` over the agents: ``iterations`` power iterations
        on central-difference Hessian-vector products of ``grad`` (every agent from the same
        ``default_rng(0)`` vector), Rayleigh quotient of the last one, at least 0."""
        X = np.array(self._stack(x))
        eps = 1e-5 * max(1.0, float(np.linalg.norm(x)))
        V = np.tile(np.random.default_rng(0).standard_normal(self.dim), (self.n_agents, 1))
        rayleigh = np.zeros(self.n_agents)
        for _ in range(iterations):
            V /= np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-300)
            HV = (self.grad(X + eps * V) - self.grad(X - eps * V)) / (2.0 * eps)
            rayleigh = np.einsum("nd,nd->n", V, HV)
            V = HV
        return max(float(rayleigh.max()), 0.0)

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

    # -- minibatches (SPEC section 7): defaults for costs without data rows -----------------

    #: Rows B per stochastic gradient evaluation (None: full gradients).
    batch: int | None = None
    #: True when the problem holds held-out rows (classification).
    has_test: bool = False

    @property
    def agent_ids(self) -> np.ndarray:
        """Global ids of this problem's agents, shape (n,): 0..N-1, or the parent's ids of
        the agents a :meth:`subset` holds (they seed the minibatches)."""
        ids = getattr(self, "_agent_ids", None)
        return np.arange(self.n_agents, dtype=np.int64) if ids is None else ids

    @property
    def rows_per_agent(self) -> np.ndarray:
        """Data rows m_i of each agent, shape (n,) (0: a cost without rows)."""
        return np.zeros(self.n_agents, dtype=np.int64)

    @property
    def samples_per_eval(self) -> np.ndarray:
        """Rows one gradient evaluation touches per agent, shape (n,); a cost without rows
        counts one sample per evaluation (its whole cost)."""
        return np.ones(self.n_agents, dtype=np.int64)

    def stochastic_grad(self, X: np.ndarray, draw: int) -> np.ndarray:
        """Gradient evaluation number ``draw``: exact here (no rows to sample), (n, d)."""
        return self.grad(X)

    # -- distribution ----------------------------------------------------------------------

    def subset(self, rows: slice, *, x_star: Any = None, f_star: Any = None) -> Problem:
        """The same costs restricted to the agents ``rows`` (a contiguous slice).

        The result holds copies of only those agents' arrays (one MPI rank's share). It
        does not solve anything: its ``x_star`` is the one passed here (an error to read
        otherwise) and its ``f_star`` defaults to this problem's full sum at ``x_star``.

        Examples
        --------
        >>> from stflow.problems import make_problem
        >>> p = make_problem("least_squares", agents=6, dim=3, seed=0)
        >>> X = np.ones((6, 3))
        >>> bool(np.array_equal(p.subset(slice(2, 5)).grad(X[2:5]), p.grad(X)[2:5]))
        True
        """
        start, stop = block_bounds(rows, self.n_agents)
        part = {k: v[start:stop].copy() for k, v in self.arrays().items()}
        if x_star is not None and f_star is None:
            f_star = self.total_value(np.asarray(x_star, dtype=np.float64))
        child = self._from_arrays(part, x_star=x_star, f_star=f_star)
        child._is_subset = True
        child._agent_ids = self.agent_ids[start:stop]
        return child

    @abc.abstractmethod
    def _from_arrays(self, arrays: dict[str, np.ndarray], **kw: Any) -> Problem:
        """A problem of the same kind and options on other arrays."""


class Stream:
    """One seeded stream drawn agent by agent, keeping rows ``start:stop`` only.

    A generator draws each array as ``keep(draw, shape)``: agent i's draw of ``shape``,
    in agent order, so rows ``start:stop`` are bit-identical to the same rows of the full
    arrays (``start=0, stop=N``) while one other agent's draw is in memory at a time. The
    MPI engine generates a rank's block this way.
    """

    def __init__(self, seed: int, n: int, start: int = 0, stop: int | None = None):
        self.rng = np.random.default_rng(int(seed))
        self.n, self.start = int(n), int(start)
        self.stop = self.n if stop is None else int(stop)

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.stop == self.n

    def keep(self, draw, shape) -> np.ndarray:
        if self.whole:  # one call: the same numbers as N draws of shape, in order
            return draw((self.n, *shape))
        out = np.empty((self.stop - self.start, *shape))
        for i in range(self.n):  # setup only: one agent's draw in memory at a time
            value = draw(shape)
            if self.start <= i < self.stop:
                out[i - self.start] = value
        return out


def block_bounds(rows, n_agents: int) -> tuple[int, int]:
    """``(start, stop)`` of a contiguous, non-empty slice of ``n_agents`` agents.

    Examples
    --------
    >>> block_bounds(slice(2, 5), 6)
    (2, 5)
    """
    if not isinstance(rows, slice) or rows.step not in (None, 1):
        raise InputError(
            f"`rows` must be a contiguous slice such as slice(2, 5) (got {rows!r}): "
            "give each rank a contiguous block of agents"
        )
    start, stop, _ = rows.indices(n_agents)
    if stop <= start:
        raise InputError(
            f"`rows` must select at least one of the {n_agents} agents (got {rows!r}):"
            " give each rank one agent or more"
        )
    return start, stop


def _smallest_eigenvalue(h: np.ndarray) -> float:
    """Smallest eigenvalue of a PSD matrix, 0.0 when within rounding of singular."""
    eig = np.linalg.eigvalsh(h)
    tol = h.shape[0] * np.finfo(np.float64).eps * max(float(np.abs(eig).max()), 1e-300)
    return float(eig[0]) if eig[0] > tol else 0.0
