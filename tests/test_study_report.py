"""The study report tells the truth about diverged runs and fallbacks: figures count a
diverged trial as infinite error after it stopped (and say how many diverged), the tables
show how the runs ended and do not pass a diverged trial's last finite error off as its
result, tuned cells whose tuning found nothing are marked, and the Setting section says
what ran (base problem, graph, network, axes, what a seed varies)."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pytest

from stflow.cli import main
from stflow.study import (
    QUICK,
    cell_row,
    load_study,
    run_study,
    spread,
    summary_markdown,
    summary_rows,
)
from stflow.study.summary import band, write_report

TARGET = {"column": "relative_error", "value": 1e-6, "at_least": False}

#: The problem and graph every study below shares (quadratic N = 8, d = 6, ring).
BASE = """
[base.problem]
kind = "quadratic"
agents = 8
dim = 6

[base.graph]
kind = "ring"
"""


# D4: lead at lr = 0.6 with a 6-bit quantizer: 4 of 6 trials diverge (their last records at
# rounds 140, 370, 80 and 160); choco at lr = 5 diverges at round 10 in every trial, before
# its second record.
DIVERGING = """
[study]
target = 1e-6
seeds = [0, 1, 2, 3, 4, 5]
rounds = 600
quantities = ["bits", "final"]
""" + BASE + """
[[method]]
kind = "lead"
step = 1.0
lr = 0.6

[[method]]
kind = "choco"
label = "choco-big"
step = 1.0
lr = 5.0

[[compressor]]
spec = "quantize:bits=6"
"""


def _write(tmp_path, text, name="study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _csv(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_band_counts_a_diverged_run_as_infinite_after_it_stopped():
    """Three runs on x in [0, 10]: one finished at 1e-4, two diverged after x = 2 and
    x = 6. The median is the middle run until the second divergence (x = 6), then infinite:
    the curve stops there; the upper quartile is infinite from the first one (x = 2)."""
    x = np.array([0.0, 10.0])
    ok = (x, np.array([1.0, 1e-4]), False)
    d1 = (np.array([0.0, 2.0]), np.array([1.0, 1e-1]), True)
    d2 = (np.array([0.0, 6.0]), np.array([1.0, 1e-3]), True)
    grid, med, q25, q75, stopped = band([ok, d1, d2], log=True, points=11)
    assert stopped and grid.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    # at x = 6: the runs at 10^-2.4 (finished) and 10^-3 (d2's last record), d1 infinite
    assert np.log10(med[-1]) == pytest.approx(-2.4)
    assert np.isinf(q75[3:]).all() and np.isfinite(q75[:3]).all()
    # all diverged: drawn up to where half of them stopped, and said so
    g, m, _, _, stopped = band([d1, d2], log=True, points=7)
    assert stopped and g[-1] == pytest.approx(2.0)


def test_figures_count_diverged_trials_and_keep_a_method_that_all_diverged(tmp_path,
                                                                          monkeypatch):
    from matplotlib.figure import Figure

    saved = {}
    real = Figure.savefig

    def keep(self, fname, *args, **kwargs):
        saved[len(saved)] = self
        return real(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    study = load_study(_write(tmp_path, DIVERGING))
    out = tmp_path / "out"
    res = run_study(study, out, quiet=True)
    rows = res["rows"]
    lead = [r for r in rows if r["method"] == "lead"]
    assert [r["status"] for r in lead] == ["diverged", "diverged", "converged", "diverged",
                                           "diverged", "converged"]
    assert all(r["status"] == "diverged" for r in rows if r["method"] == "choco-big")
    by_x = {}
    for fig in saved.values():
        ax = fig.axes[0]
        by_x[ax.get_xlabel()] = ax
    ax = by_x["rounds"]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["lead (6; 4 diverged)", "choco-big (6; all diverged, nothing to draw)"]
    line = ax.get_lines()[0]
    assert line.get_label() == "lead (6; 4 diverged)"
    # the third divergence of six (last record at round 160) ends the median: not round 600
    stops = sorted(int(r["rounds"]) for r in lead if r["status"] == "diverged")
    assert stops == [90, 150, 170, 380]  # the rounds the engine stopped at
    assert 155 <= line.get_xdata()[-1] <= 160
    assert np.max(line.get_ydata()) > 1.0  # the median rises with the diverging runs
    caption = (out / "report.md").read_text()
    assert "a diverged trial counts as infinite error after its last record" in caption


def test_spread_and_tables_count_a_diverged_trial_as_infinite_error():
    s = spread([1.0, 2.0, 3.0, math.inf])
    assert (s["median"], s["q25"], s["q75"], s["iqr"], s["n"]) == (2.5, 1.75, math.inf,
                                                                   math.inf, 4)
    assert spread([1.0, math.inf, math.inf])["median"] == math.inf
    base = {"method": "m", "compressor": "c", "problem": "default", "graph": "default",
            "reached": False, "tuned": False, "tune_found": None}
    rows = [dict(base, seed=0, status="not_converged", final_value=1e-6),
            dict(base, seed=1, status="not_converged", final_value=1e-4),
            # its last finite error is small: it must not count as the trial's result
            dict(base, seed=2, status="diverged", final_value=1e-9)]
    summary = summary_rows(rows, ["final"], TARGET)
    assert summary[0]["final"]["median"] == 1e-4 and summary[0]["diverged"] == 1
    md = summary_markdown(summary, ["final"], TARGET)
    assert "| m | `c` | 0/3 | 2 finished, 1 diverged | 1.000e-04 (inf) |" in md
    rows[1]["status"] = "diverged"
    md = summary_markdown(summary_rows(rows, ["final"], TARGET), ["final"], TARGET)
    assert "| m | `c` | 0/3 | 1 finished, 2 diverged | diverged |" in md


def test_cell_row_of_a_diverged_run_is_not_reached_and_keeps_its_stop_round():
    rec = {"step": np.array([0, 10, 20]), "relative_error": np.array([1.0, 1e-7, 1e-8])}
    r = cell_row({"id": "c", "seed": 0}, rec, status="diverged", target=TARGET,
                 reason="diverged: grew", stopped_at=27)
    assert (r["reached"], r["rounds"], r["rounds_to_target"], r["final_error"]) == (
        False, 27, None, 1e-8)


D5 = """
[study]
title = "My small study"
target = 1e-6
seeds = [1, 2, 3]
rounds = 600
record_every = 10
quantities = ["bits", "rounds", "final"]
""" + BASE + """
[[method]]
kind = "observer"
label = "obs"
scheme = "euler"
step = 0.01
alpha = 15.0                  # euler's "auto" gains before 4 December 2026 (b = 0.3):
beta = 15.0                   # with top-2 the error grows (diverging, not diverged)
eta = 7.6
gamma = 50.0

