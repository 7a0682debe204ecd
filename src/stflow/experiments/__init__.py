"""The reproduction suite behind ``stflow reproduce``: the registry of experiments and its runner.

:data:`EXPERIMENTS` maps a name (``E1`` ...) to its module, in report order. Each experiment
module defines ``NAME``, ``TITLE`` and ``run(out_dir, *, quick, progress=None) -> dict``
returning ``title``, ``setting``, ``prediction``, ``measured`` (markdown), ``figures``
(paths relative to ``out_dir``) and optionally ``captions`` (figure path -> what to look at),
and writes its runs (``runs/<label>/summary.json``, ``metrics.csv``) and figures into
``out_dir``. ``run`` calls ``progress(message)`` once per finished run; the optional
``planned_runs(quick) -> int`` says how many calls to expect, so that the progress bar of
:func:`run_suite` counts runs done against runs planned across all experiments (a module
without it counts as one run). :func:`run_suite` runs a selection (optionally in a process
pool), catches a failing experiment, and :mod:`stflow.experiments.report` writes
``report.md`` and ``report.html``.
"""

from __future__ import annotations

import importlib
import os
import time
import traceback
from pathlib import Path

from ..interrupts import clear_request, requested_signal
from ..threads import BLAS_THREAD_VARS, one_thread_in_workers

__all__ = ["EXPERIMENTS", "experiment_names", "load_experiment", "planned_runs", "run_one",
           "run_suite"]

#: name -> module (relative to this package), in report order. Importing this package imports
#: none of them (``stflow --help`` lists the names cheaply); :func:`run_one` imports one when it
#: runs and reports a module that fails to import as a failed experiment.
EXPERIMENTS: dict[str, str] = {
    "E1": ".e1_certificates",
    "E2": ".e2_convergence",
    "E3": ".e3_communication",
    "E4": ".e4_direct_vs_observer",
    "E5": ".e5_convex",
    "E6": ".e6_real_data",
    "E7": ".e7_where_it_breaks",
    "E8": ".e8_scale",
    "E9": ".comparison",
    "E10": ".e10_schemes",
    "E11": ".e11_learning",
    "E12": ".e12_mlp",
    "E13": ".e13_network",
}


def experiment_names() -> list[str]:
    """Names of the registered experiments, in report order.

    Examples
    --------
    >>> experiment_names()[:3]
    ['E1', 'E2', 'E3']
    """
    return list(EXPERIMENTS)


def load_experiment(name: str):
    """The module of experiment ``name``."""
    return importlib.import_module(EXPERIMENTS[name], __name__)


def planned_runs(name: str, quick: bool) -> int:
    """How many runs (``progress`` calls) experiment ``name`` plans at this size.

    The module's ``planned_runs(quick)``, or 1 when it has none (or fails to import: the
    suite reports that failure when it runs the experiment).

    Examples
    --------
    >>> planned_runs("E5", quick=True)
    4
    """
    try:
        plan = getattr(load_experiment(name), "planned_runs", None)
        n = int(plan(quick)) if callable(plan) else 1
    except Exception:  # noqa: BLE001 - a broken module is reported by run_one
        return 1
    return max(n, 1)


