"""Progress on stderr: a tqdm bar in a terminal, plain lines at intervals elsewhere.

``stflow run``, ``tune`` and ``reproduce`` call :func:`progress_bar`. When stderr is a
terminal it is a tqdm bar; when it is not (a log file, a pipe, a batch job) a bar's carriage
returns would print nothing readable for minutes, so :class:`LineProgress` prints one plain
line, e.g. ``stflow reproduce: 12 of 80 runs (15%), 1m23s elapsed, E3 ...``, whenever
:data:`EVERY_SECONDS` have passed or another :data:`EVERY_FRACTION` of the total is done
since the last line, plus a first and a last line; while no update arrives (one long run),
a line every :data:`EVERY_SECONDS` all the same. While :func:`log_to` is active, the same
lines are appended to a log file (``OUT/progress.log``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

__all__ = ["PROGRESS_LOG", "EVERY_SECONDS", "EVERY_FRACTION", "LineProgress", "progress_bar",
           "log_to", "emit_line"]

#: Name of the log file in ``--out`` that keeps the plain progress lines.
PROGRESS_LOG = "progress.log"
#: A plain progress line at least this often (seconds) while updates arrive ...
EVERY_SECONDS = 10.0
#: ... and whenever this share of the total is done since the last line.
EVERY_FRACTION = 0.1

_LOG: dict = {"path": None}


@contextlib.contextmanager
def log_to(path):
    """Append every plain progress line to ``path`` while the context is active."""
    old = _LOG["path"]
    _LOG["path"] = None if path is None else Path(path)
    try:
        yield
    finally:
        _LOG["path"] = old


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class LineProgress:
    """tqdm's small interface (``update``, ``set_postfix_str``, ``n``, ``close``) as plain
    lines on ``file`` (see the module docstring).

    Examples
    --------
    >>> import io
    >>> f = io.StringIO()
    >>> bar = LineProgress(total=4, desc="stflow run", unit="round", file=f, every=1e9)
    >>> for _ in range(4):
    ...     bar.update(1)
    >>> bar.close()
    >>> print(f.getvalue().replace("0s elapsed", "Ts elapsed"), end="")
    stflow run: 0 of 4 rounds (0%), Ts elapsed
    stflow run: 1 of 4 rounds (25%), Ts elapsed
    stflow run: 2 of 4 rounds (50%), Ts elapsed
    stflow run: 3 of 4 rounds (75%), Ts elapsed
    stflow run: 4 of 4 rounds (100%), Ts elapsed
    """

    def __init__(self, *, total: int | None, desc: str, unit: str, file=None,
                 every: float | None = None, fraction: float | None = None,
                 heartbeat: bool = False):
        import threading

        self._lock = threading.Lock()
        self.total = total
        self.desc, self.unit = desc, unit
        self.file = sys.stderr if file is None else file
        self.every = EVERY_SECONDS if every is None else float(every)
        self.fraction = EVERY_FRACTION if fraction is None else float(fraction)
        self.n = 0
        self.postfix = ""
        self.start = self.last_time = time.perf_counter()
        self.last_n = 0
        self.closed = False
        self._emit()
        self._stop = threading.Event()
        if heartbeat:  # a line every `every` seconds even while no update arrives
            threading.Thread(target=self._beat, daemon=True).start()

    def _beat(self) -> None:
        while not self._stop.wait(min(self.every, 3600.0)):
            with self._lock:
                if self.closed:
                    return
                if time.perf_counter() - self.last_time >= self.every:
                    try:
                        self._emit()
                    except Exception:  # noqa: BLE001 - the stream went away: stop beating
                        return

    def _emit(self) -> None:
        elapsed = time.perf_counter() - self.start
        if self.total:
            done = f"{self.n} of {self.total} {self.unit}s ({100.0 * self.n / self.total:.0f}%)"
        else:
            done = f"{self.n} {self.unit}s"
        line = f"{self.desc}: {done}, {_clock(elapsed)} elapsed"
        if self.postfix:
            line += f", {self.postfix}"
        emit_line(line, self.file)
        self.last_time, self.last_n = time.perf_counter(), self.n

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.n += int(n)
            now = time.perf_counter()
            step = self.fraction * self.total if self.total else None
            if now - self.last_time >= self.every or (step and self.n - self.last_n >= step):
                self._emit()

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = str(text)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if not self.closed:
                self.closed = True
                if self.n != self.last_n:
                    self._emit()


def emit_line(line: str, file=None) -> None:
    """Print one plain progress line to ``file`` (stderr) and append it to the log of
    :func:`log_to`, if any."""
    print(line, file=sys.stderr if file is None else file, flush=True)
    path = _LOG["path"]
    if path is not None:
        try:
            with open(path, "a", encoding="utf-8") as log:
                log.write(line + "\n")
        except OSError:  # a log that cannot be written never stops the run
            pass


def progress_bar(*, total: int | None, desc: str, unit: str, leave: bool = False):
    """A tqdm bar on stderr when it is a terminal, else a :class:`LineProgress`."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=leave)
    return LineProgress(total=total, desc=desc, unit=unit, file=sys.stderr, heartbeat=True)
