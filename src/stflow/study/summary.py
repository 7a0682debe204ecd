r"""A study's outputs from its rows: ``results.csv`` / ``results.json`` (one row per cell),
the tables of median, interquartile range and reached count per method and setting,
overlay figures with spread bands, and ``report.md`` / ``report.html``.

Spread over trials: for a quantity with values :math:`v_1 \le \dots \le v_k` of the trials
that reached the target, the median and the quartiles are numpy's linear-interpolation
percentiles (``np.percentile(v, [25, 50, 75])``) and the IQR is
:math:`q_{75} - q_{25}`; trials that did not reach the target are not in :math:`v` and are
counted by ``reached = k / n``.
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


def spread(values) -> dict:
    """Median, quartiles and IQR of the finite ``values`` (None when there are none).

    Examples
    --------
    >>> spread([4.0, 1.0, 3.0, 2.0])
    {'median': 2.5, 'q25': 1.75, 'q75': 3.25, 'iqr': 1.5, 'n': 4}
    >>> spread([None, 5.0])["median"], spread([])["median"]
    (5.0, None)
    """
    v = np.array([float(x) for x in values if x is not None and math.isfinite(float(x))])
    if v.size == 0:
        return {"median": None, "q25": None, "q75": None, "iqr": None, "n": 0}
    q25, med, q75 = (float(x) for x in np.percentile(v, [25, 50, 75]))
    return {"median": med, "q25": q25, "q75": q75, "iqr": q75 - q25, "n": int(v.size)}


def summary_rows(rows: list[dict], quantities) -> list[dict]:
    """One entry per method and setting (compressor, problem, graph), in the rows' order:
    ``trials``, ``reached`` and ``failed`` counts and the :func:`spread` of each quantity
    over the trials that reached the target (``final``: over every trial that ran)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in _GROUP), []).append(r)
    out = []
    for key, rs in groups.items():
        entry = dict(zip(_GROUP, key, strict=True))
        entry["trials"] = len(rs)
        entry["reached"] = sum(bool(r["reached"]) for r in rs)
        entry["failed"] = sum(r["status"] == "failed" for r in rs)
        for q in quantities:
            col = QUANTITIES[q]
            take = rs if q == "final" else [r for r in rs if r["reached"]]
            entry[q] = spread([r.get(col) for r in take])
        out.append(entry)
    return out


def _fmt(x) -> str:
    if x is None:
        return "-"
    if x == 0 or 1e-3 <= abs(x) < 1e5:
        return f"{x:.4g}"
    return f"{x:.3e}"


def summary_markdown(summary: list[dict], quantities, target: dict) -> str:
    """The tables as markdown: one table per (problem, graph), one row per method and
    compressor: reached k / n, then ``median (IQR)`` of each quantity."""
    lines = []
    settings = list(dict.fromkeys((s["problem"], s["graph"]) for s in summary))
    names = {"bits": "bits to target", "rounds": "rounds to target",
             "samples": "samples to target", "modeled_seconds": "modeled s to target",
             "wall_seconds": "wall s to target",
             "final": "final " + ("accuracy" if target["at_least"] else "error")}
    for problem, graph in settings:
        if len(settings) > 1 or problem != "default" or graph != "default":
            lines += [f"**problem {problem}, graph {graph}**", ""]
        head = ["method", "compressor", "reached"] + [f"{names[q]}: median (IQR)"
                                                      for q in quantities]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for s in summary:
            if (s["problem"], s["graph"]) != (problem, graph):
                continue
            cells = [s["method"], f"`{s['compressor']}`",
                     f"{s['reached']}/{s['trials']}" + (f" ({s['failed']} failed)"
                                                         if s["failed"] else "")]
            for q in quantities:
                sp = s[q]
                cells.append("-" if sp["median"] is None else
                             f"{_fmt(sp['median'])} ({_fmt(sp['iqr'])})")
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
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
    """(x, y) of each finished cell that recorded both columns."""
    from ..output import read_metrics_csv

    got = []
    for r in rows:
        path = out / r["run_dir"] / "metrics.csv"
        if r["status"] == "failed" or not path.exists():
            continue
        rec = read_metrics_csv(path)
        if xcol in rec and ycol in rec:
            got.append((np.asarray(rec[xcol], float), np.asarray(rec[ycol], float)))
    return got


