r"""E10: the three schemes of the observer flow side by side (SPEC section 5).

Same flow, same gains (alpha = beta = 10, eta = 2 as in E2, and the observer gain
gamma = 0.5 / h, so the observer's own update h gamma = 0.5 is the same at every step), same
messages: only the update order differs (``euler``, ``predict``, ``gauss_seidel``). For a log grid of steps h (the cyclic scalarizer's window follows h), each
scheme's rounds and bits per agent to relative error 1e-6 (counted only when the run stays
below it, as in ``stflow tune``) and its stability region: the steps at which it does not
diverge. A larger stable h at the same gains means larger per-round gains h alpha, h eta,
hence fewer rounds.

Extra table: error feedback on the direct flow (``[method] error_feedback = true``) against
the observer flow on E2 with ``topk:k=2`` and ``quantize:bits=4``, tuned with the same budget
by ``scripts/measure_error_feedback.py``. The tuner does not run here: its figures are
stored in :data:`ERROR_FEEDBACK`, and E10 reruns each stored setting once (the winner, or
the closest candidate when none counted) to show its live bits to 1e-6 or final error.

Second extra table: event-triggered sending (``[method] trigger``, ``trigger_decay``: agent i
sends only while ``||x_i - xhat_i|| > trigger * exp(-trigger_decay * t)``, else a 1-bit
flag) against the same observer flow without it, both ``predict`` and tuned live here by
``stflow.tune.tune`` with the same budget and seeds (the triggered flow starts from
``trigger = 0.1, trigger_decay = 5`` and searches both with the gains and the step); the
table gives each seed's robust bits to 1e-6 and their median. This table is the study file
``studies/e10_trigger.toml`` (:data:`TRIGGER_STUDY`), whose cells :func:`trigger_rows` runs
with the study runner; the scheme grid (fixed gains over a grid of h, gamma = 0.5 / h) and
the error-feedback table (stored tuner output) are not study files.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from ..config import resolve_config, run_config
from ..output import write_json
from ._common import md_table, pick

__all__ = ["NAME", "TITLE", "SIZES", "SCHEMES", "ERROR_FEEDBACK", "ERROR_FEEDBACK_COMMAND",
           "TRIGGER_STUDY", "UNSTABLE", "is_stable", "run", "planned_runs", "scheme_grid", "error_feedback_rows",
           "trigger_rows"]

NAME = "E10"
TITLE = "Schemes side by side: euler, predict, gauss_seidel"
TARGET = 1e-6
SCHEMES = ("euler", "predict", "gauss_seidel")
SPECS = {"quantize": "quantize:bits=4", "cyclic": "scalarize:basis=cyclic,tau={tau}"}
#: alpha, beta, eta of every run (gamma = OBSERVER_STEP / h).
GAINS = {"alpha": 10.0, "beta": 10.0, "eta": 2.0}
OBSERVER_STEP = 0.5
#: trigger: the event-triggered table's cut of :data:`TRIGGER_STUDY` (None: the file's own
#: budget, seeds and rounds; ``compressors``: labels of its [[compressor]] entries, None: all)
SIZES = {
    "full": {"steps": tuple(float(h) for h in np.geomspace(2e-3, 6.4e-2, 11)), "rounds": 3000,
             "error_feedback": True,
             "trigger": {"budget": None, "seeds": None, "compressors": None, "rounds": None}},
    "quick": {"steps": (4e-3, 1.6e-2, 3.2e-2), "rounds": 1000, "error_feedback": True,
              "trigger": {"budget": 3, "seeds": 1, "compressors": ("quantize",),
                          "rounds": 600}},
    "tiny": {"steps": (3e-3, 6e-3), "rounds": 200, "error_feedback": False, "trigger": None},
}
#: The study file of the event-triggered table (in ``stflow/experiments/studies/``).
TRIGGER_STUDY = "e10_trigger.toml"

#: The command that measured :data:`ERROR_FEEDBACK` (about 1 minute on one core).
ERROR_FEEDBACK_COMMAND = ("OMP_NUM_THREADS=1 PYTHONPATH=src python "
                          "scripts/measure_error_feedback.py")
#: Rounds of the tuning runs (E2: step 0.01, horizon 30) and of E10's reruns.
ERROR_FEEDBACK_ROUNDS = 3000
#: Stored output of :data:`ERROR_FEEDBACK_COMMAND`: ``stflow.tune.tune(config, budget=30,
#: target=1e-6, seed=0)`` on E2 with "auto" gains as the start (or the euler rule's gains
#: where the name says so). ``params``: the tuned winner (with its step); ``closest``: when
#: nothing counted, the non-diverged candidate with the lowest final relative error.
ERROR_FEEDBACK = {
    "direct + EF, predict, topk:k=2": {
        "kind": "direct", "error_feedback": True, "scheme": "predict",
        "compressor": "topk:k=2", "bits_to_target": None, "robust_bits_to_target": None,
        "params": None, "closest": None},  # every candidate diverged
    "direct + EF, predict, topk:k=2, euler's auto start": {
        "kind": "direct", "error_feedback": True, "scheme": "predict",
        "compressor": "topk:k=2", "bits_to_target": None, "robust_bits_to_target": None,
        "params": None,
        "closest": {"params": {"alpha": 2.593599453014062, "beta": 4.277916725896876,
                               "eta": 1.8945685795093656, "step": 0.006251727352705995},
                    "final_relative_error": 0.0506699972686573}},
    "direct + EF, euler, topk:k=2": {
        "kind": "direct", "error_feedback": True, "scheme": "euler",
        "compressor": "topk:k=2", "bits_to_target": None, "robust_bits_to_target": None,
        "params": None,
        "closest": {"params": {"alpha": 2.593599453014062, "beta": 4.277916725896876,
                               "eta": 1.8945685795093656, "step": 0.006251727352705995},
                    "final_relative_error": 0.05700805777626132}},
    "direct, predict, topk:k=2": {
        "kind": "direct", "error_feedback": False, "scheme": "predict",
        "compressor": "topk:k=2", "bits_to_target": None, "robust_bits_to_target": None,
        "params": None,
        "closest": {"params": {"alpha": 53.99838930274705, "beta": 4.428401118516631,
                               "eta": 29.27495896732708, "step": 0.001811258145386494},
                    "final_relative_error": 0.1744154019718278}},
    "observer, predict, topk:k=2": {
        "kind": "observer", "error_feedback": False, "scheme": "predict",
        "compressor": "topk:k=2", "bits_to_target": 48960.0, "robust_bits_to_target": 48960.0,
        "params": {"alpha": 17.955824667657275, "beta": 20.36750057678487,
                   "eta": 10.637151484683498, "gamma": 54.421860324533924,
                   "step": 0.010768305011160235},
        "closest": None},
    "direct + EF, predict, quantize:bits=4": {
        "kind": "direct", "error_feedback": True, "scheme": "predict",
        "compressor": "quantize:bits=4", "bits_to_target": None, "robust_bits_to_target": None,
        "params": None,
        "closest": {"params": {"alpha": 27.70697147740071, "beta": 9.07603629951605,
                               "eta": 33.55414578916301, "step": 0.0011505124767401248},
                    "final_relative_error": 0.00807927801961881}},
    "direct + EF, predict, quantize:bits=4, euler's auto start": {
        "kind": "direct", "error_feedback": True, "scheme": "predict",
        "compressor": "quantize:bits=4", "bits_to_target": None, "robust_bits_to_target": None,
        "params": None,
        "closest": {"params": {"alpha": 1.3307949921537185, "beta": 8.767617578317411,
                               "eta": 2.1715019445586257, "step": 0.003971101711142865},
                    "final_relative_error": 0.001443787491943764}},
    "observer, predict, quantize:bits=4": {
        "kind": "observer", "error_feedback": False, "scheme": "predict",
        "compressor": "quantize:bits=4", "bits_to_target": 11440.0,
        "robust_bits_to_target": 11440.0,
        "params": {"alpha": 44.88959084867127, "beta": 50.91878454063996,
                   "eta": 26.59289599785773, "gamma": 54.421860324533924,
                   "step": 0.010768305011160235},
        "closest": None},
}


def _ef_setting(case: dict) -> dict | None:
    return case["params"] or (case["closest"] or {}).get("params")


def planned_runs(quick: bool) -> int:
    """One run per scheme, compressor and step; one per stored error-feedback setting."""
    size = pick(SIZES, quick)
    extra = sum(_ef_setting(c) is not None for c in ERROR_FEEDBACK.values())
    trig = size["trigger"]
    return len(SCHEMES) * len(SPECS) * len(size["steps"]) + (
        extra if size["error_feedback"] else 0) + (
        0 if trig is None else len(trigger_study(trig).cells))


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


def error_feedback_rows(*, progress=None) -> list[dict]:
    """One run of each stored setting of :data:`ERROR_FEEDBACK` on E2: live bits to 1e-6
    (counted as in ``stflow tune``: the run stays below it) and the final relative error."""
    import warnings

    from ..errors import DirectFlowWarning
    from ..tune import first_hit

    rows = []
    for name, case in ERROR_FEEDBACK.items():
        p = _ef_setting(case)
        row = {"case": name, "live_bits_to_target": None, "live_final_relative_error": None,
               "live_status": None}
        if p is not None:
            flow = {"kind": case["kind"], **{k: v for k, v in p.items() if k != "step"}}
            if case["kind"] == "direct":
                flow["error_feedback"] = case["error_feedback"]
            raw = {"problem": {"kind": "least_squares", "agents": 20, "dim": 10, "seed": 0},
                   "graph": {"kind": "ring", "chords": 3, "seed": 0}, "method": flow,
                   "compressor": {"spec": case["compressor"]},
                   "solver": {"scheme": case["scheme"], "step": p["step"],
                              "horizon": ERROR_FEEDBACK_ROUNDS * p["step"],
                              "record_every": 10, "tolerance": TARGET}}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DirectFlowWarning)
                _, sol = run_config(resolve_config(raw))
            i, stays = first_hit(sol.records, "relative_error", TARGET)
            ok = i is not None and stays and sol.status != "diverged"
            row.update(live_status=sol.status,
                       live_bits_to_target=float(sol.records["bits_per_agent"][i]) if ok
                       else None,
                       live_final_relative_error=float(sol.final_relative_error))
            if progress is not None:
                progress(f"error feedback: {name}: {sol.status}")
        rows.append(row)
    return rows


def trigger_study(cut: dict, *, path=None):
    """The :class:`stflow.study.Study` of :data:`TRIGGER_STUDY` (or ``path``, an edited
    copy) cut to ``cut`` (a ``SIZES[...]["trigger"]`` entry: budget, seeds and rounds
    capped, compressors kept by label)."""
    from ..study import load_study

    path = pathlib.Path(__file__).parent / "studies" / TRIGGER_STUDY if path is None else path
    shrink = {k: cut[k] for k in ("budget", "seeds", "rounds") if cut.get(k)}
    study = load_study(path, shrink=shrink or None)
    if cut.get("compressors") is not None:
        study.cells = [c for c in study.cells if c.compressor in cut["compressors"]]
    return study


def trigger_rows(cut: dict, out_dir=None, *, path=None, progress=None) -> list[dict]:
    """Run the cells of :func:`trigger_study` with the study runner (each tunes the observer
    flow, ``predict``, with or without event-triggered sending, then runs the winner) into
    ``out_dir/trigger/cells/<id>/``: one row per (compressor, variant, seed) with the tuned
    robust bits to 1e-6 (None when no setting counted)."""
    import dataclasses
    import json
    import tempfile

    from ..study import run_cell
    from ..study.summary import write_results

    study = trigger_study(cut, path=path)
    folder = pathlib.Path(out_dir or tempfile.mkdtemp(prefix="e10_trigger_")) / "trigger"
    rows, results = [], []
    for cell in study.cells:
        result = run_cell(dataclasses.asdict(cell), str(folder), study.target)
        results.append(result)
        tuning_file = folder / result["run_dir"] / "tuning.json"
        if result["status"] == "failed" or not tuning_file.exists():
            raise RuntimeError(f"E10 trigger cell {cell.id} failed: {result['reason']}")
        tuning = json.loads(tuning_file.read_text())
        rows.append({"compressor": cell.compressor, "variant": cell.method, "seed": cell.seed,
                     "budget": cell.tune["budget"], "bits_to_target": tuning["bits_to_target"],
                     "robust_bits_to_target": tuning["robust_bits_to_target"],
                     "rounds_to_target": tuning["rounds_to_target"],
                     "params": tuning["params"]})
        if progress is not None:
            progress(f"trigger: {cell.compressor} {cell.method} seed {cell.seed}")
    write_results(folder, results)
    return rows


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
        f"`stflow tune` with budget {rows[0]['budget']} and seeds {seeds} (robust bits per "
        "agent to 1e-6, one per seed, and their median); the study file "
        f"`studies/{TRIGGER_STUDY}`, run here with the study runner (`trigger/results.csv`):",
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
    ef_rows = error_feedback_rows(progress=progress) if size["error_feedback"] else []
    trig = size["trigger"]
    trig_rows = [] if trig is None else trigger_rows(trig, out_dir, progress=progress)
    write_json(out_dir / "trigger.json", trig_rows)
    write_json(out_dir / "rows.json", rows)
    write_json(out_dir / "error_feedback.json", {"stored": ERROR_FEEDBACK, "live": ef_rows,
                                                 "command": ERROR_FEEDBACK_COMMAND})
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
                     k: c["robust_bits_to_target"] for k, c in ERROR_FEEDBACK.items()}},
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


def _ef_table(live: list[dict]) -> str:
    """The stored tuning of error feedback (and the live reruns of its settings)."""
    def bits(v):
        return "none counted" if v is None else f"{v:,.0f}"

    by_name = {r["case"]: r for r in live}
    body = []
    for name, c in ERROR_FEEDBACK.items():
        ref = next(x for x in ERROR_FEEDBACK.values() if x["kind"] == "observer"
                   and x["compressor"] == c["compressor"])
        ratio = "-" if c["robust_bits_to_target"] is None else (
            f"{c['robust_bits_to_target'] / ref['robust_bits_to_target']:.2f}")
        r = by_name.get(name)
        if r is None or r["live_status"] is None:
            live_cell = "not rerun" if r is None else "no setting (every candidate diverged)"
        elif r["live_bits_to_target"] is not None:
            live_cell = f"{r['live_bits_to_target']:,.0f} bits"
        else:
            live_cell = f"{r['live_status']}, final error {r['live_final_relative_error']:.1e}"
        stored = "" if c["closest"] is None else (
            f" (closest candidate: {c['closest']['final_relative_error']:.1e})")
        body.append([name, bits(c["bits_to_target"]), bits(c["robust_bits_to_target"]) + stored,
                     ratio, live_cell])
    return "\n".join([
        "Error feedback on the direct flow (`[method] error_feedback = true`) against the "
        "observer flow, E2, tuned with budget 30 each (`stflow.tune.tune(config, budget=30, "
        "target=1e-6, seed=0)`, 3000 rounds at clock step 0.01, gains \"auto\" as the start); "
        f"stored figures from `{ERROR_FEEDBACK_COMMAND}`, the last column reruns the stored "
        "setting (the winner, else the candidate closest to 1e-6) once:", "",
        md_table(["case", "bits to 1e-6", "robust bits", "robust / observer predict",
                  "live rerun"], body)])


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
