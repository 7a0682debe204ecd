"""Peer methods (DGD, gradient tracking, NIDS, CHOCO, LEAD) against their known behaviour.

On a strongly convex quadratic: gradient tracking, NIDS and LEAD converge linearly to the
optimum; DGD and CHOCO (constant steps) stall at a floor that shrinks with the step. Plus
the bit accounting of SPEC section 6 and the ``[method] kind = "lead"`` config path.
"""

import json

import numpy as np
import pytest

from stflow import solve
from stflow.cli import main
from stflow.compressors import make_compressor
from stflow.config import build_run, resolve_config
from stflow.errors import InputError
from stflow.graphs import make_graph
from stflow.methods import (
    CHOCO,
    DGD,
    LEAD,
    NIDS,
    PEER_KINDS,
    GradientTracking,
    make_method,
    metropolis_weights,
)
from stflow.problems import make_problem


@pytest.fixture(scope="module")
def setting():
    problem = make_problem("quadratic", agents=8, dim=4, seed=1)
    graph = make_graph("ring", 8, chords=2, seed=0)
    return problem, graph


def _log_linear_fit(records, lo=1e-11, hi=1e-2):
    """(rate per round, R^2) of log(error) against the round over [lo, hi]."""
    k, e = records["step"].astype(float), records["relative_error"]
    sel = (e > lo) & (e < hi)
    assert sel.sum() >= 5, "too few points in the linear phase"
    coef = np.polyfit(k[sel], np.log(e[sel]), 1)
    resid = np.log(e[sel]) - np.polyval(coef, k[sel])
    r2 = 1.0 - resid.var() / np.log(e[sel]).var()
    return -coef[0], r2


def test_metropolis_weights_doubly_stochastic_sparse():
    g = make_graph("star", 5)
    W = metropolis_weights(g)
    assert W.format == "csr"
    dense = W.toarray()
    np.testing.assert_allclose(dense.sum(axis=0), 1.0, atol=1e-15)
    np.testing.assert_allclose(dense, dense.T)
    # centre has degree 4: W_0j = 1 / (1 + 4), W_00 = 1 - 4/5, leaves 1 - 1/5
    assert dense[0, 1] == pytest.approx(0.2) and dense[0, 0] == pytest.approx(0.2)
    assert dense[1, 1] == pytest.approx(0.8)
    eig = np.linalg.eigvalsh(dense)
    assert eig.min() > -1.0 and eig.max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kind, spec",
    [("gradient_tracking", None), ("nids", None), ("lead", "topk:k=1"),
     ("lead", "quantize:bits=3")],
)
def test_exact_methods_converge_linearly(setting, kind, spec):
    problem, graph = setting
    comp = make_compressor(spec, problem.dim) if spec else None
    method = make_method(kind, problem, graph, comp)
    sol = solve(method, step=1.0, horizon=4000, record_every=20, tolerance=1e-8)
    assert sol.status == "converged"
    assert sol.final_relative_error <= 1e-8
    rate, r2 = _log_linear_fit(sol.records)
    assert r2 > 0.97, f"not linear: R^2 = {r2:.3f}"
    assert rate > 5e-3  # at least a factor e every 200 rounds
    # the fitted rate predicts the rounds to 1e-8 within a factor 2
    k_hit = sol.records["step"][np.argmax(sol.records["relative_error"] <= 1e-8)]
    assert 0.5 < k_hit * rate / np.log(1e8) < 2.0


def test_gradient_tracking_rate_matches_solver_fit(setting):
    problem, graph = setting
    sol = solve(GradientTracking(problem, graph), step=1.0, horizon=3000, record_every=10)
    rate, _ = _log_linear_fit(sol.records)
    assert sol.fitted_rate == pytest.approx(rate, rel=0.1)


