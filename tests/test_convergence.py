"""The claims of SPEC section 4, checked numerically on strongly convex and convex problems."""

import warnings

import numpy as np
import pytest

from stflow import Gains, PrimalDualFlow, solve
from stflow.compressors import EXAMPLE_SPECS, make_compressor
from stflow.config import build_run, resolve_config
from stflow.graphs import make_graph
from stflow.problems import make_problem

ST_SPECS = [s for s in EXAMPLE_SPECS if "fixedquant" not in s and "constant" not in s]
DEFAULT_GAINS = Gains(alpha=2.0, beta=2.0, eta=1.0, gamma=50.0)


def _run(kind, spec, *, problem=None, horizon=30.0, step=1e-3, gains=DEFAULT_GAINS, n=8, d=6):
    problem = problem or make_problem("quadratic", agents=n, dim=d, seed=1)
    graph = make_graph("ring", problem.n_agents)
    comp = make_compressor(spec, problem.dim) if spec else None
    flow = PrimalDualFlow(kind, problem, graph, comp, gains=gains)
    return solve(flow, step=step, horizon=horizon, record_every=200, tolerance=1e-6)


@pytest.mark.parametrize("spec", ST_SPECS)
def test_observer_converges_with_every_st_compressor(spec):
    sol = _run("observer", spec)
    assert sol.status == "converged", (spec, sol.message)
    assert sol.final_relative_error <= 1e-6
    assert sol.fitted_rate > 0.3


@pytest.mark.parametrize("basis", ["cyclic", "sinusoid", "random"])
def test_direct_converges_with_scalarizers(basis):
    sol = _run("direct", f"scalarize:basis={basis}", horizon=60.0)
    assert sol.status == "converged", sol.message


def test_direct_topk_stalls_and_warns():
    with pytest.warns(UserWarning, match="no convergence guarantee"):
        sol = _run("direct", "topk:k=1", horizon=30.0)
    assert sol.status == "stalled", sol.message
    assert sol.final_relative_error > 1e-3
    err = sol.records["relative_error"]
    # the last third of the run gains less than 10 percent
    assert err[-1] > 0.9 * err[2 * len(err) // 3]


def test_uncompressed_rate_is_exponential():
    sol = _run("uncompressed", None)
    assert sol.converged and sol.final_relative_error <= 1e-6
    e = sol.records["relative_error"]
    t = sol.records["t"]
    mid = (e < 1e-2) & (e > 1e-9)
    slope = np.polyfit(t[mid], np.log(e[mid]), 1)[0]
    assert slope < -0.3  # a straight line on a log scale: exponential decay


def test_convex_not_strongly_convex_logistic_gap_decreases():
    problem = make_problem("logistic", agents=6, dim=4, seed=3, regularization=0.0)
    assert not problem.strong_convexity
    sol = _run("observer", "quantize:bits=4", problem=problem, horizon=40.0)
    gap = sol.records["optimality_gap"]
    assert gap[0] > 0.1
    assert gap[-1] < 1e-4 * gap[0]
    assert sol.records["consensus_error"][-1] < 1e-4


def test_euler_matches_solve_ivp_first_order():
    problem = make_problem("quadratic", agents=5, dim=3, seed=2)
    graph = make_graph("ring", 5)
    flow = PrimalDualFlow("uncompressed", problem, graph, gains=DEFAULT_GAINS)
    x0 = np.random.default_rng(0).normal(size=(5, 3))
    ref = solve(flow, method="continuous", step=0.01, horizon=2.0, record_every=200, x0=x0)
    errs = []
    for h in (0.02, 0.01, 0.005, 0.0025):
        sol = solve(flow, step=h, horizon=2.0, record_every=int(round(2.0 / h)), x0=x0)
        errs.append(np.linalg.norm(sol.state["X"] - ref.state["X"]))
    ratios = [errs[i] / errs[i + 1] for i in range(3)]
    for r in ratios:  # first order: halving h halves the error
        assert 2.2 > r > 1.8, ratios


def test_auto_gains_converge_across_matrix():
    for spec in ("topk:k=1", "quantize:bits=3", "scalarize:basis=cyclic", "sign"):
        for graph in ("ring", "star", "erdos_renyi"):
            for kind in ("quadratic", "least_squares"):
                cfg = resolve_config({
                    "problem": {"kind": kind, "agents": 10, "dim": 5, "seed": 4},
                    "graph": {"kind": graph},
                    "method": {"alpha": "auto", "beta": "auto", "eta": "auto", "gamma": "auto"},
                    "compressor": {"spec": spec},
                })
                with warnings.catch_warnings():
                    run = build_run(cfg)
                sol = solve(run.flow, step=1e-3, horizon=25.0, record_every=1000,
                            tolerance=1e-6)
                assert sol.converged, (spec, graph, kind, sol.message, run.config["method"])
