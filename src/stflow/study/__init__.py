"""Many runs from one study file (``stflow study``): methods x compressors x problems x
graphs x seeds, each method tuned with the same budget, summarised with spread.

- :mod:`.schema`: the study file's keys (declared as :class:`stflow.params.Param`) and its
  cells (:func:`load_study`);
- :mod:`.runner`: running the cells in parallel, each written atomically (:func:`run_cells`);
- :mod:`.summary`: ``results.csv``, the median / IQR tables, overlay figures, the report.

:func:`run_study` does all three; ``docs/study.md`` describes the file and the outputs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

from ..errors import InputError
from .runner import (
    RESULT_FILE,
    TIMING_COLUMNS,
    batch_groups,
    cell_row,
    run_cell,
    run_cell_batch,
    run_cells,
)
from .schema import (
    AXES,
    COMPRESSOR_ENTRY_PARAMS,
    METHOD_ENTRY_PARAMS,
    QUANTITIES,
    STUDY_PARAMS,
    TUNE_PARAMS,
    Cell,
    Study,
    load_study,
    parse_study,
)
from .summary import RESULT_COLUMNS, spread, summary_markdown, summary_rows

__all__ = [
    "AXES", "QUANTITIES", "STUDY_PARAMS", "METHOD_ENTRY_PARAMS", "TUNE_PARAMS",
    "COMPRESSOR_ENTRY_PARAMS", "RESULT_COLUMNS", "TIMING_COLUMNS", "RESULT_FILE", "Cell",
    "Study", "load_study", "parse_study", "run_cell", "run_cell_batch", "batch_groups",
    "run_cells", "cell_row", "spread",
    "summary_rows", "summary_markdown", "run_study", "clear_outputs", "STUDY_FILES", "QUICK",
]

#: What ``stflow study`` writes into ``--out`` (``--force`` removes these first).
STUDY_FILES = ("cells", "figures", "study.json", "results.csv", "results.json",
               "tables.json", "report.md", "report.html")
#: The sizes of ``stflow study --quick``: budget, rounds and seeds capped.
QUICK = {"budget": 3, "rounds": 400, "seeds": 2}


def _finished(out: Path, cell: Cell):
    path = out / "cells" / cell.id / RESULT_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a damaged marker: the cell runs again


def run_study(study: Study, out_dir, *, jobs: int = 1, resume: bool = False,
              quiet: bool = False, batch: bool = True) -> dict:
    """Run the unfinished cells of ``study`` into ``out_dir`` and write every output.

    ``out_dir`` must be prepared by the caller (new or emptied, or holding this same study
    with ``resume``: its ``study.json`` must match). Returns ``{"rows", "ran", "kept",
    "failed", "seconds"}``. ``KeyboardInterrupt`` propagates after the pool stopped: every
    finished cell stays on disk.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = study.to_dict()
    marker = out / "study.json"
    if resume and marker.exists():
        old = json.loads(marker.read_text())
        if old.get("hash") != plan["hash"] or old.get("cells") != plan["cells"]:
            raise InputError(
                f"--resume: {str(out)!r} holds another study (or the study file changed since): "
                "give a new --out, or --force to start over")
    from ..output import write_json

    write_json(marker, plan)
    started = time.perf_counter()
    kept = {c.id: r for c in study.cells if (r := _finished(out, c)) is not None} \
        if resume else {}
    todo = [dataclasses.asdict(c) for c in study.cells if c.id not in kept]
    ran = run_cells(todo, out, study.target, init=study.init, jobs=jobs, quiet=quiet,
                    done=len(kept), total=len(study.cells), batch=batch)
    by_id = {**kept, **{r["id"]: r for r in ran}}
    rows = [by_id[c.id] for c in study.cells]
    seconds = time.perf_counter() - started
    from .summary import write_figures, write_report, write_results

    write_results(out, rows)
    figures = write_figures(out, rows, study.target)
    write_report(out, study, rows, seconds=seconds, jobs=jobs, figures=figures)
    return {"rows": rows, "ran": len(ran), "kept": len(kept),
            "failed": sum(r["status"] == "failed" for r in rows), "seconds": seconds}


def clear_outputs(out: Path) -> None:
    """Remove what an earlier study wrote into ``out`` (only the study's own files)."""
    for name in STUDY_FILES:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
