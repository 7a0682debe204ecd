"""E11, the learning workload (issue 13): its quick mode, the two-network clock, the
reach-and-stay rule, its study files and the shared x* solve.

Equal metrics between engines with batches and local steps are in tests/test_mpi.py.
"""

import csv
import json
import shutil

import numpy as np
import pytest

from stflow.experiments import e11_learning as e11
from stflow.experiments import planned_runs
from stflow.problems import make_problem


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("STFLOW_TINY", "1")
    out = tmp_path_factory.mktemp("e11")
    ticks = []
    try:
        result = e11.run(out, quick=True, progress=ticks.append)
    finally:
        mp.undo()
    return out, result, ticks


def test_quick_mode_writes_table_figure_and_runs(tiny):
    out, result, ticks = tiny
    size = e11.SIZES["tiny"]
    assert len(ticks) == len(e11.settings(size)) == 2
    assert (out / "learning.png").stat().st_size > 10_000
    rows = json.loads((out / "rows.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["flow top-20", "dgd"]
    for r in rows:  # the study runner's cells, and its results.csv
        assert (out / "study_iid" / "cells" / r["cell"] / "metrics.csv").exists()
        assert r["rounds_run"] == 100  # the tiny size caps the file's 1000 rounds
        assert 0.5 < r["final_mean_agent"] <= 1.0
    # top-20 of d = 650: 20 values and 20 indices of ceil(log2 650) = 10 bits; DGD raw float64
    assert rows[0]["bits_per_message"] == 20 * (64 + 10)
    assert rows[1]["bits_per_message"] == 650 * 64
    assert "| flow top-20 | iid | 1 |" in result["measured"]
    with open(out / "study_iid" / "results.csv") as f:
        got = list(csv.DictReader(f))
    assert [(g["method"], g["compressor"], g["rounds"]) for g in got] == [
        ("flow top-20 K=1", "top-20", "100"), ("dgd K=1", "none", "100")]
    assert result["figures"] == ["learning.png"]


def test_planned_runs_match_the_sizes(monkeypatch):
    monkeypatch.delenv("STFLOW_TINY", raising=False)
    # full: 2 splits x (7 variants with K = 1 + 6 with K = 4, no gradient tracking) + 6 floor runs
    assert e11.planned_runs(quick=False) == 2 * (7 + 6) + 6
    assert e11.planned_runs(quick=True) == 3
    assert planned_runs("E11", quick=True) == 3


def test_the_study_files_hold_every_full_setting_and_its_winner():
    from stflow.study import load_study

    full = e11.settings(e11.SIZES["full"])
    assert len(full) == 2 * (7 + 6) and len(set(full)) == len(full)
    for split in e11.STUDIES:
        study = load_study(e11.study_path(split))  # loads and validates as `stflow study` does
        assert study.target["value"] == e11.TARGETS[split] and len(study.cells) == 13
    cfg = e11.setting_config("flow q4", "by_label", 4)
    # the stored winner of ('flow q4', 'by_label', 4) (re-tuned 4 December 2026: the gains
    # searched, h kept at the centre's 0.01), 500 rounds
    assert cfg["solver"]["step"] == 0.01
    assert cfg["solver"]["horizon"] == pytest.approx(500 * 0.01)
    assert cfg["method"]["gamma"] == 67.8524934062094
    assert cfg["method"]["beta"] == 8.644732703840372
    assert cfg["solver"]["local_steps"] == 4 and cfg["solver"]["step_decay"] == e11.STEP_DECAY
    assert cfg["compressor"]["spec"] == "quantize:bits=4,scale=pow2"
    # the tuner found no setting for CHOCO by label: the file runs its centre and says so
    choco = e11.setting_config("choco q4", "by_label", 1)
    assert choco["method"]["lr"] == e11.PEER_LR
    note = next(c.note for c in e11.load_split("by_label").cells if c.method == "choco q4 K=1")
    assert note.startswith("tuning (budget 12) found no setting")
    # the tuner's centre: auto gains, h = 0.01
    centre = e11.base_config("flow q4", "by_label", 4)
    assert centre["solver"]["step"] == e11.FLOW_STEP
    assert centre["solver"]["horizon"] == pytest.approx(500 * e11.FLOW_STEP)


def test_e11_reads_its_settings_from_the_study_file(tmp_path, monkeypatch):
    """An edited copy of the study file changes what E11 runs (and a wrong target is refused)."""
    from stflow.errors import InputError

    copy = tmp_path / "e11_iid.toml"
    text = e11.study_path("iid").read_text()
    assert text.count("gamma = 50.0\n") == 2  # flow top-20's winners, K = 1 then K = 4
    copy.write_text(text.replace("gamma = 50.0\n", "gamma = 7.5\n", 1)
                    .replace('spec = "topk:k=20"', 'spec = "topk:k=30"'))
    monkeypatch.setattr(e11, "study_path", lambda split: copy)
    cfg = e11.setting_config("flow top-20", "iid", 1)
    assert cfg["method"]["gamma"] == 7.5 and cfg["compressor"]["spec"] == "topk:k=30"
    assert e11.setting_config("flow top-20", "iid", 4)["method"]["gamma"] == 50.0
    assert e11.setting_config("choco top-20", "iid", 1)["compressor"]["spec"] == "topk:k=30"
    shutil.copy(copy, tmp_path / "bad.toml")
    (tmp_path / "bad.toml").write_text(copy.read_text().replace(
        "target_accuracy = 0.95", "target_accuracy = 0.9"))
    with pytest.raises(InputError, match="target_accuracy must stay 0.95"):
        e11.load_split("iid", path=tmp_path / "bad.toml")


def test_fast_network_clock_by_hand_and_slow_equals_the_recorded_one(tiny):
    out, _, _ = tiny
    with open(out / "study_iid" / "cells" / "dgd-K=1__none__iid__default__s0" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    rec = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    # the runs were made on the slow network: the recomputed clock equals the recorded one
    np.testing.assert_allclose(e11.network_seconds(rec, "slow"), rec["modeled_seconds"],
                               rtol=1e-12)
    # 100 rounds of DGD, batch 16: 1e-5 * 1600 + 1e-5 * 100 + 100 * 41600 / 1e9
    assert e11.network_seconds(rec, "fast")[-1] == pytest.approx(0.016 + 0.001 + 0.00416)


def test_reach_needs_the_target_to_stay():
    rec = {"step": np.array([0, 10, 20, 30]), "samples_per_agent": np.array([0, 160, 320, 480.]),
           "bits_per_agent": np.array([0, 1e3, 2e3, 3e3]),
           "mean_agent_test_accuracy": np.array([0.1, 0.93, 0.96, 0.97])}
    got = e11.reach(rec, 0.95)
    assert got["rounds"] == 20 and got["bits"] == 2e3
    assert got["seconds_slow"] == pytest.approx(320e-5 + 20e-3 + 2e3 / 1e6)
    assert got["seconds_fast"] == pytest.approx(320e-5 + 20e-5 + 2e3 / 1e9)
    # reached at round 10, below at round 20: it counts from where it settles (round 30)
    rec["mean_agent_test_accuracy"] = np.array([0.1, 0.96, 0.94, 0.97])
    assert e11.reach(rec, 0.95)["rounds"] == 30
    # below the target at the last row: never
    rec["mean_agent_test_accuracy"] = np.array([0.1, 0.96, 0.97, 0.94])
    assert e11.reach(rec, 0.95) is None


def test_shared_minimizer_gives_the_same_x_star_and_restores():
    from stflow.problems.base import Problem

    original = Problem._minimize
    plain = make_problem("logistic", agents=4, dim=3, seed=0).x_star
    with e11.shared_minimizer():
        a = make_problem("logistic", agents=4, dim=3, seed=0).x_star
        b = make_problem("logistic", agents=4, dim=3, seed=0).x_star
        c = make_problem("logistic", agents=4, dim=3, seed=1).x_star
    assert Problem._minimize is original
    np.testing.assert_array_equal(a, plain)
    np.testing.assert_array_equal(b, plain)
    assert not np.allclose(c, plain)
