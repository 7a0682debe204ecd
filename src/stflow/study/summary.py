r"""A study's outputs from its rows: ``results.csv`` / ``results.json`` (one row per cell),
the tables of median, interquartile range and reached count per method and setting,
overlay figures with spread bands, and ``report.md`` / ``report.html``.

Spread over trials: for a quantity with values :math:`v_1 \le \dots \le v_k` of the trials
that reached the target, the median and the quartiles are numpy's linear-interpolation
percentiles (``np.percentile(v, [25, 50, 75])``) and the IQR is
:math:`q_{75} - q_{25}`; trials that did not reach the target are not in :math:`v` and are
counted by ``reached = k / n``. The final error (accuracy) is over every trial that ran, a
diverged trial counting as :math:`+\infty` error (:math:`-\infty` accuracy): a quantile
whose interpolation touches such a value is infinite, so the median is "diverged" as soon
as half the trials diverged. The figures use the same rule at every x (:func:`band`).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from .schema import QUANTITIES

__all__ = ["RESULT_COLUMNS", "spread", "summary_rows", "summary_markdown", "write_results",
           "write_figures", "write_report", "X_AXES"]

#: Columns of results.csv, in order.
RESULT_COLUMNS = (
    "id", "method", "scheme", "compressor", "problem", "graph", "seed", "status", "reached",
    "rounds_to_target", "bits_to_target", "samples_to_target", "modeled_seconds_to_target",
    "wall_seconds_to_target", "final_value", "final_error", "final_accuracy",
    "final_consensus_error", "rounds", "tuned", "tune_found", "tuned_params", "tune_wave",
    "wall_seconds",
    "cpu_seconds", "reason", "run_dir",
)
#: The x axes of the overlay figures: name -> (metrics.csv column, axis label).
X_AXES = {
    "bits": ("bits_per_agent", "bits per agent"),
    "rounds": ("step", "rounds"),
    "modeled_seconds": ("modeled_seconds", "modeled seconds"),
}
_GROUP = ("method", "compressor", "problem", "graph")


def _quantiles(v: np.ndarray, qs) -> list[float]:
    """Linear-interpolation quantiles of the sorted ``v`` (may hold +-inf): numpy's when
    every value is finite, else :func:`_quantile_curves`'s rule (a quantile whose two
    neighbours include an infinite value with a positive weight is that value)."""
    if np.isfinite(v).all():
        return [float(x) for x in np.percentile(v, qs)]
    return [float(c[0]) for c in _quantile_curves(v.reshape(-1, 1), qs)]


def spread(values) -> dict:
    """Median, quartiles and IQR of ``values`` (None when there are none); None and NaN are
    dropped, +-inf (a diverged trial's final error or accuracy) kept: it sorts last (first)
    and a quantile that interpolates towards it is infinite, as is then the IQR.

    Examples
    --------
    >>> spread([4.0, 1.0, 3.0, 2.0])
    {'median': 2.5, 'q25': 1.75, 'q75': 3.25, 'iqr': 1.5, 'n': 4}
    >>> spread([None, 5.0])["median"], spread([])["median"]
    (5.0, None)
    >>> s = spread([1.0, 2.0, 3.0, float("inf")])  # one of four trials diverged
    >>> s["median"], s["q75"], s["iqr"]
    (2.5, inf, inf)
    """
    v = np.array([float(x) for x in values if x is not None and not math.isnan(float(x))])
    if v.size == 0:
        return {"median": None, "q25": None, "q75": None, "iqr": None, "n": 0}
    q25, med, q75 = _quantiles(np.sort(v), [25, 50, 75])
    iqr = q75 - q25 if math.isfinite(q75) and math.isfinite(q25) else math.inf
    return {"median": med, "q25": q25, "q75": q75, "iqr": iqr, "n": int(v.size)}


#: Statuses of a run that finished its rounds normally (reaching the target or not).
_FINISHED = ("converged", "not_converged")


def summary_rows(rows: list[dict], quantities, target: dict | None = None) -> list[dict]:
    """One entry per method and setting (compressor, problem, graph), in the rows' order:
    ``trials``, ``reached``, ``failed`` and ``diverged`` counts, ``statuses`` (count per
    run status), ``untuned`` (tuned trials whose tuning found no robust setting, so they ran
    the config itself) and ``untuned_reached`` (those of them that reached the target), and
    the :func:`spread` of each quantity over the trials that reached the target
    (``final``: over every trial that ran, a diverged one counting as infinite error, or
    as ``-inf`` accuracy when ``target["at_least"]``)."""
    worst = -math.inf if target is not None and target.get("at_least") else math.inf
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in _GROUP), []).append(r)
    out = []
    for key, rs in groups.items():
        entry = dict(zip(_GROUP, key, strict=True))
        entry["trials"] = len(rs)
        entry["reached"] = sum(bool(r["reached"]) for r in rs)
        entry["failed"] = sum(r["status"] == "failed" for r in rs)
        entry["diverged"] = sum(r["status"] == "diverged" for r in rs)
        entry["statuses"] = {}
        for r in rs:
            entry["statuses"][r["status"]] = entry["statuses"].get(r["status"], 0) + 1
        untuned = [r for r in rs if r.get("tuned") and r.get("tune_found") is False]
        entry["untuned"] = len(untuned)
        entry["untuned_reached"] = sum(bool(r["reached"]) for r in untuned)
        entry["untuned_seeds"] = [r["seed"] for r in untuned]
        for q in quantities:
            col = QUANTITIES[q]
            if q == "final":
                entry[q] = spread([worst if r["status"] == "diverged" else r.get(col)
                                   for r in rs])
            else:
                entry[q] = spread([r.get(col) for r in rs if r["reached"]])
        out.append(entry)
    return out


def _fmt(x) -> str:
    if x is None:
        return "-"
    if x == 0 or 1e-3 <= abs(x) < 1e5:
        return f"{x:.4g}"
    return f"{x:.3e}"


def _runs_cell(s: dict) -> str:
    """How a row's trials ended: ``"3 finished"``, ``"2 finished, 4 diverged"``."""
    st = s["statuses"]
    parts = []
    done = sum(st.get(k, 0) for k in _FINISHED)
    if done:
        parts.append(f"{done} finished")
    order = ("diverged", "diverging", "stalled", "failed", "interrupted")
    parts += [f"{st[k]} {k}" for k in order if st.get(k)]
    parts += [f"{n} {k}" for k, n in st.items() if k not in _FINISHED + order]
    return ", ".join(parts)


def _median_cell(sp: dict) -> str:
    med = sp["median"]
    if med is None:
        return "-"
    if math.isinf(med):
        return "diverged"
    iqr = "inf" if math.isinf(sp["iqr"]) else _fmt(sp["iqr"])
    return f"{_fmt(med)} ({iqr})"


def summary_markdown(summary: list[dict], quantities, target: dict) -> str:
    """The tables as markdown: one table per (problem, graph), one row per method and
    compressor: reached k / n (and how many of those ran untuned after a tuning that found
    nothing), how the runs ended, then ``median (IQR)`` of each quantity ("diverged" when
    half the trials or more diverged; an IQR of "inf" when a quartile is a diverged
    trial)."""
    lines = []
    settings = list(dict.fromkeys((s["problem"], s["graph"]) for s in summary))
    names = {"bits": "bits to target", "rounds": "rounds to target",
             "samples": "samples to target", "modeled_seconds": "modeled s to target",
             "wall_seconds": "wall s to target",
             "final": "final " + ("accuracy" if target["at_least"] else "error")}
    for problem, graph in settings:
        if len(settings) > 1 or problem != "default" or graph != "default":
            lines += [f"**problem {problem}, graph {graph}**", ""]
        head = ["method", "compressor", "reached", "runs"] + [f"{names[q]}: median (IQR)"
                                                              for q in quantities]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for s in summary:
            if (s["problem"], s["graph"]) != (problem, graph):
                continue
            cells = [s["method"], f"`{s['compressor']}`",
                     f"{s['reached']}/{s['trials']}" + (f" ({s['untuned_reached']} untuned)"
                                                         if s["untuned_reached"] else ""),
                     _runs_cell(s)]
            cells += [_median_cell(s[q]) for q in quantities]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
        notes = [s for s in summary if (s["problem"], s["graph"]) == (problem, graph)
                 and s["untuned"]]
        for s in notes:
            seeds = ", ".join(str(x) for x in s["untuned_seeds"])
            got = s["untuned_reached"]
            lines.append(
                f"- {s['method']}, `{s['compressor']}`: the tuning found no robust setting "
                f"for {s['untuned']} of {s['trials']} trials (seeds {seeds}); those ran the "
                "method's config untuned; " + (
                    f"{got} of them reached the target (counted in reached, marked untuned)."
                    if got else "none of them reached the target."))
        if notes:
            lines.append("")
    return "\n".join(lines)


def _atomic_text(path: Path, text: str) -> None:
    from ..output import atomic_output

    with atomic_output(path) as f:
        f.write(text.encode("utf-8"))


def write_results(out: Path, rows: list[dict]) -> None:
    """``results.csv`` (floats with ``repr``, empty for missing) and ``results.json``."""
    from ..output import write_json

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(RESULT_COLUMNS)
    for r in rows:
        vals = []
        for c in RESULT_COLUMNS:
            v = r.get(c)
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                vals.append("")
            elif isinstance(v, float):
                vals.append(repr(v))
            else:
                vals.append(str(v))
        w.writerow(vals)
    _atomic_text(out / "results.csv", buf.getvalue())
    write_json(out / "results.json", [{c: r.get(c) for c in RESULT_COLUMNS} for r in rows])


# ----------------------------------------------------------------------------- figures


def _curves(out: Path, rows, xcol: str, ycol: str):
    """``(x, y, diverged)`` of each finished cell that recorded both columns."""
    from ..output import read_metrics_csv

    got = []
    for r in rows:
        path = out / r["run_dir"] / "metrics.csv"
        if r["status"] == "failed" or not path.exists():
            continue
        rec = read_metrics_csv(path)
        if xcol in rec and ycol in rec:
            got.append((np.asarray(rec[xcol], float), np.asarray(rec[ycol], float),
                        r["status"] == "diverged"))
    return got


def _quantile_curves(ys: np.ndarray, qs) -> list[np.ndarray]:
    """:func:`_quantiles` of each column of ``ys`` (runs x points, +-inf allowed)."""
    srt = np.sort(ys, axis=0)
    out = []
    for q in qs:
        pos = q / 100.0 * (srt.shape[0] - 1)
        lo = int(math.floor(pos))
        hi, frac = min(lo + 1, srt.shape[0] - 1), pos - lo
        a, b = srt[lo], srt[hi]
        with np.errstate(invalid="ignore"):
            val = a + (b - a) * frac
        if frac == 0:
            val = a.copy()
        val = np.where(np.isinf(b) & (frac > 0), b, val)
        out.append(np.where(np.isinf(a), a, val))
    return out


def band(curves, *, log: bool, points: int = 120):
    """Median and quartile curves over every trial on a common x grid, interpolated in
    ``log10 y`` when ``log`` (an error; else an accuracy).

    ``curves`` holds ``(x, y)`` or ``(x, y, diverged)``. The grid runs from 0 to the end of
    the shortest run that did not diverge (of the longest when every run diverged). A
    diverged run counts as the worst value (``+inf`` error, ``-inf`` accuracy) after its
    last finite record, so every run has a value at every x and a quantile is infinite
    once enough runs diverged (:func:`spread`'s rule). The curves stop at the last x whose
    median is finite: where half the runs or more have diverged. Returns ``(grid, median,
    q25, q75, stopped)`` (the quartiles may be infinite; ``stopped``: the median ended
    because of diverged runs) or None when nothing can be drawn.

    Examples
    --------
    >>> x = np.array([0.0, 10.0])
    >>> g, med, q25, q75, stopped = band([(x, np.array([1.0, 1e-2])),
    ...                                   (x, np.array([1.0, 1e-4]))], log=True, points=3)
    >>> g.tolist(), np.round(np.log10(med), 6).tolist(), stopped
    ([0.0, 5.0, 10.0], [0.0, -1.5, -3.0], False)
    >>> short = (np.array([0.0, 4.0]), np.array([1.0, 1e-1]), True)  # diverged after x = 4
    >>> g, med, q25, q75, stopped = band([(x, np.array([1.0, 1e-2])), short], log=True,
    ...                                  points=6)
    >>> g.tolist(), stopped  # half the runs diverged past x = 4: the median ends there
    ([0.0, 2.0, 4.0], True)
    """
    worst = math.inf if log else -math.inf
    runs = []
    for c in curves:
        x, y = np.asarray(c[0], float), np.asarray(c[1], float)
        diverged = bool(c[2]) if len(c) > 2 else False
        yy = np.log10(np.where(y > 0, y, np.nan)) if log else y
        ok = np.isfinite(yy) & np.isfinite(x)
        if ok.any() or diverged:
            runs.append((x[ok], yy[ok], diverged))
    if not runs:
        return None
    ends = [float(x[-1]) for x, _, d in runs if not d and x.size]
    end = min(ends) if ends else max((float(x[-1]) for x, _, _ in runs if x.size),
                                     default=0.0)
    if end <= 0:
        return None
    grid = np.linspace(0.0, end, points)
    ys = np.full((len(runs), points), worst)
    for k, (x, yy, diverged) in enumerate(runs):
        if not x.size:
            continue
        ys[k] = np.interp(grid, x, yy)
        if diverged:
            ys[k, grid > x[-1]] = worst
    q25, med, q75 = _quantile_curves(ys, [25, 50, 75])
    finite = np.isfinite(med)
    stopped = not finite.all()
    keep = np.cumprod(finite).astype(bool)  # up to the first infinite median
    grid, med, q25, q75 = grid[keep], med[keep], q25[keep], q75[keep]
    if grid.size < 2:
        return None
    if log:
        with np.errstate(over="ignore"):
            q25, med, q75 = 10 ** q25, 10 ** med, 10 ** q75
    return grid, med, q25, q75, stopped


def _legend(method: str, n: int, diverged: int, drawn: bool) -> str:
    if not diverged:
        return f"{method} ({n})"
    if diverged == n:
        return f"{method} ({n}; all diverged" + ("" if drawn else ", nothing to draw") + ")"
    return f"{method} ({n}; {diverged} diverged)"


def write_figures(out: Path, rows: list[dict], target: dict) -> list[tuple[str, str]]:
    """One figure per x axis (bits, rounds, modeled seconds when modeled): a panel per
    (compressor, problem, graph), one line per method (median over its trials, a diverged
    trial counting as the worst value after its last record: :func:`band`) with its IQR
    band; the legend gives the trials drawn and how many diverged, and a method whose
    trials all diverged before anything could be drawn still has its legend entry.
    Returns ``(path relative to out, caption)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ycol = target["column"]
    log = not target["at_least"]
    ylabel = "relative error" if log else "mean agent test accuracy"
    ok_rows = [r for r in rows if r["status"] != "failed"]
    panels = list(dict.fromkeys((r["compressor"], r["problem"], r["graph"]) for r in ok_rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    if not panels:
        return []
    (out / "figures").mkdir(exist_ok=True)
    made = []
    for xname, (xcol, xlabel) in X_AXES.items():
        if xname == "modeled_seconds" and not any(
                (r.get("modeled_seconds_to_target") or 0) > 0 for r in ok_rows):
            continue
        cols = min(3, len(panels))
        nrows = math.ceil(len(panels) / cols)
        fig = Figure(figsize=(4.4 * cols, 3.4 * nrows), dpi=100)
        FigureCanvasAgg(fig)
        for k, (comp, prob, graph) in enumerate(panels):
            ax = fig.add_subplot(nrows, cols, k + 1)
            drawn = [target["value"]]  # finite values drawn: the limits of a log axis
            for j, m in enumerate(methods):
                sel = [r for r in ok_rows if (r["method"], r["compressor"], r["problem"],
                                              r["graph"]) == (m, comp, prob, graph)]
                if not sel:
                    continue
                curves = _curves(out, sel, xcol, ycol)
                n_div = sum(d for _, _, d in curves)
                b = band(curves, log=log) if curves else None
                color = f"C{j % 10}"
                label = _legend(m, len(curves), n_div, b is not None)
                if b is None:
                    if curves:  # e.g. every trial diverged before its second record
                        ax.plot([], [], color=color, marker="x", linestyle="none",
                                label=label)
                    continue
                grid, med, q25, q75, stopped = b
                ax.plot(grid, med, color=color, label=label)
                if stopped:  # the median ends here: half the trials have diverged
                    ax.plot(grid[-1:], med[-1:], color=color, marker="x", linestyle="none")
                for v in (med, q25, q75):
                    drawn += v[np.isfinite(v)].tolist()
                far = 1e30 if log else 0.0  # an infinite quartile: the band leaves the axes
                ax.fill_between(grid, np.where(np.isfinite(q25), q25, far),
                                np.where(np.isfinite(q75), q75, far), color=color,
                                alpha=0.2, linewidth=0)
            if log:
                ax.set_yscale("log")
                pos = [v for v in drawn if v > 0]
                # a diverging run does not squash the rest: at most 1e2 shown
                ax.set_ylim(min(pos) / 2, min(max(pos), 1e2) * 2)
            ax.axhline(target["value"], color="0.5", linestyle=":", linewidth=1)
            title = comp if (prob, graph) == ("default", "default") else \
                f"{comp}; {prob}; {graph}"
            ax.set_title(title, fontsize=8)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        rel = f"figures/{ycol}_vs_{xname}.png"
        from ..output import atomic_output

        with atomic_output(out / rel) as f:
            fig.savefig(f, format="png")
        worst = "infinite error" if log else "accuracy -inf"
        made.append((rel, f"{ylabel} against {xlabel}: per method the median over all its "
                          "trials (line) and the interquartile range (band), up to the end "
                          f"of the shortest run that did not diverge; a diverged trial counts "
                          f"as {worst} after its last record, so a line ends (x) where half "
                          "its trials or more have diverged; dotted: the target; (n; k "
                          "diverged) = trials drawn, how many of them diverged"))
    return made


# ----------------------------------------------------------------------------- report


def _waves(asked: int, rows: list[dict]) -> str:
    """", waves of W" when the method's tunings ran in waves; when some fell back to one
    candidate at a time (a lossy network), how many and why."""
    if asked <= 1:
        return ""
    tuned = [r for r in rows if r.get("tune_wave") is not None]
    single = [r for r in tuned if r["tune_wave"] == 1]
    if not single:
        return f", waves of {asked}"
    why = single[0].get("tune_fallback") or "the batch engine could not run it"
    return (f", waves of {asked} asked, but {len(single)} of {len(tuned)} tuning(s) searched "
            f"one candidate at a time ({why})")


def _value(v) -> str:
    return json.dumps(v) if isinstance(v, str) else str(v)


def _keys(over: dict, skip=()) -> str:
    return ", ".join(f"{k} = {_value(v)}" for k, v in over.items() if k not in skip)


def _setting_lines(study, rows: list[dict]) -> list[str]:
    """The base setting (problem, graph, network and compute when given), the axes' entries
    with the keys that tell them apart, and what a trial's seed varies."""
    base = getattr(study, "base", None) or {}
    axes = getattr(study, "axes", None) or {}
    first = study.cells[0].config if study.cells else {}
    lines = []
    for section, name in (("problem", "Problem"), ("graph", "Graph")):
        given = base.get(section, {})
        kind = given.get("kind", first.get(section, {}).get("kind"))
        rest = _keys(given, skip=("kind", "seed" if section == "problem" else ""))
        lines.append(f"- {name}: `{kind}`" + (f", {rest}" if rest else ""))
    for section, name in (("network", "Network"), ("compute", "Compute")):
        if base.get(section):
            lines.append(f"- {name}: {_keys(base[section])}")
    for axis, name in (("problem", "Problems"), ("graph", "Graphs")):
        entries = axes.get(axis, [])
        if any(over for _, over in entries):
            lines.append(f"- {name} (axis): " + "; ".join(
                f"**{label}**: {_keys(over) or 'the base'}" for label, over in entries))
    comps = axes.get("compressor", [])
    if any(label != spec for label, spec in comps):
        lines.append("- Compressors (axis): " + "; ".join(
            f"**{label}**: `{spec}`" if label != spec else f"`{spec}`" for label, spec in comps))
    varies = []
    data_seed = getattr(study, "data_seed", None)
    if data_seed is None:
        varies.append("the data ([problem] seed)")
    if any(c.tune for c in study.cells):
        varies.append("the tuner's seed (tuned methods)")
    if study.init == "random":
        varies.append("the initial point (standard normal X(0))")
    if any("{seed}" in spec for _, spec in comps):
        varies.append("`{seed}` in the compressor specs")
    init = ("random from the seed" if study.init == "random" else
            "the base config's [init]" if (base.get("init") or {}).get("x0") is not None
            else "zeros")
    sentence = f"Trials: seeds {study.seeds}; a trial's seed sets " + (
        ", ".join(varies) if varies else "nothing that changes the run (every trial is the "
        "same run)")
    if data_seed is not None:
        sentence += f"; every trial has the same data ([problem] seed = {data_seed}: data_seed)"
    sentence += f"; initial point: {init}."
    return lines + ["", sentence]


def _tuning_misses(rows: list[dict]) -> str:
    """", N of M tunings found no robust setting (...)" for a tuned method's rows."""
    tuned = [r for r in rows if r.get("tune_found") is not None]
    miss = [r for r in tuned if r["tune_found"] is False]
    if not miss:
        return ""
    return (f"; {len(miss)} of {len(tuned)} tunings found no robust setting: those trials ran "
            "this config untuned (see the notes under the tables)")


def write_report(out: Path, study, rows: list[dict], *, seconds: float, jobs: int,
                 figures: list[tuple[str, str]]) -> tuple[Path, Path]:
    """``report.md`` and a self-contained ``report.html`` (figures inlined) in the look of
    ``stflow reproduce``'s report (:mod:`stflow.experiments.report`), with a contents
    table: the setting (base problem, graph, network, the axes, what a seed varies), the
    tables, the figures, the diverged cells (round and cause) and the failed cells."""
    from .. import __version__
    from ..experiments import report as rep

    summary = summary_rows(rows, study.quantities, study.target)
    t = study.target
    goal = f"{t['column']} {'>=' if t['at_least'] else '<='} {t['value']:g}"
    failed = [r for r in rows if r["status"] == "failed"]
    diverged = [r for r in rows if r["status"] == "diverged"]
    sections = ["Setting", "Results", "Figures", "Diverged cells", "Failed cells"]
    lines = [f"# {study.title}", "",
             f"stflow {__version__} study `{study.path}`: {len(rows)} cells "
             f"({len(study.methods)} methods, seeds {study.seeds}), target {goal}, "
             f"{jobs} job(s), {seconds:.1f} s wall for this invocation. Rows: `results.csv`.",
             "", "## Contents", "", "| section | what |", "|---|---|"]
    what = {"Setting": "problem, graph, network, axes, methods, tuning, trials",
            "Results": "median (IQR) over trials, reached count and how the runs ended, per "
                       "method and setting",
            "Figures": f"{len(figures)} overlay figure(s) with spread bands",
            "Diverged cells": f"{len(diverged)} diverged cell(s)",
            "Failed cells": f"{len(failed)} failed cell(s)"}
    for s in sections:
        lines.append(f"| [{s}](#{rep.heading_anchor(s)}) | {what[s]} |")
    setting = _setting_lines(study, rows)
    lines += ["", "## Setting", ""] + setting[:-2]
    seen = set()
    for c in study.cells:
        if c.method in seen:
            continue
        seen.add(c.method)
        m = c.config["method"]
        mrows = [r for r in rows if r["method"] == c.method]
        how = (f"tuned, budget {c.tune['budget']}, span {c.tune['span']:g}"
               + _waves(c.tune.get("wave", 1), mrows) + _tuning_misses(mrows)
               if c.tune else
               "fixed settings " + ", ".join(f"{k} = {v}" for k, v in m.items() if k != "kind"))
        from ..methods import method_class

        # a scheme discretizes the flows; the other methods run their own update under any
        scheme = (f", scheme `{c.scheme}`" if getattr(method_class(m["kind"]), "flow_gains",
                                                    False) else "")
        lines.append(f"- **{c.method}**: `{m['kind']}`{scheme}, step "
                     f"{c.config['solver']['step']:g}, {how}"
                     + (f" ({c.note})" if getattr(c, "note", "") else ""))
    worst = "infinite error" if not t["at_least"] else "accuracy -inf"
    lines += ["", setting[-1] + " Quantities to the target are read at "
              "the first recorded row from which the target holds to the end; their medians "
              "and IQR are over the trials that reached it. The final "
              + ("accuracy" if t["at_least"] else "error") + f" is over every trial that ran, "
              f"a diverged trial counting as {worst} (its last finite record is not its "
              "result): \"diverged\" when half the trials or more diverged.", "",
              "[Back to the contents](#contents)", "",
              "## Results", "", summary_markdown(summary, study.quantities, t),
              "[Back to the contents](#contents)", "", "## Figures", ""]
    for n, (rel, caption) in enumerate(figures, 1):
        lines += [f"![Figure {n}]({rel})", f"*Figure {n}. {caption}*", ""]
    lines += ["[Back to the contents](#contents)", "", "## Diverged cells", ""]
    if diverged:
        lines += ["Runs the engine stopped because the state became non-finite or grew past "
                  "its limit; they count as not reached, and their records up to then are "
                  "kept in their folders.", "", "| cell | round | cause |", "|---|---|---|"]
        for r in diverged:
            cause = str(r.get("reason") or "").removeprefix("diverged: ") or "-"
            lines.append(f"| `{r['id']}` | {r['rounds'] if r['rounds'] is not None else '-'} "
                         f"| {cause.replace('|', '/')} |")
    else:
        lines.append("None.")
    lines += ["", "[Back to the contents](#contents)", "", "## Failed cells", ""]
    if failed:
        lines += ["| cell | reason |", "|---|---|"]
        for r in failed:
            lines.append(f"| `{r['id']}` | {str(r['reason']).replace('|', '/')} |")
    else:
        lines.append("None.")
    lines += ["", "[Back to the contents](#contents)", ""]
    md = "\n".join(lines)

    def data_uri(rel: str) -> str:
        return "data:image/png;base64," + base64.b64encode((out / rel).read_bytes()).decode()

    body = rep.markdown_to_html(md, image_src=data_uri)
    style = getattr(rep, "_STYLE", "")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{study.title}</title><style>{style}</style></head><body>\n{body}\n"
            "</body></html>\n")
    _atomic_text(out / "report.md", md + "\n")
    _atomic_text(out / "report.html", page)
    from ..output import write_json

    write_json(out / "tables.json", summary)  # an infinite quantile (diverged) is null
    return out / "report.md", out / "report.html"
