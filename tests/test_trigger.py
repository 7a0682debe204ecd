"""Event-triggered sending on the observer flow ([method] trigger, trigger_decay; issue 9)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from stflow.compressors import make_compressor
from stflow.config import resolve_config, run_config
from stflow.errors import InputError
from stflow.methods import Gains, PrimalDualFlow


def _two_agents(scheme="euler", trigger=1.5):
    graph = SimpleNamespace(laplacian=sp.csr_matrix([[1.0, -1.0], [-1.0, 1.0]]),
                            degree=np.array([1, 1]), n=2, lambda_max=2.0)
    problem = SimpleNamespace(n_agents=2, dim=1, grad=lambda X: X.copy())
    # threshold 1.5 at t = 0, halved every 0.1 time units
    return PrimalDualFlow("observer", problem, graph, make_compressor("identity", 1),
                          gains=Gains(alpha=1.0, beta=1.0, eta=1.0, gamma=10.0),
                          scheme=scheme, trigger=trigger, trigger_decay=math.log(2) / 0.1)


def test_two_euler_rounds_worked_by_hand():
    flow = _two_agents()
    s = flow.initial_state(x0=np.array([[1.0], [3.0]]))
    assert flow.bits_per_message == 1 + 64
    # round 0 (threshold 1.5): E = (1, 3): agent 0 silent, agent 1 sends Q = 3.
    # X_c = Xhat^0 = 0, so X^1 = X - h X = (0.9, 2.7), V^1 = 0, Xhat^1 = (0, 0 + 0.1*10*3)
    s = flow.step(s, 0.0, 0.1)
    assert flow.active.tolist() == [False, True]
    assert flow.round_bits().tolist() == [1.0, 65.0]
    np.testing.assert_allclose(s["X"].ravel(), [0.9, 2.7], rtol=0, atol=1e-14)
    np.testing.assert_allclose(s["Xhat"].ravel(), [0.0, 3.0], rtol=0, atol=1e-14)
    # round 1 (threshold 0.75): E = (0.9, -0.3): agent 0 sends 0.9, agent 1 silent.
    # L Xhat^1 = (-3, 3): X^2 = X^1 + 0.1 (-(L Xhat^1) - V^1 - X^1) = (1.11, 2.13),
    # V^2 = 0.1 L Xhat^1 = (-0.3, 0.3), Xhat^2 = (0.9, 3)
    s = flow.step(s, 0.1, 0.1)
    assert flow.active.tolist() == [True, False]
    assert flow.round_bits().tolist() == [65.0, 1.0]
    np.testing.assert_allclose(s["X"].ravel(), [1.11, 2.13], rtol=0, atol=1e-14)
    np.testing.assert_allclose(s["V"].ravel(), [-0.3, 0.3], rtol=0, atol=1e-14)
    np.testing.assert_allclose(s["Xhat"].ravel(), [0.9, 3.0], rtol=0, atol=1e-14)


def test_predict_round_triggers_on_the_predicted_state():
    flow = _two_agents("predict")
    s = flow.initial_state(x0=np.array([[1.0], [3.0]]))
    # Y = X - h X = (0.9, 2.7); E = Y - 0: agent 0 silent (0.9 < 1.5), agent 1 sends 2.7;
    # Xhat^1 = (0, 2.7), X_c = Xhat^1, L X_c = (-2.7, 2.7):
    # X^1 = Y - 0.1 L X_c = (1.17, 2.43), V^1 = 0.1 L X_c = (-0.27, 0.27)
    s = flow.step(s, 0.0, 0.1)
    assert flow.active.tolist() == [False, True]
    np.testing.assert_allclose(s["X"].ravel(), [1.17, 2.43], rtol=0, atol=1e-14)
    np.testing.assert_allclose(s["V"].ravel(), [-0.27, 0.27], rtol=0, atol=1e-14)
    np.testing.assert_allclose(s["Xhat"].ravel(), [0.0, 2.7], rtol=0, atol=1e-14)


def _config(trigger, **solver):
    return resolve_config({
        "problem": {"kind": "least_squares", "agents": 8, "dim": 5, "seed": 1},
        "graph": {"kind": "ring", "chords": 1, "seed": 0},
        "method": {"kind": "observer", "alpha": 42.0, "beta": 42.0, "eta": 21.5, "gamma": 50.0,
                 "trigger": trigger, "trigger_decay": 8.0},
        "compressor": {"spec": "quantize:bits=4"},
        "solver": {"scheme": "predict", "step": 0.01, "horizon": 3.0, "record_every": 10,
                   **solver}})


def test_recorded_bits_are_the_sum_of_every_agents_messages():
    run, sol = run_config(_config(0.2))
    flow = run.flow
    # replay the run round by round and count each agent's bits by hand
    state = flow.initial_state()
    total = np.zeros(8)
    per_record = []
    for k in range(300):
        state = flow.step(state, k * 0.01, 0.01)
        total += np.where(flow.active, 1 + 64 + 5 * 4, 1)
        if (k + 1) % 10 == 0:
            per_record.append(total.copy())
    deg = np.asarray(run.graph.degree, dtype=float)
    want = np.array([t.mean() for t in per_record])
    got = sol.records["bits_per_agent"][1:]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(sol.records["bits_per_agent_p2p"][1:],
                               [t @ deg / 8 for t in per_record], rtol=1e-12)
    assert sol.bits_per_agent == pytest.approx(want[-1], rel=1e-12)
    # some rounds were silent, and the run still converged like the untriggered one
    _, plain = run_config(_config(0.0))
    assert want[-1] < plain.bits_per_agent
    assert sol.final_relative_error < 1e-11 and plain.final_relative_error < 1e-11


def test_trigger_off_is_the_plain_observer_flow():
    _, a = run_config(_config(0.0))
    cfg = _config(0.0)
    cfg["method"]["trigger_decay"] = 99.0  # no effect when trigger = 0
    _, b = run_config(cfg)
    assert a.bits_per_message == b.bits_per_message == 64 + 5 * 4  # no flag bit
    np.testing.assert_array_equal(a.records["relative_error"], b.records["relative_error"])
    np.testing.assert_array_equal(a.records["bits_per_agent"],
                                  np.arange(31) * 10 * (64 + 5 * 4))


def test_bad_trigger_values_are_one_line_errors():
    with pytest.raises(InputError, match=r"\[method\] trigger must be a number >= 0"):
        _config(-1.0)
    with pytest.raises(InputError, match=r"unknown key \[method\] trigger for kind = \"direct\""):
        resolve_config({"method": {"kind": "direct", "trigger": 0.1}})
    cfg = _config(0.1, scheme="continuous")
    cfg["compressor"]["spec"] = "scalarize:basis=cyclic"
    with pytest.raises(InputError, match="event-triggered sending is undefined"):
        run_config(cfg)


def test_the_tuner_searches_the_trigger_only_when_it_is_on():
    from stflow.tune import _prepare

    names = lambda cfg: [p.name for p in _prepare(cfg, 10, None)[1]]  # noqa: E731
    assert names(_config(0.0)) == ["alpha", "beta", "eta", "gamma"]
    assert names(_config(0.2)) == ["alpha", "beta", "eta", "gamma", "trigger",
                                   "trigger_decay"]
