"""Wall time per round of the MPI backend against a bare mpi4py exchange loop.

N = P = 4 agents (one per rank) on a ring, d = 1000, observer flow on least squares with
10 samples per agent (so the gradient is cheap and the figure shows the backend's own
overhead), for ``topk:k=10`` and ``identity``:

- ``seconds_per_round``: :func:`stflow.mpi.run_mpi`'s loop time over its rounds (encode,
  sizes + payload exchange, decode, update; one metrics gather at the last round);
- ``bare_seconds_per_round``: in the same run, over the same distributed-graph communicator
  (before it is freed), a loop that only exchanges the same byte counts: ``Neighbor_alltoall``
  of the sizes and ``Neighbor_alltoallv`` of preallocated payloads;
- ``ratio_to_bare`` (goal <= 1.5) and ``bytes_per_round`` (bytes handed to MPI plus the
  same-rank deliveries, all ranks, one round).

Usage::

    mpiexec -n 4 python benchmarks/bench_mpi.py            # table
    mpiexec -n 4 python benchmarks/bench_mpi.py --json     # JSON list
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

# one BLAS thread per rank: P ranks already occupy the cores (set before numpy is imported)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

CONFIG = """
[problem]
kind = "least_squares"
agents = {n}
dim = {d}
samples = 10
[graph]
kind = "ring"
[flow]
kind = "observer"
[compressor]
spec = "{spec}"
[solver]
step = 1e-3
horizon = {horizon}
record_every = {rounds}
"""
SPECS = ("topk:k=10", "identity")


def bare_loop(ex, rounds: int) -> float:
    """Seconds per round of sizes + payload exchange alone over ``ex.graph_comm``."""
    from mpi4py import MPI

    if not ex.plan.neighbours:
        return 0.0
    comm = ex.graph_comm
    send = np.zeros(int(ex._scounts.sum()), dtype=np.uint8)
    recv = np.empty(int(ex._rcounts.sum()), dtype=np.uint8)
    sizes_out, sizes_in = ex._sizes_out.copy(), np.empty_like(ex._sizes_in)
    sspec = [send, (ex._scounts, ex._sdispl), MPI.BYTE]
    rspec = [recv, (ex._rcounts, ex._rdispl), MPI.BYTE]
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(rounds):
        comm.Neighbor_alltoall([sizes_out, MPI.INT64_T], [sizes_in, MPI.INT64_T])
        comm.Neighbor_alltoallv(sspec, rspec)
    return (time.perf_counter() - start) / rounds


def main(argv=None) -> None:
    from mpi4py import MPI

    from stflow.mpi import run_mpi

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("--dim", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args(argv)
    comm = MPI.COMM_WORLD
    n = comm.Get_size()
    root = comm.bcast(tempfile.mkdtemp(prefix="bench_mpi_") if comm.rank == 0 else None)
    results = []
    for spec in SPECS:
        cfg = Path(root) / f"{spec.split(':')[0]}.toml"
        if comm.rank == 0:
            cfg.write_text(CONFIG.format(n=n, d=args.dim, spec=spec, rounds=args.rounds,
                                         horizon=args.rounds * 1e-3))
        comm.Barrier()
        bare = {}
        res = run_mpi(cfg, Path(root) / cfg.stem,
                      after_rounds=lambda ex, b=bare: b.update(s=bare_loop(ex, args.rounds)))
        worst_bare = comm.allreduce(bare["s"], op=MPI.MAX)
        if comm.rank == 0:
            ours = res.solution.wall_seconds / res.comm["rounds"]
            results.append({
                "compressor": spec,
                "seconds_per_round": ours,
                "bare_seconds_per_round": worst_bare,
                "ratio_to_bare": ours / worst_bare if worst_bare > 0 else float("nan"),
                "bytes_per_round": res.comm["bytes_total"] // res.comm["rounds"],
                "bytes_per_message": res.comm["bytes_per_message"],
            })
    if comm.rank != 0:
        return
    if args.json:
        print(json.dumps(results))
        return
    print(f"N = P = {n}, d = {args.dim}, {args.rounds} rounds")
    head = ("compressor", "s/round", "bare s/round", "ratio", "bytes/round")
    print(f"{head[0]:<12} {head[1]:>10} {head[2]:>13} {head[3]:>7} {head[4]:>12}")
    for r in results:
        print(f"{r['compressor']:<12} {r['seconds_per_round']:>10.3e} "
              f"{r['bare_seconds_per_round']:>13.3e} {r['ratio_to_bare']:>7.2f} "
              f"{r['bytes_per_round']:>12d}")


if __name__ == "__main__":
    main()
