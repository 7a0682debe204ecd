"""``"auto"`` gains: the curvature at the solution, and predict's raise of eta when the
optimization is the bottleneck (``docs/gains.md``)."""

import numpy as np
import pytest
from scipy.special import expit

from stflow.config import build_run, resolve_config
from stflow.methods import auto_gains
from stflow.methods.primal_dual import AUTO_RATE_SEPARATION, AUTO_SCHEME
from stflow.problems import make_problem


def test_predict_raises_eta_between_s_over_l_and_its_cap():
    # s = min(b / h, gamma lambda_C / r) = min(1 / 0.01, 50 * 1 / 0.25) = 100 under predict;
    # alpha = 2 s / lambda_max = 50; s / L = 10; cap 2 s / L = 20.
    assert AUTO_SCHEME["predict"] == (1.0, 0.25, 2.0) and AUTO_RATE_SEPARATION == 10.0
    kw = dict(lambda_max=4.0, smoothness=10.0, step=0.01, scheme="predict", lambda_2=1.0)
    # alpha lambda_2 / (10 mu): mu = 1 -> 5 < s/L, unchanged; mu = 0.3 -> 16.67, taken;
    # mu = 0.1 -> 50, capped at 20
    assert auto_gains(**kw, strong_convexity=1.0).eta == pytest.approx(10.0, rel=1e-15)
    assert auto_gains(**kw, strong_convexity=0.3).eta == pytest.approx(50.0 / 3.0, rel=1e-15)
    g = auto_gains(**kw, strong_convexity=0.1)
    assert (g.alpha, g.beta, g.eta, g.gamma) == (50.0, 50.0, 20.0, 50.0)
    # without lambda_2 / mu (or mu = 0: no conditioning known) eta stays s / L
    assert auto_gains(**{**kw, "lambda_2": None}, strong_convexity=0.1).eta == 10.0
    assert auto_gains(**kw, strong_convexity=0.0).eta == 10.0


def test_euler_schemes_never_raise_eta():
    assert AUTO_SCHEME["euler"] == (0.2, 0.5, 1.0)
    assert AUTO_SCHEME["gauss_seidel"] == (1.0, 0.5, 1.0)
    # euler: s = min(0.2 / 0.01, 50 * 1 / 0.5) = 20, eta = s / L = 2, alpha = 2 s / 4 = 10;
    # gauss_seidel: s = min(1 / 0.01, 100) = 100, eta = 10, alpha = 50
    for scheme, want in (("euler", (10.0, 2.0, 50.0)), ("gauss_seidel", (50.0, 10.0, 50.0))):
        g = auto_gains(lambda_max=4.0, smoothness=10.0, step=0.01, scheme=scheme,
                       lambda_2=1.0, strong_convexity=1e-6)
        assert (g.alpha, g.eta, g.gamma) == pytest.approx(want, rel=1e-14)
    # the observer limit binds with a slow compressor: s = 50 * 0.1 / 0.5 = 10 (euler)
    g = auto_gains(lambda_max=4.0, smoothness=10.0, step=0.01, compressor_rate=0.1,
                   scheme="euler")
    assert (g.alpha, g.eta) == pytest.approx((5.0, 1.0), rel=1e-14)


def test_solution_curvature_is_the_largest_local_hessian_eigenvalue():
    p = make_problem("logistic", agents=5, dim=4, seed=2, regularization=0.05)
    x = p.x_star
    exact = max(
        np.linalg.eigvalsh(a.T @ ((s * (1 - s))[:, None] * a))[-1] + p.regularization
        for a, s in ((a, expit(a @ x)) for a in p.A)
    )
    assert p.solution_curvature == pytest.approx(exact, rel=1e-6)
    assert p.solution_curvature < p.smoothness
    q = make_problem("least_squares", agents=4, dim=3, seed=1)
    assert q.solution_curvature == q.smoothness  # constant Hessian


def test_e6_auto_eta_uses_the_curvature_at_the_solution():
    # E9's E6 setting: L_f = 256.6 is 10x the largest local curvature at x* (25.41), and the
    # optimization is the bottleneck (mu = 0.01), so predict's eta = 2 s / L* = 200 / 25.41
    cfg = resolve_config({
        "problem": {"kind": "logistic", "dataset": "breast_cancer", "agents": 10,
                    "regularization": 1e-2, "test_fraction": 0.2, "seed": 0},
        "graph": {"kind": "ring", "chords": 2, "seed": 0},
        "method": {"kind": "observer", "alpha": "auto", "beta": "auto", "eta": "auto",
                 "gamma": "auto"},
        "compressor": {"spec": "quantize:bits=4"},
        "solver": {"scheme": "predict", "step": 0.01, "horizon": 1.0},
    })
    run = build_run(cfg)
    p, f = run.problem, run.config["method"]
    assert p.smoothness == pytest.approx(256.61, rel=1e-4)
    assert p.solution_curvature == pytest.approx(25.41, rel=1e-3)
    assert f["alpha"] == pytest.approx(200.0 / run.graph.lambda_max, rel=1e-12)
    assert f["eta"] == pytest.approx(200.0 / p.solution_curvature, rel=1e-12)


