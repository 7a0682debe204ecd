"""Writing a run's results: ``metrics.csv``, ``summary.json`` and ``convergence.png``.

Files are written to a temporary name and renamed into place, so a folder never holds a
half-written file passed off as a result.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .metrics import METRIC_COLUMNS

__all__ = [
    "atomic_output",
    "OutputWriteError",
    "lock_folder",
    "release_folders",
    "write_metrics_csv",
    "read_metrics_csv",
    "write_json",
    "plot_convergence",
    "write_run_outputs",
    "FINAL_STATE_FILE",
    "MODEL_FILE",
    "to_target",
    "write_final_state",
]


class OutputWriteError(OSError):
    """A result file could not be written (a full disk, a quota, a vanished folder):
    ``strerror`` reads ``cannot write 'PATH': REASON``, ``path`` is the file."""

    def __init__(self, errno_, path, reason):
        super().__init__(errno_, f"cannot write {str(path)!r}: {reason}")
        self.path = str(path)


@contextlib.contextmanager
def atomic_output(path):
    """A binary file to write ``path`` through: a new temporary file beside it, created
    exclusively under a random name (``tempfile.mkstemp``: ``O_CREAT | O_EXCL``, so a file or
    symbolic link planted under a predictable name is never followed or overwritten), renamed
    onto ``path`` when the block ends without error and removed otherwise (a full disk or
    Ctrl-C leaves no half-written result). An ``OSError`` names the file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_output(p) as f:
    ...     _ = f.write(b"done")
    >>> p.read_bytes(), sorted(q.name for q in p.parent.iterdir())
    (b'done', ['a.txt'])
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputWriteError(exc.errno, path, exc.strerror or exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputWriteError(exc.errno, path, exc.strerror or exc) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


#: Folders this process holds locked (file descriptors kept open until the process ends).
_LOCKS: dict = {}


def lock_folder(folder, what: str = "--out") -> None:
    """Hold an exclusive lock on ``folder`` for the rest of this process, or refuse with one
    line when another stflow command holds it (``flock`` on the folder itself: nothing is
    written into it, and the lock goes with the process, even after a crash).

    Two commands writing one ``--out`` at once would overwrite each other's files; so would
    ``mpiexec -n 2 stflow run`` without ``--backend mpi`` (two independent runs).

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> lock_folder(d); lock_folder(d)  # taking it again in the same process is a no-op
    """
    import fcntl

    from .errors import InputError

    key = os.path.realpath(folder)
    if key in _LOCKS:
        return
    fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InputError(
            f"{what} {str(folder)!r} is in use by another stflow command writing there: wait "
            "for it to end or choose another folder (under mpiexec, add --backend mpi)"
        ) from None
    _LOCKS[key] = fd


def release_folders() -> None:
    """Release every lock :func:`lock_folder` took (the end of a command)."""
    while _LOCKS:
        _, fd = _LOCKS.popitem()
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_output(path) as f:
        f.write(data)


def write_metrics_csv(path, records: dict[str, np.ndarray]) -> None:
    """Write the recorded metrics, one row per recorded step: the columns of
    :data:`METRIC_COLUMNS` first, then any others (the learning columns).

    Floats are written with ``repr`` (17 significant digits), so reading the file back gives
    the same numbers bit for bit.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    cols = [c for c in METRIC_COLUMNS if c in records]
    cols += [c for c in records if c not in cols]
    writer.writerow(cols)
    n = len(records["step"])
    for i in range(n):
        row = [int(records["step"][i])]
        row += [repr(float(records[c][i])) for c in cols[1:]]
        writer.writerow(row)
    _atomic_write(Path(path), buf.getvalue().encode())


def read_metrics_csv(path) -> dict[str, np.ndarray]:
    """Read a ``metrics.csv`` back into one array per column."""
    data = np.genfromtxt(path, delimiter=",", names=True, dtype=float)
    data = np.atleast_1d(data)
    return {name: np.asarray(data[name]) for name in data.dtype.names}


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON (NaN/inf are written as null)."""
    _atomic_write(Path(path), (json.dumps(_jsonable(obj), indent=2) + "\n").encode())


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def plot_convergence(path, records: dict[str, np.ndarray], *, title: str = "") -> None:
    """The run's figure, to a PNG file: relative and consensus error against time (log
    scale); for classification problems also the test accuracies against rounds; when a
    network time model is given (``modeled_seconds`` > 0), the headline metric against
    modeled seconds too.

    Drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas (no ``pyplot``, no
    global figure state; matplotlib is imported here only, so runs that skip the figure
    never load it).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    learning = "mean_agent_test_accuracy" in records
    timed = "modeled_seconds" in records and len(records["modeled_seconds"]) and float(
        records["modeled_seconds"][-1]) > 0
    panels = 1 + int(learning) + int(bool(timed))
    fig = Figure(figsize=(6.4 if panels == 1 else 4.6 * panels, 4.0), dpi=110)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    ax = axes[0]
    t = records["t"]
    curves = (("relative_error", "relative error"), ("consensus_error", "consensus error"))
    for key, label in curves:
        y = np.where(records[key] > 0, records[key], np.nan)
        if np.any(np.isfinite(y)):
            ax.semilogy(t, y, label=label)
    ax.set_xlabel("time t")
    ax.set_ylabel("error")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_lines():  # a run without one finite positive error draws no curve
        ax.legend()
    if title:
        ax.set_title(title, fontsize=9)
    nxt = 1
    if learning:
        acc_ax = axes[nxt]
        nxt += 1
        for key, label in (("mean_agent_test_accuracy", "mean agent (own model)"),
                           ("worst_agent_test_accuracy", "worst agent"),
                           ("test_accuracy", "average model xbar")):
            acc_ax.plot(records["step"], records[key], label=label)
        acc_ax.set_xlabel("rounds")
        acc_ax.set_ylabel("test accuracy")
        acc_ax.grid(True, alpha=0.3)
        acc_ax.legend(fontsize=8)
    if timed:
        tm_ax = axes[nxt]
        secs = records["modeled_seconds"]
        if learning:
            tm_ax.plot(secs, records["mean_agent_test_accuracy"], label="mean agent accuracy")
            tm_ax.set_ylabel("test accuracy")
        else:
            y = np.where(records["relative_error"] > 0, records["relative_error"], np.nan)
            tm_ax.semilogy(secs, y, label="relative error")
            tm_ax.set_ylabel("relative error")
        tm_ax.set_xlabel("modeled seconds ([network], [compute])")
        tm_ax.grid(True, which="both", alpha=0.3)
        tm_ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as f:
        fig.savefig(f, format="png")


def write_run_outputs(
    out_dir, records, summary: dict, *, title: str = "", figure: bool = True
) -> None:
    """Write ``metrics.csv``, ``summary.json`` and (unless ``figure=False``)
    ``convergence.png`` into ``out_dir``.

    ``metrics.csv`` comes first, so a failing figure never costs the numbers, and
    ``summary.json`` last: it exists only when every other file was written (a full disk
    or an interrupt while the figure is drawn leaves no summary claiming a finished run).
    ``figure=False`` (the CLI's ``--no-figure``) skips matplotlib altogether: on small
    runs its import and drawing cost more CPU than the run itself (docs/performance.md).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_metrics_csv(out / "metrics.csv", records)
    if figure:
        plot_convergence(out / "convergence.png", records, title=title)
    write_json(out / "summary.json", summary)


#: Files ``stflow run`` adds for the final state (SPEC's run outputs; docs/cli.md).
FINAL_STATE_FILE = "final_state.npz"
MODEL_FILE = "model.pt"


def to_target(records: dict, *, tolerance: float | None = None,
              target_accuracy: float | None = None) -> dict:
    r"""Rounds, bits, samples and modeled seconds of a run to its target, for summary.json.

    The target is ``mean_agent_test_accuracy >= target_accuracy`` when that is given, else
    ``relative_error <= tolerance``. The counted row is the first recorded one from which
    the target holds to the last row (reached and stays); all ``*_to_target`` values are None
    when the last row misses it. Returns ``{}`` when there is no target (no accuracy target
    and no relative error, i.e. no known optimum).

    Examples
    --------
    >>> rec = {"step": np.array([0, 10, 20, 30]), "t": np.array([0.0, 0.1, 0.2, 0.3]),
    ...        "relative_error": np.array([1.0, 1e-9, 1e-7, 1e-9]),
    ...        "bits_per_agent": np.array([0.0, 640.0, 1280.0, 1920.0]),
    ...        "samples_per_agent": np.array([0.0, 5.0, 10.0, 15.0]),
    ...        "modeled_seconds": np.array([0.0, 1.0, 2.0, 3.0])}
    >>> out = to_target(rec, tolerance=1e-8)
    >>> out["rounds_to_target"], out["bits_to_target"], out["modeled_seconds_to_target"]
    (30, 1920.0, 3.0)
    """
    if target_accuracy is not None and "mean_agent_test_accuracy" in records:
        column, value, ok = ("mean_agent_test_accuracy", float(target_accuracy), ">=")
        holds = np.asarray(records[column], dtype=float) >= value
    else:
        column, value, ok = ("relative_error", None if tolerance is None else float(tolerance),
                             "<=")
        err = np.asarray(records.get(column, []), dtype=float)
        if value is None or not np.any(np.isfinite(err)):
            return {}
        holds = err <= value
    out = {"target": {"column": column, "direction": ok, "value": value}}
    keys = (("rounds_to_target", "step"), ("t_to_target", "t"),
            ("bits_to_target", "bits_per_agent"),
            ("bits_p2p_to_target", "bits_per_agent_p2p"),
            ("samples_to_target", "samples_per_agent"),
            ("modeled_seconds_to_target", "modeled_seconds"))
    if holds.size == 0 or not holds[-1]:
        return {**out, **{k: None for k, _ in keys}}
    misses = np.flatnonzero(~holds)
    i = int(misses[-1]) + 1 if misses.size else 0
    for key, col in keys:
        if col in records and len(records[col]):
            v = records[col][i]
            out[key] = int(v) if col == "step" else float(v)
    return out


def write_final_state(out_dir, state: dict, *, problem=None) -> list[str]:
    """Write the run's final iterates: ``final_state.npz`` with ``average`` (the mean model
    :math:`\\bar x`, ``(d,)``), ``X`` (every agent's ``x_i``, ``(N, d)``) and the method's
    other state arrays (``V``, ``Xhat``, ... as the method keeps them); for a torch problem
    also ``model.pt``, the network's ``state_dict`` with the average parameters
    (``torch.load`` it into the factory's model). Returns the names written.
    """
    out = Path(out_dir)
    X = state.get("X") if state else None
    if X is None:
        return []
    X = np.asarray(X, dtype=float)
    arrays = {k: np.asarray(v) for k, v in state.items()
              if isinstance(v, np.ndarray) and k not in ("average",)}
    buf = io.BytesIO()
    with np.errstate(all="ignore"):  # a diverged run's last state may hold inf
        average = X.mean(axis=0)
    np.savez(buf, average=average, **arrays)
    _atomic_write(out / FINAL_STATE_FILE, buf.getvalue())
    written = [FINAL_STATE_FILE]
    state_dict_at = getattr(problem, "state_dict_at", None)
    if state_dict_at is not None:
        import torch

        buf = io.BytesIO()
        torch.save(state_dict_at(average), buf)
        _atomic_write(out / MODEL_FILE, buf.getvalue())
        written.append(MODEL_FILE)
    return written
