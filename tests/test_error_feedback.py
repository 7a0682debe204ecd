"""Error feedback on the direct flow (``[method] error_feedback = true``) against steps by hand.

Two agents on one edge (L = [[1, -1], [-1, 1]]), d = 2, costs f_i(x) = ||x||^2 / 2 - b_i^T x
with b_1 = (1, 0), b_2 = (0, 2) (so G(X) = X - B), alpha = beta = eta = 1, h = 0.5,
X(0) = [[3, 1], [0, 2]], V(0) = M(0) = 0, compressor topk:k=1 (ties -> lower index). Every
number below was computed by hand; all of them are binary fractions, so the checks are exact.
"""

import warnings

import numpy as np
import pytest

from stflow import Gains, PrimalDualFlow
from stflow.compressors import make_compressor
from stflow.config import resolve_config, run_config
from stflow.errors import DirectFlowWarning, InputError
from stflow.graphs import make_graph
from stflow.problems import make_problem

X0 = np.array([[3.0, 1.0], [0.0, 2.0]])
B = np.array([[1.0, 0.0], [0.0, 2.0]])
H = 0.5


def _flow(scheme, *, error_feedback=True, spec="topk:k=1", problem=None, graph=None):
    problem = problem or make_problem(
        "quadratic", agents=2, dim=2, data={"Q": np.array([np.eye(2), np.eye(2)]), "b": B})
    graph = graph or make_graph("edges", 2, edges=[[0, 1]])
    comp = make_compressor(spec, problem.dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DirectFlowWarning)
        return PrimalDualFlow("direct", problem, graph, comp, scheme=scheme,
                              gains=Gains(alpha=1.0, beta=1.0, eta=1.0, gamma=1.0),
                              error_feedback=error_feedback)


def _assert_state(s, X, V, M):
    assert np.array_equal(s["X"], X), s["X"]
    assert np.array_equal(s["V"], V), s["V"]
    assert np.array_equal(s["M"], M), s["M"]


def test_euler_two_steps_by_hand():
    flow = _flow("euler")
    s = flow.initial_state(x0=X0)
    assert sorted(s) == ["M", "V", "X"]
    # z = X0 + 0 -> c = [[3, 0], [0, 2]], M1 = z - c = [[0, 1], [0, 0]]
    # L c = [[3, -2], [-3, 2]], G = [[2, 1], [0, 0]]; X1 = X0 + h(-L c - G), V1 = h L c
    s = flow.step(s, 0.0, H)
    _assert_state(s, [[0.5, 1.5], [1.5, 1.0]], [[1.5, -1.0], [-1.5, 1.0]], [[0.0, 1.0], [0.0, 0.0]])
    # z = X1 + M1 = [[0.5, 2.5], [1.5, 1]] -> c = [[0, 2.5], [1.5, 0]], M2 = [[0.5, 0], [0, 1]]
    # L c = [[-1.5, 2.5], [1.5, -2.5]], G = [[-0.5, 1.5], [1.5, -1]]
    s = flow.step(s, H, H)
    _assert_state(s, [[0.75, 0.0], [0.75, 2.25]], [[0.75, 0.25], [-0.75, -0.25]],
                  [[0.5, 0.0], [0.0, 1.0]])


def test_predict_two_steps_by_hand():
    flow = _flow("predict")
    s = flow.initial_state(x0=X0)
    # Y = X0 - h G(X0) = [[2, 0.5], [0, 2]] -> c = [[2, 0], [0, 2]], M1 = [[0, 0.5], [0, 0]]
    # L c = [[2, -2], [-2, 2]]; X1 = Y - h L c, V1 = h L c
    s = flow.step(s, 0.0, H)
    _assert_state(s, [[1.0, 1.5], [1.0, 1.0]], [[1.0, -1.0], [-1.0, 1.0]], [[0.0, 0.5], [0.0, 0.0]])
    # G(X1) = [[0, 1.5], [1, -1]]; Y = X1 + h(-V1 - G) = [[0.5, 1.25], [1, 1]]
    # z = Y + M1 = [[0.5, 1.75], [1, 1]] -> c = [[0, 1.75], [1, 0]] (tie: lower index),
    # M2 = [[0.5, 0], [0, 1]]; L c = [[-1, 1.75], [1, -1.75]]
    s = flow.step(s, H, H)
    _assert_state(s, [[1.0, 0.375], [0.5, 1.875]], [[0.5, -0.125], [-0.5, 0.125]],
                  [[0.5, 0.0], [0.0, 1.0]])


