"""E11, the learning workload (issue 13): its quick mode, the two-network clock, the
reach-and-stay rule, the tuned table and the shared x* solve.

Equal metrics between engines with batches and local steps are in tests/test_mpi.py.
"""

import json

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
    for r in rows:
        assert (out / "runs" / f"{r['variant'].replace(' ', '_')}_iid_K1" / "metrics.csv").exists()
        assert r["rounds_run"] == 100  # 10 % of 1000 rounds
        assert 0.5 < r["final_mean_agent"] <= 1.0
    # top-20 of d = 650: 20 values and 20 indices of ceil(log2 650) = 10 bits; DGD raw float64
    assert rows[0]["bits_per_message"] == 20 * (64 + 10)
    assert rows[1]["bits_per_message"] == 650 * 64
    assert "| flow top-20 | iid | 1 |" in result["measured"]
    assert result["figures"] == ["learning.png"]


def test_planned_runs_match_the_sizes(monkeypatch):
    monkeypatch.delenv("STFLOW_TINY", raising=False)
    # full: 2 splits x (7 variants with K = 1 + 6 with K = 4, no gradient tracking) + 6 floor runs
    assert e11.planned_runs(quick=False) == 2 * (7 + 6) + 6
    assert e11.planned_runs(quick=True) == 3
    assert planned_runs("E11", quick=True) == 3


def test_every_full_setting_has_a_tuned_entry():
    keys = set(e11.settings(e11.SIZES["full"]))
    assert set(e11.TUNED) == keys
    cfg = e11.tuned_config("flow q4", "by_label", 4)
    values = e11.TUNED[("flow q4", "by_label", 4)]
    # the flows' h is tuned with the rounds kept (stflow tune's rule)
    assert cfg["solver"]["step"] == values["step"] != e11.FLOW_STEP
    assert cfg["solver"]["horizon"] == pytest.approx(e11.ROUNDS[4] * values["step"])
    assert cfg["method"]["gamma"] == values["gamma"]
    assert cfg["solver"]["step_decay"] == e11.STEP_DECAY
    # settings the tuner could not settle: none (CHOCO by label), run at the tuner's centre
    assert e11.TUNED[("choco q4", "by_label", 1)] is None
    assert e11.tuned_config("choco q4", "by_label", 1) is None


def test_fast_network_clock_by_hand_and_slow_equals_the_recorded_one(tiny):
    out, _, _ = tiny
    import csv

    with open(out / "runs" / "dgd_iid_K1" / "metrics.csv") as f:
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
