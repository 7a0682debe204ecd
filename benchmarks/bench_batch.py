"""Many runs as one program: a batch of S runs (:func:`stflow.engines.batch.run_batch`)
against one run, and the memory of a large batch.

- ``speed``: E2's setting (least squares N = 20, d = 10, ring with 3 chords, observer flow,
  ``topk:k=2``, h = 1e-3, E2's gains, 3000 rounds). One run (:func:`stflow.run_config`)
  and a batch of S = 64 runs (gains drawn within +-10 % of E2's, as the tuner's
  perturbations are) are timed in the same process, taking turns; each time is the
  minimum CPU time (``time.process_time``) over ``--repeats`` turns. ``ratio = batch /
  one`` (goal <= 4, i.e. 16x the throughput at S = 64).
- ``tune``: E9's tuning on E2 (:func:`stflow.experiments.comparison.method_config`: observer
  flow, ``--scheme``, ``--spec``, 3000 rounds, target 1e-6, budget 50) with the sequential
  search (``stflow.tune._search``) and with :func:`stflow.tune_batch.search_batched`
  (waves of ``--wave`` candidates), CPU seconds of each and the winners' bits.
- ``memory``: a batch of 64 at N = 1000, d = 100 (least squares, 100 rows per agent; one
  problem shared by the runs, or with ``--distinct`` one problem per run) for a few
  rounds, in a subprocess whose peak resident memory (``ru_maxrss``) is reported with
  :func:`~stflow.engines.batch.batch_memory`'s estimate; with ``--max-mb`` the batch is
  split into chunks that fit beside the problems it holds, or (distinct problems whose
  data alone exceed the limit) refused before any run (``refused`` gives the message).

Usage::

    python benchmarks/bench_batch.py                 # both, JSON lines
    python benchmarks/bench_batch.py speed --runs 64 --repeats 3
    python benchmarks/bench_batch.py tune --budget 50 --wave 10
    python benchmarks/bench_batch.py memory --max-mb 2000

Children run with one BLAS thread (``OMP_NUM_THREADS=1`` etc.).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
E2_GAINS = {"alpha": 10.0, "beta": 10.0, "eta": 2.0, "gamma": 300.0}


def configs(runs: int, *, agents=20, dim=10, rounds=3000, samples=None, seed=0,
            distinct=False):
    """``runs`` resolved configs of E2's shape, gains within +-10 % of E2's (run 0: E2's)."""
    import numpy as np

    import stflow

    rng = np.random.default_rng(seed)
    out = []
    for i in range(runs):
        f = 1.0 if i == 0 else rng.uniform(0.9, 1.1, size=4)
        gains = {k: float(v * (f if np.isscalar(f) else f[j]))
                 for j, (k, v) in enumerate(E2_GAINS.items())}
        problem = {"kind": "least_squares", "agents": agents, "dim": dim,
                   "seed": i if distinct else 0}
        if samples is not None:
            problem["samples"] = samples
        out.append(stflow.resolve_config({
            "problem": problem,
            "graph": {"kind": "ring", "chords": 3, "seed": 0},
            "method": {"kind": "observer", **gains},
            "compressor": {"spec": "topk:k=2"},
            "solver": {"step": 1e-3, "horizon": rounds * 1e-3},
        }))
    return out


def speed(runs: int = 64, repeats: int = 3, rounds: int = 3000) -> dict:
    import stflow
    from stflow.engines.batch import BatchInfo, run_batch

    cfgs = configs(runs, rounds=rounds)
    one, batch = float("inf"), float("inf")
    info = BatchInfo()
    for _ in range(repeats):
        t0 = time.process_time()
        stflow.run_config(cfgs[0])
        one = min(one, time.process_time() - t0)
        t0 = time.process_time()
        run_batch(cfgs, info=info)
        batch = min(batch, time.process_time() - t0)
    return {"bench": "speed", "agents": 20, "dim": 10, "rounds": rounds, "runs": runs,
            "one_cpu_s": round(one, 4), "batch_cpu_s": round(batch, 4),
            "ratio": round(batch / one, 3), "throughput_x": round(runs * one / batch, 2),
            "stacked_chunks": [len(c) for c in info.chunks],
            "run_one_by_one": len(info.sequential)}


def memory(runs: int = 64, rounds: int = 3, max_mb: float | None = None,
           distinct: bool = False) -> dict:
    from stflow.engines.batch import (
        BatchInfo,
        _build_runs,
        _data_bytes,
        _shares_data,
        _state_bytes,
        batch_memory,
        run_batch,
    )
    from stflow.errors import InputError

    cfgs = configs(runs, agents=1000, dim=100, samples=100, rounds=rounds, distinct=distinct)
    built = _build_runs(cfgs[:2])
    est = batch_memory(built[0])
    # runs on one problem share its data (least squares in Gram form): counted once; one
    # problem per run: every problem is held, and a stack copies its runs' data
    est_batch = (_data_bytes(built[0]) + runs * _state_bytes(built[0])
                 if _shares_data(built) else runs * (_data_bytes(built[0]) + est))
    del built
    info = BatchInfo()
    t0 = time.process_time()
    refused = None
    try:
        run_batch(cfgs, info=info, max_bytes=None if max_mb is None else int(max_mb * 2**20))
    except InputError as exc:  # distinct problems over the limit: refused before any run
        refused = str(exc)
    cpu = time.process_time() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"bench": "memory", "agents": 1000, "dim": 100, "samples": 100, "runs": runs,
            "problems": runs if distinct else 1,
            "rounds": rounds, "estimate_mb_per_run": round(est / 2**20, 1),
            "estimate_mb_batch": round(est_batch / 2**20, 1),
            "max_mb": max_mb, "chunks": [len(c) for c in info.chunks],
            "peak_rss_mb": round(peak, 1), "cpu_s": round(cpu, 2), "refused": refused}