def test_flows_without_an_observer_have_their_own_step_budget():
    """Issue 20: predict's b = 1 put h alpha lambda_max at 2 for the uncompressed and direct
    flows (diverged at every h); their budget is 0.5 (predict) and 0.3 (euler, gauss_seidel)."""
    from stflow.methods.primal_dual import AUTO_BUDGET_WITHOUT_OBSERVER

    assert AUTO_BUDGET_WITHOUT_OBSERVER == {"euler": 0.3, "gauss_seidel": 0.3, "predict": 0.5}
    # h = 0.01, lambda_max = 4, L = 2: s = b / h; alpha = 2 s / 4; eta = s / 2; gamma = 50
    for scheme, s in (("predict", 50.0), ("euler", 30.0), ("gauss_seidel", 30.0)):
        g = auto_gains(lambda_max=4.0, smoothness=2.0, step=0.01, scheme=scheme,
                       observer=False, compressor_rate=0.9)
        assert (g.alpha, g.beta, g.eta, g.gamma) == pytest.approx((s / 2, s / 2, s / 2, 50.0),
                                                                  rel=1e-15)
    # the observer flow keeps AUTO_SCHEME's budget: gauss_seidel s = min(100, 50 / 0.5)
    assert auto_gains(lambda_max=4.0, smoothness=2.0, step=0.01, scheme="gauss_seidel",
                      compressor_rate=1.0).alpha == pytest.approx(50.0, rel=1e-15)


@pytest.mark.parametrize("scheme", ["predict", "gauss_seidel"])
def test_the_default_uncompressed_flow_converges(scheme):
    """The defaults ("auto" gains) on 5 agents on a ring: before issue 20 this diverged by
    round 40 (h alpha lambda_max = 2 under predict, 3 s h = 3 under gauss_seidel)."""
    cfg = resolve_config({"problem": {"kind": "quadratic", "agents": 5, "dim": 4},
                          "graph": {"kind": "ring"}, "method": {"kind": "uncompressed"},
                          "solver": {"scheme": scheme, "step": 1e-2, "horizon": 10.0}})
    run = build_run(cfg)
    m = run.config["method"]
    b = {"predict": 0.5, "gauss_seidel": 0.3}[scheme]
    assert 1e-2 * m["alpha"] * run.graph.lambda_max == pytest.approx(2 * b, rel=1e-12)
    from stflow.config import run_config

    _, sol = run_config(cfg)
    assert sol.status == "converged" and sol.final_relative_error < 1e-8, sol.message


def test_python_flows_need_numeric_gains():
    from stflow.compressors import make_compressor
    from stflow.errors import InputError
    from stflow.graphs import make_graph
    from stflow.methods import make_method

    p = make_problem("quadratic", agents=4, dim=3, seed=0)
    with pytest.raises(InputError, match='needs numeric gains here .got alpha = "auto", the '
                       'default, which depends on the step h.: pass alpha=, beta=, eta=, gamma='):
        make_method("observer", p, make_graph("ring", 4), make_compressor("topk:k=1", 3))
    with pytest.raises(InputError, match='got eta = "auto"'):
        make_method("uncompressed", p, make_graph("ring", 4), alpha=1.0, beta=1.0, eta="auto")
    m = make_method("uncompressed", p, make_graph("ring", 4), alpha=1.0, beta=2.0, eta=3.0)
    assert (m.alpha, m.beta, m.eta, m.scheme) == (1.0, 2.0, 3.0, "predict")


def test_random_supports_halve_the_period_cap():
    """``random_support`` (randk, the random scalarizer): the period T_C is a mean wait, so
    the flow's speed is capped at 1 / (2 T_C) instead of 1 / T_C (a cyclic scalarizer)."""
    from stflow.compressors import make_compressor
    from stflow.methods.primal_dual import AUTO_RANDOM_PERIODS

    assert AUTO_RANDOM_PERIODS == 2.0
    # h = 0.01, lambda_max = 4: s = min(1 / h, gamma rate / (1/4), 1 / (periods T_C))
    for random_support, s in ((False, 1 / 0.03), (True, 1 / 0.06)):
        g = auto_gains(lambda_max=4.0, smoothness=1.0, step=0.01, compressor_rate=1.0,
                       compressor_period=0.03, random_support=random_support)
        assert (g.alpha, g.eta) == pytest.approx((2 * s / 4, s), rel=1e-14)
    flags = {spec: make_compressor(spec, 3).random_support for spec in (
        "randk:k=1", "scalarize:basis=random", "scalarize:basis=cyclic", "topk:k=1",
        "randk:k=2|quantize:bits=4", "quantize:bits=4")}
    assert flags == {"randk:k=1": True, "scalarize:basis=random": True,
                     "scalarize:basis=cyclic": False, "topk:k=1": False,
                     "randk:k=2|quantize:bits=4": True, "quantize:bits=4": False}


@pytest.mark.parametrize("spec", ["randk:k=1", "scalarize:basis=random,tau=0.01"])
@pytest.mark.parametrize("scheme", ["predict", "euler"])
def test_auto_gains_with_random_supports_converge_on_a_ring_of_4(spec, scheme):
    """randk:k=1 and the random scalarizer on a ring of 4 agents (d = 3, h = 0.01): with the
    cap 1 / T_C both diverged under every scheme (docs/gains.md); with 1 / (2 T_C) they
    converge, and the config's alpha is the period cap: 2 s / lambda_max, s = 1 / (2 T_C),
    T_C = 0.03."""
    from stflow.config import run_config

    cfg = resolve_config({"problem": {"kind": "quadratic", "agents": 4, "dim": 3},
                          "graph": {"kind": "ring"}, "method": {"kind": "observer"},
                          "compressor": {"spec": spec},
                          "solver": {"scheme": scheme, "step": 1e-2, "horizon": 30.0}})
    run, sol = run_config(cfg)
    s = 1 / (2 * 0.03)
    assert run.config["method"]["alpha"] == pytest.approx(2 * s / 4.0, rel=1e-12)
    assert sol.status == "converged" and sol.final_relative_error < 1e-8, sol.message
