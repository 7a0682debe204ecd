"""One BLAS / OpenMP / PyTorch thread for every test and the processes it starts: the
problems here are tiny, and on a 2-core machine a thread pool per process (pytest, mpiexec
ranks) costs more than it gives (a 100-round CNN run: 6 s on one thread, 110 s with the
default pool on a loaded machine). ``stflow reproduce`` sets the same for its workers."""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