def run_one(name: str, out_dir, quick: bool, *, progress=None) -> dict:
    """Run one experiment into ``out_dir/name``; never raises.

    ``progress(message)`` (optional) is called once per finished run of the experiment.
    Returns the experiment's dict plus ``name``, ``ok``, ``seconds``, ``runs`` (progress
    calls made) and, on failure, ``error`` (one line) and ``traceback``. Also writes
    ``out_dir/name/summary.json`` (with ``runs`` and ``runs_planned``).
    """
    from ..output import write_json

    folder = Path(out_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    ticks = [0]

    def tick(message: str = "") -> None:
        ticks[0] += 1
        if progress is not None:
            progress(message)

    start = time.perf_counter()
    try:
        mod = load_experiment(name)
        result = dict(mod.run(folder, quick=quick, progress=tick))
        result.update(name=name, ok=True, error=None)
        result.setdefault("title", getattr(mod, "TITLE", name))
        result["figures"] = [f"{name}/{f}" for f in result.get("figures", [])]
        result["captions"] = {f"{name}/{f}": str(c)
                              for f, c in (result.get("captions") or {}).items()}
    except Exception as exc:  # noqa: BLE001 - reported as failed, the suite goes on
        title = name
        try:
            title = load_experiment(name).TITLE
        except Exception:  # noqa: BLE001
            pass
        result = {"name": name, "title": title, "ok": False, "figures": [], "captions": {},
                  "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
                  "traceback": traceback.format_exc()}
    result["seconds"] = time.perf_counter() - start
    result["runs"] = ticks[0]
    summary = {k: result.get(k) for k in ("name", "title", "ok", "error", "seconds", "figures")}
    summary["quick"] = bool(quick)
    summary["runs"] = ticks[0]
    summary["runs_planned"] = planned_runs(name, quick)
    summary["data"] = result.get("data")
    write_json(folder / "summary.json", summary)
    return result


class _Progress:
    """Runs done against runs planned across the experiments, on stderr: one tqdm bar in a
    terminal, plain lines at intervals otherwise (:func:`stflow.progress.progress_bar`).

    A tick of an experiment that already has all its planned runs (or has finished) does not
    move the bar; a finished experiment fills its share, so the bar ends at its total. With
    ``quiet`` nothing is shown and no module is imported for its plan.
    """

    def __init__(self, names, quick: bool, quiet: bool):
        from tqdm import tqdm

        from ..progress import progress_bar

        self.planned = {n: 1 if quiet else planned_runs(n, quick) for n in names}
        self.done = dict.fromkeys(names, 0)
        self.finished: set[str] = set()
        total = sum(self.planned.values())
        self.bar = (tqdm(total=total, disable=True) if quiet else
                    progress_bar(total=total, desc="stflow reproduce", unit="run"))

    def tick(self, name: str, message: str = "") -> None:
        if name in self.finished:
            return
        if self.done[name] < self.planned[name]:
            self.done[name] += 1
            self.bar.update(1)
        self.bar.set_postfix_str(f"{name} {message}"[:60], refresh=False)

    def finish(self, name: str) -> None:
        if name in self.finished:
            return
        self.finished.add(name)
        rest = self.planned[name] - self.done[name]
        self.done[name] = self.planned[name]
        self.bar.update(rest)

    def close(self) -> None:
        self.bar.close()


#: Worker side of the process pool: the queue that carries ``(name, message)`` ticks home.
_WORKER: dict = {}


#: Thread-count variables set to 1 for the pool's workers (unless the user set them).
_THREAD_VARS = BLAS_THREAD_VARS
#: Rough CPU seconds of the full-size experiments (measured): the pool starts the longest
#: first. Experiments not listed count as short.
_COST_HINT = {"E9": 400, "E12": 250, "E10": 110, "E13": 95, "E11": 60}


def _run_pool(ctx, queue, jobs, names, out, quick, quiet, results):
    """Run ``names`` on a pool of ``jobs`` spawned workers, the longest first."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(queue,)) as pool:
        order = sorted(names, key=lambda n: -_COST_HINT.get(n, 0))
        futures = {pool.submit(_run_in_worker, name, str(out), quick): name for name in order}
        try:
            bar = _Progress(names, quick, quiet)  # reads the plans while the workers start
            _collect(futures, queue, bar, results)
        except BaseException:  # Ctrl-C or SIGTERM: stop the workers now, none left behind
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()  # SIGKILL: a worker may turn SIGTERM into an interrupt it handles
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return bar


def _collect(futures, queue, bar, results) -> None:
    from concurrent.futures import FIRST_COMPLETED, wait

    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
        _drain(queue, bar)
        if requested_signal() is not None:  # a run in this process caught the signal
            raise KeyboardInterrupt
        for fut in done:
            name = futures[fut]
            try:
                results[name] = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker died
                results[name] = {"name": name, "title": name, "ok": False,
                                 "figures": [], "error": f"worker failed: {exc}",
                                 "seconds": 0.0}
            bar.finish(name)


def _init_worker(queue) -> None:
    _WORKER["queue"] = queue


def _run_in_worker(name: str, out_dir: str, quick: bool) -> dict:
    queue = _WORKER.get("queue")

    def progress(message: str = "") -> None:
        if requested_signal() is not None:  # the run just finished was interrupted: stop
            raise KeyboardInterrupt
        if queue is not None:
            queue.put((name, str(message)))

    return run_one(name, out_dir, quick, progress=progress)


def _drain(queue, bar: _Progress) -> None:
    import queue as queue_module

    while True:
        try:
            name, message = queue.get_nowait()
        except queue_module.Empty:
            return
        bar.tick(name, message)


def run_suite(out_dir, names, *, quick: bool = False, jobs: int = 1, quiet: bool = False):
    """Run the experiments ``names`` into ``out_dir`` and write the report.

    ``jobs > 1`` runs them in a process pool. A tqdm bar on stderr (only when stderr is a
    terminal; ``quiet`` silences it) counts runs done against runs planned across all
    experiments (:func:`planned_runs`), so it moves within each experiment. Returns the list
    of results in ``names`` order.
    """
    from .report import write_report

    out = Path(out_dir)
    results: dict[str, dict] = {}
    started = time.perf_counter()
    clear_request()
    try:
        _run_all(out, names, quick, jobs, quiet, results)
    except KeyboardInterrupt:  # keep what finished, mark the rest, and say so (exit 130)
        ordered = [results.get(n) or {"name": n, "title": n, "ok": False, "figures": [],
                                      "captions": {}, "error": "interrupted before it finished",
                                      "interrupted": True, "seconds": 0.0} for n in names]
        write_report(out, ordered, quick=quick, seconds=time.perf_counter() - started,
                     jobs=jobs)
        raise SuiteInterrupted(sum(1 for r in ordered if r["ok"]), len(names)) from None
    ordered = [results[n] for n in names]
    write_report(out, ordered, quick=quick, seconds=time.perf_counter() - started, jobs=jobs)
    return ordered


class SuiteInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped :func:`run_suite`: ``finished`` of ``total`` experiments
    completed (kept, with the report); the CLI exits 130."""

    def __init__(self, finished: int, total: int):
        super().__init__(f"{finished} of {total} experiments finished")
        self.finished, self.total = finished, total


def _one_blas_thread():
    """One BLAS / OpenMP thread in this process while it runs the experiments itself (as
    the pool's workers have), unless the user set a thread variable: several such processes
    on one machine would otherwise oversubscribe the cores (docs/reproduce.md)."""
    import contextlib

    if any(os.environ.get(k) for k in _THREAD_VARS):
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _run_all(out, names, quick, jobs, quiet, results):
    if jobs <= 1 or len(names) <= 1:
        with _one_blas_thread():
            return _run_in_process(out, names, quick, quiet, results)
    return _run_in_pool(out, names, quick, jobs, quiet, results)


def _run_in_process(out, names, quick, quiet, results):
    bar = _Progress(names, quick, quiet)

    def tick(name, msg):
        if requested_signal() is not None:  # the run just finished was interrupted
            raise KeyboardInterrupt
        bar.tick(name, msg)

    try:
        for name in names:
            result = run_one(name, out, quick, progress=lambda msg, name=name: tick(name, msg))
            if requested_signal() is not None:
                raise KeyboardInterrupt
            results[name] = result
            bar.finish(name)
    finally:
        bar.close()
    return bar


def _run_in_pool(out, names, quick, jobs, quiet, results):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with one_thread_in_workers():  # one BLAS / OpenMP / PyTorch thread per worker
        bar = _run_pool(ctx, queue, jobs, names, out, quick, quiet, results)
    _drain(queue, bar)  # the workers have exited, so every tick is in the pipe now
    queue.close()
    bar.close()
    return bar