[[method]]
kind = "choco"
step = 1.0
lr = 5.0
label = "choco-big"

[[compressor]]
label = "q4"
spec = "quantize:bits=4"

[[compressor]]
spec = "topk:k=2"
"""


def test_report_shows_how_runs_ended_and_lists_diverged_cells(tmp_path):
    out = tmp_path / "out"
    assert main(["study", str(_write(tmp_path, D5)), "--out", str(out), "--quiet"]) == 0
    rows = {r["id"]: r for r in _csv(out)}
    c1 = rows["choco-big__q4__default__default__s1"]
    assert (c1["status"], c1["reached"], c1["rounds"]) == ("diverged", "False", "10")
    assert c1["reason"].startswith("diverged: state became non-finite or grew 1e+06-fold by "
                                   "step 10")
    md = (out / "report.md").read_text()
    assert "| choco-big | `q4` | 0/3 | 3 diverged | - | - | diverged |" in md
    assert "| choco-big | `topk:k=2` | 0/3 | 3 diverged | - | - | diverged |" in md
    # the observer's top-2 runs ran every round with a growing error: their real final errors
    assert "| obs | `topk:k=2` | 0/3 | 1 finished, 2 diverging | - | - | 0.09642 (9.109) |" in md
    assert "| obs | `q4` | 3/3 | 3 finished |" in md
    assert "| [Diverged cells](#diverged-cells) | 6 diverged cell(s) |" in md
    assert ("| `choco-big__q4__default__default__s1` | 10 | state became non-finite or grew "
            "1e+06-fold by step 10 (t = 10); likely cause: step size too large for choco") in md
    assert md.count("| `choco-big__") == 6


ST6 = """
[study]
target = 1e-6
seeds = [0, 1, 2, 3, 4, 5, 6, 7]
rounds = 300
""" + BASE + """
[[method]]
kind = "observer"
step = 0.01
tune = { budget = 1 }

