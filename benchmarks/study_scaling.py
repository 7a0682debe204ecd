"""How a finished study's wall time scales with --jobs, from its measured per-cell CPU.

    python benchmarks/study_scaling.py OUT [--seeds-factor F]

Reads ``OUT/results.csv`` (``cpu_seconds`` per cell, tuning included) and prints, for
J = 1, 2, 4, the makespan of the schedule ``stflow study --jobs J`` follows (cells handed out
in file order to the first free worker; a ProcessPoolExecutor's order), i.e. the wall time
on J idle cores, plus each worker's start-up (spawn + imports, measured: about 1 CPU s).
``--seeds-factor F`` repeats the cells F times (a study measured on one seed of five: F = 5).
"""

from __future__ import annotations

import argparse
import csv
import heapq
from pathlib import Path

STARTUP = 1.0  # CPU seconds of a spawned worker before its first cell (imports)


def makespan(costs: list[float], jobs: int) -> float:
    free = [STARTUP] * jobs
    heapq.heapify(free)
    for c in costs:
        heapq.heappush(free, heapq.heappop(free) + c)
    return max(free)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seeds-factor", type=int, default=1)
    args = ap.parse_args()
    with open(Path(args.out) / "results.csv", newline="") as fh:
        costs = [float(r["cpu_seconds"]) for r in csv.DictReader(fh)]
    costs = costs * args.seeds_factor
    print(f"{len(costs)} cells, {sum(costs):.1f} CPU s in total, longest cell {max(costs):.1f} s")
    for jobs in (1, 2, 4):
        m = makespan(costs, jobs)
        print(f"--jobs {jobs}: {m:.1f} s wall on {jobs} idle core(s) ({m / 60:.1f} min)")


if __name__ == "__main__":
    main()
