"""``stflow plot``: overlays of run folders from run, study and reproduce, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from stflow.cli import main
from stflow.plot import find_runs, plot_runs

ROOT = Path(__file__).resolve().parents[1]

RUN = """
[problem]
kind = "least_squares"
agents = 4
dim = 3
[method]
kind = "lead"
[compressor]
spec = "quantize:bits=4"
[solver]
step = 1.0
horizon = 50.0
record_every = 10
"""

STUDY = """
[study]
target = 1e-6
seeds = [0, 1]
rounds = 40
[base.problem]
kind = "least_squares"
agents = 4
dim = 3
[[method]]
kind = "choco"
step = 1.0
[[compressor]]
spec = "topk:k=1"
"""


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("plot")
    (base / "run.toml").write_text(RUN)
    (base / "study.toml").write_text(STUDY)
    assert main(["run", str(base / "run.toml"), "--out", str(base / "run"), "--no-figure",
                 "--quiet"]) == 1  # not converged in 50 rounds: exit 1, folder written
    assert main(["study", str(base / "study.toml"), "--out", str(base / "study"),
                 "--quiet"]) == 0
    # a reproduce experiment's layout: OUT/E2/runs/<label>/metrics.csv (written as E2 does)
    from stflow.config import resolve_config, run_config
    from stflow.experiments._common import write_run

    cfg = resolve_config({"problem": {"kind": "quadratic", "agents": 4, "dim": 3},
                          "compressor": {"spec": "topk:k=2"},
                          "solver": {"step": 0.01, "horizon": 1.0, "record_every": 10}})
    write_run(base / "reproduce" / "E2", "topk:k=2", run_config(cfg)[1], {})
    return base


def test_overlay_of_run_study_and_reproduce_folders(folders, tmp_path, capsys):
    fig = tmp_path / "fig.png"
    runs = [str(folders / "run"), str(folders / "study"), str(folders / "reproduce")]
    assert main(["plot", *runs, "--x", "rounds", "--y", "error", "--out", str(fig)]) == 0
    # one run + the study's two cells + the reproduce run
    assert "drew 4 run(s)" in capsys.readouterr().out
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = plot_runs(runs, tmp_path / "b.svg", x="bits", y="consensus")
    assert len(labels) == 4 and any("cells" in lab for lab in labels)
    assert len(find_runs([str(folders / "study" / "cells")])) == 2


@pytest.mark.parametrize("args,named", [
    (["--y", "accuracy"], "mean_agent_test_accuracy"),
    (["--x", "time"], "modeled_seconds"),
])
def test_missing_column_is_one_line_exit_2(folders, tmp_path, capsys, args, named):
    code = main(["plot", str(folders / "run"), *args, "--out", str(tmp_path / "f.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and named in err
    assert not (tmp_path / "f.png").exists()


def test_bad_run_dirs(folders, tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nope"), "--out", str(tmp_path / "f.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    tuned = tmp_path / "tune"
    tuned.mkdir()
    (tuned / "tuning.json").write_text("{}")
    assert main(["plot", str(tuned), "--out", str(tmp_path / "f.png")]) == 2
    assert "tuned.toml" in capsys.readouterr().err
    assert main(["plot", str(folders / "run"), "--out", str(tmp_path / "f.txt")]) == 2
    assert ".png" in capsys.readouterr().err
