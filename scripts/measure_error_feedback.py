"""Tune error feedback on the direct flow against the observer flow (E2, equal budget).

The same cases as experiment E10's error-feedback table (the study file
``stflow/experiments/studies/e10_error_feedback.toml``, whose cells E10 tunes when it runs;
tests/test_experiment_studies.py checks the configs are the same), outside ``stflow
reproduce``: prints the table (markdown) and the data (JSON). From the repository root::

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/measure_error_feedback.py

Every case is ``stflow.tune.tune(resolve_config(cfg), budget=30, target=1e-6, seed=0)`` on E2
(least squares N = 20, d = 10, seed 0; ring with 3 chords, seed 0; step 0.01, horizon 30 =
3000 rounds, record_every 10) with ``alpha = beta = eta = "auto"`` (and ``gamma = "auto"``
for the observer flow) as the tuner's starting point. When no candidate counts, every
candidate that did not diverge is rerun in full and the one with the lowest final relative
error is kept as ``closest`` (how near the case came to 1e-6). About 1 minute on one core.

``--floor`` instead prints the error floor of direct + EF (``predict``, h = 0.01, 10,000
rounds) with the predict "auto" gains scaled by 0.1, 0.03, 0.01 and 0.003: the final and the
smallest recorded relative error of each run.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings

BUDGET, TARGET, SEED = 30, 1e-6, 0
E2 = {
    "problem": {"kind": "least_squares", "agents": 20, "dim": 10, "seed": 0},
    "graph": {"kind": "ring", "chords": 3, "seed": 0},
    "solver": {"step": 0.01, "horizon": 30.0, "record_every": 10},
}
AUTO = {"alpha": "auto", "beta": "auto", "eta": "auto"}
EF = {"kind": "direct", **AUTO, "error_feedback": True}
#: name -> (flow section, scheme, compressor spec[, scheme whose auto gains start the search])
CASES = {
    "direct + EF, predict, topk:k=2": ({"kind": "direct", **AUTO, "error_feedback": True},
                                       "predict", "topk:k=2"),
    "direct + EF, euler, topk:k=2": ({"kind": "direct", **AUTO, "error_feedback": True},
                                     "euler", "topk:k=2"),
    "direct, predict, topk:k=2": ({"kind": "direct", **AUTO}, "predict", "topk:k=2"),
    "observer, predict, topk:k=2": ({"kind": "observer", **AUTO, "gamma": "auto"},
                                    "predict", "topk:k=2"),
    # the predict auto rule (step budget 1, no observer cap) starts the direct flow 10x faster
    # than euler's: every candidate of the search around it diverged, so start from euler's
    "direct + EF, predict, topk:k=2, euler's auto start": (EF, "predict", "topk:k=2", "euler"),
    "direct + EF, predict, quantize:bits=4": (EF, "predict", "quantize:bits=4"),
    "direct + EF, predict, quantize:bits=4, euler's auto start": (
        EF, "predict", "quantize:bits=4", "euler"),
    "observer, predict, quantize:bits=4": ({"kind": "observer", **AUTO, "gamma": "auto"},
                                           "predict", "quantize:bits=4"),
}


def case_config(flow: dict, scheme: str, spec: str, start: str | None = None) -> dict:
    """The raw E2 config of one case (``start``: take the "auto" gains of that scheme)."""
    from stflow.config import build_run, resolve_config

    raw = copy.deepcopy(E2)
    raw["method"] = dict(flow)
    raw["solver"]["scheme"] = start or scheme
    raw["compressor"] = {"spec": spec}
    if start is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw["method"] = dict(build_run(resolve_config(raw)).config["method"])
        raw["solver"]["scheme"] = scheme
    return raw


def _closest(res, raw: dict) -> dict | None:
    """The non-diverged candidate with the lowest final relative error (full 3000 rounds)."""
    from stflow.config import resolve_config, run_config

    best = None
    for trial in res.trials:
        if trial["diverged"]:
            continue
        cfg = copy.deepcopy(raw)
        p = trial["params"]
        h = p.get("step", cfg["solver"]["step"])  # the flows' step is fixed since issue 19
        cfg["method"].update({k: v for k, v in p.items() if k != "step"})
        cfg["solver"]["step"] = h
        cfg["solver"]["horizon"] = res.rounds_cap * h
        _, sol = run_config(resolve_config(cfg))
        err = float(sol.final_relative_error)
        if sol.status != "diverged" and (best is None or err < best["final_relative_error"]):
            best = {"params": dict(p), "final_relative_error": err}
    return best


def measure(names=None) -> dict:
    """name -> bits, robust bits, tuned params (or the closest setting), runs, seconds."""
    from stflow.config import resolve_config
    from stflow.tune import tune

    out = {}
    for name, (flow, scheme, spec, *start) in CASES.items():
        if names and name not in names:
            continue
        raw = case_config(flow, scheme, spec, *start)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = tune(resolve_config(raw), budget=BUDGET, target=TARGET, seed=SEED)
            closest = None if res.found else _closest(res, raw)
        out[name] = {"flow": raw["method"], "scheme": scheme, "compressor": spec,
                     "bits_to_target": res.bits_to_target,
                     "robust_bits_to_target": res.robust_bits_to_target,
                     "rounds_to_target": res.rounds_to_target,
                     "params": res.params, "closest": closest,
                     "evaluations": res.evaluations, "runs": res.runs,
                     "seconds": round(time.perf_counter() - start, 1)}
        print(f"{name}: {res.reason}; bits {res.bits_to_target}, robust "
              f"{res.robust_bits_to_target} ({out[name]['seconds']} s)", flush=True)
    return out


def floor_scan(scales=(0.1, 0.03, 0.01, 0.003), rounds=10_000) -> list[dict]:
    """Final and smallest relative error of direct + EF (predict) at scaled auto gains."""
    from stflow.config import resolve_config, run_config

    rows = []
    for spec in ("topk:k=2", "quantize:bits=4"):
        auto = case_config(CASES["direct + EF, predict, topk:k=2"][0], "predict", spec,
                           "predict")["method"]
        for scale in scales:
            raw = case_config({**auto, **{k: auto[k] * scale for k in ("alpha", "beta", "eta")}},
                              "predict", spec)
            raw["solver"].update(horizon=rounds * raw["solver"]["step"], record_every=100)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, sol = run_config(resolve_config(raw))
            err = sol.records["relative_error"]
            rows.append({"compressor": spec, "scale": scale, "alpha": raw["method"]["alpha"],
                         "status": sol.status, "final": float(err[-1]),
                         "smallest": float(err.min())})
            print(f"{spec} gains x {scale}: alpha = {raw['method']['alpha']:.4g}, {sol.status}, "
                  f"final {err[-1]:.2e}, smallest {err.min():.2e}", flush=True)
    return rows


def table(data: dict) -> str:
    """Markdown: bits and robust bits per case, robust bits over the observer predict flow's."""
    def fmt(v):
        return "none counted" if v is None else f"{v:,.0f}"

    lines = ["| case | bits to 1e-6 | robust bits | robust / observer predict (same "
             "compressor) |", "|---|---|---|---|"]
    for name, r in data.items():
        ref = next((x for x in data.values() if x["flow"]["kind"] == "observer"
                    and x["scheme"] == "predict" and x["compressor"] == r["compressor"]), None)
        ratio = "-"
        if r["robust_bits_to_target"] is not None and ref and ref["robust_bits_to_target"]:
            ratio = f"{r['robust_bits_to_target'] / ref['robust_bits_to_target']:.2f}"
        elif r["robust_bits_to_target"] is None:
            c = r.get("closest")
            ratio = "-" if c is None else (
                f"- (closest: final error {c['final_relative_error']:.1e})")
        lines.append(f"| {name} | {fmt(r['bits_to_target'])} | "
                     f"{fmt(r['robust_bits_to_target'])} | {ratio} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="a case name (repeatable)")
    ap.add_argument("--floor", action="store_true", help="the error floor scan instead")
    args = ap.parse_args(argv)
    if args.floor:
        floor_scan()
        return
    data = measure(args.only)
    print()
    print(table(data))
    print()
    print(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
