"""Regenerate every figure in docs/img from the code the README describes, and record the
data each was drawn from (docs/img/figures.json).

Usage (from the repository root; about 20 s of CPU)::

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/make_figures.py

Each figure is the report's own (``stflow reproduce`` at full size draws the same one), run
here for its experiment alone. ``figures.json`` keeps, per figure, the experiment, the
size, the curves' labels and a SHA-256 of each curve's data: its relative error rounded to
6 significant digits, for the whole run and for the records up to ``prefix_t``.
tests/test_report.py recomputes the prefix of every curve (a second of CPU) and fails when
the code no longer draws the stored figure: then run this script again and commit docs/img.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
MANIFEST = IMG / "figures.json"
#: Time up to which the test recomputes each curve.
PREFIX_T = 1.0
COMMAND = "OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/make_figures.py"


def curve_hash(values) -> str:
    """SHA-256 of the values rounded to 6 significant digits (one per line)."""
    import hashlib

    text = "\n".join("nan" if v != v else f"{float(v):.5e}" for v in values)
    return hashlib.sha256(text.encode()).hexdigest()


def e2_curves(size: dict, out_dir: Path) -> dict:
    """Label -> (t, relative error) of every E2 curve at ``size``, recomputed here."""
    from stflow.experiments.e2_convergence import observer_suite

    runs = observer_suite(out_dir, size)
    return {r["label"]: (r["solution"].records["t"], r["solution"].records["relative_error"])
            for r in runs}


def read_curves(folder: Path) -> dict:
    """Label -> (t, relative error) of the runs an experiment wrote (``runs/*/``)."""
    from stflow.output import read_metrics_csv

    out = {}
    for run in sorted((folder / "runs").iterdir()):
        summary = json.loads((run / "summary.json").read_text())
        label = summary.get("compressor") or "uncompressed"
        m = read_metrics_csv(run / "metrics.csv")
        out[label] = (m["t"], m["relative_error"])
    return out


def entry(curves: dict, size: dict) -> dict:
    return {
        "experiment": "E2", "size": "full", "source": "E2/relative_error_vs_time.png",
        "command": COMMAND, "prefix_t": PREFIX_T,
        "curves": {label: {"records": int(len(e)), "sha256": curve_hash(e),
                           "prefix_sha256": curve_hash(e[t <= PREFIX_T + 1e-12])}
                   for label, (t, e) in curves.items()},
    }


def main() -> int:
    sys.path.insert(0, str(ROOT / "src"))
    from stflow.experiments import run_one
    from stflow.experiments.e2_convergence import SIZES

    IMG.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_one("E2", tmp, quick=False)
        if not result["ok"]:
            print(f"E2 failed: {result.get('error')}", file=sys.stderr)
            return 1
        shutil.copyfile(Path(tmp) / "E2" / "relative_error_vs_time.png",
                        IMG / "e2_relative_error.png")
        curves = read_curves(Path(tmp) / "E2")
    manifest = {"e2_relative_error.png": entry(curves, SIZES["full"])}
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {IMG / 'e2_relative_error.png'} and {MANIFEST}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
