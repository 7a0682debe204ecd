"""Figure helpers of the report: distinct curve styles, legends outside the data, identical
curves drawn once, and an audit of every saved figure (``figures.json`` in each experiment's
folder, checked by tests/test_report.py).

The audit records, per axes, the scales, the number of curves and data points, whether a
legend explains the curves and how many data points it covers, and whether tick labels
overlap; :func:`problems` turns it into a list of what a reader would trip over.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["style", "legend_outside", "merge_identical", "audit_figure", "problems",
           "write_audit", "AUDIT_FILE"]

#: The audit of the figures of one experiment folder.
AUDIT_FILE = "figures.json"

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")
_DASHES = ("-", "--", ":", "-.")


def style(i: int, n: int | None = None) -> dict:
    """Curve ``i``'s colour and line style: ten well-separated colours, then the same ten
    dashed, dotted and dash-dotted, so 40 curves never share a (colour, dash) pair.

    Examples
    --------
    >>> style(0)["color"] != style(1)["color"], style(10)["ls"]
    (True, '--')
    """
    return {"color": _COLOURS[i % 10], "ls": _DASHES[(i // 10) % 4], "lw": 1.4}


def legend_outside(ax, *, fontsize: float = 7, ncol: int = 1, title: str | None = None,
                   below: bool = False):
    """The legend of ``ax`` to the right of (or ``below``) the axes, never over the data."""
    if below:
        return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=fontsize,
                         ncol=ncol, title=title, title_fontsize=fontsize, frameon=False)
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                     fontsize=fontsize, ncol=ncol, title=title, title_fontsize=fontsize,
                     frameon=False)


def merge_identical(curves: list[tuple[str, np.ndarray, np.ndarray]], *,
                    log_tol: float = 0.005) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Curves ``(label, x, y)`` on the same x whose ``log10 y`` differ by at most
    ``log_tol`` everywhere (0.005: 1.2 %, less than a line width on a log axis) drawn once,
    labelled ``"a ≈ b ≈ c"``; drawn one by one they would hide each other.

    Examples
    --------
    >>> x = np.arange(1.0, 4.0)
    >>> [c[0] for c in merge_identical([("a", x, x), ("b", x, 2 * x), ("c", x, 1.001 * x)])]
    ['a ≈ c', 'b']
    """
    def same(c, x, y):
        if c[1].shape != x.shape or not np.array_equal(c[1], x, equal_nan=True):
            return False
        a, b = c[2], y
        fa, fb = np.isfinite(a) & (a > 0), np.isfinite(b) & (b > 0)
        if not np.array_equal(fa, fb):
            return False
        return bool(np.all(np.abs(np.log10(a[fa]) - np.log10(b[fb])) <= log_tol))

    out: list[list] = []
    for label, x, y in curves:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        for c in out:
            if same(c, x, y):
                c[0].append(label)
                break
        else:
            out.append([[label], x, y])
    return [(" ≈ ".join(labels), x, y) for labels, x, y in out]


def _labelled(artists) -> list:
    return [a for a in artists if a.get_label() and not str(a.get_label()).startswith("_")]


def _points(ax) -> np.ndarray:
    """Display coordinates of every finite data point of ``ax``'s lines and scatters."""
    pts = []
    for line in ax.get_lines():
        xy = np.column_stack([np.asarray(line.get_xdata(), dtype=float),
                              np.asarray(line.get_ydata(), dtype=float)])
        if line.get_linestyle() in ("None", "") and line.get_marker() in ("None", "", None):
            continue
        if len(xy) == 2 and str(line.get_label()).startswith("_") and (
                xy[0, 1] == xy[1, 1] or xy[0, 0] == xy[1, 0]):
            continue  # axhline / axvline: a guide, not data
        xy = xy[np.all(np.isfinite(xy), axis=1)]
        if len(xy):
            disp = ax.transData.transform(xy)
            if len(disp) > 1 and line.get_linestyle() not in ("None", ""):
                # points along each drawn segment too: a legend over a line covers data
                f = np.linspace(0.0, 1.0, 8)[:, None, None]
                disp = (disp[:-1][None] * (1 - f) + disp[1:][None] * f).reshape(-1, 2)
            pts.append(disp)
    for coll in ax.collections:
        off = np.asarray(coll.get_offsets(), dtype=float)
        if off.ndim == 2 and len(off):
            off = off[np.all(np.isfinite(off), axis=1)]
            if len(off):
                pts.append(ax.transData.transform(off))
    return np.concatenate(pts) if pts else np.zeros((0, 2))


