"""``stflow plot``: overlay the recorded metrics of existing runs on one figure.

A ``RUN_DIR`` is any folder stflow wrote: a run folder (``stflow run``, a study's
``cells/<id>/``, a reproduce experiment's ``runs/<label>/``) holding ``metrics.csv``, or a
folder above such folders (a whole study or reproduce output): every ``metrics.csv`` under it
is drawn, labelled by its path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = ["X_COLUMNS", "Y_COLUMNS", "find_runs", "plot_runs"]

#: ``--x`` -> (metrics.csv column, axis label).
X_COLUMNS = {
    "bits": ("bits_per_agent", "bits per agent"),
    "rounds": ("step", "rounds"),
    "time": ("modeled_seconds", "modeled seconds ([network], [compute])"),
    "samples": ("samples_per_agent", "samples per agent"),
}
#: ``--y`` -> (metrics.csv column, axis label, log scale).
Y_COLUMNS = {
    "error": ("relative_error", "relative error", True),
    "accuracy": ("mean_agent_test_accuracy", "mean agent test accuracy", False),
    "consensus": ("consensus_error", "consensus error", True),
}


def find_runs(paths) -> list[Path]:
    """The ``metrics.csv`` files of ``paths`` (a file, a run folder, or a folder above
    run folders), sorted within each path; an error names a path with none.

    Examples
    --------
    >>> find_runs(["/nonexistent/run"])
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: RUN_DIR '/nonexistent/run' does not exist: give a folder written by stflow run, tune, study or reproduce
    """
    found: list[Path] = []
    for text in paths:
        p = Path(text)
        if not p.exists():
            raise InputError(f"RUN_DIR {text!r} does not exist: give a folder written by "
                             "stflow run, tune, study or reproduce")
        if p.is_file():
            if p.name != "metrics.csv":
                raise InputError(f"RUN_DIR {text!r} is a file, not a run folder: give the "
                                 "folder holding metrics.csv")
            found.append(p)
            continue
        if (p / "metrics.csv").exists():
            found.append(p / "metrics.csv")
            continue
        under = sorted(p.rglob("metrics.csv"))
        if not under:
            hint = (": this is a tune folder; run the winner first with `stflow run "
                    f"{text}/tuned.toml --out RUN` and plot RUN"
                    if (p / "tuning.json").exists() else "")
            raise InputError(f"RUN_DIR {text!r} holds no metrics.csv (nor any folder below "
                             f"it){hint or ': give a folder written by stflow run or study'}")
        found.extend(under)
    return found


def plot_runs(paths, out, *, x: str = "bits", y: str = "error", title: str = "") -> list[str]:
    """Draw ``y`` against ``x`` for every run under ``paths`` into the PNG ``out``.

    Returns the labels drawn. A run whose metrics lack a needed column is an
    :class:`~stflow.errors.InputError` naming the file and the column (``--y accuracy`` on a
    least-squares run, ``--x time`` on a run without a ``[network]`` model).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .output import read_metrics_csv

    if x not in X_COLUMNS:
        raise InputError(f"--x must be one of {', '.join(X_COLUMNS)} (got {x!r}): e.g. --x bits")
    if y not in Y_COLUMNS:
        raise InputError(f"--y must be one of {', '.join(Y_COLUMNS)} (got {y!r}): e.g. --y error")
    files = find_runs(paths)
    xcol, xlabel = X_COLUMNS[x]
    ycol, ylabel, log = Y_COLUMNS[y]
    out = Path(out)
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise InputError(f"--out {str(out)!r} must end in .png, .pdf or .svg: e.g. --out fig.png")
    if out.exists() and out.is_dir():
        raise InputError(f"--out {str(out)!r} is a folder: give a file name, e.g. fig.png")
    curves = []
    for f in files:
        rec = read_metrics_csv(f)
        for col, flag in ((xcol, "--x " + x), (ycol, "--y " + y)):
            if col not in rec:
                raise InputError(f"{str(f)!r} has no column {col} (needed by {flag}): its "
                                 f"columns are {', '.join(rec)}; pick another {flag.split()[0]}")
        xs, ys = np.asarray(rec[xcol], float), np.asarray(rec[ycol], float)
        if x == "time" and not np.any(xs > 0):
            raise InputError(f"{str(f)!r} has modeled_seconds = 0 throughout (its config has no "
                             "[network] or [compute] model): use --x bits or --x rounds")
        curves.append((_label(f, files), xs, ys))
    fig = Figure(figsize=(7.0, 4.4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, xs, ys in curves:
        if log:
            ax.semilogy(xs, np.where(ys > 0, ys, np.nan), label=label)
        else:
            ax.plot(xs, ys, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if len(curves) <= 20:
        ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    from .output import atomic_output

    with atomic_output(out) as f:
        fig.savefig(f, format=out.suffix.lstrip(".").lower() or "png")
    return [c[0] for c in curves]


def _label(f: Path, files) -> str:
    """The run folder's path, shortened by the common prefix of all the runs drawn."""
    dirs = [str(p.parent.resolve()) for p in files]
    if len(dirs) == 1:
        return f.parent.name or str(f.parent)
    common = os.path.commonpath(dirs)
    rel = os.path.relpath(str(f.parent.resolve()), common)
    return f.parent.name if rel == "." else rel
