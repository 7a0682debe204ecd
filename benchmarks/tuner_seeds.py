"""Spread over tuner seeds (issue 19): the observer flow against the compressed peers, each
tuned by ``stflow tune`` with the same budget for several tuner seeds.

For one problem (E9's ``E2``: least squares N = 20, d = 10, ring + 3 chords; or one the
tuning rules were not set on: ``LOG``, logistic regression N = 20, d = 10, L2 = 1e-2, the
same graph; ``P3``, least squares N = 40, d = 20, Erdos-Renyi; ``P4``, quadratic N = 16, d =
8, path) and the compressors ``quantize:bits=4`` and ``topk:k=2`` (``--compressors`` adds
the cyclic scalarizer), every method of E9 (:data:`stflow.experiments.comparison.METHODS`:
the observer flow with ``predict``, LEAD, CHOCO, BEER, MoTEF) is tuned exactly as E9 tunes
it (:func:`comparison.method_config`, ``"auto"`` start, 3000 rounds a run, target relative
error 1e-6, ``--budget``, default 50, ``--wave``, default 1) once per tuner seed. Reported
per method and compressor: how many seeds reached the target, the median and interquartile
range (25th-75th percentile) of the robust bits per agent over all seeds (a seed that did
not reach the target counts as infinitely many bits, so a median over five seeds is finite
only when at least three reached it), and per seed the ratio flow / best peer of the robust
bits (the best of LEAD, CHOCO, BEER, MoTEF for that seed).

Usage (results in ``docs/tune.md`` and README)::

    OMP_NUM_THREADS=1 python benchmarks/tuner_seeds.py --problem E2 --seeds 0-4 --jobs 2 \\
        --out tuner_seeds_E2

writes ``OUT/results.json`` (one entry per tuning) and ``OUT/table.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

from stflow.experiments import comparison
from stflow.experiments.comparison import METHODS, PEERS, TARGET, method_config

#: The logistic setting (not in E9): the same graph as E2, L2 = 1e-2 (strongly convex).
comparison.SETTINGS.setdefault("LOG", (
    {"kind": "logistic", "agents": 20, "dim": 10, "seed": 0, "regularization": 1e-2},
    {"kind": "ring", "chords": 3, "seed": 0}))

#: Two problems of docs/peers.md that no rule was set on either (scripts/compare_unseen.py).
comparison.SETTINGS.setdefault("P3", (
    {"kind": "least_squares", "agents": 40, "dim": 20, "seed": 3},
    {"kind": "erdos_renyi", "seed": 3}))
comparison.SETTINGS.setdefault("P4", (
    {"kind": "quadratic", "agents": 16, "dim": 8, "seed": 4},
    {"kind": "path", "seed": 4}))

#: The compressor columns (``--compressors`` picks some; ``{tau}``: the round's clock step).
ALL_COMPRESSORS = {"quantize": "quantize:bits=4", "topk": "topk:k=2",
                   "cyclic": "scalarize:basis=cyclic,tau={tau}"}
COMPRESSORS = {k: ALL_COMPRESSORS[k] for k in ("quantize", "topk")}
ROUNDS = 3000
BUDGET = 50


def quantile(values, q: float) -> float:
    """The ``q``-quantile of ``values`` (linear interpolation between order statistics; a
    neighbour at infinity gives infinity).

    >>> quantile([1.0, 2.0, 3.0, math.inf, math.inf], 0.5), quantile([1.0, 3.0], 0.5)
    (3.0, 2.0)
    >>> quantile([1.0, 2.0, 3.0, 4.0, math.inf], 0.75)
    4.0
    """
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    if lo == hi or v[lo] == v[hi]:
        return float(v[lo])
    if math.isinf(v[hi]):
        return math.inf
    return float(v[lo] + (pos - lo) * (v[hi] - v[lo]))


def one(problem: str, kind: str, scheme: str, ckey: str, seed: int, budget: int,
        rounds: int, wave: int = 1) -> dict:
    """Tune one method for one tuner seed, as E9 does; a summary row."""
    from stflow.tune import tune

    cfg = method_config(problem, kind, scheme, ALL_COMPRESSORS[ckey], rounds)
    start = time.process_time()
    res = tune(cfg, budget=budget, target=TARGET, seed=seed, wave=wave)
    return {"problem": problem, "kind": kind, "scheme": scheme, "compressor": ckey,
            "seed": seed, "budget": budget, "wave": wave, "found": res.found,
            "bits_to_target": res.bits_to_target,
            "robust_bits_to_target": res.robust_bits_to_target,
            "rounds_to_target": res.rounds_to_target, "params": res.params,
            "auto_bits_to_target": (res.trials[0].get("bits_to_target") if res.trials
                                    else None),
            "widened": [w["edges"] for w in res.widened], "evaluations": res.evaluations,
            "runs": res.runs, "cpu_seconds": time.process_time() - start,
            "reason": res.reason}


def _bits(row) -> float:
    b = row["robust_bits_to_target"]
    return math.inf if b is None else float(b)


def _fmt(v: float) -> str:
    return "not reached" if math.isinf(v) else f"{v:,.0f}"


def table(rows: list[dict], seeds: list[int]) -> str:
    """Markdown: per method and compressor the seeds reached, median and IQR of the robust
    bits; per seed the ratio flow / best peer."""
    label = {k: ("flow predict" if k == "observer" else k) for k, _ in METHODS}
    out = ["| compressor | method | seeds reached | median robust bits | IQR (25th-75th) "
           "| per seed (robust bits, seeds " + ", ".join(map(str, seeds)) + ") "
           "| widenings |", "|---|---|---|---|---|---|---|"]
    for ckey in COMPRESSORS:
        for kind, _ in METHODS:
            rs = sorted((r for r in rows if r["compressor"] == ckey and r["kind"] == kind),
                        key=lambda r: r["seed"])
            if not rs:
                continue
            b = [_bits(r) for r in rs]
            reached = sum(math.isfinite(x) for x in b)
            out.append(f"| {ckey} | {label[kind]} | {reached} of {len(b)} "
                       f"| {_fmt(quantile(b, 0.5))} "
                       f"| {_fmt(quantile(b, 0.25))} - {_fmt(quantile(b, 0.75))} "
                       f"| {', '.join(_fmt(x) for x in b)} "
                       f"| {sum(len(r['widened']) for r in rs)} |")
    out += ["", "| compressor | seed | flow robust bits | best peer | its robust bits "
            "| flow / best peer |", "|---|---|---|---|---|---|"]
    for ckey in COMPRESSORS:
        ratios = []
        for seed in seeds:
            here = [r for r in rows if r["compressor"] == ckey and r["seed"] == seed]
            flow = [_bits(r) for r in here if r["kind"] == "observer"]
            peers = [r for r in here if r["kind"] in PEERS]
            if not flow or not peers:
                continue
            best = min(peers, key=_bits)
            fb, pb = flow[0], _bits(best)
            if math.isfinite(fb) and math.isfinite(pb):
                ratios.append(fb / pb)
                shown = f"{fb / pb:.2f}"
            else:  # one side did not reach the target for this seed
                shown = {(True, False): "only the flow reached it",
                         (False, True): "only a peer reached it",
                         (False, False): "neither reached it"}[
                    (math.isfinite(fb), math.isfinite(pb))]
            peer = best["kind"] if math.isfinite(pb) else "-"
            out.append(f"| {ckey} | {seed} | {_fmt(fb)} | {peer} | {_fmt(pb)} | {shown} |")
        finite = ratios
        if finite:
            out.append(f"| {ckey} | median of {len(finite)} | | | | "
                       f"{float(np.median(finite)):.2f} (range {min(finite):.2f}-"
                       f"{max(finite):.2f}) |")
    return "\n".join(out)


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="E2", choices=("E2", "LOG", "P3", "P4"))
    ap.add_argument("--compressors", default="quantize,topk",
                    help="columns, of " + ", ".join(ALL_COMPRESSORS))
    ap.add_argument("--seeds", default="0-4", help="tuner seeds: 0-4 or 0,2,5")
    ap.add_argument("--budget", type=int, default=BUDGET)
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument("--wave", type=int, default=1,
                    help="candidates per batch (stflow tune --wave; 1: the sequential search)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    seeds = _seeds(args.seeds)
    COMPRESSORS.clear()
    COMPRESSORS.update({k: ALL_COMPRESSORS[k] for k in args.compressors.split(",")})
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(args.problem, kind, scheme, ckey, seed, args.budget, args.rounds, args.wave)
            for seed in seeds for ckey in COMPRESSORS for kind, scheme in METHODS]
    rows, wall = [], time.time()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(one, *job) for job in jobs]
        for f in as_completed(futures):
            r = f.result()
            rows.append(r)
            print(f"[{len(rows)}/{len(jobs)}] {r['compressor']} {r['kind']} seed {r['seed']}: "
                  f"robust {r['robust_bits_to_target']} ({r['cpu_seconds']:.1f} s CPU)",
                  file=sys.stderr, flush=True)
    rows.sort(key=lambda r: (r["compressor"], r["kind"], r["seed"]))
    cpu = sum(r["cpu_seconds"] for r in rows)
    meta = {"problem": args.problem, "setting": comparison.SETTINGS[args.problem],
            "seeds": seeds, "budget": args.budget, "wave": args.wave, "rounds": args.rounds,
            "target": TARGET,
            "cpu_seconds": cpu, "wall_seconds": time.time() - wall,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
                       f"{platform.python_version()}", "jobs": args.jobs}
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    text = table(rows, seeds)
    (out / "table.md").write_text(text + "\n")
    print(text)
    print(f"\n{len(rows)} tunings, {cpu:.0f} s CPU, {meta['wall_seconds']:.0f} s wall, "
          f"{meta['date']}, {meta['machine']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
