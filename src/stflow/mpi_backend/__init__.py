"""Internals of the MPI backend (:mod:`stflow.mpi`): rank-local data and the wire exchange.

- :mod:`stflow.mpi_backend.data`: one rank's block of the local costs (read or generated
  without keeping other agents' data) and the centralized optimum from rank-local sums.
- :mod:`stflow.mpi_backend.exchange`: the distributed-graph communicator and the per-round
  exchange of encoded messages.
- :mod:`stflow.mpi_backend.runner`: one rank's set-up, Euler rounds, checkpoints and the
  figures of ``comm.json``.
- :mod:`stflow.mpi_backend.checkpoint`: restartable checkpoints (``--checkpoint-every``,
  ``--resume``).
"""

__all__: list[str] = []
