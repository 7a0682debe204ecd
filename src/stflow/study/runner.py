"""Running a study's cells: one process per job, one BLAS thread each, each cell written
atomically, resumable.

A cell's folder ``OUT/cells/<id>/`` holds ``metrics.csv`` and ``summary.json`` (as
``stflow run`` writes them), ``tuning.json`` for a tuned method, and last ``result.json``
(its row of ``results.csv``), written by a rename: a cell is finished exactly when its
``result.json`` exists, so a kill loses at most the cells in flight and ``--resume`` reruns
only the others. A cell that raises is *finished* too: its row says ``status = "failed"``
and the reason, and the study goes on.
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from ..threads import one_thread_in_workers

__all__ = ["run_cell", "run_cell_batch", "batch_groups", "run_cells", "cell_row", "RESULT_FILE",
           "TIMING_COLUMNS"]

#: The file that marks a finished cell.
RESULT_FILE = "result.json"
#: Columns of results.csv that depend on the machine (left out of determinism checks).
TIMING_COLUMNS = ("wall_seconds", "wall_seconds_to_target", "cpu_seconds")


def _random_x0(config: dict, seed: int):
    from ..config import build_problem

    prob = build_problem(config["problem"])
    rng = np.random.default_rng([int(seed), 20])
    return rng.standard_normal((prob.n_agents, prob.dim)).tolist()


def cell_row(cell: dict, records: dict | None, *, status: str, reason: str = "",
             target: dict, wall: float = math.nan, tuning=None,
             stopped_at: int | None = None) -> dict:
    """The row of ``results.csv`` for one cell from its recorded metrics.

    The quantities *to the target* are read at the first recorded row meeting the target
    from which every later row meets it too (:func:`stflow.tune.first_hit`); a cell that never
    gets there has them empty and ``reached = False``. ``wall_seconds_to_target`` is the run's
    wall time times the share of its rounds spent to the target. A diverged run
    (``status = "diverged"``) never counts as reached, whatever its last finite records say;
    its ``rounds`` is the round it stopped at (``stopped_at``), which may lie past its last
    record.

    Examples
    --------
    >>> rec = {"step": np.array([0, 10, 20]), "relative_error": np.array([1.0, 1e-7, 1e-8]),
    ...        "bits_per_agent": np.array([0.0, 760.0, 1520.0]),
    ...        "samples_per_agent": np.array([0.0, 10.0, 20.0]),
    ...        "modeled_seconds": np.array([0.0, 0.0, 0.0]),
    ...        "consensus_error": np.array([1.0, 1e-7, 1e-8])}
    >>> r = cell_row({"id": "c", "seed": 0}, rec, status="converged",
    ...              target={"column": "relative_error", "value": 1e-6, "at_least": False},
    ...              wall=2.0)
    >>> r["reached"], r["rounds_to_target"], r["bits_to_target"], r["wall_seconds_to_target"]
    (True, 10, 760.0, 1.0)
    """
    from ..tune import first_hit

    row = {k: cell.get(k) for k in ("id", "method", "scheme", "compressor", "problem", "graph",
                                      "seed")}
    row.update(status=status, reason=reason, reached=False, rounds_to_target=None,
               bits_to_target=None, samples_to_target=None, modeled_seconds_to_target=None,
               wall_seconds_to_target=None, final_error=None, final_accuracy=None,
               final_consensus_error=None, final_value=None, rounds=None,
               tuned=cell.get("tune") is not None, tune_found=None, tuned_params=None,
               tune_wave=None,
               wall_seconds=None if not math.isfinite(wall) else wall, cpu_seconds=None,
               run_dir=f"cells/{cell['id']}")
    if tuning is not None:
        row["tune_found"] = bool(tuning.found)
        row["tuned_params"] = json.dumps(tuning.params, sort_keys=True) if tuning.found else None
        row["tune_wave"] = int(getattr(tuning, "wave", 1) or 1)
        row["tune_fallback"] = getattr(tuning, "batch_fallback", None)
    if records is None or not len(records.get("step", [])):
        return row
    steps = np.asarray(records["step"])
    row["rounds"] = int(steps[-1]) if stopped_at is None else int(stopped_at)

    def last(col):
        if col not in records:
            return None
        v = float(records[col][-1])
        return v if math.isfinite(v) else None

    row["final_error"] = last("relative_error")
    row["final_accuracy"] = last("mean_agent_test_accuracy")
    row["final_consensus_error"] = last("consensus_error")
    col = target["column"]
    row["final_value"] = last(col)
    if col not in records:
        row["reason"] = reason or f"the run records no {col}"
        return row
    if status == "diverged":  # its last finite records are not a result
        return row
    i, stays = first_hit(records, col, target["value"], at_least=target["at_least"])
    if i is None or not stays:
        return row
    row["reached"] = True
    row["rounds_to_target"] = int(steps[i])
    for key, c in (("bits_to_target", "bits_per_agent"),
                   ("samples_to_target", "samples_per_agent"),
                   ("modeled_seconds_to_target", "modeled_seconds")):
        if c in records:
            row[key] = float(records[c][i])
    if math.isfinite(wall) and steps[-1] > 0:
        row["wall_seconds_to_target"] = wall * float(steps[i]) / float(steps[-1])
    return row


def run_cell(cell: dict, out_dir: str, target: dict, init: str = "zeros") -> dict:
    """Run one cell into ``out_dir/cells/<id>/`` and return its row; never raises (but
    ``KeyboardInterrupt``): a failure is a row with ``status = "failed"`` and its reason.

    ``cell`` is a :class:`~stflow.study.schema.Cell` as a dict (``id``, labels, ``seed``,
    ``config``, ``tune``).
    """
    from ..config import run_config

    folder = _cell_folder(out_dir, cell)
    cpu0 = time.process_time()
    tuning = None
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = _cell_config(cell, init)
            reason = ""
            if cell.get("tune"):
                from ..tune import tune, write_outputs

                t = cell["tune"]
                tuning = tune(cfg, budget=int(t["budget"]), target=t["target"],
                              target_accuracy=t["target_accuracy"], seed=int(cell["seed"]),
                              span=float(t["span"]), wave=int(t.get("wave", 1)))
                if tuning.interrupted:  # the tuner caught a Ctrl-C
                    raise KeyboardInterrupt
                write_outputs(tuning, folder)
                if tuning.found:
                    cfg = tuning.config
                else:
                    reason = f"tuning found no robust setting ({tuning.reason}); ran the " \
                             "config itself"
            cfg["solver"]["record_every"] = min(int(cfg["solver"]["record_every"]),
                                                int(cell["config"]["solver"]["record_every"]))
            run, sol = run_config(cfg)
        row = _finish(cell, folder, run, sol, reason, target, tuning)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a failed cell is recorded, the study goes on
        row = _failed(cell, exc, target, tuning)
    row["cpu_seconds"] = time.process_time() - cpu0
    _write_result(folder, row)
    return row


def _cell_folder(out_dir, cell: dict) -> Path:
    folder = Path(out_dir) / "cells" / cell["id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RESULT_FILE).unlink(missing_ok=True)
    return folder


def _cell_config(cell: dict, init: str) -> dict:
    """The cell's config as it runs (a copy; ``init = "random"``: X(0) from its seed)."""
    cfg = json.loads(json.dumps(cell["config"]))
    if init == "random" and cfg["init"]["x0"] is None:
        cfg["init"]["x0"] = _random_x0(cfg, cell["seed"])
    return cfg