def tune_cpu(budget: int = 50, wave: int = 10, scheme: str = "euler",
             spec: str = "topk:k=2", kind: str = "observer", seed: int = 0) -> dict:
    import importlib

    from stflow.experiments.comparison import TARGET, method_config
    from stflow.tune_batch import search_batched

    T = importlib.import_module("stflow.tune")  # the module (stflow.tune is the function)

    cfg = method_config("E2", kind, scheme, spec, 3000)
    out = {"bench": "tune", "setting": "E2", "kind": kind, "scheme": scheme, "spec": spec,
           "budget": budget, "wave": wave, "seed": seed}
    original = T._search
    for name, search in (("sequential", original),
                         ("batched", lambda *a, **k: search_batched(*a, wave=wave, **k))):
        T._search = search
        try:
            t0 = time.process_time()
            res = T.tune(cfg, budget=budget, target=TARGET, seed=seed)
            out[f"{name}_cpu_s"] = round(time.process_time() - t0, 2)
        finally:
            T._search = original
        out[f"{name}_bits"] = res.bits_to_target
        out[f"{name}_robust_bits"] = res.robust_bits_to_target
        out[f"{name}_runs"] = res.runs
    out["cpu_ratio"] = round(out["batched_cpu_s"] / out["sequential_cpu_s"], 3)
    return out


def _child(args) -> dict:
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, "1")}
    out = subprocess.run([sys.executable, __file__, *args, "--child"], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", choices=("speed", "memory", "tune", "all"),
                    default="all")
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--wave", type=int, default=10)
    ap.add_argument("--scheme", default="euler")
    ap.add_argument("--spec", default="topk:k=2")
    ap.add_argument("--kind", default="observer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--max-mb", type=float, default=None)
    ap.add_argument("--distinct", action="store_true",
                    help="memory: one problem per run (seeds 0..S-1), no shared data")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        if a.what == "speed":
            rec = speed(a.runs, a.repeats, a.rounds or 3000)
        elif a.what == "tune":
            rec = tune_cpu(a.budget, a.wave, a.scheme, a.spec, a.kind, a.seed)
        else:
            rec = memory(a.runs, a.rounds or 3, a.max_mb, a.distinct)
        print(json.dumps(rec))
        return
    for what in (("speed", "tune", "memory") if a.what == "all" else (a.what,)):
        args = [what, "--runs", str(a.runs), "--repeats", str(a.repeats), "--budget",
                str(a.budget), "--wave", str(a.wave), "--scheme", a.scheme, "--spec", a.spec,
                "--kind", a.kind, "--seed", str(a.seed)]
        if a.rounds is not None:
            args += ["--rounds", str(a.rounds)]
        if a.max_mb is not None:
            args += ["--max-mb", str(a.max_mb)]
        if a.distinct:
            args += ["--distinct"]
        print(json.dumps(_child(args)), flush=True)


if __name__ == "__main__":
    main()
