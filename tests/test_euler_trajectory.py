"""The pinned Euler discretization (SPEC section 5) against a trajectory worked out by hand.

Two agents on one edge, d = 2, quadratic costs f_i = 1/2 x^T Q_i x - b_i^T x with
Q_1 = diag(1, 2), b_1 = (1, 0), Q_2 = diag(3, 1), b_2 = (0, 2); observer flow with top-1,
alpha = 1, beta = 0.5, eta = 1, gamma = 2, h = 0.1, X(0) = [[1, 0.5], [0.9, 0.6]].
Every number below was computed by hand (L = [[1, -1], [-1, 1]]), not by the library.
"""

import numpy as np
import pytest

from stflow import Gains, PrimalDualFlow
from stflow.compressors import make_compressor
from stflow.graphs import make_graph
from stflow.problems import make_problem

X0 = np.array([[1.0, 0.5], [0.9, 0.6]])


def _flow(kind="observer", spec="topk:k=1"):
    problem = make_problem(
        "quadratic",
        agents=2,
        dim=2,
        data={"Q": np.array([np.diag([1.0, 2.0]), np.diag([3.0, 1.0])]),
              "b": np.array([[1.0, 0.0], [0.0, 2.0]])},
    )
    graph = make_graph("edges", 2, edges=[[0, 1]])
    comp = make_compressor(spec, 2) if kind != "uncompressed" else None
    gains = Gains(alpha=1.0, beta=0.5, eta=1.0, gamma=2.0)
    return PrimalDualFlow(kind, problem, graph, comp, gains=gains, scheme="euler")


def test_observer_topk_three_steps_by_hand():
    flow = _flow()
    s = flow.initial_state(x0=X0)
    h = 0.1
    # step 0: E = X; top-1 keeps [1, 0] and [0.9, 0]; Xhat = 0 so L Xhat = 0;
    # G = [[0, 1], [2.7, -1.4]]; X1 = X - h G; Xhat1 = h*gamma*Q
    s = flow.step(s, 0.0, h)
    np.testing.assert_allclose(s["X"], [[1.0, 0.4], [0.63, 0.74]], rtol=0, atol=1e-14)
    np.testing.assert_allclose(s["V"], [[0.0, 0.0], [0.0, 0.0]], atol=1e-14)
    np.testing.assert_allclose(s["Xhat"], [[0.2, 0.0], [0.18, 0.0]], atol=1e-14)
    # step 1: E = [[0.8, 0.4], [0.45, 0.74]] -> Q = [[0.8, 0], [0, 0.74]];
    # L Xhat1 = [[0.02, 0], [-0.02, 0]]; G = [[0, 0.8], [1.89, -1.26]]
    s = flow.step(s, 1 * h, h)
    np.testing.assert_allclose(s["X"], [[0.998, 0.32], [0.443, 0.866]], atol=1e-14)
    np.testing.assert_allclose(s["V"], [[0.001, 0.0], [-0.001, 0.0]], atol=1e-15)
    np.testing.assert_allclose(s["Xhat"], [[0.36, 0.0], [0.18, 0.148]], atol=1e-14)
    # step 2: E = [[0.638, 0.32], [0.263, 0.718]] -> Q = [[0.638, 0], [0, 0.718]];
    # L Xhat2 = [[0.18, -0.148], [-0.18, 0.148]]; G = [[-0.002, 0.64], [1.329, -1.134]]
    s = flow.step(s, 2 * h, h)
    np.testing.assert_allclose(s["X"], [[0.98015, 0.2708], [0.32815, 0.9646]], atol=1e-14)
    np.testing.assert_allclose(s["V"], [[0.01, -0.0074], [-0.01, 0.0074]], atol=1e-15)
    np.testing.assert_allclose(s["Xhat"], [[0.4876, 0.0], [0.18, 0.2916]], atol=1e-14)


def test_direct_topk_step_by_hand_and_warning():
    with pytest.warns(UserWarning, match="no convergence guarantee"):
        flow = _flow("direct")
    s = flow.initial_state(x0=X0)
    # X_c = top-1(X) = [[1, 0], [0.9, 0]]; L X_c = [[0.1, 0], [-0.1, 0]];
    # G = [[0, 1], [2.7, -1.4]]; X1 = X + 0.1 (-L X_c - G); V1 = 0.05 L X_c
    s = flow.step(s, 0.0, 0.1)
    np.testing.assert_allclose(s["X"], [[0.99, 0.4], [0.64, 0.74]], atol=1e-14)
    np.testing.assert_allclose(s["V"], [[0.005, 0.0], [-0.005, 0.0]], atol=1e-15)


def test_uncompressed_step_by_hand():
    flow = _flow("uncompressed")
    s = flow.initial_state(x0=X0)
    # L X = [[0.1, -0.1], [-0.1, 0.1]]; G = [[0, 1], [2.7, -1.4]]
    s = flow.step(s, 0.0, 0.1)
    np.testing.assert_allclose(s["X"], [[0.99, 0.41], [0.64, 0.73]], atol=1e-14)
    np.testing.assert_allclose(s["V"], [[0.005, -0.005], [-0.005, 0.005]], atol=1e-15)