def _finish(cell, folder, run, sol, reason, target, tuning) -> dict:
    """Write a finished run's outputs into the cell's folder; its row (no cpu_seconds)."""
    from ..output import write_run_outputs
    from ..status import EXIT_CODES

    if sol.status == "interrupted":  # Ctrl-C / SIGTERM: the cell is not finished
        raise KeyboardInterrupt
    summary = sol.summary()
    steps_rec = sol.records["step"]
    summary.update(agents=run.problem.n_agents, dim=run.problem.dim,
                   lambda_2=float(run.graph.lambda_2),
                   lambda_max=float(run.graph.lambda_max),
                   last_recorded_step=int(steps_rec[-1]) if len(steps_rec) else 0,
                   exit_code=EXIT_CODES.get(sol.status, 1), config=run.config,
                   study_cell=cell["id"], seed=cell["seed"])
    write_run_outputs(folder, sol.records, summary, figure=False)
    stopped_at = None
    if sol.status == "diverged":  # the row says why it stopped, next to any tuning note
        stopped_at = int(sol.steps)
        reason = "; ".join(x for x in (f"diverged: {' '.join(str(sol.message).split())}",
                                       reason) if x)
    return cell_row(cell, sol.records, status=sol.status, reason=reason, target=target,
                    wall=float(sol.wall_seconds), tuning=tuning, stopped_at=stopped_at)


