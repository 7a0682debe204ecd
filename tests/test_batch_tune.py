"""The tuner's search in waves run as batches (stflow.tune_batch.search_batched): every
candidate it scores gets the bits a single run of that candidate gives."""

from __future__ import annotations

import importlib

import pytest
from test_faults import TUNE_INTERRUPTER  # tests/ is on sys.path (rootdir conftest)
from test_tune import TINY

from stflow.config import resolve_config
from stflow.errors import InputError
from stflow.tune_batch import search_batched

T = importlib.import_module("stflow.tune")  # the module (stflow.tune is the function)


def _config():
    return resolve_config({
        "problem": {"agents": 4, "dim": 3},
        "method": {"kind": "observer", **dict.fromkeys(("alpha", "beta", "eta", "gamma"),
                                                       "auto")},
        "compressor": {"spec": "quantize:bits=4"},
        "solver": {"step": 0.05, "horizon": 20.0}})


def test_batched_search_scores_each_candidate_as_its_single_run(monkeypatch):
    monkeypatch.setattr(T, "_search", lambda *a, **k: search_batched(*a, wave=3, **k))
    res = T.tune(_config(), budget=7, target=1e-6, seed=0)
    assert res.found and res.evaluations == 7
    assert [t["phase"] for t in res.trials].count("explore") == round(T.EXPLORE_SHARE * 7)
    base, tunables, tune_step, spec0 = T._prepare(_config(), T.RECORD_EVERY, None)
    h0 = base["solver"]["step"]
    cap = round(base["solver"]["horizon"] / h0)
    crit = T._Criterion("relative_error", 1e-6, False)
    checked = 0
    for t in res.trials:
        if t["pruned"]:
            continue
        alone = T._evaluate(T._candidate(base, t["params"], cap, h0, spec0), crit, cap, None)
        assert t["bits_to_target"] == (alone.bits if alone.counted else None)
        assert t["rounds_to_target"] == alone.rounds
        checked += 1
    assert checked >= 3
    # the winner: fewest bits among the candidates that counted and passed robustness
    won = [t for t in res.trials if t["robust_bits_to_target"] is not None]
    assert res.bits_to_target == min(t["bits_to_target"] for t in won)


def test_wave_must_be_a_positive_integer():
    with pytest.raises(InputError, match="wave"):
        search_batched(None, {}, (), None, 10, 1.0, None, budget=1, seed=0, progress=False,
                       wave=0)


# -- stflow tune --wave ---------------------------------------------------------------------

#: test_tune's tiny observer config with top-k instead of the cyclic scalarizer.
TOML = TINY.replace('spec = "scalarize:basis=cyclic,tau=0.01"', 'spec = "topk:k=1"')


def test_wave_winner_scores_what_stflow_run_of_it_gives(tmp_path, capsys):
    import json

    from stflow.cli import main
    from stflow.output import read_metrics_csv

    cfg = tmp_path / "t.toml"
    cfg.write_text(TOML)
    out = tmp_path / "tuned"
    assert main(["tune", str(cfg), "--budget", "12", "--target", "1e-6", "--out", str(out),
                 "--wave", "4", "--json", "--quiet"]) == 0
    saved = json.loads((out / "tuning.json").read_text())
    assert json.loads(capsys.readouterr().out) == saved
    assert saved["wave"] == 4 and saved["batch_fallback"] is None
    assert saved["evaluations"] >= 12
    run_dir = tmp_path / "run"
    assert main(["run", str(out / "tuned.toml"), "--out", str(run_dir), "--quiet"]) in (0, 1)
    rec = read_metrics_csv(run_dir / "metrics.csv")
    i, stays = T.first_hit(rec, "relative_error", 1e-6)
    assert stays and int(rec["step"][i]) == saved["rounds_to_target"]
    assert rec["bits_per_agent"][i] == saved["bits_to_target"]  # exact
    # the winner is the fewest bits among the candidates that passed robustness
    won = [t for t in saved["trials"] if t["robust_bits_to_target"] is not None]
    assert saved["bits_to_target"] == min(t["bits_to_target"] for t in won)