[[compressor]]
spec = "topk:k=2"
"""


def test_tuned_cells_whose_tuning_found_nothing_are_marked(tmp_path):
    out = tmp_path / "out"
    assert main(["study", str(_write(tmp_path, ST6)), "--out", str(out), "--quiet"]) == 0
    rows = _csv(out)
    miss = [r for r in rows if r["tune_found"] == "False"]
    assert [r["seed"] for r in miss] == ["1", "3", "4", "5", "6", "7"]
    assert [r["seed"] for r in miss if r["reached"] == "True"] == ["3", "5"]
    md = (out / "report.md").read_text()
    assert "| observer | `topk:k=2` | 4/8 (2 untuned) | 8 finished |" in md
    assert ("- observer, `topk:k=2`: the tuning found no robust setting for 6 of 8 trials "
            "(seeds 1, 3, 4, 5, 6, 7); those ran the method's config untuned; 2 of them "
            "reached the target (counted in reached, marked untuned).") in md
    assert ("tuned, budget 1, span 30; 6 of 8 tunings found no robust setting: those trials "
            "ran this config untuned") in md


def test_setting_says_what_a_seed_varies_with_data_seed(tmp_path):
    import stflow.experiments as e

    path = os.path.join(os.path.dirname(e.__file__), "studies", "e9_e2.toml")
    study = load_study(path, shrink=QUICK)
    write_report(tmp_path, study, [], seconds=0.0, jobs=1, figures=[])
    md = (tmp_path / "report.md").read_text()
    assert ("Trials: seeds [0, 1]; a trial's seed sets the tuner's seed (tuned methods); "
            "every trial has the same data ([problem] seed = 0: data_seed); initial point: "
            "zeros.") in md
    assert "data seed, tuner seed" not in md
    assert "- Problem: `least_squares`, agents = 20, dim = 10\n" in md
    assert "- Graph: `ring`, chords = 3, seed = 0\n" in md


NETWORK = """
[study]
target = 1e-6
seeds = [0, 1]
rounds = 50
""" + BASE + """
[base.network]
drop = 0.1
activation = 0.9

[[method]]
kind = "lead"
step = 1.0

[[compressor]]
spec = "topk:k=2"

[[graph]]
label = "static"

[[graph]]
label = "flaky"
schedule = "failures"
"""


def test_setting_names_problem_graph_network_and_axis_entries(tmp_path):
    study = load_study(_write(tmp_path, NETWORK))
    write_report(tmp_path, study, [], seconds=0.0, jobs=1, figures=[])
    md = (tmp_path / "report.md").read_text()
    assert "- Problem: `quadratic`, agents = 8, dim = 6\n" in md
    assert "- Network: drop = 0.1, activation = 0.9\n" in md
    assert "- **lead**: `lead`, step 1, fixed settings" in md  # no scheme for a peer
    assert '- Graphs (axis): **static**: the base; **flaky**: schedule = "failures"\n' in md
    assert ("a trial's seed sets the data ([problem] seed); initial point: zeros.") in md
    html = (tmp_path / "report.html").read_text()
    assert "drop = 0.1, activation = 0.9" in html and "schedule = \"failures\"" in html


def test_non_empty_out_offers_resume_when_it_holds_a_study(tmp_path, capsys):
    study = _write(tmp_path, NETWORK.replace("seeds = [0, 1]", "seeds = [0]"))
    out = tmp_path / "out"
    assert main(["study", str(study), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["study", str(study), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds an earlier study (study.json): add --resume to finish its unfinished " \
           "cells, --force to start over, or give a new folder" in err
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["study", str(study), "--out", str(other), "--quiet"]) == 2
    assert "exists and is not empty: give a new folder or add --force" in \
        capsys.readouterr().err