def _failed(cell, exc, target, tuning) -> dict:
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    row = cell_row(cell, None, status="failed", reason=" ".join(what.split())[:400],
                   target=target, tuning=tuning)
    row["traceback"] = traceback.format_exc()
    return row


def _write_result(folder: Path, row: dict) -> None:
    from ..output import write_json

    write_json(folder / RESULT_FILE, row)  # last, atomically: the cell is finished


def run_cell_batch(cells: list[dict], out_dir: str, target: dict,
                   init: str = "zeros") -> list[dict]:
    """Run untuned cells of one shape (the trials of one method, compressor, problem and
    graph: the same config but the seed) as one batch (:func:`stflow.run_batch`); their
    rows in the order given, each equal to :func:`run_cell`'s but for the timing columns
    (``wall_seconds`` and ``cpu_seconds`` are the batch's, divided by its cells).

    A cell whose config cannot be prepared, or a batch that refuses the configs (another
    shape, a bad setting), runs cell by cell (:func:`run_cell`), so a failure is the row of
    the cell that failed. Results are on disk only when the whole batch finished.
    """
    from ..engines.batch import run_batch

    if len(cells) < 2 or any(c.get("tune") for c in cells):
        return [run_cell(c, out_dir, target, init) for c in cells]
    cpu0 = time.process_time()
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfgs = [_cell_config(c, init) for c in cells]
            out = run_batch(cfgs)
    except KeyboardInterrupt:
        raise
    except Exception:  # noqa: BLE001 - one by one: each cell gets its own row or failure
        return [run_cell(c, out_dir, target, init) for c in cells]
    share = (time.process_time() - cpu0) / len(cells)
    if any(sol.status == "interrupted" for _run, sol in out):  # no cell of it is finished
        raise KeyboardInterrupt
    rows = []
    for cell, (run, sol) in zip(cells, out, strict=True):
        folder = _cell_folder(out_dir, cell)
        row = _finish(cell, folder, run, sol, "", target, None)
        row["cpu_seconds"] = share
        _write_result(folder, row)
        rows.append(row)
    return rows


def batch_groups(cells: list[dict]) -> list[list[dict]]:
    """The cells as units of work: the untuned trials of one method, compressor, problem
    and graph (cells that differ only in their seed) together, every other cell alone;
    in the order of their first cell."""
    groups: dict = {}
    for i, c in enumerate(cells):
        key = (("cell", i) if c.get("tune") else
               tuple(c.get(k) for k in ("method", "scheme", "compressor", "problem", "graph")))
        groups.setdefault(key, []).append(c)
    return list(groups.values())


# ----------------------------------------------------------------------------- the pool


def _init_worker() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the study


