"""The reproduction suite behind ``stflow reproduce``: registry of experiments E1..E8 (+ E9).

Each experiment module defines ``NAME``, ``TITLE`` and
``run(out_dir, *, quick, progress=None) -> dict`` returning ``title``, ``setting``,
``prediction``, ``measured`` (markdown) and ``figures`` (paths relative to ``out_dir``), and
writes its runs (``runs/<label>/summary.json``, ``metrics.csv``) and figures into ``out_dir``.
:func:`run_suite` runs a selection (optionally in a process pool), catches a failing
experiment, and :mod:`stflow.experiments.report` writes ``report.md`` and ``report.html``.
"""

from __future__ import annotations

import importlib
import time
import traceback
from pathlib import Path

__all__ = ["EXPERIMENTS", "experiment_names", "load_experiment", "run_one", "run_suite"]

#: name -> module (relative to this package), in report order.
EXPERIMENTS: dict[str, str] = {
    "E1": ".e1_certificates",
    "E2": ".e2_convergence",
    "E3": ".e3_communication",
    "E4": ".e4_direct_vs_observer",
    "E5": ".e5_convex",
    "E6": ".e6_real_data",
    "E7": ".e7_where_it_breaks",
    "E8": ".e8_scale",
}


def _optional_comparison() -> None:
    """Register E9 (peer algorithms) when ``stflow.experiments.comparison`` imports."""
    try:
        mod = importlib.import_module(".comparison", __name__)
    except Exception:  # noqa: BLE001 - absent or broken: leave E9 out of the suite
        return
    name = getattr(mod, "NAME", "E9")
    if callable(getattr(mod, "run", None)) and name not in EXPERIMENTS:
        EXPERIMENTS[name] = ".comparison"


_optional_comparison()
EXPERIMENTS["E10"] = ".e10_schemes"


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


def run_one(name: str, out_dir, quick: bool) -> dict:
    """Run one experiment into ``out_dir/name``; never raises.

    Returns the experiment's dict plus ``name``, ``ok``, ``seconds`` and, on failure,
    ``error`` (one line) and ``traceback``. Also writes ``out_dir/name/summary.json``.
    """
    from ..output import write_json

    folder = Path(out_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        mod = load_experiment(name)
        result = dict(mod.run(folder, quick=quick))
        result.update(name=name, ok=True, error=None)
        result.setdefault("title", getattr(mod, "TITLE", name))
        result["figures"] = [f"{name}/{f}" for f in result.get("figures", [])]
    except Exception as exc:  # noqa: BLE001 - reported as failed, the suite goes on
        title = name
        try:
            title = load_experiment(name).TITLE
        except Exception:  # noqa: BLE001
            pass
        result = {"name": name, "title": title, "ok": False, "figures": [],
                  "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
                  "traceback": traceback.format_exc()}
    result["seconds"] = time.perf_counter() - start
    summary = {k: result.get(k) for k in ("name", "title", "ok", "error", "seconds", "figures")}
    summary["quick"] = bool(quick)
    summary["data"] = result.get("data")
    write_json(folder / "summary.json", summary)
    return result


def run_suite(out_dir, names, *, quick: bool = False, jobs: int = 1, quiet: bool = False):
    """Run the experiments ``names`` into ``out_dir`` and write the report.

    ``jobs > 1`` runs them in a process pool. A tqdm bar on stderr counts finished
    experiments (``quiet`` silences it). Returns the list of results in ``names`` order.
    """
    import sys

    from tqdm import tqdm

    from .report import write_report

    out = Path(out_dir)
    results: dict[str, dict] = {}
    bar = tqdm(total=len(names), desc="stflow reproduce", unit="exp", file=sys.stderr,
               disable=quiet)
    started = time.perf_counter()
    if jobs <= 1 or len(names) <= 1:
        for name in names:
            bar.set_postfix_str(name)
            results[name] = run_one(name, out, quick)
            bar.update(1)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {pool.submit(run_one, name, str(out), quick): name for name in names}
            for fut in as_completed(futures):
                name = futures[fut]
                try:
                    results[name] = fut.result()
                except Exception as exc:  # noqa: BLE001 - a worker died
                    results[name] = {"name": name, "title": name, "ok": False,
                                     "figures": [], "error": f"worker failed: {exc}",
                                     "seconds": 0.0}
                bar.set_postfix_str(name)
                bar.update(1)
    bar.close()
    ordered = [results[n] for n in names]
    write_report(out, ordered, quick=quick, seconds=time.perf_counter() - started, jobs=jobs)
    return ordered
