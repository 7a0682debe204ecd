"""Compatibility name: the MPI engine now lives in :mod:`stflow.engines.mpi`.

``from stflow.mpi import run_mpi`` keeps working.
"""

from .engines.mpi import (
    EXIT_STOPPED,
    FAULT_ENV,
    LAUNCHER_ENV,
    STOP_ENV,
    MPIInputError,
    MPIRunResult,
    config_hash,
    launched_by_mpiexec,
    require_launcher,
    run_mpi,
)

__all__ = ["LAUNCHER_ENV", "MPIInputError", "MPIRunResult", "launched_by_mpiexec",
           "require_launcher", "config_hash", "run_mpi", "FAULT_ENV", "STOP_ENV",
           "EXIT_STOPPED"]