def _progress(total: int, done: int, quiet: bool):
    """A tqdm bar (terminal) or plain lines (``print_line``) with cells done and an ETA."""
    tty = sys.stderr.isatty()
    if quiet:
        return _Quiet()
    if tty:
        from tqdm import tqdm

        return tqdm(total=total, initial=done, desc="stflow study", unit="cell",
                    file=sys.stderr, dynamic_ncols=True)
    return _Lines(total, done)


class _Quiet:
    def update(self, n=1):
        pass

    def set_postfix_str(self, s="", refresh=True):
        pass

    def close(self):
        pass


class _Lines:
    """Plain progress lines on stderr (not a terminal): ``study: 3/30 cells, ETA 1m05s``."""

    def __init__(self, total: int, done: int):
        self.total, self.done, self.start_done = total, done, done
        self.start = time.perf_counter()
        self.note = ""

    def set_postfix_str(self, s="", refresh=True):
        self.note = s

    def update(self, n=1):
        self.done += n
        rate = (self.done - self.start_done) / max(time.perf_counter() - self.start, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else math.inf
        eta = "?" if not math.isfinite(left) else f"{int(left // 60)}m{int(left % 60):02d}s"
        print(f"stflow study: {self.done}/{self.total} cells done, ETA {eta} ({self.note})",
              file=sys.stderr, flush=True)

    def close(self):
        pass


def run_cells(cells: list[dict], out_dir, target: dict, *, init: str = "zeros", jobs: int = 1,
              quiet: bool = False, done: int = 0, total: int | None = None,
              batch: bool = True) -> list[dict]:
    """Run ``cells`` (those not finished yet) with ``jobs`` processes; returns their rows in
    the order given. With ``batch`` (default), the untuned trials of one method,
    compressor, problem and graph run as one batch (:func:`batch_groups`,
    :func:`run_cell_batch`; the same rows). ``KeyboardInterrupt`` stops the pool at once
    (the cells in flight are lost, finished ones are on disk) and is raised again.
    """
    total = len(cells) + done if total is None else total
    bar = _progress(total, done, quiet)
    rows: dict[str, dict] = {}
    units = batch_groups(cells) if batch else [[c] for c in cells]
    try:
        if jobs <= 1 or len(units) <= 1:
            for unit in units:
                for cell, row in zip(unit, run_cell_batch(unit, str(out_dir), target, init),
                                     strict=True):
                    rows[cell["id"]] = row
                    bar.set_postfix_str(f"{cell['id']}: {row['status']}", refresh=False)
                    bar.update(1)
        else:
            _pool(units, out_dir, target, init, jobs, bar, rows)
    finally:
        bar.close()
    return [rows[c["id"]] for c in cells]


def _pool(units, out_dir, target, init, jobs, bar, rows) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    with one_thread_in_workers():  # one BLAS thread per worker: the workers fill the cores
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                                   initializer=_init_worker)
        try:
            futures = {pool.submit(run_cell_batch, unit, str(out_dir), target, init): unit
                       for unit in units}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in finished:
                    unit = futures[fut]
                    try:
                        got = fut.result()
                    except Exception as exc:  # noqa: BLE001 - the worker died (killed, OOM)
                        from ..output import write_json

                        got = []
                        for cell in unit:
                            row = cell_row(cell, None, status="failed", target=target,
                                           reason=f"worker failed: {type(exc).__name__}: "
                                                  f"{exc}"[:400])
                            folder = Path(out_dir) / "cells" / cell["id"]
                            folder.mkdir(parents=True, exist_ok=True)
                            write_json(folder / RESULT_FILE, row)
                            got.append(row)
                    for cell, row in zip(unit, got, strict=True):
                        rows[cell["id"]] = row
                        bar.set_postfix_str(f"{cell['id']}: {row['status']}", refresh=False)
                        bar.update(1)
        except BaseException:
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()  # the cells in flight are lost; finished ones are on disk
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        else:
            pool.shutdown(wait=True)