def _ticks_overlap(fig, ax, renderer) -> bool:
    for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        boxes = [t.get_window_extent(renderer) for t in labels if t.get_text() and
                 t.get_visible()]
        boxes.sort(key=lambda b: (b.x0, b.y0))
        for a, b in zip(boxes, boxes[1:], strict=False):
            if a.overlaps(b) and a.width > 0 and b.width > 0:
                return True
    return False


def audit_figure(fig) -> dict:
    """What a reader sees in ``fig`` (see the module docstring), JSON-ready."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    fig_legends = [lg for lg in fig.legends]
    axes = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>" or not ax.get_visible() or not ax.axison:
            continue
        lines = [ln for ln in ax.get_lines()
                 if np.any(np.isfinite(np.asarray(ln.get_ydata(), dtype=float)))]
        curves = _labelled(lines) + _labelled(ax.collections)
        pts = _points(ax)
        xs = {round(float(v), 12) for ln in lines if not ln.get_label().startswith("_")
              for v in np.asarray(ln.get_xdata(), dtype=float) if np.isfinite(v)}
        legend = ax.get_legend()
        covered = 0
        inside = False
        if legend is not None:
            box = legend.get_window_extent(renderer)
            inside = ax.get_window_extent(renderer).overlaps(box)
            if len(pts):
                covered = int(np.sum((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1)
                                     & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)))
        axes.append({
            "title": ax.get_title(),
            "xscale": ax.get_xscale(), "yscale": ax.get_yscale(),
            "curves": len(curves),
            "labelled_lines": len(_labelled(lines)),
            "images": len(ax.images),
            "points": int(len(pts)),
            "distinct_x": len(xs),
            "legend": legend is not None or bool(fig_legends),
            "legend_inside_axes": bool(inside),
            "points_under_legend": covered,
            "tick_labels_overlap": _ticks_overlap(fig, ax, renderer),
            "styles": sorted({f"{ln.get_color()} {ln.get_linestyle()}"
                              for ln in _labelled(lines)}),
        })
    return {"axes": axes, "figure_legends": len(fig_legends)}


def problems(audit: dict) -> list[str]:
    """The reader's problems in one figure's audit: empty panels, a panel of one x value,
    curves without a legend, a legend over data points, overlapping tick labels, two curves
    of one panel in the same colour and dash (an empty list when there is none)."""
    out = []
    for i, a in enumerate(audit["axes"]):
        where = f"panel {i + 1} ({a['title'] or 'untitled'})"
        if a["points"] == 0 and a["images"] == 0:
            out.append(f"{where}: empty")
            continue
        if a["images"] == 0 and a["curves"] and a["distinct_x"] == 1:
            out.append(f"{where}: one x value")
        if a["curves"] >= 2 and not a["legend"]:
            out.append(f"{where}: {a['curves']} curves, no legend")
        if a["points_under_legend"]:
            out.append(f"{where}: legend covers {a['points_under_legend']} data points")
        if a["tick_labels_overlap"]:
            out.append(f"{where}: tick labels overlap")
        if len(a["styles"]) < a["labelled_lines"]:
            out.append(f"{where}: {a['labelled_lines']} curves in {len(a['styles'])} styles")
    return out


def write_audit(out_dir: Path, name: str, audit: dict) -> None:
    """Add ``name``'s audit to ``out_dir/figures.json``."""
    path = Path(out_dir) / AUDIT_FILE
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = audit
    path.write_text(json.dumps(data, indent=1) + "\n")
