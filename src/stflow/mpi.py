r"""MPI backend: the same pinned Euler rounds (SPEC section 5) across real processes.

``mpiexec -n P stflow run CONFIG.toml --backend mpi --out DIR`` splits the N agents into P
contiguous blocks (:func:`stflow.mpi_backend.data.block_offsets`); rank r holds only the local
costs, states ``X, V: (n_r, d)`` and observer copies of its agents and of their off-rank
neighbours. Each round, rank r

1. encodes its agents' messages (compressor bytes, SPEC sections 3 and 6; raw float64 rows
   for the uncompressed flow),
2. exchanges them over one distributed-graph communicator
   (:class:`stflow.mpi_backend.exchange.NeighbourExchange`),
3. decodes them and applies the pinned update :func:`stflow.flows.primal_dual_update`:

.. math::

    X^{k+1}_r = X^k_r + h(-\alpha (L X_c^k)_r - \beta V^k_r - \eta \nabla F_r(X^k_r)),
    \quad V^{k+1}_r = V^k_r + h \beta (L X_c^k)_r,
    \quad \hat x_j^{k+1} = \hat x_j^k + h \gamma q_j^k

for its own rows r and (observer flow) every :math:`\hat x_j` it keeps. The arithmetic is
the simulator's row by row, so ``metrics.csv`` matches :func:`stflow.solve.solve`. Rank 0
gathers ``X`` at recorded steps and records with :class:`stflow.metrics.Recorder`.

Failures: input errors every rank can see (P > N, differing configs, a bad data block) end
all ranks with one line and exit code 2; any other exception on one rank prints
``rank r of P failed: ...`` and calls ``MPI_Abort``, which stops every rank at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import InputError
from .mpi_backend.runner import (
    EXIT_STOPPED,
    FAULT_ENV,
    STOP_ENV,
    Agreed,
    MPIRunResult,
    Runner,
    config_hash,
)

__all__ = [
    "LAUNCHER_ENV",
    "MPIInputError",
    "MPIRunResult",
    "launched_by_mpiexec",
    "require_launcher",
    "config_hash",
    "run_mpi",
    "FAULT_ENV",
    "STOP_ENV",
    "EXIT_STOPPED",
]

#: Environment variables an MPI launcher sets in every process it starts.
LAUNCHER_ENV = (
    "PMI_RANK", "PMI_SIZE", "PMI_FD", "PMIX_RANK", "MPI_LOCALNRANKS",
    "OMPI_COMM_WORLD_SIZE", "HYDRA_CONTROL_FD", "SLURM_STEP_ID",
)


class MPIInputError(InputError):
    """An input error every rank agreed on; ``quiet`` ranks (all but 0) print nothing."""

    def __init__(self, message: str, *, quiet: bool = False):
        super().__init__(message)
        self.quiet = quiet



def launched_by_mpiexec(environ=None) -> bool:
    """True when an MPI launcher started this process (one of :data:`LAUNCHER_ENV` is set).

    Examples
    --------
    >>> launched_by_mpiexec({"PMI_RANK": "0", "PMI_SIZE": "2"}), launched_by_mpiexec({})
    (True, False)
    """
    env = os.environ if environ is None else environ
    return any(key in env for key in LAUNCHER_ENV)


def require_launcher(environ=None) -> None:
    """Raise :class:`InputError` unless started by ``mpiexec`` (no single-rank surprise).

    Examples
    --------
    >>> require_launcher({})
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: --backend mpi must be started by an MPI launcher (got a plain process: no PMI_RANK/PMI_SIZE/OMPI_COMM_WORLD_SIZE in the environment): run `mpiexec -n P stflow run CONFIG --backend mpi --out DIR` with 1 <= P <= N, or drop --backend mpi
    """
    if not launched_by_mpiexec(environ):
        raise InputError(
            "--backend mpi must be started by an MPI launcher (got a plain process: no "
            "PMI_RANK/PMI_SIZE/OMPI_COMM_WORLD_SIZE in the environment): run `mpiexec -n P "
            "stflow run CONFIG --backend mpi --out DIR` with 1 <= P <= N, or drop --backend mpi"
        )



def run_mpi(
    config_path, out, *, checkpoint_every: int = 0, resume: bool = False, after_rounds=None
) -> MPIRunResult:
    r"""Run ``config_path`` on every rank of ``MPI.COMM_WORLD`` (collective; needs mpiexec).

    Parameters
    ----------
    config_path : str or Path
        The TOML config; every rank must resolve it to the same config (compared by hash).
    out : str or Path
        Output folder; rank 0 writes ``comm.json`` there (the caller writes the rest), and
        every rank writes its checkpoint under ``out/checkpoint/``.
    checkpoint_every : int
        Write a restartable checkpoint every this many rounds (0: never).
    resume : bool
        Continue from the last checkpoint in ``out/checkpoint/``; the final metrics are
        exactly those of an uninterrupted run.
    after_rounds : callable, optional
        ``after_rounds(exchange)`` runs on every rank after the last round, while the
        :class:`~stflow.mpi_backend.exchange.NeighbourExchange` is alive (benchmarks).

    Raises
    ------
    MPIInputError
        On every rank, for input errors all ranks agree on (exit code 2).
    """
    require_launcher()
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    try:
        runner = Runner(comm, Path(config_path), Path(out), int(checkpoint_every), resume)
        return runner.run(after_rounds)
    except Agreed as exc:
        raise MPIInputError(str(exc), quiet=comm.Get_rank() != 0) from None
    except BaseException as exc:  # this rank's own failure: stop every rank now
        msg = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        print(
            f"stflow: error: rank {comm.Get_rank()} of {comm.Get_size()} failed: {msg}; "
            "stopping all ranks",
            file=sys.stderr,
            flush=True,
        )
        comm.Abort(2 if isinstance(exc, InputError) else 1)
        raise  # pragma: no cover - Abort does not return
