"""Cells per second of a study with ``--jobs 1`` and ``--jobs 2`` (docs/performance.md,
"Studies").

    python benchmarks/bench_study_jobs.py [STUDY.toml] [--budget B] [--rounds R] [--seeds S]
                                          [--jobs 1,2] [--out DIR]

Runs the study (default ``examples/study_compressors.toml``) shrunk to ``--budget``,
``--rounds`` and ``--seeds`` (as ``stflow study --quick`` does, with other caps) once per
``--jobs`` value, each into a fresh folder, and prints one JSON line per run: cells, wall
seconds (:func:`time.perf_counter` around :func:`stflow.study.run_study`, outputs
included), cells per second, the CPU seconds of the cells (``cpu_seconds`` of
``results.csv``, workers included) and whether ``results.csv`` equals the first run's
(timing columns aside). Workers run one BLAS thread each (the study's rule).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
import time
from pathlib import Path

from stflow.study import TIMING_COLUMNS, load_study, run_study

ROOT = Path(__file__).resolve().parents[1]


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("study", nargs="?", default=str(ROOT / "examples" /
                                                    "study_compressors.toml"))
    ap.add_argument("--budget", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3000)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--jobs", default="1,2")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    shrink = {"budget": args.budget, "rounds": args.rounds, "seeds": args.seeds}
    base = Path(args.out or tempfile.mkdtemp(prefix="bench_study_"))
    first = None
    for jobs in (int(j) for j in args.jobs.split(",")):
        out = base / f"jobs{jobs}"
        shutil.rmtree(out, ignore_errors=True)
        study = load_study(args.study, shrink=shrink)
        start = time.perf_counter()
        run_study(study, out, jobs=jobs, quiet=True)
        wall = time.perf_counter() - start
        rows = _rows(out)
        first = rows if first is None else first
        with open(out / "results.csv", newline="") as fh:
            cpu = sum(float(r["cpu_seconds"]) for r in csv.DictReader(fh))
        print(json.dumps({"study": Path(args.study).name, **shrink, "jobs": jobs,
                          "cells": len(rows), "wall_seconds": round(wall, 1),
                          "cells_per_second": round(len(rows) / wall, 3),
                          "cell_cpu_seconds": round(cpu, 1),
                          "same_results_as_first": rows == first}), flush=True)


if __name__ == "__main__":
    main()
