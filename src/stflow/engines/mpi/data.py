r"""One MPI rank's share of the problem, and the centralized optimum from rank-local sums.

A rank holds the local costs of a contiguous block of agents ``start:stop`` only:

- generated data is drawn agent by agent from the same seeded stream as
  :func:`stflow.problems.make_problem` (so the numbers are identical), keeping only the
  rank's rows;
- a ``.npz`` file is read row-range by row-range from its ``.npy`` members (other agents'
  rows are skipped, never held in memory).

The optimum :math:`x^\star` and :math:`f^\star = \sum_i f_i(x^\star)` used by the metrics are
computed collectively from rank-local sufficient statistics: every rank runs the same
centralized solver, and each sum over agents it needs (:math:`\sum_i Q_i`,
:math:`\sum_i \nabla f_i(x)`, :math:`\sum_i \nabla^2 f_i(x)`) is accumulated along the ranks in
agent order, which reproduces ``numpy``'s sequential axis-0 sum bit for bit. Values
:math:`f_i(x)` at one query point are gathered (one float per agent) and summed like the
simulator does.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...problems import (
    Problem,
    _check_count,
)

__all__ = [
    "block_offsets",
    "problem_shape",
    "generate_block",
    "load_block",
    "supports_blocks",
    "DistributedSums",
    "distributed_optimum",
]


def block_offsets(n_agents: int, n_ranks: int) -> np.ndarray:
    r"""Offsets of the P contiguous agent blocks: rank r holds agents ``off[r]:off[r+1]``.

    The first :math:`N \bmod P` ranks get :math:`\lceil N/P \rceil` agents, the others
    :math:`\lfloor N/P \rfloor` (as ``numpy.array_split``).

    Examples
    --------
    >>> block_offsets(10, 4).tolist()
    [0, 3, 6, 8, 10]
    >>> block_offsets(3, 4)
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: MPI ranks P must satisfy 1 <= P <= N (got P=4, N=3): launch mpiexec -n 3 or fewer
    """
    if not 1 <= n_ranks <= n_agents:
        raise InputError(
            f"MPI ranks P must satisfy 1 <= P <= N (got P={n_ranks}, N={n_agents}): "
            f"launch mpiexec -n {n_agents} or fewer"
        )
    sizes = np.full(n_ranks, n_agents // n_ranks, dtype=np.int64)
    sizes[: n_agents % n_ranks] += 1
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


# --------------------------------------------------------------------------- .npz rows


def _npy_header(f):
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def _npz_members(path: str) -> dict[str, tuple]:
    """``{key: (shape, fortran_order, dtype)}`` read from the headers only."""
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if name.endswith(".npy"):
                    with zf.open(name) as f:
                        out[name[:-4]] = _npy_header(f)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise InputError(
            f"[problem] data: cannot read {path!r} ({exc}): give a .npz written by numpy.savez"
        ) from None
    return out


def _read_rows(path: str, key: str, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` (first axis) of member ``key`` without reading the other rows."""
    with zipfile.ZipFile(path) as zf, zf.open(key + ".npy") as f:
        shape, fortran, dtype = _npy_header(f)
        if fortran or dtype.hasobject or len(shape) == 0:
            raise InputError(
                f"[problem] data: array {key!r} in {path!r} must be a C-ordered numeric array "
                f"(got fortran_order={fortran}, dtype={dtype}): save it with numpy.savez"
            )
        row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        f.seek(f.tell() + start * row)
        raw = f.read((stop - start) * row)
    return np.frombuffer(raw, dtype=dtype).reshape((stop - start, *shape[1:])).copy()


