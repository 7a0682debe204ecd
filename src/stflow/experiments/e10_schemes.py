r"""E10: the three schemes of the observer flow side by side (SPEC section 5).

Same flow, same gains (alpha = beta = 10, eta = 2 as in E2, and the observer gain
gamma = 0.5 / h, so the observer's own update h gamma = 0.5 is the same at every step), same
messages: only the update order differs (``euler``, ``predict``, ``gauss_seidel``). For a log grid of steps h (the cyclic scalarizer's window follows h), each
scheme's rounds and bits per agent to relative error 1e-6 (counted only when the run stays
below it, as in ``stflow tune``) and its stability region: the steps at which it does not
diverge. A larger stable h at the same gains means larger per-round gains h alpha, h eta,
hence fewer rounds.

Extra table: error feedback on the direct flow (``[method] error_feedback = true``) against
the direct flow without it and the observer flow on E2 with ``topk:k=2`` and
``quantize:bits=4``, every case tuned with the same budget (30): the study file
``studies/e10_error_feedback.toml`` (:data:`STUDY_FILES`), whose cells
:func:`error_feedback_rows` runs with the study runner (tune, then run the winner); a case
whose tuning counts nothing reports the lowest final error of its candidates that did not
diverge, each rerun for the full rounds (:func:`closest_candidate`).

Second extra table: event-triggered sending (``[method] trigger``, ``trigger_decay``: agent i
sends only while ``||x_i - xhat_i|| > trigger * exp(-trigger_decay * t)``, else a 1-bit
flag) against the same observer flow without it, both ``predict`` and tuned with the same
budget and seeds (the triggered flow starts from ``trigger = 0.1, trigger_decay = 5`` and
searches both with the gains); the table gives each seed's robust bits to 1e-6 and their
median. This table is the study file ``studies/e10_trigger.toml``, whose cells
:func:`trigger_rows` runs with the study runner. The scheme grid (fixed gains over a grid of
h, gamma = 0.5 / h: one fixed setting per scheme and step, nothing tuned) is not a study
file. No tuned value is stored here: both extra tables tune when E10 runs.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from ..config import resolve_config, run_config
from ..output import write_json
from ._common import md_table, pick

__all__ = ["NAME", "TITLE", "SIZES", "SCHEMES", "STUDY_FILES", "UNSTABLE", "is_stable", "run",
           "planned_runs", "scheme_grid", "study", "closest_candidate", "error_feedback_rows",
           "trigger_rows"]

NAME = "E10"
TITLE = "Schemes side by side: euler, predict, gauss_seidel"
TARGET = 1e-6
SCHEMES = ("euler", "predict", "gauss_seidel")
SPECS = {"quantize": "quantize:bits=4", "cyclic": "scalarize:basis=cyclic,tau={tau}"}
#: alpha, beta, eta of every run (gamma = OBSERVER_STEP / h).
GAINS = {"alpha": 10.0, "beta": 10.0, "eta": 2.0}
OBSERVER_STEP = 0.5
#: The study files of the two extra tables (in ``stflow/experiments/studies/``).
STUDY_FILES = {"error_feedback": "e10_error_feedback.toml", "trigger": "e10_trigger.toml"}
#: error_feedback, trigger: how each table's study file is cut (None: the table is not run;
#: {}: the file as it is; ``budget``, ``seeds`` and ``rounds`` capped, ``compressors``:
#: labels of the [[compressor]] entries kept).
SIZES = {
    "full": {"steps": tuple(float(h) for h in np.geomspace(2e-3, 6.4e-2, 11)), "rounds": 3000,
             "error_feedback": {}, "trigger": {}},
    "quick": {"steps": (4e-3, 1.6e-2, 3.2e-2), "rounds": 1000,
              "error_feedback": {"budget": 3, "rounds": 600},
              "trigger": {"budget": 3, "seeds": 1, "compressors": ("quantize",),
                          "rounds": 600}},
    "tiny": {"steps": (3e-3, 6e-3), "rounds": 200, "error_feedback": None, "trigger": None},
}


def planned_runs(quick: bool) -> int:
    """One run per scheme, compressor and step; one tick per cell of each extra table."""
    size = pick(SIZES, quick)
    return len(SCHEMES) * len(SPECS) * len(size["steps"]) + sum(
        len(study(table, size[table]).cells) for table in STUDY_FILES
        if size[table] is not None)


def scheme_grid(steps, rounds: int, *, progress=None) -> list[dict]:
    """One row per (compressor, scheme, h): status, rounds and bits to 1e-6."""
    from ..tune import first_hit

    rows = []
    for ckey, spec in SPECS.items():
        for scheme in SCHEMES:
            for h in steps:
                h = float(h)
                raw = {"problem": {"kind": "least_squares", "agents": 20, "dim": 10, "seed": 0},
                       "graph": {"kind": "ring", "chords": 3, "seed": 0},
                       "method": {"kind": "observer", **GAINS, "gamma": OBSERVER_STEP / h},
                       "compressor": {"spec": spec.format(tau=repr(h))},
                       "solver": {"scheme": scheme, "step": h, "horizon": rounds * h,
                                  "record_every": 10, "tolerance": TARGET}}
                _, sol = run_config(resolve_config(raw))
                i, stays = first_hit(sol.records, "relative_error", TARGET)
                ok = i is not None and stays and sol.status != "diverged"
                rows.append({"compressor": ckey, "scheme": scheme, "step": h,
                             "status": sol.status,
                             "rounds_to_target": int(sol.records["step"][i]) if ok else None,
                             "bits_to_target": float(sol.records["bits_per_agent"][i])
                             if ok else None,
                             "final_relative_error": sol.final_relative_error,
                             "initial_relative_error": float(sol.records["relative_error"][0])})
                if progress is not None:
                    progress(f"{ckey} {scheme} h={h:.3g}: {sol.status}")
    return rows


def study(table: str, cut: dict, *, path=None):
    """The :class:`stflow.study.Study` of one extra table (``"error_feedback"`` or
    ``"trigger"``: :data:`STUDY_FILES`, or ``path``, an edited copy) cut to ``cut`` (a
    ``SIZES[...][table]`` entry: budget, seeds and rounds capped, compressors kept by
    label). Every cell must be tuned to a relative error."""
    from ..errors import InputError
    from ..study import load_study

    path = (pathlib.Path(__file__).parent / "studies" / STUDY_FILES[table] if path is None
            else pathlib.Path(path))
    shrink = {k: cut[k] for k in ("budget", "seeds", "rounds") if cut.get(k)}
    s = load_study(path, shrink=shrink or None)
    if s.target["column"] != "relative_error" or any(c.tune is None for c in s.cells):
        raise InputError(f"E10 study file {str(path)!r}: every [[method]] needs tune = "
                         "{ budget = B } and [study] target (a relative error)")
    if cut.get("compressors") is not None:
        s.cells = [c for c in s.cells if c.compressor in cut["compressors"]]
    return s


def _run_cells(s, folder: pathlib.Path, what: str, progress=None):
    """Run the cells of ``s`` with the study runner into ``folder/cells/<id>/`` (and
    ``folder/results.csv``); yields (cell, its result row, its tuning.json)."""
    import dataclasses
    import json

    from ..study import run_cell
    from ..study.summary import write_results

    results = []
    for cell in s.cells:
        result = run_cell(dataclasses.asdict(cell), str(folder), s.target, s.init)
        results.append(result)
        tuning_file = folder / result["run_dir"] / "tuning.json"
        if result["status"] == "failed" or not tuning_file.exists():
            raise RuntimeError(f"E10 {what} cell {cell.id} failed: {result['reason']}")
        yield cell, result, json.loads(tuning_file.read_text())
        if progress is not None:
            progress(f"{what}: {cell.method}, {cell.compressor}, seed {cell.seed}: "
                     f"{result['status']}")
    write_results(folder, results)


def closest_candidate(config: dict, tuning: dict) -> dict | None:
    """How near a tuning that counted nothing came: every candidate of ``tuning`` (its
    ``tuning.json``) that did not diverge, rerun from ``config`` (the cell's) for the full
    ``rounds_cap`` rounds; the one with the lowest final relative error, as ``{"params",
    "final_relative_error"}`` (None when every candidate diverged)."""
    import copy
    import warnings

    from ..tune import rescale_compressor_time

    h0 = float(config["solver"]["step"])
    best = None
    for trial in tuning["trials"]:
        if trial["diverged"]:
            continue
        cfg = copy.deepcopy(config)
        p = dict(trial["params"])
        h = float(p.pop("step", h0))
        cfg["method"].update(p)
        cfg["solver"].update(step=h, horizon=tuning["rounds_cap"] * h)
        if h != h0 and cfg.get("compressor"):
            cfg["compressor"]["spec"] = rescale_compressor_time(cfg["compressor"]["spec"],
                                                                h / h0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, sol = run_config(resolve_config(cfg))
        err = float(sol.final_relative_error)
        if sol.status != "diverged" and math.isfinite(err) and (
                best is None or err < best["final_relative_error"]):
            best = {"params": trial["params"], "final_relative_error": err}
    return best


def _case(cell) -> str:
    """``METHOD, SPEC`` (a start named after the method's label stays last)."""
    base, sep, rest = cell.method.partition(", euler's auto start")
    return f"{base}, {cell.compressor}" + (sep + rest if sep else "")


def error_feedback_rows(cut: dict, out_dir=None, *, path=None, progress=None) -> list[dict]:
    """Run the cells of ``study("error_feedback", cut)`` with the study runner into
    ``out_dir/error_feedback/``: one row per case with the tuned bits and robust bits to
    1e-6, the winner's run (bits to 1e-6 or final error), and when nothing counted the
    closest candidate (:func:`closest_candidate`)."""
    import tempfile

    s = study("error_feedback", cut, path=path)
    folder = pathlib.Path(out_dir or tempfile.mkdtemp(prefix="e10_")) / "error_feedback"
    order = list(dict.fromkeys(c.compressor for c in s.cells))
    methods = s.methods
    s.cells.sort(key=lambda c: (order.index(c.compressor), methods.index(c.method)))
    rows = []
    for cell, result, t in _run_cells(s, folder, "error feedback", progress):
        m = cell.config["method"]
        rows.append({
            "case": _case(cell), "kind": m["kind"],
            "error_feedback": bool(m.get("error_feedback", False)), "scheme": cell.scheme,
            "compressor": cell.compressor, "budget": t["budget"], "found": t["found"],
            "rounds_cap": t["rounds_cap"],
            "bits_to_target": t["bits_to_target"],
            "robust_bits_to_target": t["robust_bits_to_target"],
            "rounds_to_target": t["rounds_to_target"], "params": t["params"],
            "closest": None if t["found"] else closest_candidate(cell.config, t),
            "run_status": result["status"], "run_bits_to_target": result["bits_to_target"],
            "run_final_relative_error": result["final_error"],
            "run_dir": f"error_feedback/{result['run_dir']}"})
    return rows


def trigger_rows(cut: dict, out_dir=None, *, path=None, progress=None) -> list[dict]:
    """Run the cells of ``study("trigger", cut)`` with the study runner (each tunes the
    observer flow, ``predict``, with or without event-triggered sending, then runs the
    winner) into ``out_dir/trigger/``: one row per (compressor, variant, seed) with the tuned
    robust bits to 1e-6 (None when no setting counted)."""
    import tempfile

    s = study("trigger", cut, path=path)
    folder = pathlib.Path(out_dir or tempfile.mkdtemp(prefix="e10_")) / "trigger"
    return [{"compressor": cell.compressor, "variant": cell.method, "seed": cell.seed,
             "budget": t["budget"], "bits_to_target": t["bits_to_target"],
             "robust_bits_to_target": t["robust_bits_to_target"],
             "rounds_to_target": t["rounds_to_target"], "params": t["params"]}
            for cell, _, t in _run_cells(s, folder, "trigger", progress)]


def _trigger_table(rows: list[dict]) -> str:
    if not rows:
        return ""

    def median(vals):
        vals = [math.inf if v is None else v for v in vals]
        m = float(np.median(vals))
        return None if math.isinf(m) else m

    def cell(v):
        return "none" if v is None else f"{v:,.0f}"

    body, meds = [], {}
    for ckey in dict.fromkeys(r["compressor"] for r in rows):
        for variant in ("flow", "flow + trigger"):
            rs = [r for r in rows if r["compressor"] == ckey and r["variant"] == variant]
            med = median([r["robust_bits_to_target"] for r in rs])
            meds[ckey, variant] = med
            body.append([ckey, variant, " / ".join(cell(r["robust_bits_to_target"])
                                                     for r in rs), cell(med)])
    verdict = []
    for ckey in dict.fromkeys(r["compressor"] for r in rows):
        a, b = meds[ckey, "flow"], meds[ckey, "flow + trigger"]
        if a is not None and b is not None:
            verdict.append(f"{ckey} {b / a:.2f}")
    seeds = sorted({r["seed"] for r in rows})
    return "\n".join([
        "Event-triggered sending (`[method] trigger`, `trigger_decay`; a silent round costs one "
        "bit) against the same observer flow without it, E2, `predict`, both tuned here by "
        f"`stflow tune`'s rules with budget {rows[0]['budget']} and tuner seeds {seeds} "
        "(robust bits per agent to 1e-6, one per seed, and their median); the study file "
        f"`studies/{STUDY_FILES['trigger']}`, run here with the study runner "
        "(`trigger/results.csv`):",
        "",
        md_table(["compressor", "variant", "robust bits per seed", "median"], body), "",
        "Median with the trigger over the median without it: " + (
            "; ".join(verdict) if verdict else "no pair to compare") + "."])


def run(out_dir: pathlib.Path, *, quick: bool, progress=None) -> dict:
    """Run E10 into ``out_dir``: table, figure, ``rows.json``."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = pick(SIZES, quick)
    rows = scheme_grid(size["steps"], size["rounds"], progress=progress)
    ef, trig = size["error_feedback"], size["trigger"]
    ef_rows = [] if ef is None else error_feedback_rows(ef, out_dir, progress=progress)
    trig_rows = [] if trig is None else trigger_rows(trig, out_dir, progress=progress)
    write_json(out_dir / "trigger.json", trig_rows)
    write_json(out_dir / "rows.json", rows)
    write_json(out_dir / "error_feedback.json", ef_rows)
    figure = _plot(out_dir, rows)
    return {
        "title": TITLE,
        "setting": (
            "E2's least squares (N = 20, d = 10, ring with 3 chords), observer flow with "
            f"gains {GAINS}, gamma = {OBSERVER_STEP} / h, compressors `quantize:bits=4` and the cyclic scalarizer "
            f"(tau = h); steps h = {', '.join(f'{h:.3g}' for h in size['steps'])}; "
            f"{size['rounds']} rounds per run, records every 10."
        ),
        "prediction": (
            "All three tend to the same flow as h -> 0, so at small h they need the same "
            "number of rounds. `predict` and `gauss_seidel` use this round's messages, which "
            "should widen the stable range of h (larger per-round gains, fewer rounds)."
        ),
        "measured": _table(rows) + "\n\n" + _ef_table(ef_rows) + "\n\n" + _trigger_table(
            trig_rows),
        "figures": [figure],
        "captions": {figure: (
            "Top: bits per agent to relative error 1e-6 against the step h at fixed gains, one "
            "panel per compressor (a note where fewer than two steps reached 1e-6); a missing "
            "point means the run did not reach and keep 1e-6 within the rounds. Bottom: the "
            "final relative error of every run; crosses are runs that diverged or whose "
            "error grows (never counted as stable); the dotted line is 1e-6.")},
        "data": {"largest_stable_step": _stable(rows),
                 "error_feedback_robust_bits": {
                     r["case"]: r["robust_bits_to_target"] for r in ef_rows}},
    }


#: Statuses of a run that grew: never counted as stable.
UNSTABLE = ("diverged", "diverging")


def is_stable(row: dict) -> bool:
    """A grid run is stable when it neither diverged nor is diverging (its error's trend
    grows) and its final relative error is finite and not above its initial one.

    Examples
    --------
    >>> is_stable({"status": "stalled", "final_relative_error": 0.3,
    ...            "initial_relative_error": 1.0})
    True
    >>> is_stable({"status": "diverging", "final_relative_error": 2.92,
    ...            "initial_relative_error": 1.0})
    False
    """
    fin = row.get("final_relative_error")
    start = row.get("initial_relative_error", 1.0)
    return (row["status"] not in UNSTABLE and fin is not None and math.isfinite(fin)
            and fin <= start)


def _stable(rows) -> dict:
    """Largest stable step (:func:`is_stable`) of each compressor and scheme; None when no
    step of the grid is stable."""
    out = {}
    for r in rows:
        key = f"{r['compressor']} {r['scheme']}"
        out.setdefault(key, None)
        if is_stable(r):
            out[key] = max(out[key] or 0.0, r["step"])
    return out


def _table(rows) -> str:
    steps = sorted({r["step"] for r in rows})
    lines = []
    for ckey in SPECS:
        body = []
        for scheme in SCHEMES:
            cells = []
            for h in steps:
                r = next(x for x in rows if x["compressor"] == ckey and x["scheme"] == scheme
                         and x["step"] == h)
                if r["status"] == "diverged":
                    cells.append("diverged")
                elif not is_stable(r):
                    cells.append(f"{r['status']} ({r['final_relative_error']:.1e})")
                elif r["rounds_to_target"] is None:
                    fin = r["final_relative_error"]
                    cells.append(f"not settled ({fin:.1e})" if fin <= TARGET else f"{fin:.1e}")
                else:
                    cells.append(f"{r['rounds_to_target']} / {r['bits_to_target']:,.0f}")
            body.append([scheme, *cells])
        lines += [f"{ckey}: rounds / bits per agent to 1e-6 (else the final error; 'not "
                  "settled': below 1e-6 at the end but above it at a record after the first "
                  "hit)", "",
                  md_table(["scheme", *[f"h = {h:.3g}" for h in steps]], body), ""]
    stable = _stable(rows)
    lines.append("Largest stable step in the grid (status neither diverged nor diverging, "
                 "final error not above the initial one): " + "; ".join(
                     f"{k}: {'none' if v is None else f'{v:.3g}'}" for k, v in stable.items())
                 + ".")
    return "\n".join(lines)


def _ef_table(rows: list[dict]) -> str:
    """Error feedback, tuned here: bits, robust bits (or the closest candidate's final
    error), the ratio to the observer flow with the same compressor, the winner's run."""
    if not rows:
        return ""

    def bits(v):
        return "none counted" if v is None else f"{v:,.0f}"

    body = []
    for r in rows:
        ref = next((x for x in rows if x["kind"] == "observer"
                    and x["compressor"] == r["compressor"]), None)
        ratio = "-" if r["robust_bits_to_target"] is None or ref is None or not ref[
            "robust_bits_to_target"] else (
            f"{r['robust_bits_to_target'] / ref['robust_bits_to_target']:.2f}")
        if r["found"]:
            how = "-"
        elif r["closest"] is None:
            how = "every candidate diverged"
        else:
            how = f"{r['closest']['final_relative_error']:.1e}"
        run = (f"{r['run_bits_to_target']:,.0f} bits" if r["run_bits_to_target"] is not None
               else f"{r['run_status']}, final error {r['run_final_relative_error']:.1e}"
               if r["run_final_relative_error"] is not None else r["run_status"])
        body.append([r["case"], bits(r["bits_to_target"]), bits(r["robust_bits_to_target"]),
                     how, ratio, run])
    rounds = rows[0].get("rounds_cap")
    return "\n".join([
        "Error feedback on the direct flow (`[method] error_feedback = true`) against the "
        f"direct flow without it and the observer flow, E2, each tuned here with budget "
        f"{rows[0]['budget']} by `stflow tune`'s rules (clock step 0.01, gains \"auto\" as the "
        f"start, tuner seed 0); the study file `studies/{STUDY_FILES['error_feedback']}`, run "
        "with the study runner (`error_feedback/results.csv`). When nothing counted, the "
        "closest candidate is the lowest final relative error of the candidates that did not "
        "diverge, each rerun for the full rounds; the last column is the study runner's run "
        "of the winner (of the start when nothing counted)" + (
            "" if rounds is None else f" ({rounds} rounds)") + ":", "",
        md_table(["case", "bits to 1e-6", "robust bits", "closest candidate's final error",
                  "robust / observer predict", "run of the winner"], body)])


def _plot(out_dir, rows) -> str:
    """Top: bits per agent to 1e-6 against h (a compressor where fewer than two steps
    reached it gets a note instead of a one-point panel); bottom: the final relative error
    of every run, unstable ones (:func:`is_stable`) as crosses clipped at 1e3. Ticks at the
    grid's steps."""
    from matplotlib.ticker import NullLocator

    from ._common import plt, save_figure
    from ._figures import style

    pyplot = plt()
    steps = sorted({r["step"] for r in rows})
    fig, axes = pyplot.subplots(2, len(SPECS), figsize=(10, 7.2), squeeze=False,
                                sharex=True)
    for col, ckey in enumerate(SPECS):
        top, bottom = axes[0][col], axes[1][col]
        reached = 0
        for i, scheme in enumerate(SCHEMES):
            rs = sorted((r for r in rows if r["compressor"] == ckey and r["scheme"] == scheme),
                        key=lambda r: r["step"])
            hs = np.array([r["step"] for r in rs])
            bits = np.array([np.nan if r["bits_to_target"] is None else r["bits_to_target"]
                             for r in rs])
            reached += int(np.isfinite(bits).sum())
            top.plot(hs, bits, marker="o", ms=3, label=scheme, **style(i))
            fin = np.array([min(r["final_relative_error"], 1e3)
                            if r["final_relative_error"] is not None
                            and math.isfinite(r["final_relative_error"]) else 1e3
                            for r in rs])
            ok = np.array([is_stable(r) for r in rs], dtype=bool)
            bottom.plot(hs, np.where(ok, fin, np.nan), marker="o", ms=3, label=scheme,
                        **style(i))
            if (~ok).any():
                bottom.plot(hs[~ok], fin[~ok], "x", ms=7, color=style(i)["color"],
                            label=f"{scheme}: diverged / diverging")
        if reached < 2:
            top.cla()
            top.set_axis_off()
            top.text(0.5, 0.5, f"{ckey}: fewer than two steps reached 1e-6\n(final errors "
                     "below)", ha="center", va="center", transform=top.transAxes, fontsize=9)
        else:
            top.set_yscale("log")
            top.set_title(f"{ckey}: bits per agent to 1e-6", fontsize=9)
            top.grid(True, which="both", alpha=0.3)
        bottom.set_yscale("log")
        bottom.axhline(TARGET, color="k", lw=0.6, ls=":")
        bottom.set_title(f"{ckey}: final relative error", fontsize=9)
        bottom.set_xlabel("step h")
        bottom.grid(True, which="both", alpha=0.3)
    for ax in axes.ravel():
        if ax.axison:
            ax.set_xscale("log")
            ax.set_xticks(steps, [f"{h:.2g}" for h in steps], rotation=60, fontsize=7)
            ax.xaxis.set_minor_locator(NullLocator())
    axes[1][0].set_ylabel("final relative error")
    if axes[0][0].axison:
        axes[0][0].set_ylabel("bits per agent to 1e-6")
    handles, labels = axes[1][-1].get_legend_handles_labels()
    for ax in axes[1][:-1]:
        for hnd, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(hnd)
                labels.append(lab)
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7,
               frameon=False)
    return save_figure(fig, out_dir, "schemes.png")