def band(curves, *, log: bool, points: int = 120):
    """Median and quartile curves of several ``(x, y)`` runs on a common x grid, interpolated
    in ``log10 y`` when ``log``; a run counts up to its last record (a diverged run's last
    finite one), and the curves stop where fewer than half the runs still have data.

    Examples
    --------
    >>> x = np.array([0.0, 10.0])
    >>> g, med, q25, q75 = band([(x, np.array([1.0, 1e-2])), (x, np.array([1.0, 1e-4]))],
    ...                         log=True, points=3)
    >>> g.tolist(), np.round(np.log10(med), 6).tolist()
    ([0.0, 5.0, 10.0], [0.0, -1.5, -3.0])
    """
    runs = []
    for x, y in curves:
        yy = np.log10(np.where(y > 0, y, np.nan)) if log else np.asarray(y, float)
        ok = np.isfinite(yy) & np.isfinite(x)
        if ok.sum() >= 2:
            runs.append((x[ok], yy[ok]))
    if not runs:
        return None
    end = max(float(x[-1]) for x, _ in runs)
    if end <= 0:
        return None
    grid = np.linspace(0.0, end, points)
    ys = np.full((len(runs), points), np.nan)
    for k, (x, yy) in enumerate(runs):
        inside = grid <= x[-1]
        ys[k, inside] = np.interp(grid[inside], x, yy)
    keep = np.isfinite(ys).sum(axis=0) * 2 >= len(runs)
    grid, ys = grid[keep], ys[:, keep]
    if grid.size < 2:
        return None
    q25, med, q75 = np.nanpercentile(ys, [25, 50, 75], axis=0)
    if log:
        q25, med, q75 = 10 ** q25, 10 ** med, 10 ** q75
    return grid, med, q25, q75


def write_figures(out: Path, rows: list[dict], target: dict) -> list[tuple[str, str]]:
    """One figure per x axis (bits, rounds, modeled seconds when modeled): a panel per
    (compressor, problem, graph), one line per method (median over trials) with its IQR
    band. Returns ``(path relative to out, caption)``."""
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
            for j, m in enumerate(methods):
                sel = [r for r in ok_rows if (r["method"], r["compressor"], r["problem"],
                                              r["graph"]) == (m, comp, prob, graph)]
                curves = _curves(out, sel, xcol, ycol)
                b = band(curves, log=log) if curves else None
                if b is None:
                    continue
                grid, med, q25, q75 = b
                color = f"C{j % 10}"
                ax.plot(grid, med, color=color, label=f"{m} ({len(curves)})")
                ax.fill_between(grid, q25, q75, color=color, alpha=0.2, linewidth=0)
            if log:
                ax.set_yscale("log")
                lo, hi = ax.get_ylim()
                ax.set_ylim(lo, min(hi, 1e2))  # a diverging run does not squash the rest
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
        made.append((rel, f"{ylabel} against {xlabel}: per method the median over trials "
                          "(line) and the interquartile range (band); dotted: the target; "
                          "(n) = trials drawn"))
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


def write_report(out: Path, study, rows: list[dict], *, seconds: float, jobs: int,
                 figures: list[tuple[str, str]]) -> tuple[Path, Path]:
    """``report.md`` and a self-contained ``report.html`` (figures inlined) in the look of
    ``stflow reproduce``'s report (:mod:`stflow.experiments.report`), with a contents
    table."""
    from .. import __version__
    from ..experiments import report as rep

    summary = summary_rows(rows, study.quantities)
    t = study.target
    goal = f"{t['column']} {'>=' if t['at_least'] else '<='} {t['value']:g}"
    failed = [r for r in rows if r["status"] == "failed"]
    sections = ["Setting", "Results", "Figures", "Failed cells"]
    lines = [f"# {study.title}", "",
             f"stflow {__version__} study `{study.path}`: {len(rows)} cells "
             f"({len(study.methods)} methods, seeds {study.seeds}), target {goal}, "
             f"{jobs} job(s), {seconds:.1f} s wall for this invocation. Rows: `results.csv`.",
             "", "## Contents", "", "| section | what |", "|---|---|"]
    what = {"Setting": "methods, axes and tuning",
            "Results": "median (IQR) over trials and reached count per method and setting",
            "Figures": f"{len(figures)} overlay figure(s) with spread bands",
            "Failed cells": f"{len(failed)} failed cell(s)"}
    for s in sections:
        lines.append(f"| [{s}](#{rep.heading_anchor(s)}) | {what[s]} |")
    lines += ["", "## Setting", ""]
    seen = set()
    for c in study.cells:
        if c.method in seen:
            continue
        seen.add(c.method)
        m = c.config["method"]
        how = (f"tuned, budget {c.tune['budget']}, span {c.tune['span']:g}"
               + _waves(c.tune.get("wave", 1), [r for r in rows if r["method"] == c.method])
               if c.tune else
               "fixed settings " + ", ".join(f"{k} = {v}" for k, v in m.items() if k != "kind"))
        lines.append(f"- **{c.method}**: `{m['kind']}`, scheme `{c.scheme}`, step "
                     f"{c.config['solver']['step']:g}, {how}"
                     + (f" ({c.note})" if getattr(c, "note", "") else ""))
    lines += ["", f"Trials: seeds {study.seeds} (data seed, tuner seed, "
              f"initial point: {study.init}). Quantities to the target are read at the first "
              "recorded row from which the target holds to the end; medians and IQR are over "
              "the trials that reached it.", "", "[Back to the contents](#contents)", "",
              "## Results", "", summary_markdown(summary, study.quantities, t),
              "[Back to the contents](#contents)", "", "## Figures", ""]
    for n, (rel, caption) in enumerate(figures, 1):
        lines += [f"![Figure {n}]({rel})", f"*Figure {n}. {caption}*", ""]
    lines += ["[Back to the contents](#contents)", "", "## Failed cells", ""]
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
    _atomic_text(out / "tables.json", json.dumps(summary, indent=2) + "\n")
    return out / "report.md", out / "report.html"