def problem_shape(problem_cfg: dict) -> tuple[int, int]:
    """``(N, d)`` of the configured problem, from the config or the .npz headers only.

    Examples
    --------
    >>> problem_shape({"kind": "quadratic", "data": None, "agents": 6, "dim": 3})
    (6, 3)
    """
    if problem_cfg["data"] is None:
        n = _check_count(problem_cfg["agents"], "agents", "set [problem] agents >= 1")
        d = _check_count(problem_cfg["dim"], "dim", "set [problem] dim >= 1")
        return n, d
    kind, path = problem_cfg["kind"], str(problem_cfg["data"])
    if not Path(path).is_file():
        raise InputError(f"[problem] data: file {path!r} not found: check the path")
    members = _npz_members(path)
    from ...problems.registry import problem_class

    keys = problem_class(kind).data_keys
    if set(members) != set(keys):
        raise InputError(
            f"problem data for kind={kind!r} must hold exactly the arrays {', '.join(keys)} "
            f"(got {', '.join(sorted(members)) or 'none'}): fix the data file"
        )
    first = members[keys[0]][0]
    if len(first) != 3:
        raise InputError(
            f"[problem] data: {keys[0]} must have 3 axes (got shape {first}): fix the data file"
        )
    rows = {k: members[k][0][0] if members[k][0] else None for k in keys}
    if len(set(rows.values())) != 1:
        raise InputError(
            f"[problem] data: arrays {', '.join(keys)} must have one row per agent (got first "
            f"dimensions {rows}): fix the data file"
        )
    return int(first[0]), int(first[2])


# --------------------------------------------------------------------------- generation


def generate_block(kind, *, agents, dim, seed, samples, start, stop) -> dict[str, np.ndarray]:
    """Rows ``start:stop`` of the arrays :func:`stflow.problems.make_problem` generates: the
    kind's own generator on a partial :class:`stflow.problems.base.Stream` (bit-identical
    rows, one other agent's draw in memory at a time).

    Examples
    --------
    >>> from stflow.problems import make_problem
    >>> full = make_problem("least_squares", agents=5, dim=3, seed=4, keep_rows=True).arrays()
    >>> part = generate_block("least_squares", agents=5, dim=3, seed=4, samples=None,
    ...                       start=2, stop=4)
    >>> all(np.array_equal(part[k], full[k][2:4]) for k in ("A", "b"))
    True
    """
    from ...problems.io import _generate

    return _generate(kind, agents, dim, seed, samples, start=start, stop=stop)


def supports_blocks(problem_cfg: dict) -> bool:
    """True when :func:`load_block` can read or generate one block without the others:
    generated data or a problem-array ``.npz`` of the quadratic, least-squares or logistic
    kinds, full gradients. Other problems (data tables, learning problems, minibatches) are
    small enough for every rank to build whole and keep its block.

    Examples
    --------
    >>> supports_blocks({"kind": "quadratic", "data": None, "dataset": None, "target": None})
    True
    """
    from ...problems.registry import problem_class

    p = problem_cfg
    return (
        getattr(problem_class(p.get("kind")), "blocks", False)
        and p.get("dataset") is None
        and p.get("target") is None
        and not str(p.get("data")).endswith(".csv")
        and p.get("batch") is None
    )


def load_block(problem_cfg: dict, start: int, stop: int, **optimum) -> Problem:
    """The local costs of agents ``start:stop`` only, as a :class:`stflow.problems.Problem`.

    ``optimum`` (``x_star=``, ``f_star=``) is passed to the problem (as
    :meth:`stflow.problems.Problem.subset` does); without it the block carries none.

    Examples
    --------
    >>> cfg = {"kind": "quadratic", "agents": 4, "dim": 2, "seed": 0, "data": None,
    ...        "regularization": 0.0, "samples": None}
    >>> load_block(cfg, 1, 3).n_agents
    2
    """
    from ...problems.registry import problem_class

    kind = problem_cfg["kind"]
    cls = problem_class(kind)
    if problem_cfg["data"] is None:
        arrays = generate_block(
            kind,
            agents=problem_cfg["agents"],
            dim=problem_cfg["dim"],
            seed=problem_cfg["seed"],
            samples=problem_cfg.get("samples"),
            start=start,
            stop=stop,
        )
    else:
        problem_shape(problem_cfg)  # checks the keys
        path = str(problem_cfg["data"])
        arrays = {k: _read_rows(path, k, start, stop) for k in cls.data_keys}
    return cls.from_block(arrays, problem_cfg, **optimum)


# --------------------------------------------------------------------------- the optimum


