"""Euler steps per second of the observer flow (top-k, least squares) against the bandwidth floor.

Timed in the same process, on the same problem, graph and state:

- ``ours``: :meth:`stflow.PrimalDualFlow.step` (observer, ``topk:k``);
- ``read``: one streaming read (``np.add.reduce``) of the bytes a step must touch at least:
  the least-squares data in its smaller form (the Gram matrices ``A_i^T A_i`` and
  ``A_i^T b_i`` when m >= d, else ``A`` and ``b``) plus the state arrays (``X, V, Xhat``
  read and written: six (N, d) arrays);
- ``floor``: only the unavoidable numpy calls of one step: the batched gradient
  ``problem.grad(X)``, the sparse Laplacian product ``L @ Xhat`` and the compressor's
  selection (``np.partition`` of ``|X - Xhat|`` row-wise, the k-th largest entry).

``ratio_to_bandwidth = ours / read`` (goal <= 1.5 at N = 1000, d = 100, m = 100 and 1000);
``ratio_to_floor = ours / floor``. (The per-agent Python loop of earlier versions is gone:
at d = 100 a step is bound by memory bandwidth, so the loop is no yardstick; see
docs/performance.md.)

Usage::

    python benchmarks/bench_step.py            # table
    python benchmarks/bench_step.py --json     # JSON list, one record per (N, d)
    python benchmarks/bench_step.py --sizes 1000x100 --samples 1000 --json

Each (N, d) runs in its own subprocess with one BLAS thread, so ``peak_mb`` (``ru_maxrss``)
is that size's alone (problem data, graph and state included) and times are single-core
CPU seconds (minimum over interleaved batches, see ``_time_all``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

SIZES = [(100, 10), (100, 100), (1000, 10), (1000, 100), (10000, 10), (10000, 100)]
GAINS = {"alpha": 2.0, "beta": 2.0, "eta": 1.0, "gamma": 50.0}
H = 1e-3
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


CLOCK = time.process_time  # CPU seconds of this (single-threaded) process


def _batch_size(fn, target=0.02):
    """Calls per timed batch so that one batch lasts about ``target`` seconds."""
    start = CLOCK()
    fn()
    once = max(CLOCK() - start, 1e-6)
    return max(1, int(target / once))


def _time_all(kernels: dict, seconds: float) -> dict:
    """Seconds per call of each kernel: the minimum over interleaved batches.

    The kernels take turns (one batch each, round after round) so that all of them see
    the same machine load; time is the process's CPU time (the child runs with one BLAS
    thread), so other processes on a busy machine do not count, and the minimum batch time
    is the least disturbed estimate (as ``timeit`` recommends). At least 5 rounds, then
    until ``seconds`` of wall time have passed.
    """
    sizes = {name: _batch_size(fn) for name, fn in kernels.items()}
    best = dict.fromkeys(kernels, float("inf"))
    start, rounds = time.perf_counter(), 0
    while rounds < 5 or time.perf_counter() - start < seconds:
        for name, fn in kernels.items():
            t0 = CLOCK()
            for _ in range(sizes[name]):
                fn()
            best[name] = min(best[name], (CLOCK() - t0) / sizes[name])
        rounds += 1
    return best


def _streaming_read(arrays, state_arrays):
    """One ``np.add.reduce`` over each array: the bytes a step must touch at least."""
    import numpy as np

    flat = [a.reshape(-1) for a in arrays] + [a.reshape(-1) for a in state_arrays] * 2

    def read():
        for a in flat:
            np.add.reduce(a)

    return read, sum(a.nbytes for a in flat)


def measure(n: int, d: int, *, seconds: float = 3.0, k: int = 2, samples: int | None = None
            ) -> dict:
    """Seconds per step of ours, the streaming read and the kernel floor at (N, d).

    ``samples`` rows per agent (default d).
    """
    import numpy as np

    from stflow import Gains, PrimalDualFlow
    from stflow.compressors import make_compressor
    from stflow.graphs import make_graph
    from stflow.problems import make_problem

    m = d if samples is None else samples
    problem = make_problem("least_squares", agents=n, dim=d, seed=0, samples=m)
    graph = make_graph("ring", n)
    flow = PrimalDualFlow(
        "observer", problem, graph, make_compressor(f"topk:k={k}", d), gains=Gains(**GAINS),
        scheme="euler",  # the scheme docs/performance.md measured
    )
    rng = np.random.default_rng(0)
    state = flow.initial_state(x0=rng.standard_normal((n, d)))
    state["Xhat"] = 0.5 * state["X"]

    holder = {"s": state}

    def ours():
        holder["s"] = flow.step(holder["s"], 0.0, H)

    lap = flow.laplacian
    X, Xhat = state["X"].copy(), state["Xhat"].copy()

    def floor():
        problem.grad(X)
        lap @ Xhat
        np.partition(np.abs(X - Xhat), d - k, axis=1)

    data = [problem.gram, problem.atb] if problem.form == "gram" else [problem.A, problem.b]
    read, read_bytes = _streaming_read(data, [state["X"], state["V"], state["Xhat"]])
    times = _time_all({"ours": ours, "floor": floor, "read": read}, seconds)
    t_ours, t_floor, t_read = times["ours"], times["floor"], times["read"]
    assert np.all(np.isfinite(holder["s"]["X"]))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "N": n,
        "d": d,
        "samples": m,
        "form": problem.form,
        "steps_per_second": 1.0 / t_ours,
        "ratio_to_bandwidth": t_ours / t_read,
        "ratio_to_floor": t_ours / t_floor,
        "peak_mb": peak_mb,
        "data_mb": n * m * (d + 1) * 8 / 2**20,
        "read_mb": read_bytes / 2**20,
        "read_gb_per_second": read_bytes / t_read / 1e9,
        "floor_steps_per_second": 1.0 / t_floor,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("--sizes", default=None, help="comma list of NxD, e.g. 100x10,1000x100")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per size")
    parser.add_argument("--samples", type=int, default=None,
                        help="least-squares rows per agent (default d)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child mode: NxD
    args = parser.parse_args(argv)
    if args.one:
        n, d = (int(v) for v in args.one.split("x"))
        print(json.dumps(measure(n, d, seconds=args.seconds, samples=args.samples)))
        return 0
    sizes = SIZES
    if args.sizes:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    records = []
    for n, d in sizes:
        extra = [] if args.samples is None else ["--samples", str(args.samples)]
        env = {**os.environ, **dict.fromkeys(THREAD_VARS, "1")}
        out = subprocess.run(
            [sys.executable, __file__, "--one", f"{n}x{d}", "--seconds", str(args.seconds),
             *extra],
            capture_output=True, text=True, check=True, env=env,
        )
        records.append(json.loads(out.stdout.strip().splitlines()[-1]))
        if not args.json:
            r = records[-1]
            print(f"N={n:6d} d={d:4d} m={r['samples']:5d} ({r['form']})  "
                  f"{r['steps_per_second']:10.1f} steps/s  "
                  f"{r['ratio_to_bandwidth']:5.2f} x read  {r['ratio_to_floor']:5.2f} x floor  "
                  f"peak {r['peak_mb']:8.1f} MB", flush=True)
    if args.json:
        print(json.dumps(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
