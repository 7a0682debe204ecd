r"""The MPI engine: every method of :mod:`stflow.methods` across real processes.

``mpiexec -n P stflow run CONFIG.toml --backend mpi --out DIR`` splits the N agents into P
contiguous blocks (:func:`stflow.engines.mpi.data.block_offsets`); rank r owns one
:class:`~stflow.methods.base.Block`: the local costs and state rows of its agents and its
copies of the public state of their off-rank neighbours (the observer's ``Xhat``, CHOCO's
``Xhat``, LEAD's ``H``). Each round, rank r runs the method's block protocol
(:mod:`stflow.engines.mpi.runner`): the messages of agents with an off-rank neighbour are
encoded as whole arrays (compressor bytes, SPEC sections 3 and 6; raw float64 rows for
uncompressed channels) and posted with one non-blocking ``Ineighbor_alltoallv`` over one
distributed-graph communicator (:class:`stflow.engines.mpi.exchange.NeighbourExchange`);
messages between agents of the same rank are applied directly; the gradient is computed
while the messages travel where the method allows it. The arithmetic is the simulator's row
by row, so ``metrics.csv`` matches :func:`stflow.engines.simulate.solve`. Rank 0 gathers
``X`` at recorded steps and records with :class:`stflow.metrics.Recorder`.

Failures: input errors every rank can see (P > N, differing configs, a bad data block) end
all ranks with one line and exit code 2; any other exception on one rank prints
``rank r of P failed: ...`` and calls ``MPI_Abort``, which stops every rank at once.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ...errors import InputError
from .runner import (
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


#: Seconds a rank waits between its last stderr line and ``Abort``: the launcher forwards
#: stderr asynchronously and Abort kills every rank at once, so without a pause the line
#: can be lost (seen once in CI: exit 130 and an empty stderr).
_FORWARD_PAUSE = 0.3


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
    config_path, out, *, checkpoint_every: int = 0, resume: bool = False, after_rounds=None,
    progress: bool = False, built=None, interrupted=None, failed=None,
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
        :class:`~stflow.engines.mpi.exchange.NeighbourExchange` is alive (benchmarks).
    progress : bool
        Rank 0 prints the simulator's progress lines on stderr
        (``stflow run: k of n rounds (p%), Ts elapsed``, :mod:`stflow.progress`).
    built : callable, optional
        ``built()`` runs on rank 0 once every rank has built and checked the run, before the
        first round (``stflow run --force`` clears the earlier results there).
    interrupted : callable, optional
        ``interrupted()`` runs on rank 0 when Ctrl-C or SIGTERM stops the run outside its
        rounds (e.g. during the set-up), just before every rank is aborted with exit 130
        (``stflow run`` removes the empty ``--out`` it created).
    failed : callable, optional
        ``failed()`` runs on a rank whose own error stops every rank, just before
        ``MPI_Abort`` (which kills rank 0 too): ``stflow run`` removes the ``--out`` it
        created when it holds nothing but the progress lines.

    Raises
    ------
    MPIInputError
        On every rank, for input errors all ranks agree on (exit code 2).
    """
    require_launcher()
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    try:
        runner = Runner(comm, Path(config_path), Path(out), int(checkpoint_every), resume,
                        progress=progress, built=built)
        return runner.run(after_rounds)
    except Agreed as exc:
        raise MPIInputError(str(exc), quiet=comm.Get_rank() != 0) from None
    except KeyboardInterrupt as exc:  # Ctrl-C / SIGTERM outside the rounds (e.g. set-up)
        # mpiexec forwards the signal to every rank, but one that missed it would wait in a
        # collective forever: every rank ends now, with exit 130 and one line (rank 0's)
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):  # a second one must not interrupt Abort
            signal.signal(sig, signal.SIG_IGN)
        if comm.Get_rank() == 0:
            if interrupted is not None:
                interrupted()
            by = f" by {exc}" if str(exc).startswith("SIG") else ""
            print(f"stflow: interrupted{by} before any result was written (all ranks stopped)",
                  file=sys.stderr, flush=True)
            time.sleep(_FORWARD_PAUSE)
        else:  # rank 0, which got the signal too, prints its line and aborts us all first
            time.sleep(1.0)
        sys.stdout.flush()
        sys.stderr.flush()
        comm.Abort(130)
        os._exit(130)  # pragma: no cover - should Abort return before the kill arrives
    except BaseException as exc:  # this rank's own failure: stop every rank now
        msg = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        print(
            f"stflow: error: rank {comm.Get_rank()} of {comm.Get_size()} failed: {msg}; "
            "stopping all ranks",
            file=sys.stderr,
            flush=True,
        )
        if failed is not None:
            try:
                failed()
            except Exception:  # noqa: BLE001 - the error above is the one to report
                pass
        time.sleep(_FORWARD_PAUSE)
        comm.Abort(2 if isinstance(exc, InputError) else 1)
        raise  # pragma: no cover - Abort does not return
