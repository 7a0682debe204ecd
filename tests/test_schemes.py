"""The schemes `predict` and `gauss_seidel` (SPEC section 5) against steps worked out by hand.

Same set-up as tests/test_euler_trajectory.py: two agents on one edge, d = 2, quadratic costs
Q_1 = diag(1, 2), b_1 = (1, 0), Q_2 = diag(3, 1), b_2 = (0, 2); alpha = 1, beta = 0.5, eta = 1,
gamma = 2, h = 0.1, X(0) = [[1, 0.5], [0.9, 0.6]], so G(X0) = [[0, 1], [2.7, -1.4]].
Every number below was computed by hand (L = [[1, -1], [-1, 1]]), not by the library.
"""

import numpy as np
import pytest

from stflow import Gains, PrimalDualFlow, solve
from stflow.compressors import make_compressor
from stflow.graphs import make_graph
from stflow.problems import make_problem

X0 = np.array([[1.0, 0.5], [0.9, 0.6]])
H = 0.1


def _flow(kind="observer", scheme="predict", spec="topk:k=1"):
    problem = make_problem(
        "quadratic", agents=2, dim=2,
        data={"Q": np.array([np.diag([1.0, 2.0]), np.diag([3.0, 1.0])]),
              "b": np.array([[1.0, 0.0], [0.0, 2.0]])},
    )
    graph = make_graph("edges", 2, edges=[[0, 1]])
    comp = make_compressor(spec, 2) if kind != "uncompressed" else None
    gains = Gains(alpha=1.0, beta=0.5, eta=1.0, gamma=2.0)
    return PrimalDualFlow(kind, problem, graph, comp, gains=gains, scheme=scheme)


def test_predict_observer_two_steps_by_hand():
    flow = _flow()
    s = flow.initial_state(x0=X0)
    # Y = X - h G = [[1, 0.4], [0.63, 0.74]]; Q = top1(Y) = [[1, 0], [0, 0.74]];
    # Xhat1 = 0.2 Q; L Xhat1 = [[0.2, -0.148], [-0.2, 0.148]]; X1 = Y - h L Xhat1
    s = flow.step(s, 0.0, H)
    np.testing.assert_allclose(s["Xhat"], [[0.2, 0.0], [0.0, 0.148]], atol=1e-15)
    np.testing.assert_allclose(s["X"], [[0.98, 0.4148], [0.65, 0.7252]], atol=1e-15)
    np.testing.assert_allclose(s["V"], [[0.01, -0.0074], [-0.01, 0.0074]], atol=1e-15)
    # G(X1) = [[-0.02, 0.8296], [1.95, -1.2748]]; Y = X1 + h(-beta V1 - G)
    # = [[0.9815, 0.33221], [0.4555, 0.85231]]; Y - Xhat1 -> Q = [[0.7815, 0], [0, 0.70431]]
    s = flow.step(s, H, H)
    np.testing.assert_allclose(s["Xhat"], [[0.3563, 0.0], [0.0, 0.288862]], atol=1e-15)
    np.testing.assert_allclose(s["X"], [[0.94587, 0.3610962], [0.49113, 0.8234238]],
                               atol=1e-14)
    np.testing.assert_allclose(s["V"], [[0.027815, -0.0218431], [-0.027815, 0.0218431]],
                               atol=1e-15)


