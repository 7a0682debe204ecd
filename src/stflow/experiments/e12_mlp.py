r"""E12: decentralized training of a neural network (digits MLP) with compressed messages.

Digits, N = 8 agents on a ring, ``hidden = [64]`` (d = 4874 parameters), batch 16, a quarter
of the rows held out, IID and by-label splits. For each split, compressor and method: rounds,
bits per agent and modeled seconds until the mean agent test accuracy reaches 93 % (and stays
there at every later record), and the final accuracies. Methods: the observer flow, CHOCO-SGD
(both with top-k, k = 1 % of d; 4-bit pow2 quantization; ``lowrank:rank=2``; the cyclic
scalarizer) and uncompressed DGD. Every method's parameters come from ``stflow tune`` with the
same budget (:data:`BUDGET` candidates, :data:`ROUNDS` rounds each, target 93 %).

The experiment is two study files shipped with the package (:data:`STUDIES`:
``studies/e12_by_label.toml`` and ``studies/e12_iid.toml``): one ``[[method]]`` entry per
method and compressor (the flow under the scheme with the fewest tuned bits) holding the
tuned values as fixed settings. :func:`run` loads them (:func:`load_split`) and runs their
cells with the study runner (:func:`stflow.study.run_cell`), so an edited file changes what
E12 runs. The tuning itself is not a study: it scores a run at the record from which the
accuracy *settles* above the target (:func:`settled_hit`, not ``stflow tune``'s rule) and
compares the flow's three schemes. Regenerate the stored values with::

    OMP_NUM_THREADS=1 python -m stflow.experiments.e12_mlp --tune OUT_DIR [--budget 6]

which tunes every setting (:data:`SETTINGS`, from :data:`CENTRES`) and prints the winners to
write into the study files.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from ..output import write_json
from ._common import fmt, md_table, pick

__all__ = [
    "NAME",
    "TITLE",
    "TARGET",
    "ROUNDS",
    "BUDGET",
    "COMPRESSORS",
    "SETTINGS",
    "STUDIES",
    "CENTRES",
    "NETWORK",
    "study_path",
    "load_split",
    "settled_hit",
    "setting_config",
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
#: compressor (fewest tuned bits): the study files hold that scheme's entry.
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
#: The study file of each split (in ``stflow/experiments/studies/``): the tuned settings.
STUDIES = {"by_label": "e12_by_label.toml", "iid": "e12_iid.toml"}

SIZES = {
    "full": {"splits": ("by_label", "iid"), "compressors": tuple(COMPRESSORS), "rounds": ROUNDS},
    # --quick: the IID split with top-k only (DGD, flow, CHOCO), 400 rounds: the study
    # files' tuned settings, stopped earlier (a few seconds; the goals are by label)
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


def study_path(split: str) -> pathlib.Path:
    """The shipped study file of ``split`` (a key of :data:`STUDIES`)."""
    return pathlib.Path(__file__).parent / "studies" / STUDIES[split]


def load_split(split: str, size: dict | None = None, *, path=None):
    """The :class:`stflow.study.Study` of one split, its cells cut to ``size``.

    ``path`` (default :func:`study_path`) may be an edited copy. The cells kept are DGD's
    (``compressor = "none"``) and those of ``size["compressors"]`` (labels of the file's
    ``[[compressor]]`` entries), their rounds capped at ``size["rounds"]``.
    """
    from ..errors import InputError
    from ..study import load_study

    size = size or SIZES["full"]
    path = study_path(split) if path is None else pathlib.Path(path)
    shrink = None if size["rounds"] >= ROUNDS else {"rounds": size["rounds"]}
    study = load_study(path, shrink=shrink)
    if not study.target["at_least"]:
        raise InputError(f"E12 study file {str(path)!r}: E12 needs [study] target_accuracy "
                         "(it reports accuracy), not target")
    study.cells = [c for c in study.cells if c.compressor in ("none", *size["compressors"])]
    return study


def _row(cell, study_dir: pathlib.Path, target: float) -> tuple[dict, dict]:
    """Run one cell with the study runner: its study row and its row of E12's table (scored
    by :func:`settled_hit`)."""
    import dataclasses
    import json

    from ..output import read_metrics_csv
    from ..study import run_cell

    result = run_cell(dataclasses.asdict(cell), str(study_dir),
                      {"column": "mean_agent_test_accuracy", "value": target, "at_least": True})
    if result["status"] == "failed":
        raise RuntimeError(f"E12 cell {cell.id} failed: {result['reason']}")
    folder = study_dir / result["run_dir"]
    r = read_metrics_csv(folder / "metrics.csv")
    summary = json.loads((folder / "summary.json").read_text())
    cfg = summary["config"]
    i = settled_hit(r, target=target)[0] if result["status"] != "diverged" else None
    tuned = cell.note.startswith("tuned")
    return result, {
        "split": cfg["problem"]["split"],
        "method": cfg["method"]["kind"],
        "scheme": cell.scheme,
        "compressor": "identity" if cell.compressor == "none" else cell.compressor,
        "spec": cfg["compressor"]["spec"] if cell.compressor != "none" else "identity",
        "cell": cell.id,
        "tuned": tuned,
        "tuning": "tuned" if tuned else (cell.note or "not tuned"),
        "params": {**{k: v for k, v in cfg["method"].items() if k != "kind"},
                   "step": cfg["solver"]["step"]},
        "status": result["status"],
        "rounds": int(r["step"][-1]),
        "bits_per_message": int(summary["bits_per_message"]),
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


def planned_runs(quick: bool) -> int:
    """One run per cell of this size's study files."""
    size = pick(SIZES, quick)
    return sum(len(load_split(split, size).cells) for split in size["splits"])