def _floor(method, rounds):
    sol = solve(method, step=1.0, horizon=rounds, record_every=rounds // 20)
    assert sol.status == "stalled", sol.message
    return sol.final_relative_error


def test_dgd_floor_halves_with_the_step(setting):
    problem, graph = setting
    f1 = _floor(DGD(problem, graph, lr=0.04), 6000)
    f2 = _floor(DGD(problem, graph, lr=0.02), 12000)
    assert 1e-3 < f2 < f1
    assert 0.4 < f2 / f1 < 0.65, f"floor ratio {f2 / f1:.3f} for half the step"


def test_choco_floor_shrinks_with_the_step(setting):
    problem, graph = setting
    comp = make_compressor("topk:k=2", problem.dim)
    f1 = _floor(CHOCO(problem, graph, comp, lr=0.04, gamma=0.2), 8000)
    f2 = _floor(CHOCO(problem, graph, comp, lr=0.02, gamma=0.2), 16000)
    assert 1e-3 < f2 < 0.75 * f1


def test_choco_fixed_point_is_dgd_with_step_lr_over_gamma(setting):
    """At a fixed point Xhat = X, so CHOCO(lr, gamma) stalls where DGD with mixing
    I + gamma (W - I) and step lr does: the same floor for any compressor."""
    problem, graph = setting
    a = _floor(CHOCO(problem, graph, make_compressor("topk:k=2", 4), lr=0.02, gamma=0.5), 8000)
    b = _floor(CHOCO(problem, graph, make_compressor("identity", 4), lr=0.02, gamma=0.5), 8000)
    assert a == pytest.approx(b, rel=1e-6)


def test_nids_equals_two_step_exact_diffusion(setting):
    problem, graph = setting
    m = NIDS(problem, graph, lr=0.1, c=0.5)
    Wt = 0.5 * (np.eye(8) + metropolis_weights(graph).toarray())
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((8, 4))
    s = m.initial_state(x0=x0)
    prev, X = x0, Wt @ (x0 - 0.1 * problem.grad(x0))
    s = m.step(s, 0.0, 1.0)
    np.testing.assert_allclose(s["X"], X, atol=1e-13)
    for k in range(1, 20):
        nxt = Wt @ (2 * X - prev - 0.1 * (problem.grad(X) - problem.grad(prev)))
        prev, X = X, nxt
        s = m.step(s, float(k), 1.0)
        np.testing.assert_allclose(s["X"], X, atol=1e-12)


def test_lead_with_identity_is_nids(setting):
    problem, graph = setting
    lead = LEAD(problem, graph, make_compressor("identity", 4), lr=0.1, alpha=0.3, gamma=0.8)
    nids = NIDS(problem, graph, lr=0.1, c=0.4)
    a, b = lead.initial_state(), nids.initial_state()
    for k in range(30):
        a, b = lead.step(a, float(k), 1.0), nids.step(b, float(k), 1.0)
    np.testing.assert_allclose(a["X"], b["X"], atol=1e-12)


class _Spy:
    """Identity compressor that records the times it is called with."""

    spec = "spy"

    def __init__(self, d):
        self.d, self.times = d, []

    def bits_per_message(self):
        return 7

    def __call__(self, Z, t):
        self.times.append(t)
        return Z.copy()


@pytest.mark.parametrize("cls", [CHOCO, LEAD])
def test_compressor_clock_and_bits(setting, cls):
    problem, graph = setting
    spy = _Spy(problem.dim)
    sol = solve(cls(problem, graph, spy), step=0.25, horizon=2.5)
    assert spy.times == [0.25 * k for k in range(10)]
    assert sol.steps == 10 and sol.bits_per_agent == 70.0


@pytest.mark.parametrize(
    "kind, spec, bits",
    [("dgd", None, 64 * 4), ("gradient_tracking", None, 128 * 4), ("nids", None, 64 * 4),
     ("choco", "topk:k=2", 2 * (2 + 64)), ("lead", "quantize:bits=4", 64 + 4 * 4),
     ("lead", "scalarize", 64)],
)
def test_bits_per_round(setting, kind, spec, bits):
    problem, graph = setting
    comp = make_compressor(spec, problem.dim) if spec else None
    m = make_method(kind, problem, graph, comp)
    assert m.bits_per_message == bits
    sol = solve(m, step=1.0, horizon=30, record_every=10)
    assert sol.records["bits_per_agent"].tolist() == [0.0, 10 * bits, 20 * bits, 30 * bits]
    # gradient tracking evaluates one more gradient at initialisation (Y^0 = grad F(X^0))
    assert sol.grad_evals == (30 + (kind == "gradient_tracking")) * problem.n_agents


def test_bad_inputs(setting):
    problem, graph = setting
    m = DGD(problem, graph)
    with pytest.raises(InputError, match="v0"):
        m.initial_state(v0=np.zeros((8, 4)))
    with pytest.raises(InputError, match="discrete-time"):
        solve(m, step=1.0, horizon=10, method="continuous")
    with pytest.raises(InputError, match="lr"):
        DGD(problem, graph, lr=-1.0)
    choco_msg = r'\[method\] gamma must be a number in \(0, 1\] for kind = "choco"'
    with pytest.raises(InputError, match=choco_msg):
        CHOCO(problem, graph, make_compressor("sign", 4), gamma=1.5)
    with pytest.raises(InputError, match="needs a compressor"):
        make_method("lead", problem, graph)
    with pytest.raises(InputError, match="kind must be one of"):
        make_method("sgd", problem, graph)
    diverged = solve(DGD(problem, graph, lr=5.0), step=1.0, horizon=500)
    assert diverged.status == "diverged" and "lower [method] lr" in diverged.message


def test_config_builds_every_peer():
    for kind in PEER_KINDS:
        run = build_run(resolve_config({"method": {"kind": kind}}))
        assert run.flow.kind == kind and isinstance(run.config["method"]["lr"], float)
    lead_msg = r'\[method\] alpha must be a number in \(0, 1\] for kind = "lead"'
    with pytest.raises(InputError, match=lead_msg):
        build_run(resolve_config({"method": {"kind": "lead", "alpha": 2.0}}))
    with pytest.raises(InputError, match='unknown key \\[method\\] lead_alpha for kind = "lead"'):
        resolve_config({"method": {"kind": "lead", "lead_alpha": 0.1}})
    with pytest.raises(InputError, match='unknown key \\[method\\] lr for kind = "observer"'):
        resolve_config({"method": {"kind": "observer", "lr": 0.1}})
    with pytest.raises(InputError, match="kind must be one of"):
        build_run(resolve_config({"method": {"kind": "sgd"}}))


def test_cli_lead_alone_converges(tmp_path):
    cfg = tmp_path / "lead.toml"
    cfg.write_text('[method]\nkind = "lead"\n')
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["converged"] and summary["final_relative_error"] <= 1e-8
    # default compressor topk:k=2 at d = 8: 2 * (3 + 64) bits per round, 30000 rounds
    assert summary["bits_per_message"] == 134 and summary["steps"] == 30000
