"""Euler steps per second of the observer flow with top-k on least squares, and peak memory.

Usage::

    python benchmarks/bench_step.py            # table
    python benchmarks/bench_step.py --json     # one JSON record per (N, d)
    python benchmarks/bench_step.py --sizes 100x10,1000x100

Each (N, d) runs in its own subprocess so the peak resident memory (``ru_maxrss``) is that
size's alone; ``peak_mb`` is that figure (problem data, graph and state included).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SIZES = [(100, 10), (100, 100), (1000, 10), (1000, 100), (10000, 10), (10000, 100)]


def measure(n: int, d: int, *, seconds: float = 3.0, k: int = 2) -> dict:
    """Time observer-flow Euler steps (topk:k, least squares with m = d samples per agent)."""
    import numpy as np

    from stflow.compressors import make_compressor
    from stflow.flows import Gains, PrimalDualFlow
    from stflow.graphs import make_graph
    from stflow.problems import make_problem

    problem = make_problem("least_squares", agents=n, dim=d, seed=0, samples=d)
    graph = make_graph("ring", n)
    flow = PrimalDualFlow(
        "observer", problem, graph, make_compressor(f"topk:k={k}", d),
        gains=Gains(alpha=2.0, beta=2.0, eta=1.0, gamma=50.0),
    )
    state = flow.initial_state()
    h = 1e-3
    state = flow.step(state, 0.0, h)  # warm-up
    steps, start = 0, time.perf_counter()
    while True:
        state = flow.step(state, steps * h, h)
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and steps >= 3:
            break
    assert np.all(np.isfinite(state["X"]))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"N": n, "d": d, "steps_per_second": steps / elapsed, "peak_mb": peak_mb}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("--sizes", default=None, help="comma list of NxD, e.g. 100x10,1000x100")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per size")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child mode: NxD
    args = parser.parse_args(argv)
    if args.one:
        n, d = (int(v) for v in args.one.split("x"))
        print(json.dumps(measure(n, d, seconds=args.seconds)))
        return 0
    sizes = SIZES
    if args.sizes:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    records = []
    for n, d in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", f"{n}x{d}", "--seconds", str(args.seconds)],
            capture_output=True, text=True, check=True,
        )
        records.append(json.loads(out.stdout.strip().splitlines()[-1]))
        if not args.json:
            r = records[-1]
            print(f"N={n:6d} d={d:4d}  {r['steps_per_second']:10.1f} steps/s  "
                  f"peak {r['peak_mb']:8.1f} MB", flush=True)
    if args.json:
        print(json.dumps(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
