"""The tuner's search in waves run as batches (stflow.tune_batch.search_batched): every
candidate it scores gets the bits a single run of that candidate gives."""

from __future__ import annotations

import importlib

import pytest

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
