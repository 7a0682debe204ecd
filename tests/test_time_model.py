"""The network time model (SPEC section 8), samples per agent and decaying steps, by hand."""

import numpy as np
import pytest

from stflow.config import resolve_config, run_config
from stflow.errors import InputError


def _run(extra: dict):
    raw = {"problem": {"kind": "least_squares", "agents": 4, "dim": 3, "samples": 5},
           "method": {"kind": "choco"}, "compressor": {"spec": "quantize:bits=4"},
           "solver": {"step": 1.0, "horizon": 20.0, "record_every": 10, "local_steps": 2}}
    for section, values in extra.items():
        raw.setdefault(section, {}).update(values)
    return run_config(resolve_config(raw))


def test_modeled_seconds_worked_out_by_hand():
    _, sol = _run({"network": {"bandwidth": 1e6, "latency": 1e-3},
                   "compute": {"seconds_per_sample": 1e-5}})
    # one round: K * B * s + latency + bits / bandwidth with K = 2, B = m = 5 rows (full
    # gradient), bits = 64 + 4 * 3 = 76 (float64 scale + 3 levels of 4 bits):
    # 2 * 5 * 1e-5 + 1e-3 + 76 / 1e6 = 1e-4 + 1e-3 + 7.6e-5 = 1.176e-3 s
    assert sol.bits_per_message == 76
    np.testing.assert_allclose(sol.records["modeled_seconds"], [0.0, 10 * 1.176e-3,
                                                                 20 * 1.176e-3], rtol=1e-12)
    # samples per agent: 2 gradient evaluations per round (K = 2) of 5 rows each
    assert sol.records["samples_per_agent"].tolist() == [0.0, 100.0, 200.0]


def test_no_network_means_no_modeled_time():
    _, sol = _run({})
    assert sol.records["modeled_seconds"].tolist() == [0.0, 0.0, 0.0]


def test_step_decay_clock_and_lr():
    run, sol = _run({"solver": {"step_decay": 10.0, "local_steps": 1}})
    # t after k rounds = sum_{j<k} 1 / (1 + j / 10)
    t10 = sum(1.0 / (1.0 + j / 10.0) for j in range(10))
    t20 = sum(1.0 / (1.0 + j / 10.0) for j in range(20))
    np.testing.assert_allclose(sol.records["t"], [0.0, t10, t20], rtol=1e-14)
    assert run.flow.lr == pytest.approx(run.flow.lr0 / (1.0 + 19 / 10.0), rel=1e-14)


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("network", "bandwidth", -1.0, r"\[network\] bandwidth must be > 0"),
    ("network", "latency", -1.0, r"\[network\] latency must be >= 0"),
    ("compute", "seconds_per_sample", -1e-3, r"\[compute\] seconds_per_sample must be >= 0"),
    ("solver", "local_steps", 0, r"\[solver\] local_steps must be >= 1"),
    ("solver", "target_accuracy", 1.5, r"\[solver\] target_accuracy must be in \(0, 1\]"),
])
def test_bad_network_and_solver_values(section, key, value, message):
    with pytest.raises(InputError, match=message):
        resolve_config({section: {key: value}})


def test_local_steps_refused_where_the_paper_defines_none():
    with pytest.raises(InputError, match='local_steps > 1 is not defined for .*"lead"'):
        run_config(resolve_config({"method": {"kind": "lead"},
                                   "solver": {"local_steps": 2, "horizon": 0.01}}))


def test_target_accuracy_needs_a_classification_problem():
    with pytest.raises(InputError, match="target_accuracy needs a classification problem"):
        run_config(resolve_config({"solver": {"target_accuracy": 0.9, "horizon": 0.01}}))
