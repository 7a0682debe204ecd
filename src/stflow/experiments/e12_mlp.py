r"""E12: decentralized training of a neural network (digits MLP) with compressed messages.

Digits, N = 8 agents on a ring, ``hidden = [64]`` (d = 4874 parameters), batch 16, a quarter
of the rows held out, IID and by-label splits. For each split, compressor and method: rounds,
bits per agent and modeled seconds until the mean agent test accuracy reaches 93 % (and stays
there at every later record), and the final accuracies. Methods: the observer flow, CHOCO-SGD
(both with top-k, k = 1 % of d; 4-bit pow2 quantization; ``lowrank:rank=2``; the cyclic
scalarizer) and uncompressed DGD. Every method's parameters come from ``stflow tune`` with the
same budget (:data:`BUDGET` candidates, :data:`ROUNDS` rounds each, target 93 %); the tuned
values are stored in :data:`TUNED` and this experiment re-runs them. Regenerate them with::

    OMP_NUM_THREADS=1 python -m stflow.experiments.e12_mlp --tune OUT_DIR [--budget 6]

which tunes every setting (:data:`SETTINGS`) and prints the dict to paste into :data:`TUNED`.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from ..output import write_json
from ._common import fmt, md_table, pick, write_run

__all__ = [
    "NAME",
    "TITLE",
    "TARGET",
    "ROUNDS",
    "BUDGET",
    "COMPRESSORS",
    "SETTINGS",
    "TUNED",
    "CENTRES",
    "NETWORK",
    "best_settings",
    "settled_hit",
    "setting_config",
    "run_setting",
    "tune_settings",
    "run",
    "planned_runs",
]

NAME = "E12"
TITLE = "Neural network (digits MLP): flow and CHOCO-SGD with compressed messages vs DGD"
#: Mean agent test accuracy to reach (and keep at every later record).
TARGET = 0.93
#: Rounds per run (the tuner's cap) and the tuning budget (candidates per setting).
ROUNDS = 1500
BUDGET = 6
#: d = 4874 on digits with hidden [64]: k = ceil(1 % of d) = 49.
COMPRESSORS = {
    "topk": "topk:k=49",
    "quantize": "quantize:bits=4,scale=pow2",
    "lowrank": "lowrank:rank=2",
    "cyclic": "scalarize:basis=cyclic,tau={tau}",
}
#: Time model of ``modeled_seconds``: 1 Mbit/s links, 1 ms latency, 10 us per sample.
NETWORK = {"bandwidth": 1e6, "latency": 1e-3}
COMPUTE = {"seconds_per_sample": 1e-5}
#: Centres of the tuner's search box (it explores a factor 30 around each value, and the
#: flow's h within a factor 10); per-round flow gains h alpha = 0.05, h beta = 0.01,
#: h eta = 0.001, h gamma = 1; DGD's and CHOCO's lr near DGD's "auto" 0.001 x 2 to 3.
CENTRES = {
    "observer": {"method": {"alpha": 5.0, "beta": 1.0, "eta": 0.1, "gamma": 100.0}, "step": 0.01},
    "choco": {"method": {"lr": 0.002, "gamma": 0.5}, "step": 1.0},
    "dgd": {"method": {"lr": 0.003}, "step": 1.0},
}
#: (split, method, scheme, compressor key) tuned by :func:`tune_settings`: the flow under
#: its three schemes with top-k and the quantizer (the goals' compressors), under euler with
#: lowrank and the scalarizer. :func:`run` re-runs the flow's best scheme per split and
#: compressor (fewest tuned bits, :func:`best_settings`).
SETTINGS = [
    (split, method, scheme, ckey)
    for split in ("by_label", "iid")
    for method, scheme, ckey in (
        [("dgd", "euler", "identity")]
        + [
            (m, sch, c)
            for c in ("topk", "quantize")
            for m, sch in (
                ("observer", "euler"),
                ("observer", "gauss_seidel"),
                ("observer", "predict"),
                ("choco", "euler"),
            )
        ]
        + [(m, "euler", c) for c in ("lowrank", "cyclic") for m in ("observer", "choco")]
    )
]
#: Tuned parameters per setting ``"split method scheme compressor"``: ``{"method": {...},
#: "step": h}`` from ``tune_settings`` (None: the tuner found no setting that reaches and
#: keeps the target within ROUNDS rounds; the centre is then run and reported as a miss).
TUNED: dict[str, dict | None] = {
    # best of 6 candidates; 21 runs; rounds 980, bits 305697280.0
    "by_label dgd euler identity": {
        "method": {"lr": 0.0044023780118570294},
        "step": 1.0,
        "bits": 305697280.0,
    },
    # none of 6 candidates reached and kept 93 % within 1500 rounds; 6 runs; rounds None, bits None
    "by_label observer euler topk": None,
    # none of 6 candidates reached and kept 93 % within 1500 rounds; 6 runs; rounds None, bits None
    "by_label choco euler topk": None,
    # best of 6 candidates; 11 runs; rounds 920, bits 17947360.0
    "by_label observer euler quantize": {
        "method": {
            "alpha": 6.969103793382513,
            "beta": 4.322366351920185,
            "eta": 0.20118145001674997,
            "gamma": 135.7049868124187,
        },
        "step": 0.00703573702872215,
        "bits": 17947360.0,
    },
    # best of 6 candidates; 11 runs; rounds 1330, bits 25945640.0
    "by_label choco euler quantize": {
        "method": {"lr": 0.0015818978772913865, "gamma": 1.0},
        "step": 1.0,
        "bits": 25945640.0,
    },
    # none of 6 candidates reached and kept 93 % within 1500 rounds; 6 runs; rounds None, bits None
    "by_label observer euler lowrank": None,
    # none of 6 candidates reached and kept 93 % within 1500 rounds; 6 runs; rounds None, bits None
    "by_label choco euler lowrank": None,
    # none of 6 candidates reached and kept 93 % within 1500 rounds; 6 runs; rounds None, bits None
    "by_label observer euler cyclic": None,
    # none of 6 candidates reached and kept 93 % within 1500 rounds; 6 runs; rounds None, bits None
    "by_label choco euler cyclic": None,
    # best of 6 candidates; 11 runs; rounds 210, bits 65506560.0
    "iid dgd euler identity": {"method": {"lr": 0.003}, "step": 1.0, "bits": 65506560.0},
    # best of 6 candidates; 11 runs; rounds 310, bits 1169630.0
    "iid observer euler topk": {
        "method": {
            "alpha": 5.264160861971577,
            "beta": 0.6124649360206738,
            "eta": 0.06644875330122732,
            "gamma": 59.81337213992147,
        },
        "step": 0.007503395415210328,
        "bits": 1169630.0,
    },
    # none of 6 candidates reached and kept 93 % within 1500 rounds; 6 runs; rounds None, bits None
    "iid choco euler topk": None,
    # best of 6 candidates; 18 runs; rounds 140, bits 2731120.0
    "iid observer euler quantize": {
        "method": {
            "alpha": 6.969103793382513,
            "beta": 4.322366351920185,
            "eta": 0.20118145001674997,
            "gamma": 135.7049868124187,
        },
        "step": 0.00703573702872215,
        "bits": 2731120.0,
    },
    # best of 6 candidates; 23 runs; rounds 80, bits 1560640.0
    "iid choco euler quantize": {
        "method": {"lr": 0.0020127584325350585, "gamma": 0.9985869318489713},
        "step": 1.0,
        "bits": 1560640.0,
    },
    # best of 6 candidates; 11 runs; rounds 310, bits 9602560.0
    "iid observer euler lowrank": {
        "method": {
            "alpha": 5.264160861971577,
            "beta": 0.6124649360206738,
            "eta": 0.06644875330122732,
            "gamma": 59.81337213992147,
        },
        "step": 0.007503395415210328,
        "bits": 9602560.0,
    },
    # none of 6 candidates reached and kept 93 % within 1500 rounds; 6 runs; rounds None, bits None
    "iid choco euler lowrank": None,
    # none of 6 candidates reached and kept 93 % within 1500 rounds; 6 runs; rounds None, bits None
    "iid observer euler cyclic": None,
    # none of 6 candidates reached and kept 93 % within 1500 rounds; 6 runs; rounds None, bits None
    "iid choco euler cyclic": None,
    # none of 6 candidates reached and kept 93 % within 1500 rounds; 6 runs; rounds None, bits None
    "by_label observer gauss_seidel topk": None,
    # none of 6 candidates reached and kept 93 % within 1500 rounds; 6 runs; rounds None, bits None
    "by_label observer predict topk": None,
    # best of 6 candidates; 16 runs; rounds 620, bits 12094960.0
    "by_label observer gauss_seidel quantize": {
        "method": {
            "alpha": 16.980150845505456,
            "beta": 5.163021579324902,
            "eta": 0.20097167049244438,
            "gamma": 40.51750070814673,
        },
        "step": 0.016922903699758105,
        "bits": 12094960.0,
    },
    # best of 6 candidates; 16 runs; rounds 280, bits 5462240.0
    "by_label observer predict quantize": {
        "method": {
            "alpha": 16.980150845505456,
            "beta": 5.163021579324902,
            "eta": 0.20097167049244438,
            "gamma": 40.51750070814673,
        },
        "step": 0.016922903699758105,
        "bits": 5462240.0,
    },
    # best of 6 candidates; 11 runs; rounds 310, bits 1169630.0
    "iid observer gauss_seidel topk": {
        "method": {
            "alpha": 5.264160861971577,
            "beta": 0.6124649360206738,
            "eta": 0.06644875330122732,
            "gamma": 59.81337213992147,
        },
        "step": 0.007503395415210328,
        "bits": 1169630.0,
    },
    # best of 6 candidates; 11 runs; rounds 310, bits 1169630.0
    "iid observer predict topk": {
        "method": {
            "alpha": 5.264160861971577,
            "beta": 0.6124649360206738,
            "eta": 0.06644875330122732,
            "gamma": 59.81337213992147,
        },
        "step": 0.007503395415210328,
        "bits": 1169630.0,
    },
    # best of 6 candidates; 23 runs; rounds 130, bits 2536040.0
    "iid observer gauss_seidel quantize": {
        "method": {
            "alpha": 16.980150845505456,
            "beta": 5.163021579324902,
            "eta": 0.20097167049244438,
            "gamma": 40.51750070814673,
        },
        "step": 0.016922903699758105,
        "bits": 2536040.0,
    },
    # best of 6 candidates; 23 runs; rounds 100, bits 1950800.0
    "iid observer predict quantize": {
        "method": {
            "alpha": 16.980150845505456,
            "beta": 5.163021579324902,
            "eta": 0.20097167049244438,
            "gamma": 40.51750070814673,
        },
        "step": 0.016922903699758105,
        "bits": 1950800.0,
    },
}  # end of TUNED

SIZES = {
    "full": {"splits": ("by_label", "iid"), "compressors": tuple(COMPRESSORS), "rounds": ROUNDS},
    # --quick: the IID split with top-k only (DGD, flow, CHOCO), 400 rounds: the tuned
    # settings of the full table, stopped earlier (a few seconds; the goals are by label)
    "quick": {"splits": ("iid",), "compressors": ("topk",), "rounds": 400},
    "tiny": {"splits": ("iid",), "compressors": ("topk",), "rounds": 20},
}


def _key(split, method, scheme, ckey) -> str:
    return f"{split} {method} {scheme} {ckey}"


def setting_config(
    split: str, method: str, scheme: str, ckey: str, *, params=None, rounds: int = ROUNDS
) -> dict:
    """The raw config (``[problem]`` ... ``[compute]``) of one setting.

    ``params`` ``{"method": {...}, "step": h}`` (default: :data:`CENTRES`).
    """
    centre = CENTRES[method]
    params = params or centre
    step = float(params.get("step", centre["step"]))  # ("bits": the tuner's score, unused)
    spec = "identity" if ckey == "identity" else COMPRESSORS[ckey].format(tau=repr(step))
    return {
        "problem": {
            "kind": "mlp",
            "dataset": "digits",
            "agents": 8,
            "hidden": [64],
            "batch": 16,
            "split": split,
            "test_fraction": 0.25,
            "seed": 0,
        },
        "graph": {"kind": "ring"},
        "method": {"kind": method, **params["method"]},
        "compressor": {"spec": spec},
        "solver": {
            "scheme": scheme,
            "step": step,
            "horizon": rounds * step,
            "record_every": 10,
            "target_accuracy": TARGET,
        },
        "network": dict(NETWORK),
        "compute": dict(COMPUTE),
    }


def settled_hit(
    records: dict,
    column: str = "mean_agent_test_accuracy",
    target: float = TARGET,
    *,
    at_least: bool = True,
) -> tuple[int | None, bool]:
    """Index of the first record from which ``records[column]`` meets the target at every
    later record, and True; ``(None, False)`` when the last record misses it.

    E12's score: a minibatch run's mean agent accuracy crosses 93 % and may dip once or
    twice before it settles; the record where it settles is where it has reached the target.
    (``stflow.tune.first_hit`` instead takes the first crossing and rejects the run when a
    later record dips; E12 swaps this function in while it tunes, see :func:`tune_settings`.)

    Examples
    --------
    >>> settled_hit({"a": np.array([0.5, 0.94, 0.92, 0.95, 0.96])}, "a", 0.93)
    (3, True)
    >>> settled_hit({"a": np.array([0.5, 0.94, 0.92])}, "a", 0.93)
    (None, False)
    """
    v = np.asarray(records[column], dtype=float)
    ok = np.isfinite(v) & (v >= target if at_least else v <= target)
    if ok.size == 0 or not ok[-1]:
        return None, False
    bad = np.flatnonzero(~ok)
    return (0 if bad.size == 0 else int(bad[-1]) + 1), True


def _first_stay(records) -> int | None:
    return settled_hit(records)[0]


def run_setting(split, method, scheme, ckey, *, rounds: int, out_dir=None) -> dict:
    """Run one setting at its tuned parameters; a row of the table."""
    from ..config import resolve_config, run_config

    key = _key(split, method, scheme, ckey)
    tuned = TUNED.get(key)
    raw = setting_config(split, method, scheme, ckey, params=tuned, rounds=rounds)
    _, sol = run_config(resolve_config(raw))
    r = sol.records
    i = _first_stay(r) if sol.status != "diverged" else None
    row = {
        "split": split,
        "method": method,
        "scheme": scheme,
        "compressor": ckey,
        "spec": raw["compressor"]["spec"],
        "tuned": tuned is not None,
        "tuning": (
            "tuned"
            if tuned is not None
            else "no tuned setting reached the target"
            if key in TUNED
            else "not tuned"
        ),
        "params": {**raw["method"], "step": raw["solver"]["step"]},
        "status": sol.status,
        "rounds": int(r["step"][-1]),
        "bits_per_message": int(sol.bits_per_message),
        "rounds_to_target": int(r["step"][i]) if i is not None else None,
        "bits_to_target": float(r["bits_per_agent"][i]) if i is not None else None,
        "seconds_to_target": float(r["modeled_seconds"][i]) if i is not None else None,
        "final_mean_agent_accuracy": float(r["mean_agent_test_accuracy"][-1]),
        "final_worst_agent_accuracy": float(r["worst_agent_test_accuracy"][-1]),
        "final_xbar_accuracy": float(r["test_accuracy"][-1]),
        "best_mean_agent_accuracy": float(np.nanmax(r["mean_agent_test_accuracy"])),
        "curve": {
            "bits": [float(b) for b in r["bits_per_agent"]],
            "rounds": [int(s) for s in r["step"]],
            "seconds": [float(s) for s in r["modeled_seconds"]],
            "accuracy": [float(a) for a in r["mean_agent_test_accuracy"]],
        },
    }
    if out_dir is not None:
        write_run(
            out_dir,
            key.replace(" ", "_"),
            sol,
            {k: v for k, v in row.items() if k not in ("curve", "status")},
        )
    return row


def best_settings(settings=SETTINGS) -> list[tuple]:
    """``settings`` with the flow's schemes reduced to the best one per split and compressor.

    Best: the fewest bits to the target in :data:`TUNED` (``"bits"``); ``euler`` when no
    scheme has a tuned setting.

    Examples
    --------
    >>> [s for s in best_settings() if s[:2] == ("by_label", "observer")][0][2] in (
    ...     "euler", "gauss_seidel", "predict")
    True
    """
    out, seen = [], set()
    for split, method, scheme, ckey in settings:
        if method != "observer":
            out.append((split, method, scheme, ckey))
            continue
        if (split, ckey) in seen:
            continue
        seen.add((split, ckey))
        schemes = [s[2] for s in settings if s[0] == split and s[1] == method and s[3] == ckey]
        bits = {
            sch: (TUNED.get(_key(split, method, sch, ckey)) or {}).get("bits", math.inf)
            for sch in schemes
        }
        best = min(schemes, key=lambda sch: (bits[sch], sch != "euler"))
        out.append((split, method, best, ckey))
    return out


def _settings(size) -> list[tuple]:
    return [
        s
        for s in best_settings()
        if s[0] in size["splits"] and s[3] in ("identity", *size["compressors"])
    ]


def planned_runs(quick: bool) -> int:
    """One run per setting of this size."""
    return len(_settings(pick(SIZES, quick)))


def tune_settings(out_dir, *, budget: int = BUDGET, settings=None, seed: int = 0) -> dict:
    """Tune every setting with ``stflow tune`` (same budget), write ``out_dir/tuned.json``.

    Scored by :func:`settled_hit` (bits per agent at the record from which the mean agent
    accuracy stays >= TARGET), swapped in for ``stflow.tune.first_hit`` during the calls;
    every other rule of ``stflow tune`` (budget, search box, robustness reruns) is kept.

    Returns ``{key: {"flow": ..., "step": ...} or None}``, the value of :data:`TUNED`.
    """
    import json
    from unittest import mock

    from .. import tune as tune_module
    from ..config import resolve_config
    from ..tune import tune

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tuned.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    for setting in settings or SETTINGS:
        key = _key(*setting)
        if key in done:
            continue
        cfg = resolve_config(setting_config(*setting))
        with mock.patch.object(tune_module, "first_hit", settled_hit):
            res = tune(cfg, budget=budget, target_accuracy=TARGET, seed=seed)
        entry = None
        if res.found:
            params = dict(res.params)
            step = float(params.pop("step", cfg["solver"]["step"]))
            entry = {"flow": params, "step": step, "bits": res.bits_to_target}
        done[key] = entry
        done[f"{key} #info"] = {
            "rounds": res.rounds_to_target,
            "bits": res.bits_to_target,
            "runs": res.runs,
            "reason": res.reason,
        }
        path.write_text(json.dumps(done, indent=1))
        print(key, entry, res.rounds_to_target, res.bits_to_target, res.reason, flush=True)
    return {k: v for k, v in done.items() if not k.endswith("#info")}


def _ratio(a, b) -> float:
    if a is None or b is None or a <= 0:
        return math.nan
    return b / a


def run(out_dir: pathlib.Path, *, quick: bool, progress=None) -> dict:
    """Re-run the tuned settings; table, figure, ``rows.json``."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = pick(SIZES, quick)
    rows = []
    for setting in _settings(size):
        rows.append(run_setting(*setting, rounds=size["rounds"], out_dir=out_dir))
        if progress is not None:
            r = rows[-1]
            progress(f"{r['split']} {r['method']} {r['compressor']}: {r['status']}")
    write_json(out_dir / "rows.json", [{k: v for k, v in r.items() if k != "curve"} for r in rows])
    figure = _plot(out_dir, rows, size)
    return {
        "title": TITLE,
        "setting": (
            "Digits (1797 rows, a quarter held out), N = 8 on a ring, MLP hidden [64] "
            f"(d = 4874), batch 16, splits {', '.join(size['splits'])}; {size['rounds']} "
            f"rounds per run, records every 10; time model {NETWORK} + {COMPUTE}. Each "
            f"method's parameters tuned by `stflow tune` with the same budget ({BUDGET} "
            f"candidates of {ROUNDS} rounds, target mean agent accuracy {TARGET:.0%}), "
            "stored in `stflow.experiments.e12_mlp.TUNED` and re-run here (the module "
            "docstring gives the command that regenerates them)."
        ),
        "prediction": (
            f"By label, mean agent accuracy {TARGET:.0%}: the flow with top-k (1 % of d) "
            "needs >= 50x fewer bits per agent than uncompressed DGD, >= 12x fewer with "
            "4-bit pow2 quantization, and no more bits than CHOCO-SGD with the same "
            "compressor."
        ),
        "measured": _table(rows),
        "figures": [figure],
        "captions": {
            figure: (
                "Mean agent test accuracy against bits per agent and against modeled seconds "
                "(both log scales; the start record at 0 bits and 0 s is left out), one colour "
                "per method and compressor, named as in the table, solid by label, dashed IID; "
                f"the dotted line is the target {TARGET:.0%}."
            )
        },
        "data": {"rows": [{k: v for k, v in r.items() if k != "curve"} for r in rows]},
    }


