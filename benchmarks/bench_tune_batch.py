"""E9's tuning CPU at equal budget: the sequential search against waves run as batches.

Runs every tuning of experiment E9 (:func:`stflow.experiments.comparison.compare`'s jobs:
each method x compressor x setting, gradient tracking once per setting; ``--size full``:
E2 3000 rounds, E6 5000 rounds with the quantizer, at ``--budget`` (default 50, E9's budget
before it moved to 150 in waves of 10: issue 24's baseline), tuner seed ``--seed``) in this
one process, taking turns per tuning: ``stflow.tune.tune(cfg, budget,
target, seed, span)`` as E9 calls it (``wave = 1``, the sequential search) and the same
call with ``wave = W`` for each W of ``--wave`` (``stflow tune --wave W``). Each tuning's
CPU seconds (``time.process_time``), its winner's bits and robust bits, and whether the batch engine
ran it (``batch_fallback``) are one JSON line; the last line sums them::

    {"bench": "tune_e9", "tunings": 27, "sequential_cpu_s": ..., "wave10_cpu_s": ...,
     "wave10_cpu_ratio": wave / sequential, "goal_ratio": 0.2, ...}

Usage (one BLAS thread, as ``reproduce`` runs)::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_tune_batch.py --wave 10,25
    python benchmarks/bench_tune_batch.py --size quick --wave 4      # a smoke run
    python benchmarks/bench_tune_batch.py --only E2 --wave 25
"""

from __future__ import annotations

import argparse
import json
import time


def jobs(size: str, only: str | None, full_budget: int = 50):
    """E9's tunings: ``(tag, config, budget, target, span)`` in :func:`compare`'s order."""
    from stflow.experiments.comparison import METHODS, SIZES, compressor_specs, method_config
    from stflow.tune import SPAN

    # E9's two study files (e9_e2.toml, e9_e6.toml): target, rounds, span and compressor
    # columns per problem; budget 50 (full) or the quick/tiny cut of SIZES
    files = {"E2": (3000, 1e-6, SPAN, None), "E6": (5000, 1e-2, 300.0, ("quantize",))}
    out = []
    for setting, (rounds, target, span, cols) in files.items():
        if setting not in SIZES[size] or (only is not None and setting not in only.split(",")):
            continue
        cut = SIZES[size][setting]
        budget = full_budget if cut is None else cut["budget"]
        rounds = rounds if cut is None else cut["rounds"]
        todo = [(k, s, c, sp) for c, sp in compressor_specs().items()
                if cols is None or c in cols for k, s in METHODS]
        todo.append(("gradient_tracking", "euler", "none", None))
        for kind, scheme, ckey, sp in todo:
            tag = f"{setting}_{kind}_{scheme}_{ckey}"
            out.append((tag, method_config(setting, kind, scheme, sp, rounds),
                        budget, target, span))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wave", default="10", help="wave sizes, e.g. 10 or 10,25")
    ap.add_argument("--size", choices=("full", "quick", "tiny"), default="full")
    ap.add_argument("--only", default=None, help="settings, e.g. E2 or E2,E6")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=int, default=50, help="budget of every full-size tuning")
    a = ap.parse_args(argv)
    import warnings

    from stflow.tune import tune

    waves = [int(w) for w in str(a.wave).split(",")]
    runs = [("sequential", 1)] + [(f"wave{w}", w) for w in waves]
    total = {name: 0.0 for name, _ in runs}
    bits = {name: [] for name, _ in runs}
    rows = jobs(a.size, a.only, a.budget)
    fallbacks = 0
    for tag, cfg, budget, target, span in rows:
        rec = {"tag": tag}
        for name, w in runs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.process_time()
                res = tune(cfg, budget=budget, target=target, seed=a.seed, span=span, wave=w)
                cpu = time.process_time() - t0
            if res.interrupted:  # Ctrl-C / SIGTERM: stop the benchmark, not one tuning
                raise SystemExit(f"interrupted during {tag} ({name})")
            total[name] += cpu
            bits[name].append(res.robust_bits_to_target)
            rec.update({f"{name}_cpu_s": round(cpu, 2), f"{name}_bits": res.bits_to_target,
                        f"{name}_robust_bits": res.robust_bits_to_target,
                        f"{name}_runs": res.runs})
            if w > 1:
                rec[f"{name}_fallback"] = res.batch_fallback
                fallbacks += res.batch_fallback is not None
                rec[f"{name}_cpu_ratio"] = round(cpu / max(rec["sequential_cpu_s"], 1e-9), 3)
        print(json.dumps(rec), flush=True)
    summary = {"bench": "tune_e9", "size": a.size, "only": a.only, "seed": a.seed,
               "tunings": len(rows), "fell_back": fallbacks, "goal_ratio": 0.2}
    for name, _w in runs:
        summary[f"{name}_cpu_s"] = round(total[name], 1)
        summary[f"{name}_found"] = sum(b is not None for b in bits[name])
        if name != "sequential":
            summary[f"{name}_cpu_ratio"] = round(
                total[name] / max(total["sequential"], 1e-9), 3)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
