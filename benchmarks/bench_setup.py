"""Set-up cost and peak memory of least squares, and the fixed CPU share of a small run.

Two kinds of records (``--json`` prints them as a list):

- ``setup`` (default N = 10000, d = 100, m = 100): in one child process the data of
  ``make_problem("least_squares", ...)`` is generated (``generate_seconds``), one streaming
  read of it is timed (``one_pass_seconds``: ``np.add.reduce`` over ``A``), then the set-up
  that ``stflow run`` does on it (validation, Gram form, x*, smoothness, ring graph and its
  spectrum; ``setup_seconds``, with a breakdown). In a second child the real command
  ``stflow run`` runs that problem for 10 steps; its ``ru_maxrss`` is ``peak_mb``, against
  ``data_mb`` (A and b). Goals: ``peak_mb <= 1.3 data_mb``, ``setup_seconds <= 5
  one_pass_seconds``.
- ``fixed`` (N = 10, d = 10, the default config otherwise): CPU seconds (user + system,
  the whole process) of ``stflow run`` with the default horizon and with a one-step horizon;
  ``fixed_fraction`` = one-step CPU / default CPU: the share spent outside the stepping
  loop (interpreter, imports, set-up, output files and the figure). Goal <= 1/3. The same
  without the figure (``fixed_fraction_no_figure``).

Every child runs with one BLAS thread; times are CPU seconds, so other processes on a
shared machine count little (cache and memory-bus sharing still do).

Usage::

    python benchmarks/bench_setup.py --json
    python benchmarks/bench_setup.py --sizes 2000x100 --samples 100
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
CLOCK = time.process_time


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _child(args: list[str]) -> dict:
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, "1")}
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                         check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _timed(fn):
    t0 = CLOCK()
    value = fn()
    return value, CLOCK() - t0


def setup_child(n: int, d: int, m: int) -> dict:
    """Generation, one pass and the set-up of one least-squares problem (this process)."""
    import numpy as np

    from stflow.graphs import make_graph
    from stflow.problems import LeastSquaresProblem
    from stflow.problems._validate import _validate_arrays
    from stflow.problems.io import _generate

    arrays, t_gen = _timed(lambda: _generate("least_squares", n, d, 0, m))
    a = arrays["A"].reshape(-1)
    one_pass = min(_timed(lambda: np.add.reduce(a))[1] for _ in range(5))
    data_mb = (arrays["A"].nbytes + arrays["b"].nbytes) / 2**20

    def build():
        arr = _validate_arrays("least_squares", arrays, fix="", copy=False, freeze=False)
        return LeastSquaresProblem._adopt(arr["A"], arr["b"], keep_rows=False)

    problem, t_build = _timed(build)
    _, t_x = _timed(lambda: problem.x_star)
    _, t_l = _timed(lambda: problem.smoothness)
    _, t_g = _timed(lambda: make_graph("ring", n).lambda_max)
    setup = t_build + t_x + t_l + t_g
    return {
        "record": "setup", "N": n, "d": d, "samples": m, "form": problem.form,
        "data_mb": data_mb, "generate_seconds": t_gen, "one_pass_seconds": one_pass,
        "setup_seconds": setup, "setup_over_one_pass": setup / one_pass,
        "build_seconds": t_build, "x_star_seconds": t_x, "smoothness_seconds": t_l,
        "graph_seconds": t_g,
    }


def run_child(config: str, out: str, figure: bool) -> dict:
    """``stflow run config --out out`` in this process; its CPU seconds and peak RSS."""
    if not figure:
        from stflow import output

        output.plot_convergence = lambda *a, **k: None  # what --no-figure skips
    from stflow.cli import main

    with open(os.devnull, "w") as null:
        stdout, sys.stdout = sys.stdout, null
        try:
            main(["run", config, "--out", out])
        finally:
            sys.stdout = stdout
    return {"cpu_seconds": _cpu_seconds(),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def setup_record(n: int, d: int, m: int) -> dict:
    rec = _child(["--setup-child", f"{n}x{d}x{m}"])
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _write(Path(tmp) / "big.toml", (
            f'[problem]\nkind = "least_squares"\nagents = {n}\ndim = {d}\nsamples = {m}\n'
            '[method]\nkind = "observer"\nalpha = 2.0\nbeta = 2.0\neta = 1.0\ngamma = 50.0\n'
            '[compressor]\nspec = "topk:k=2"\n'
            '[solver]\nstep = 0.001\nhorizon = 0.01\nrecord_every = 5\n'))
        run = _child(["--run-child", cfg, str(Path(tmp) / "out"), "1"])
    rec["peak_mb"] = run["peak_mb"]
    rec["peak_over_data"] = run["peak_mb"] / rec["data_mb"]
    rec["run_cpu_seconds"] = run["cpu_seconds"]
    return rec


def fixed_record() -> dict:
    rec = {"record": "fixed", "N": 10, "d": 10}
    with tempfile.TemporaryDirectory() as tmp:
        full = _write(Path(tmp) / "full.toml", "[problem]\nagents = 10\ndim = 10\n")
        one = _write(Path(tmp) / "one.toml",
                     "[problem]\nagents = 10\ndim = 10\n[solver]\nhorizon = 0.001\n")
        for figure, suffix in ((True, ""), (False, "_no_figure")):
            flag = "1" if figure else "0"
            total = _child(["--run-child", full, str(Path(tmp) / "o1"), flag])["cpu_seconds"]
            fixed = _child(["--run-child", one, str(Path(tmp) / "o2"), flag])["cpu_seconds"]
            rec[f"total_cpu_seconds{suffix}"] = total
            rec[f"fixed_cpu_seconds{suffix}"] = fixed
            rec[f"fixed_fraction{suffix}"] = fixed / total
    return rec


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("--sizes", default="10000x100", help="comma list of NxD (set-up)")
    parser.add_argument("--samples", type=int, default=None, help="rows per agent (default d)")
    parser.add_argument("--setup-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--run-child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.setup_child:
        n, d, m = (int(v) for v in args.setup_child.split("x"))
        print(json.dumps(setup_child(n, d, m)))
        return 0
    if args.run_child:
        config, out, figure = args.run_child
        print(json.dumps(run_child(config, out, figure == "1")))
        return 0
    records = []
    for size in args.sizes.split(","):
        n, d = (int(v) for v in size.split("x"))
        records.append(setup_record(n, d, d if args.samples is None else args.samples))
        if not args.json:
            r = records[-1]
            print(f"N={n} d={d} m={r['samples']}: data {r['data_mb']:.0f} MB, peak "
                  f"{r['peak_mb']:.0f} MB ({r['peak_over_data']:.2f}x); set-up "
                  f"{r['setup_seconds']:.2f} s = {r['setup_over_one_pass']:.1f} x one pass "
                  f"({r['one_pass_seconds']:.3f} s)", flush=True)
    records.append(fixed_record())
    if not args.json:
        r = records[-1]
        print(f"N=10 d=10 default run: fixed {r['fixed_cpu_seconds']:.2f} of "
              f"{r['total_cpu_seconds']:.2f} CPU s = {r['fixed_fraction']:.2f} "
              f"(no figure: {r['fixed_fraction_no_figure']:.2f})")
    if args.json:
        print(json.dumps(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