def _table(rows) -> str:
    body = []
    for r in rows:
        dgd = next((x for x in rows if x["split"] == r["split"] and x["method"] == "dgd"), None)
        choco = next(
            (
                x
                for x in rows
                if x["split"] == r["split"]
                and x["method"] == "choco"
                and x["compressor"] == r["compressor"]
            ),
            None,
        )
        vs_dgd = _ratio(r["bits_to_target"], dgd and dgd["bits_to_target"])
        vs_choco = _ratio(r["bits_to_target"], choco and choco["bits_to_target"])
        method, comp = _names(r)
        body.append(
            [
                r["split"],
                method,
                f"`{comp}`" if comp != "none" else "none",
                fmt(r["rounds_to_target"], "d") if r["rounds_to_target"] is not None else "-",
                fmt(r["bits_to_target"], ".3g"),
                fmt(r["seconds_to_target"], ".3g"),
                f"{r['final_mean_agent_accuracy']:.3f}",
                f"{r['best_mean_agent_accuracy']:.3f}",
                fmt(vs_dgd, ".1f"),
                fmt(vs_choco, ".2f") if r["method"] == "observer" else "",
                r["status"]
                + ("" if r["tuned"] else f" ({r['tuning']}: the centre of the search is shown)"),
            ]
        )
    return (
        f"Rounds, bits per agent and modeled seconds until the mean agent test accuracy is "
        f">= {TARGET:.0%} at every later record ('-': it never is); final and best mean "
        "agent accuracy; DGD bits / this method's bits and (flow only) CHOCO bits / flow "
        "bits with the same compressor (> 1: this method sends fewer).\n\n"
        + md_table(
            [
                "split",
                "method",
                "compressor",
                "rounds",
                "bits",
                "seconds",
                "final acc",
                "best acc",
                "x vs DGD",
                "x vs CHOCO",
                "status",
            ],
            body,
        )
    )