def test_wave_1_is_the_sequential_search(monkeypatch):
    seq = T.tune(_config(), budget=9, target=1e-6, seed=2)
    assert seq.wave == 1 and seq.batch_fallback is None
    for speculate in (False, True):
        monkeypatch.setattr(T, "_search", lambda *a, s=speculate, **k: search_batched(
            *a, wave=1, speculate=s, **k))
        one = T.tune(_config(), budget=9, target=1e-6, seed=2)
        assert one.trials == seq.trials  # the same candidates, scores and phases, in order
        assert (one.bits_to_target, one.robust_bits_to_target, one.params) == (
            seq.bits_to_target, seq.robust_bits_to_target, seq.params)
        if not speculate:  # the same runs too (speculation may add robustness runs)
            assert one.runs == seq.runs


def test_speculative_robustness_runs_change_the_cost_not_the_result(monkeypatch):
    got = {}
    for speculate in (False, True):
        monkeypatch.setattr(T, "_search", lambda *a, s=speculate, **k: search_batched(
            *a, wave=4, speculate=s, **k))
        got[speculate] = T.tune(_config(), budget=12, target=1e-6, seed=1)
    a, b = got[False], got[True]
    assert a.trials == b.trials and a.found
    assert (a.bits_to_target, a.robust_bits_to_target, a.params) == (
        b.bits_to_target, b.robust_bits_to_target, b.params)


def test_wave_counts_every_run_it_makes(monkeypatch):
    import stflow.engines.batch as B

    made = [0]
    real = B.evaluate_batch

    def counting(cfgs, rounds, **kw):
        sols = real(cfgs, rounds, **kw)
        made[0] += len(sols)
        return sols

    monkeypatch.setattr(B, "evaluate_batch", counting)
    res = T.tune(_config(), budget=8, target=1e-6, seed=0, wave=3)
    assert res.wave == 3 and res.runs == made[0]
    robust = sum(1 for t in res.trials if t["robust_bits_to_target"] is not None)
    assert robust >= 1 and made[0] >= res.evaluations + T.ROBUST_RUNS * robust


def test_a_config_the_batch_cannot_stack_falls_back_to_the_sequential_search():
    cfg = _config()
    cfg["network"]["drop"] = 0.05
    res = T.tune(cfg, budget=5, target=1e-3, seed=1, wave=4)
    assert res.wave == 1 and "[network] faults" in res.batch_fallback
    seq = T.tune(cfg, budget=5, target=1e-3, seed=1)
    assert res.trials == seq.trials and res.bits_to_target == seq.bits_to_target


def test_bad_wave_exits_2_with_one_line(tmp_path, capsys):
    from stflow.cli import main

    cfg = tmp_path / "t.toml"
    cfg.write_text(TOML)
    for bad in ("0", "-3"):
        code = main(["tune", str(cfg), "--budget", "3", "--target", "1e-6", "--out",
                     str(tmp_path / f"o{bad}"), "--wave", bad, "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert f"--wave must be an integer >= 1 (got {bad})" in err[0]
    with pytest.raises(InputError, match="--wave must be"):
        T.tune(_config(), budget=2, target=1e-6, wave=True)


INTERRUPTER = TUNE_INTERRUPTER  # a compressor that signals its own process at call `at`


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupted_wave_search_exits_130_without_tuned_toml(tmp_path, sig):
    import json
    import os
    import subprocess
    import sys

    (tmp_path / "intr.py").write_text(INTERRUPTER.format(at=600, sig=sig))
    cfg = tmp_path / "t.toml"
    cfg.write_text(TOML.replace('spec = "topk:k=1"', f'spec = "py:{tmp_path}/intr.py:make"'))
    out = tmp_path / "tuned"
    proc = subprocess.run([sys.executable, "-m", "stflow.cli", "tune", str(cfg), "--out",
                           str(out), "--budget", "20", "--target", "1e-3", "--wave", "5",
                           "--quiet"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr and "stflow: interrupted" in proc.stderr
    assert not (out / "tuned.toml").exists()
    info = json.loads((out / "tuning.json").read_text())
    assert info["interrupted"] is True and info["reason"].startswith("interrupted after")
    assert info["wave"] == 5 and len(info["trials"]) < 20
