"""EXTRA and BEER (issue 19) against hand-worked steps, their papers' rates, bits and MPI.

The reference iterates are computed here with plain numpy, written from the formulas (EXTRA:
Shi, Ling, Wu & Yin 2015, Algorithm 1; BEER: a transcription of the authors' recursion in
``liboyue/beer``, ``beer/optim/BEER.py``), not from stflow's code.
"""

import numpy as np
import pytest

from stflow import solve
from stflow.compressors import make_compressor
from stflow.graphs import make_graph
from stflow.methods import make_method
from stflow.problems import LeastSquaresProblem, make_problem
from stflow.testing import check_method

# N = 3 path: Metropolis weights by hand (degrees 1, 2, 1: every weight 1 / (1 + 2))
W3 = np.array([[2 / 3, 1 / 3, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.0, 1 / 3, 2 / 3]])


@pytest.fixture(scope="module")
def tiny():
    """Least squares on a 3-agent path, d = 2: f_i(x) = 1/2 |A_i x - b_i|^2."""
    rng = np.random.default_rng(5)
    A, b = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4))
    problem = LeastSquaresProblem(A, b)
    X0 = rng.standard_normal((3, 2))

    def grad(X):
        return np.einsum("imd,im->id", A, np.einsum("imd,id->im", A, X) - b)

    np.testing.assert_allclose(problem.grad(X0), grad(X0), rtol=1e-13, atol=1e-13)
    return problem, make_graph("path", 3), X0, grad


def _rounds(method, X0, rounds):
    """The state's X after 0, 1, ..., rounds rounds."""
    state = method.initial_state(X0)
    out = [state["X"]]
    for k in range(rounds):
        state = method.step(state, float(k), 1.0)
        out.append(state["X"])
    return out


def _topk(Z, k):
    """Keep the k largest |z| of every row (plain numpy, no ties in these tests)."""
    out = np.zeros_like(Z)
    idx = np.argsort(-np.abs(Z), axis=1)[:, :k]
    np.put_along_axis(out, idx, np.take_along_axis(Z, idx, axis=1), axis=1)
    return out


# -- EXTRA --------------------------------------------------------------------------------

def test_extra_two_rounds_by_hand_and_twenty_from_the_two_step_formula(tiny):
    problem, graph, X0, grad = tiny
    a = 0.05
    got = _rounds(make_method("extra", problem, graph, lr=a), X0, 20)
    Wt = 0.5 * (np.eye(3) + W3)
    X1 = W3 @ X0 - a * grad(X0)
    X2 = (np.eye(3) + W3) @ X1 - Wt @ X0 - a * (grad(X1) - grad(X0))
    np.testing.assert_allclose(got[1], X1, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(got[2], X2, rtol=1e-13, atol=1e-14)
    ref = [X0, X1]
    for _ in range(19):
        ref.append((np.eye(3) + W3) @ ref[-1] - Wt @ ref[-2]
                   - a * (grad(ref[-1]) - grad(ref[-2])))
    for k in range(21):
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-12, atol=1e-12, err_msg=f"k={k}")


def test_extra_auto_lr_is_nine_tenths_of_the_theorem_bound(tiny):
    problem, graph, _, _ = tiny
    m = make_method("extra", problem, graph)
    # W3 (1, -2, 1) = 0: lambda_min(W) = 0, so lambda_min((I + W)/2) = 1/2
    np.testing.assert_allclose(W3 @ [1.0, -2.0, 1.0], 0.0, atol=1e-15)
    lam = 0.5
    assert m.lr == pytest.approx(0.9 * 2 * lam / problem.smoothness, rel=1e-12)
    assert m.bits_per_message == 64 * 2


def test_extra_is_exact_on_least_squares():
    problem = make_problem("least_squares", agents=8, dim=5, seed=2)
    graph = make_graph("ring", 8)
    sol = solve(make_method("extra", problem, graph), step=1.0, horizon=3000,
                record_every=10, tolerance=1e-10)
    assert sol.status == "converged"
    assert sol.final_relative_error < 1e-8
    # exact with a constant step: DGD with the same step stalls far above
    dgd = solve(make_method("dgd", problem, graph, lr=make_method(
        "extra", problem, graph).lr), step=1.0, horizon=3000, record_every=100)
    assert dgd.final_relative_error > 1e3 * sol.final_relative_error


# -- BEER ---------------------------------------------------------------------------------

def _beer_reference(X0, grad, W, C, eta, gamma, steps):
    """The authors' recursion (beer/optim/BEER.py), in its order: ``init`` then ``step``.

    init: V = grad(X^0) (their script's full gradient), X -= eta V, H += C(X - H);
    step: V += gamma (W - I) G + grad(X) - grad(X_ref), X_ref = X;
          G += C(V - G); X += gamma (W - I) H - eta V; H += C(X - H).
    Returns X after init and after every step (their X^1, X^2, ...) and G after every step.
    """
    n = X0.shape[0]
    H, G = np.zeros_like(X0), np.zeros_like(X0)
    V = grad(X0)
    Xref = X0.copy()
    X = X0 - eta * V
    H = H + C(X - H)
    xs, gs = [X.copy()], [G.copy()]
    for _ in range(steps):
        V = V + gamma * (W - np.eye(n)) @ G + grad(X) - grad(Xref)
        Xref = X.copy()
        G = G + C(V - G)
        X = X + gamma * (W - np.eye(n)) @ H - eta * V
        H = H + C(X - H)
        xs.append(X.copy())
        gs.append(G.copy())
    return xs, gs