def _names(r) -> tuple[str, str]:
    """(method, compressor) as the table and the figure's legend name them."""
    method = r["method"] if r["method"] != "observer" else f"flow ({r['scheme']})"
    return method, (r["spec"] if r["compressor"] != "identity" else "none")


def _plot(out_dir, rows, size) -> str:
    """Accuracy against bits per agent and modeled seconds, both log axes; the start record
    (0 bits, 0 s) is left out of the log axes (it is no measurement of either); one colour
    and dash pair per method and compressor, named as in the table; solid by label, dashed
    IID (two legends beside the panels)."""
    from matplotlib.lines import Line2D

    from ._common import plt, save_figure
    from ._figures import style

    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(10, 3.8))
    labels = sorted({_names(r) for r in rows})
    handles = []
    for j, lab in enumerate(labels):
        st = style(j)
        for r in rows:
            if _names(r) != lab:
                continue
            ls = "-" if r["split"] == "by_label" else "--"
            c = r["curve"]
            acc = np.asarray(c["accuracy"], dtype=float)
            bits = np.asarray(c["bits"], dtype=float)
            secs = np.asarray(c["seconds"], dtype=float)
            axes[0].plot(np.where(bits > 0, bits, np.nan), acc, ls=ls, color=st["color"],
                         lw=1.1, label="_")
            axes[1].plot(np.where(secs > 0, secs, np.nan), acc, ls=ls, color=st["color"],
                         lw=1.1, label="_")
        handles.append(Line2D([], [], color=st["color"], lw=1.6, label=f"{lab[0]}, {lab[1]}"))
    for ax, xl in zip(axes, ("bits per agent", "modeled seconds"), strict=True):
        ax.axhline(TARGET, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel(xl)
        ax.set_ylim(0.0, 1.0)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("mean agent test accuracy")
    splits = [Line2D([], [], color="k", ls="-", label="by label"),
              Line2D([], [], color="k", ls="--", label="IID")]
    first = fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95),
                       fontsize=7, frameon=False, title="method, compressor", title_fontsize=7)
    fig.add_artist(first)
    fig.legend(handles=splits, loc="lower left", bbox_to_anchor=(1.0, 0.05), fontsize=7,
               frameon=False, title="split", title_fontsize=7)
    return save_figure(fig, out_dir, "mlp_accuracy.png")


def _main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Tune E12's settings (stflow tune).")
    parser.add_argument("--tune", required=True, metavar="OUT_DIR")
    parser.add_argument("--budget", type=int, default=BUDGET)
    parser.add_argument("--split", default=None, help="only this split")
    args = parser.parse_args(argv)
    settings = [s for s in SETTINGS if args.split in (None, s[0])]
    print(tune_settings(args.tune, budget=args.budget, settings=settings))


if __name__ == "__main__":
    _main()