class DistributedSums:
    r"""Sums over all agents of one rank-local block, computed collectively.

    Every method is collective: all ranks call it with the same arguments and get the same
    result. ``chain_sum`` accumulates :math:`\sum_i z_i` in agent order along the ranks
    (rank r continues rank r-1's partial sum), which is exactly numpy's axis-0 sum.

    Parameters
    ----------
    local : Problem
        This rank's agents ``offsets[rank]:offsets[rank+1]``.
    comm : mpi4py.MPI.Comm
    offsets : numpy.ndarray
        :func:`block_offsets` of the run.
    """

    def __init__(self, local: Problem, comm, offsets: np.ndarray):
        self.local, self.comm, self.offsets = local, comm, offsets
        self.n_agents = int(offsets[-1])
        self.dim = local.dim
        self._counts = np.diff(offsets).astype(np.int64)
        self._cache: dict[str, np.ndarray] = {}

    def chain_sum(self, rows: np.ndarray) -> np.ndarray:
        """:math:`\\sum_i` rows over all agents, in agent order (rows: this rank's (n_r, ...))."""
        comm, rank, size = self.comm, self.comm.Get_rank(), self.comm.Get_size()
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        acc = None
        if rank > 0:
            acc = np.empty(rows.shape[1:])
            comm.Recv(acc, source=rank - 1, tag=71)
        for row in rows:  # setup only: sequential like numpy's axis-0 reduction
            acc = row.copy() if acc is None else acc + row
        if rank < size - 1:
            comm.Send(acc, dest=rank + 1, tag=71)
        else:
            acc = np.ascontiguousarray(acc)
        if acc is None:
            acc = np.empty(rows.shape[1:])
        comm.Bcast(acc, root=size - 1)
        return acc

    def gather_all(self, values: np.ndarray) -> np.ndarray:
        """One float per agent from every rank, concatenated in agent order, on every rank."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        out = np.empty(self.n_agents)
        self.comm.Allgatherv(values, [out, (self._counts, self.offsets[:-1])])
        return out

    def _stack(self, x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(x, dtype=np.float64), (self.local.n_agents, self.dim))

    def total_value(self, x: np.ndarray) -> float:
        r""":math:`\sum_i f_i(x)`, summed over the gathered per-agent values as the simulator does."""
        return float(self.gather_all(self.local.values(self._stack(x))).sum())

    def cached(self, key: str, compute):
        """``compute()`` once per run (a sum that does not depend on x)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def total_grad(self, x: np.ndarray) -> np.ndarray:
        r""":math:`\sum_i \nabla f_i(x)`, (d,): the local class's ``distributed_grad``
        (default: the chain sum of the block's gradients; least squares in Gram form
        :math:`(\sum_i G_i) x - \sum_i c_i`, like the simulator)."""
        return self.local.distributed_grad(self, np.asarray(x, dtype=np.float64))

    def _hessian_sum(self, x: np.ndarray) -> np.ndarray:
        r""":math:`\sum_i \nabla^2 f_i(x)`, (d, d): the chain sum of the local class's
        ``block_hessians`` (cached when ``hessian_is_constant``), plus
        :math:`N r I` for a ridge weight ``hessian_ridge`` r."""
        loc = self.local
        if loc.hessian_is_constant:
            return self.cached("hessian", lambda: self.chain_sum(loc.block_hessians(x)))
        h = self.chain_sum(loc.block_hessians(np.asarray(x, dtype=np.float64)))
        ridge = float(getattr(loc, "hessian_ridge", 0.0))
        return h + self.n_agents * ridge * np.eye(self.dim) if ridge else h

    def max(self, value: float) -> float:
        """Largest ``value`` over the ranks."""
        from mpi4py import MPI

        return float(self.comm.allreduce(float(value), op=MPI.MAX))


def distributed_optimum(sums: DistributedSums) -> tuple[np.ndarray, float]:
    r"""``(x_star, f_star)`` of :math:`\sum_i f_i` from rank-local sums (collective).

    The same solvers as :attr:`stflow.problems.Problem.x_star`, fed by
    :class:`DistributedSums` (each class's ``distributed_minimize``): quadratic :math:`x = (\sum_i Q_i)^{-1} \sum_i b_i`; least
    squares the minimum-norm solution of the normal equations
    :math:`(\sum_i A_i^T A_i) x = \sum_i A_i^T b_i`; logistic ``trust-exact``; then up to
    three Newton polishing steps. Quadratic runs and least squares in Gram form (m >= d)
    give the simulator's ``x_star`` bit for bit; least squares with m < d and logistic agree
    to rounding (their centralized solvers work on the stacked data, which no rank holds).
    """
    x = type(sums.local).distributed_minimize(sums)
    x = Problem._polish(sums, x)
    return x, sums.total_value(x)