def test_gauss_seidel_observer_two_steps_by_hand():
    flow = _flow(scheme="gauss_seidel")
    s = flow.initial_state(x0=X0)
    # Q = top1(X0) = [[1, 0], [0.9, 0]]; Xhat1 = 0.2 Q; L Xhat1 = [[0.02, 0], [-0.02, 0]]
    s = flow.step(s, 0.0, H)
    np.testing.assert_allclose(s["Xhat"], [[0.2, 0.0], [0.18, 0.0]], atol=1e-15)
    np.testing.assert_allclose(s["X"], [[0.998, 0.4], [0.632, 0.74]], atol=1e-15)
    np.testing.assert_allclose(s["V"], [[0.001, 0.0], [-0.001, 0.0]], atol=1e-15)
    # E = [[0.798, 0.4], [0.452, 0.74]] -> Q = [[0.798, 0], [0, 0.74]];
    # L Xhat2 = [[0.1796, -0.148], [-0.1796, 0.148]]; G(X1) = [[-0.002, 0.8], [1.896, -1.26]]
    s = flow.step(s, H, H)
    np.testing.assert_allclose(s["Xhat"], [[0.3596, 0.0], [0.18, 0.148]], atol=1e-15)
    np.testing.assert_allclose(s["X"], [[0.98019, 0.3348], [0.46041, 0.8512]], atol=1e-14)
    np.testing.assert_allclose(s["V"], [[0.00998, -0.0074], [-0.00998, 0.0074]], atol=1e-15)


def test_predict_uncompressed_step_by_hand():
    flow = _flow("uncompressed")
    s = flow.step(flow.initial_state(x0=X0), 0.0, H)
    # Y = [[1, 0.4], [0.63, 0.74]]; L Y = [[0.37, -0.34], [-0.37, 0.34]]
    np.testing.assert_allclose(s["X"], [[0.963, 0.434], [0.667, 0.706]], atol=1e-15)
    np.testing.assert_allclose(s["V"], [[0.0185, -0.017], [-0.0185, 0.017]], atol=1e-15)


def test_gauss_seidel_equals_euler_without_observer():
    a, b = _flow("uncompressed", "gauss_seidel"), _flow("uncompressed", "euler")
    sa, sb = a.initial_state(x0=X0), b.initial_state(x0=X0)
    for k in range(5):
        sa, sb = a.step(sa, k * H, H), b.step(sb, k * H, H)
    assert all(np.array_equal(sa[key], sb[key]) for key in sa)


@pytest.mark.parametrize("scheme", ["predict", "gauss_seidel", "euler"])
def test_fixed_point_is_exact(scheme):
    # X = 1 x*^T, V = V* = -(eta/beta) grad F(1 x*^T), Xhat = X: one step leaves all of it.
    flow = _flow(scheme=scheme, spec="identity")
    x_star = flow.problem.x_star
    X = np.tile(x_star, (2, 1))
    V = -(1.0 / 0.5) * flow.problem.grad(X)
    s = {"X": X, "V": V, "Xhat": X.copy()}
    new = flow.step(s, 0.0, H)
    for key in s:
        np.testing.assert_allclose(new[key], s[key], rtol=0, atol=1e-15)


def test_local_steps_make_k_minus_one_local_updates():
    # K = 2, euler: first x <- x + h(-beta v - eta g) = [[1, 0.4], [0.63, 0.74]] (V = 0),
    # then the round from there (the same as test_euler_trajectory's step 0 from that X).
    flow = _flow(scheme="euler")
    sol = solve(flow, step=H, horizon=H, x0=X0, local_steps=2, record_every=1)
    ref = _flow(scheme="euler")
    s = ref.step(ref.initial_state(x0=[[1.0, 0.4], [0.63, 0.74]]), 0.0, H)
    np.testing.assert_array_equal(sol.state["X"], s["X"])
    assert sol.grad_evals == 2 * 2  # two gradients per agent in the one round


def test_predict_converges_on_a_ring():
    problem = make_problem("least_squares", agents=10, dim=5, seed=3)
    graph = make_graph("ring", 10)
    gains = Gains(alpha=2.0, beta=2.0, eta=1.0, gamma=50.0)
    comp = make_compressor("quantize:bits=4", 5)
    for scheme in ("predict", "gauss_seidel"):
        flow = PrimalDualFlow("observer", problem, graph, comp, gains=gains, scheme=scheme)
        sol = solve(flow, step=1e-2, horizon=60.0, tolerance=1e-8)
        assert sol.status == "converged", (scheme, sol.message)
