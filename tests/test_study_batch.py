"""``stflow study`` runs the untuned seeds of one method, compressor, problem and graph as
one batch (:func:`stflow.study.run_cell_batch`): the same results.csv as cell by cell."""

from __future__ import annotations

import csv
import math

import pytest

import stflow.engines.batch as B
from stflow.cli import main
from stflow.study import TIMING_COLUMNS, batch_groups, load_study

STUDY = """
[study]
title = "batched"
target = 1e-6
seeds = [0, 1, 2]
rounds = 300
init = "random"

[base.problem]
kind = "least_squares"
agents = 6
dim = 4

[base.graph]
kind = "ring"

[[method]]
kind = "lead"
step = 1.0

[[method]]
kind = "observer"
step = 0.05
scheme = "predict"

[[method]]
kind = "choco"
step = 1.0
tune = { budget = 2 }

[[compressor]]
label = "q4"
spec = "quantize:bits=4"

[[compressor]]
spec = "randk:k=2,seed={seed},tau={step}"
"""


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _close(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=1e-12, abs_tol=0.0)


def test_batched_study_rows_equal_the_cell_by_cell_rows(tmp_path, monkeypatch):
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    stacked = []
    real = B._run_stack

    def counting(stack, *a, **k):
        stacked.append(stack.S)
        return real(stack, *a, **k)

    monkeypatch.setattr(B, "_run_stack", counting)
    assert main(["study", str(study), "--out", str(tmp_path / "one"), "--quiet",
                 "--no-batch"]) == 0
    assert stacked == []
    assert main(["study", str(study), "--out", str(tmp_path / "many"), "--quiet"]) == 0
    # lead and observer x two compressors: four groups of 3 seeds, each one stack of 3
    assert stacked == [3, 3, 3, 3]
    one, many = _rows(tmp_path / "one" / "results.csv"), _rows(tmp_path / "many" / "results.csv")
    assert len(one) == len(many) == 18
    for a, b in zip(one, many, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if key not in TIMING_COLUMNS:
                assert _close(a[key], b[key]), (a["id"], key, a[key], b[key])
    assert sum(r["reached"] == "True" for r in many) >= 3  # numbers, not only empty cells
    assert all(float(r["final_error"]) > 0 for r in many if r["method"] != "choco")
    # each cell's metrics.csv too
    for r in one:
        x = (tmp_path / "one" / r["run_dir"] / "metrics.csv").read_text()
        y = (tmp_path / "many" / r["run_dir"] / "metrics.csv").read_text()
        assert x == y, r["id"]


def test_batch_groups_are_the_seeds_of_one_untuned_setting(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    cells = [c.__dict__ for c in load_study(study).cells]
    groups = batch_groups(cells)
    sizes = sorted(len(g) for g in groups)
    assert sizes == [1] * 6 + [3] * 4  # choco is tuned: each of its cells alone
    for g in groups:
        assert len({(c["method"], c["compressor"]) for c in g}) == 1
        assert len({c["seed"] for c in g}) == len(g)


@pytest.mark.parametrize("jobs", ["2"])
def test_batched_study_with_jobs(tmp_path, jobs):
    study = tmp_path / "s.toml"
    study.write_text(STUDY.replace("tune = { budget = 2 }", ""))
    assert main(["study", str(study), "--out", str(tmp_path / "a"), "--quiet", "--no-batch"]) == 0
    assert main(["study", str(study), "--out", str(tmp_path / "b"), "--quiet", "--jobs", jobs]) == 0
    one, two = _rows(tmp_path / "a" / "results.csv"), _rows(tmp_path / "b" / "results.csv")
    strip = [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in one]
    assert strip == [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in two]
