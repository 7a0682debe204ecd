"""How many threads PyTorch uses in an stflow process (docs/performance.md).

PyTorch's default is one intra-op thread per core, in every process. stflow's simulator
already batches all agents into one call per round, and ``reproduce --jobs``, MPI ranks and
other users of the machine fill the cores with processes, so torch's default oversubscribes
them: the MLP loop of docs/performance.md took several times longer in CPU time.
:func:`set_torch_threads` therefore sets one thread per process (the simulator and every
MPI rank alike) unless the user asked for another number:

- ``STFLOW_TORCH_THREADS=n`` (n >= 1): n threads per process;
- else ``OMP_NUM_THREADS`` set: left to torch, which honours it;
- else 1.
"""

from __future__ import annotations

import contextlib
import os

from .errors import InputError

__all__ = ["TORCH_THREADS_VAR", "BLAS_THREAD_VARS", "torch_threads", "set_torch_threads",
           "one_thread_in_workers"]

#: The BLAS / OpenMP thread-count variables a spawned worker reads at start-up.
BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def one_thread_in_workers():
    """Within the block, each of :data:`BLAS_THREAD_VARS` the user did not set is 1, so
    processes spawned there run one BLAS / OpenMP thread each (the workers already fill the
    cores); the variables are restored afterwards."""
    saved = {k: os.environ.get(k) for k in BLAS_THREAD_VARS}
    for k in BLAS_THREAD_VARS:
        os.environ.setdefault(k, "1")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


#: The environment variable that overrides the default of one torch thread per process.
TORCH_THREADS_VAR = "STFLOW_TORCH_THREADS"


def torch_threads(environ=None) -> int | None:
    """The number of torch threads stflow sets (None: leave torch's own choice).

    Examples
    --------
    >>> torch_threads({}), torch_threads({"STFLOW_TORCH_THREADS": "2"})
    (1, 2)
    >>> torch_threads({"OMP_NUM_THREADS": "4"}) is None
    True
    """
    env = os.environ if environ is None else environ
    raw = env.get(TORCH_THREADS_VAR)
    if raw is not None and raw.strip():
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 1:
            raise InputError(f"{TORCH_THREADS_VAR} must be an integer >= 1 (got {raw!r}): "
                             f"e.g. {TORCH_THREADS_VAR}=1, or unset it")
        return n
    if env.get("OMP_NUM_THREADS", "").strip():
        return None
    return 1


def set_torch_threads(torch) -> int:
    """Apply :func:`torch_threads` to the imported ``torch`` module; returns the count in
    use. Called whenever stflow imports torch for a problem (every engine, every process)."""
    n = torch_threads()
    if n is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return torch.get_num_threads()
