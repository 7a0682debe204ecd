"""The engines that run a method: the simulator (one block holding every agent,
:mod:`stflow.engines.simulate`) and MPI (one block per rank, :mod:`stflow.engines.mpi`).
Neither knows any method by name: both drive the block protocol of
:mod:`stflow.methods.base`."""

__all__: list[str] = []
