"""Euler steps per second of the observer flow (top-k, least squares) against two references.

Timed in the same process, on the same problem, graph and state:

- ``ours``: :meth:`stflow.flows.PrimalDualFlow.step` (observer, ``topk:k``);
- ``loop``: a per-agent reference loop, one Python object per agent holding its own
  ``A_i, b_i, x_i, v_i, xhat_i`` and neighbour list, the way agent-based frameworks are
  written (same arithmetic, one agent at a time);
- ``floor``: only the unavoidable numpy calls of one step: the batched gradient
  ``problem.grad(X)``, the sparse Laplacian product ``L @ Xhat`` and the compressor's
  selection (``np.partition`` of ``|X - Xhat|`` row-wise, the k-th largest entry).

``speedup_vs_loop = loop seconds per step / ours``; ``ratio_to_floor = ours / floor``.
Goals (N = 1000, d = 100): speedup >= 30, ratio <= 1.5.

Usage::

    python benchmarks/bench_step.py            # table
    python benchmarks/bench_step.py --json     # JSON list, one record per (N, d)
    python benchmarks/bench_step.py --sizes 100x10,1000x100

Each (N, d) runs in its own subprocess with one BLAS thread, so ``peak_mb`` (``ru_maxrss``)
is that size's alone (problem data, graph, state and the per-agent objects included) and
times are single-core CPU seconds (minimum over interleaved batches, see ``_time_all``).
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


class Agent:
    """One agent of the reference loop: its data, its state and its neighbours."""

    def __init__(self, A, b, neighbors, weights, d):
        import numpy as np

        self.A, self.b = A, b
        self.neighbors, self.weights = neighbors, weights
        self.x, self.v, self.xhat = np.zeros(d), np.zeros(d), np.zeros(d)

    def topk(self, z, k):
        import numpy as np

        idx = np.argpartition(-np.abs(z), k - 1)[:k]
        out = np.zeros_like(z)
        out[idx] = z[idx]
        return out


def loop_step(agents, k):
    """One observer Euler step, agent by agent (SPEC section 5)."""
    a, b, e, g = GAINS["alpha"], GAINS["beta"], GAINS["eta"], GAINS["gamma"]
    lxc = []
    for ag in agents:  # every agent combines the xhat copies of its neighbours
        acc = ag.xhat * sum(ag.weights)
        for j, w in zip(ag.neighbors, ag.weights, strict=True):
            acc = acc - w * agents[j].xhat
        lxc.append(acc)
    for ag, lx in zip(agents, lxc, strict=True):
        q = ag.topk(ag.x - ag.xhat, k)
        grad = ag.A.T @ (ag.A @ ag.x - ag.b)
        x_new = ag.x + H * ((-a * lx) - b * ag.v - e * grad)
        ag.v = ag.v + H * (b * lx)
        ag.xhat = ag.xhat + H * (g * q)
        ag.x = x_new


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


def measure(n: int, d: int, *, seconds: float = 3.0, k: int = 2, samples: int | None = None
            ) -> dict:
    """Seconds per step of ours, the per-agent loop and the kernel floor at (N, d).

    ``samples`` rows per agent (default d: the gradient then reads N d^2 floats, twice).
    """
    import numpy as np

    from stflow.compressors import make_compressor
    from stflow.flows import Gains, PrimalDualFlow
    from stflow.graphs import make_graph
    from stflow.problems import make_problem

    m = d if samples is None else samples
    problem = make_problem("least_squares", agents=n, dim=d, seed=0, samples=m)
    graph = make_graph("ring", n)
    flow = PrimalDualFlow(
        "observer", problem, graph, make_compressor(f"topk:k={k}", d), gains=Gains(**GAINS)
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

    adj = graph._adjacency
    agents = []
    for i in range(n):
        lo, hi = adj.indptr[i], adj.indptr[i + 1]
        ag = Agent(problem.A[i], problem.b[i], adj.indices[lo:hi].tolist(),
                   adj.data[lo:hi].tolist(), d)
        ag.x, ag.xhat = X[i].copy(), Xhat[i].copy()
        agents.append(ag)

    times = _time_all({"ours": ours, "floor": floor, "loop": lambda: loop_step(agents, k)},
                      seconds)
    t_ours, t_floor, t_loop = times["ours"], times["floor"], times["loop"]
    assert np.all(np.isfinite(holder["s"]["X"]))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "N": n,
        "d": d,
        "samples": m,
        "steps_per_second": 1.0 / t_ours,
        "speedup_vs_loop": t_loop / t_ours,
        "ratio_to_floor": t_ours / t_floor,
        "peak_mb": peak_mb,
        "loop_steps_per_second": 1.0 / t_loop,
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
            print(f"N={n:6d} d={d:4d}  {r['steps_per_second']:10.1f} steps/s  "
                  f"x{r['speedup_vs_loop']:7.1f} vs loop  {r['ratio_to_floor']:5.2f} x floor  "
                  f"peak {r['peak_mb']:8.1f} MB", flush=True)
    if args.json:
        print(json.dumps(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
