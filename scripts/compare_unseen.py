"""Equal-budget comparison of the observer flow (with and without event-triggered sending)
and LEAD on E2 and two problems the auto rules were not set on (issue 9's must-hold).

Every method is tuned by :func:`stflow.tune.tune` with the same budget, seed, round cap and
target; the table printed is robust median bits per agent to the target (``none`` when no
setting counted). The flows start from ``"auto"`` gains at step 0.01 (scheme ``predict``,
the default); the triggered flow starts from ``trigger = 0.1, trigger_decay = 5`` and tunes
both with the gains; LEAD starts from its defaults (``lr = "auto"``).

    python scripts/compare_unseen.py --budget 30 --seed 0 --json results.jsonl
    python scripts/compare_unseen.py --summarize results.jsonl

``--summarize`` prints, per budget, the markdown table of ``docs/peers.md``: each method's
robust bits per seed, their median (a seed with no counted setting counts as infinitely many
bits) and the ratio of the medians, flow (and triggered flow) over LEAD.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

from stflow.config import resolve_config
from stflow.experiments.comparison import SETTINGS
from stflow.tune import tune

PROBLEMS = {
    "E2": SETTINGS["E2"],
    "P3": ({"kind": "least_squares", "agents": 40, "dim": 20, "seed": 3},
           {"kind": "erdos_renyi", "seed": 3}),
    "P4": ({"kind": "quadratic", "agents": 16, "dim": 8, "seed": 4},
           {"kind": "path", "seed": 4}),
}
COMPRESSORS = {"quantize": "quantize:bits=4", "topk": "topk:k=2",
               "cyclic": "scalarize:basis=cyclic,tau={tau}"}
METHODS = ("flow", "flow_trigger", "lead")
STEP = 0.01
ROUNDS = 3000
TRIGGER_START = {"trigger": 0.1, "trigger_decay": 5.0}


def config(problem: str, method: str, spec: str) -> dict:
    prob, graph = PROBLEMS[problem]
    flow = method != "lead"
    h = STEP if flow else 1.0
    f = {"kind": "observer" if flow else "lead"}
    if flow:
        f.update(dict.fromkeys(("alpha", "beta", "eta", "gamma"), "auto"))
    if method == "flow_trigger":
        f.update(TRIGGER_START)
    return resolve_config({
        "problem": dict(prob), "graph": dict(graph), "flow": f,
        "compressor": {"spec": spec.format(tau=repr(h))},
        "solver": {"scheme": "predict", "step": h, "horizon": ROUNDS * h,
                   "record_every": 10, "tolerance": 1e-6}})


def summarize(path: str) -> str:
    """The markdown tables of the JSON lines in ``path`` (one per budget)."""
    rows = [json.loads(line) for line in open(path) if line.strip()]
    out = []
    for budget in sorted({r["budget"] for r in rows}):
        sel = [r for r in rows if r["budget"] == budget]
        seeds = sorted({r["seed"] for r in sel})
        out += [f"budget {budget}, seeds {seeds}: robust bits per seed; median; "
                "median / LEAD's median", "",
                "| problem | compressor | flow | flow + trigger | LEAD |", "|---|---|---|---|---|"]
        for problem in PROBLEMS:
            for ckey in COMPRESSORS:
                med = {}
                cells = []
                for method in METHODS:
                    vals = {r["seed"]: r["robust_bits"] for r in sel if r["problem"] == problem
                            and r["compressor"] == ckey and r["method"] == method}
                    if not vals:
                        cells.append("-")
                        continue
                    xs = [math.inf if vals.get(s) is None else vals[s] for s in seeds]
                    med[method] = statistics.median(xs)
                    per = " / ".join("none" if math.isinf(x) else f"{x:,.0f}" for x in xs)
                    m = med[method]
                    cells.append(f"{per}; {'none' if math.isinf(m) else f'{m:,.0f}'}")
                lead = med.get("lead", math.inf)
                for i, method in enumerate(METHODS[:2]):
                    m = med.get(method)
                    if m is not None and math.isfinite(m) and math.isfinite(lead):
                        cells[i] += f"; **{m / lead:.2f}**"
                out.append(f"| {problem} | {ckey} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--compressors", default=",".join(COMPRESSORS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", default=None, help="append one JSON line per tuning here")
    ap.add_argument("--summarize", default=None, metavar="JSONL",
                    help="print the tables of a --json file and exit")
    args = ap.parse_args(argv)
    if args.summarize:
        print(summarize(args.summarize))
        return
    for problem in args.problems.split(","):
        for ckey in args.compressors.split(","):
            for method in args.methods.split(","):
                t0 = time.process_time()
                res = tune(config(problem, method, COMPRESSORS[ckey]), budget=args.budget,
                           target=1e-6, seed=args.seed)
                row = {"problem": problem, "compressor": ckey, "method": method,
                       "budget": args.budget, "seed": args.seed, "bits": res.bits_to_target,
                       "robust_bits": res.robust_bits_to_target,
                       "rounds": res.rounds_to_target, "params": res.params,
                       "cpu_seconds": round(time.process_time() - t0, 1)}
                print(json.dumps(row), flush=True)
                if args.json:
                    with open(args.json, "a") as fh:
                        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