def tune_settings(out_dir, *, budget: int = BUDGET, settings=None, seed: int = 0) -> dict:
    """Tune every setting with ``stflow tune`` (same budget), write ``out_dir/tuned.json``.

    Scored by :func:`settled_hit` (bits per agent at the record from which the mean agent
    accuracy stays >= TARGET), swapped in for ``stflow.tune.first_hit`` during the calls;
    every other rule of ``stflow tune`` (budget, search box, robustness reruns) is kept.

    Returns ``{key: {"method": ..., "step": ...} or None}``: the values to write into the
    study files' entries (:data:`STUDIES`).
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
            entry = {"method": params, "step": step, "bits": res.bits_to_target}
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
    """Run the study files' cells (``study_SPLIT/cells/<id>/``, ``study_SPLIT/results.csv``);
    table, figure, ``rows.json``."""
    from ..study.summary import write_results

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = pick(SIZES, quick)
    rows = []
    for split in size["splits"]:
        study = load_split(split, size)
        study_dir = out_dir / f"study_{split}"
        results = []
        for cell in study.cells:
            result, r = _row(cell, study_dir, study.target["value"])
            results.append(result)
            rows.append(r)
            if progress is not None:
                progress(f"{r['split']} {r['method']} {r['compressor']}: {r['status']}")
        write_results(study_dir, results)
    write_json(out_dir / "rows.json", [{k: v for k, v in r.items() if k != "curve"} for r in rows])
    figure = _plot(out_dir, rows, size)
    return {
        "title": TITLE,
        "setting": (
            "Digits (1797 rows, a quarter held out), N = 8 on a ring, MLP hidden [64] "
            f"(d = 4874), batch 16, splits {', '.join(size['splits'])}; {size['rounds']} "
            f"rounds per run, records every 10; time model {NETWORK} + {COMPUTE}. Each "
            f"method's parameters tuned by `stflow tune` with the same budget ({BUDGET} "
            f"candidates of {ROUNDS} rounds, target mean agent accuracy {TARGET:.0%}, "
            "scored where the accuracy settles above it), stored as fixed settings in the "
            "study files " + ", ".join(f"`studies/{STUDIES[s]}`" for s in size["splits"])
            + " (shipped in `stflow/experiments/`; copy, edit and run one with `stflow "
            "study`) and run here cell by cell with the study runner. The tuning is not a "
            "study (its scoring rule differs from `stflow tune`'s): the module docstring "
            "gives the command that regenerates the values."
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
                + ("" if r["tuned"] else f" ({r['tuning']})"),
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
