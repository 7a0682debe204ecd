"""Wall time per round of the MPI engine: against a bare exchange, and against the simulator.

Two modes.

**Bare exchange** (under ``mpiexec -n P``; N = P agents, one per rank, on a ring, d = 1000,
observer flow on least squares with 10 samples per agent, so the gradient is cheap and the
figure shows the engine's own overhead), for ``topk:k=10`` and ``identity``:

- ``seconds_per_round``: :func:`stflow.engines.mpi.run_mpi`'s loop time over its rounds
  (encode, non-blocking exchange, decode, update; one metrics gather at the last round);
- ``bare_seconds_per_round``: in the same run, over the same distributed-graph communicator
  (before it is freed), a loop that only exchanges the same bytes (``Neighbor_alltoallv`` of
  preallocated payloads);
- ``ratio_to_bare`` (goal <= 3 at N = P = 2) and ``bytes_per_round``.

**Engines** (``--engines``, a plain process that launches ``mpiexec`` itself): at N = 1000,
d in {10, 100}, observer flow with ``topk:k=2`` on least squares, seconds per round of the
stepping loop (``summary.json`` ``wall_seconds`` / steps) of the simulator, ``mpiexec -n 1``
and ``mpiexec -n 2``, each the best of ``--repeat`` interleaved runs, one BLAS thread per
process; records ``ratio_to_simulator`` (goals: one rank <= 1.2, two ranks <= 0.7 at
d = 100).

Usage::

    mpiexec -n 2 python benchmarks/bench_mpi.py --json     # bare-exchange records
    python benchmarks/bench_mpi.py --engines --json        # engine records
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
[method]
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
    """Seconds per round of the payload exchange alone over ``ex.graph_comm``."""
    from mpi4py import MPI

    if not ex.plan.neighbours:
        return 0.0
    comm = ex.graph_comm
    send = np.zeros(int(ex._scounts.sum()), dtype=np.uint8)
    recv = np.empty(int(ex._rcounts.sum()), dtype=np.uint8)
    sspec = [send, (ex._scounts, ex._sdispl), MPI.BYTE]
    rspec = [recv, (ex._rcounts, ex._rdispl), MPI.BYTE]
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(rounds):
        comm.Neighbor_alltoallv(sspec, rspec)
    return (time.perf_counter() - start) / rounds


ENGINE_CONFIG = """
[problem]
kind = "least_squares"
agents = {n}
dim = {d}
[graph]
kind = "ring"
[method]
kind = "observer"
[compressor]
spec = "topk:k=2"
[solver]
step = 1e-3
horizon = {horizon}
record_every = {rounds}
"""


def engines(rounds: int, repeat: int, dims=(10, 100), n: int = 1000) -> list[dict]:
    """Simulator vs ``mpiexec -n 1`` vs ``mpiexec -n 2``: seconds per round (best of repeat)."""
    import shutil
    import subprocess
    import sys

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    root = Path(tempfile.mkdtemp(prefix="bench_engines_"))
    mpiexec = shutil.which("mpiexec")
    out = []
    for d in dims:
        cfg = root / f"d{d}.toml"
        cfg.write_text(ENGINE_CONFIG.format(n=n, d=d, horizon=rounds * 1e-3, rounds=rounds))
        best = {"simulator": [], "mpi1": [], "mpi2": []}
        for r in range(repeat):
            for name in best:
                dest = root / f"{name}-d{d}-{r}"
                cmd = [sys.executable, "-m", "stflow.cli", "run", str(cfg), "--out", str(dest),
                       "--quiet"]
                if name != "simulator":
                    cmd = [mpiexec, "-n", name[-1], *cmd, "--backend", "mpi"]
                subprocess.run(cmd, env=env, capture_output=True, check=False)
                summary = json.loads((dest / "summary.json").read_text())
                best[name].append(summary["wall_seconds"] / summary["steps"])
        sim = min(best["simulator"])
        for name, label in (("simulator", "simulator"), ("mpi1", "mpiexec -n 1"),
                            ("mpi2", "mpiexec -n 2")):
            out.append({"N": n, "d": d, "engine": label, "seconds_per_round": min(best[name]),
                        "ratio_to_simulator": min(best[name]) / sim, "rounds": rounds,
                        "repeat": repeat})
    return out


def main(argv=None) -> None:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("--dim", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--engines", action="store_true",
                        help="simulator vs mpiexec -n 1 / -n 2 at N = 1000 (plain process)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.engines:
        records = engines(min(args.rounds, 500), args.repeat)
        if args.json:
            print(json.dumps(records))
        else:
            for r in records:
                print(f"N = {r['N']}, d = {r['d']:>4}, {r['engine']:<13} "
                      f"{r['seconds_per_round']:.3e} s/round, ratio {r['ratio_to_simulator']:.2f}")
        return
    from mpi4py import MPI

    from stflow.engines.mpi import run_mpi

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