@pytest.mark.parametrize("spec, C", [
    ("identity", lambda Z: Z),
    ("topk:k=1", lambda Z: _topk(Z, 1)),
])
def test_beer_equals_the_authors_recursion(tiny, spec, C):
    problem, graph, X0, grad = tiny
    eta, gamma = 0.04, 0.4
    m = make_method("beer", problem, graph, make_compressor(spec, 2), lr=eta, gamma=gamma)
    state = m.initial_state(X0)
    # by hand: no message is needed for X^1 = X^0 - eta grad F(X^0)
    np.testing.assert_allclose(state["X"], X0 - eta * grad(X0), rtol=1e-14)
    xs, gs = _beer_reference(X0, grad, W3, C, eta, gamma, 20)
    if spec == "identity":  # round 1 by hand: H^1 = X^1, G^1 = V^1 = grad F(X^1)
        X1 = X0 - eta * grad(X0)
        X2 = X1 + gamma * (W3 - np.eye(3)) @ X1 - eta * grad(X1)
        np.testing.assert_allclose(xs[1], X2, rtol=1e-13, atol=1e-14)
    for k in range(21):
        np.testing.assert_allclose(state["X"], xs[k], rtol=1e-12, atol=1e-12,
                                   err_msg=f"X after {k} rounds")
        np.testing.assert_allclose(state["G"], gs[k], rtol=1e-12, atol=1e-12,
                                   err_msg=f"G after {k} rounds")
        state = m.step(state, float(k), 1.0)
    assert not np.allclose(xs[20], xs[19])  # the 20 rounds moved


@pytest.mark.parametrize("spec", ["topk:k=1", "quantize:bits=3"])
def test_beer_converges_linearly_with_compression(spec):
    problem = make_problem("quadratic", agents=8, dim=4, seed=1)
    graph = make_graph("ring", 8, chords=2, seed=0)
    m = make_method("beer", problem, graph, make_compressor(spec, 4))
    sol = solve(m, step=1.0, horizon=1500, record_every=10, tolerance=1e-9)
    assert sol.status == "converged" and sol.final_relative_error < 1e-6
    k, e = sol.records["step"], sol.records["relative_error"]
    first = [int(k[np.argmax(e <= t)]) for t in (1e-3, 1e-6, 1e-9)]
    # linear: each three decades take the same rounds, within 20 % (measured 190 / 390 / 580
    # rounds with top-k, 200 / 400 / 610 with quantize), at a rate of 0.033-0.035 per round
    a, b = first[1] - first[0], first[2] - first[1]
    assert 0.8 < b / a < 1.2, first
    rate = np.log(1e3) / b
    assert 0.028 < rate < 0.042, (first, rate)


@pytest.mark.parametrize("spec, bits", [
    ("topk:k=2", 2 * (2 * (3 + 64))),    # k (index bits + float64) per message
    ("quantize:bits=4", 2 * (64 + 4 * 8)),  # a float64 scale + 4 bits per entry
])
def test_beer_sends_two_compressed_messages(spec, bits):
    problem = make_problem("quadratic", agents=4, dim=8, seed=0)
    comp = make_compressor(spec, 8)
    m = make_method("beer", problem, make_graph("ring", 4), comp)
    assert comp.bits_per_message() * 2 == bits == m.bits_per_message
    assert make_method("extra", problem, make_graph("ring", 4), comp).bits_per_message == 512


# -- both ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["extra", "beer"])
def test_minibatch_gradients_reduce_the_error(kind):
    problem = make_problem("least_squares", agents=6, dim=4, seed=3, samples=40, batch=8)
    assert problem.batch == 8
    graph = make_graph("ring", 6)
    comp = make_compressor("quantize:bits=4", 4)
    m = make_method(kind, problem, graph, comp, lr=0.2 / problem.smoothness)
    sol = solve(m, step=1.0, horizon=400, record_every=10)
    e = sol.records["relative_error"]
    assert np.all(np.isfinite(e))
    assert e[-1] < 0.1 * e[0]
    # the noise floor: unlike full gradients, minibatches do not reach 1e-8
    assert e[-1] > 1e-8


@pytest.mark.parametrize("kind, spec", [("extra", "identity"), ("beer", "quantize:bits=4")])
def test_mpi_equals_the_simulator(kind, spec):
    cfg = {
        "problem": {"kind": "least_squares", "agents": 6, "dim": 4, "seed": 0},
        "graph": {"kind": "ring"},
        "compressor": {"spec": spec},
        "method": {"kind": kind},
        "solver": {"step": 1.0, "horizon": 40.0, "record_every": 5, "tolerance": 1e-12},
    }
    result = check_method(None, cfg, procs=(1, 2, 3), rtol=1e-9)
    assert result.ok, result.report()
    assert sum("engines (P=" in line for line in result.passed) == 3