@pytest.mark.parametrize("scheme", ["euler", "predict", "gauss_seidel"])
def test_off_is_the_direct_flow_and_identity_memory_stays_zero(scheme):
    problem = make_problem("least_squares", agents=5, dim=4, seed=3)
    graph = make_graph("ring", 5)
    x0 = np.random.default_rng(0).standard_normal((5, 4))
    runs = {}
    for name, ef, spec in [("off", False, "topk:k=2"), ("old", None, "topk:k=2"),
                           ("id_on", True, "identity"), ("id_off", False, "identity")]:
        comp = make_compressor(spec, 4)
        kw = {} if ef is None else {"error_feedback": ef}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DirectFlowWarning)
            flow = PrimalDualFlow("direct", problem, graph, comp, scheme=scheme,
                                  gains=Gains(alpha=3.0, beta=2.0, eta=1.5, gamma=1.0), **kw)
        s = flow.initial_state(x0=x0)
        for k in range(30):
            s = flow.step(s, k * 0.01, 0.01)
        runs[name] = s
    assert sorted(runs["off"]) == ["V", "X"]  # no memory without error feedback
    for key in ("X", "V"):
        assert np.array_equal(runs["off"][key], runs["old"][key])
        # with C = identity the memory stays exactly 0, so EF sends what the direct flow sends
        assert np.array_equal(runs["id_on"][key], runs["id_off"][key])
    assert not runs["id_on"]["M"].any()
    assert not np.array_equal(runs["off"]["X"], runs["id_off"]["X"])  # top-k does matter


@pytest.mark.parametrize("scheme", ["euler", "predict"])
@pytest.mark.parametrize("spec", ["topk:k=1", "quantize:bits=3", "topk:k=2|quantize:bits=4"])
def test_memory_is_the_accumulated_compression_error(scheme, spec):
    # M^K = sum_k (z_k - c_k) with z_k what the direct flow would send (X^k, or Y^k under
    # predict): everything the agent meant to send and has not delivered yet
    problem = make_problem("least_squares", agents=4, dim=3, seed=1)
    flow = _flow(scheme, spec=spec, problem=problem, graph=make_graph("complete", 4))
    s = flow.initial_state(x0=np.random.default_rng(2).standard_normal((4, 3)))
    comp = flow.compressor
    meant = np.zeros((4, 3))
    delivered = np.zeros((4, 3))
    for k in range(40):
        t = k * 0.05
        (z,) = flow.send(s, t, 0.05)
        x = s["X"] if scheme == "euler" else flow._Y
        assert np.array_equal(z, x + s["M"])
        c = comp(z, t)
        meant += x
        delivered += c
        flow.local(s, t, 0.05)
        s = flow.receive(s, [c], t, 0.05)
        np.testing.assert_allclose(s["M"], meant - delivered, rtol=0, atol=1e-12)
    assert np.abs(s["M"]).max() > 1e-3  # the memory is not trivially 0


def test_config_key_is_for_the_direct_flow_only():
    raw = {"problem": {"agents": 3, "dim": 2}, "compressor": {"spec": "topk:k=1"},
           "solver": {"step": 0.01, "horizon": 0.1}}
    cfg = resolve_config({**raw, "method": {"kind": "direct", "error_feedback": True}})
    assert cfg["method"]["error_feedback"] is True
    plain = resolve_config({**raw, "method": {"kind": "direct"}})
    assert plain["method"]["error_feedback"] is False
    with pytest.raises(InputError, match=r"unknown key \[method\] error_feedback for kind = "
                                         r'"observer"'):
        resolve_config({**raw, "method": {"kind": "observer", "error_feedback": True}})
    with pytest.raises(InputError, match=r"error_feedback must be true or false .* \(got 1\): "
                                         r"e\.g\. error_feedback = false"):
        resolve_config({**raw, "method": {"kind": "direct", "error_feedback": 1}})
    bad = resolve_config({**raw, "method": {"kind": "direct", "error_feedback": True},
                          "solver": {"step": 0.01, "horizon": 0.1, "scheme": "continuous"}})
    with pytest.raises(InputError, match="no continuous-time flow"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", DirectFlowWarning)
        run_config(bad)
