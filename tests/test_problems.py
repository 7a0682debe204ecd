"""Tests for stflow.problems: batched costs, gradients, x*, data files and input errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from stflow.errors import InputError
from stflow.problems import (
    PROBLEM_KINDS,
    LeastSquaresProblem,
    LogisticProblem,
    QuadraticProblem,
    centralized_solution,
    load_problem_data,
    make_problem,
    save_problem_data,
)

CASES = [
    ("quadratic", {}),
    ("least_squares", {}),
    ("least_squares", {"samples": 2}),
    ("least_squares", {"samples": 9, "keep_rows": True}),
    ("logistic", {}),
    ("logistic", {"regularization": 0.3}),
]


def build(kind, **kw):
    return make_problem(kind, agents=kw.pop("agents", 6), dim=kw.pop("dim", 4), seed=3, **kw)


@pytest.mark.parametrize(("kind", "kw"), CASES)
def test_grad_matches_central_differences(kind, kw):
    p = build(kind, **kw)
    X = np.random.default_rng(0).standard_normal((p.n_agents, p.dim))
    h = 1e-6
    fd = np.empty_like(X)
    for k in range(p.dim):  # f_i depends on x_i only: perturb column k of every row at once
        E = np.zeros_like(X)
        E[:, k] = h
        fd[:, k] = (p.values(X + E) - p.values(X - E)) / (2 * h)
    G = p.grad(X)
    assert G.shape == (p.n_agents, p.dim)
    assert np.max(np.abs(G - fd)) < 1e-6 * max(1.0, np.abs(G).max())


@pytest.mark.parametrize(("kind", "kw"), CASES)
def test_values_match_formula_per_agent(kind, kw):
    p = build(kind, **kw)
    X = np.random.default_rng(1).standard_normal((p.n_agents, p.dim))
    a = build(kind, **{**kw, "keep_rows": True}).arrays()  # the rows, also in Gram form
    expected = []
    for i, x in enumerate(X):
        if kind == "quadratic":
            expected.append(0.5 * x @ a["Q"][i] @ x - a["b"][i] @ x)
        elif kind == "least_squares":
            expected.append(0.5 * np.sum((a["A"][i] @ x - a["b"][i]) ** 2))
        else:
            z = a["y"][i] * (a["A"][i] @ x)
            expected.append(np.sum(np.log1p(np.exp(-z))) + kw.get("regularization", 0) / 2 * x @ x)
    assert np.allclose(p.values(X), expected, rtol=1e-12, atol=1e-12)
    assert p.total_value(X[0]) == pytest.approx(p.values(np.tile(X[0], (p.n_agents, 1))).sum())


@pytest.mark.parametrize(("kind", "kw"), CASES)
def test_x_star_is_stationary(kind, kw):
    p = build(kind, **kw)
    assert np.linalg.norm(p.total_grad(p.x_star)) <= 1e-9
    assert p.f_star == pytest.approx(p.total_value(p.x_star))
    assert p.f_star <= p.total_value(p.x_star + 1e-3)


def test_quadratic_x_star_closed_form_and_constants():
    p = make_problem("quadratic", agents=7, dim=5, seed=4)
    Q, b = p.arrays()["Q"], p.arrays()["b"]
    qsum = sum(Q[i] for i in range(7))
    expected = np.linalg.solve(qsum, sum(b[i] for i in range(7)))
    assert np.allclose(p.x_star, expected, rtol=1e-12, atol=1e-12)
    assert p.strong_convexity == pytest.approx(np.linalg.eigvalsh(qsum)[0], rel=1e-10)
    assert p.smoothness == pytest.approx(max(np.linalg.eigvalsh(Q[i])[-1] for i in range(7)))
    assert 8.0 > p.smoothness > 1.0
    for i in range(7):  # each local cost strongly convex
        assert np.allclose(Q[i], Q[i].T) and np.linalg.eigvalsh(Q[i])[0] >= 0.1 - 1e-12


def test_least_squares_constants_and_x_star():
    p = make_problem("least_squares", agents=5, dim=6, seed=2, samples=3)
    A, b = p.arrays()["A"], p.arrays()["b"]
    hess = sum(A[i].T @ A[i] for i in range(5))
    assert p.strong_convexity == pytest.approx(np.linalg.eigvalsh(hess)[0], rel=1e-9)
    assert p.smoothness == pytest.approx(max(np.linalg.norm(A[i], 2) ** 2 for i in range(5)))
    expected = np.linalg.solve(hess, sum(A[i].T @ b[i] for i in range(5)))
    assert np.allclose(p.x_star, expected, rtol=1e-10, atol=1e-12)
    q = LeastSquaresProblem(A.tolist(), b.tolist())
    assert np.array_equal(q.x_star, p.x_star)
    with pytest.raises(InputError, match=r"`x_star` must be .* shape \(d,\) = \(6,\)"):
        LeastSquaresProblem(A, b, x_star=np.ones(5))


def test_least_squares_rank_deficient_gives_min_norm():
    p = make_problem("least_squares", agents=2, dim=8, seed=0, samples=3)  # rank 6 < 8
    assert p.strong_convexity == 0.0
    A = p.arrays()["A"].reshape(-1, 8)
    expected = np.linalg.pinv(A) @ p.arrays()["b"].ravel()
    assert np.allclose(p.x_star, expected, atol=1e-10)
    assert np.linalg.norm(p.total_grad(p.x_star)) <= 1e-9


@pytest.mark.parametrize("reg", [0.0, 0.05])
def test_logistic_x_star_matches_independent_scipy(reg):
    p = make_problem("logistic", agents=8, dim=5, seed=6, regularization=reg)
    A = p.arrays()["A"].reshape(-1, 5)
    y = p.arrays()["y"].ravel()

    def f(x):
        return np.sum(np.logaddexp(0, -y * (A @ x))) + 8 * reg / 2 * x @ x

    def g(x):
        s = 1 / (1 + np.exp(y * (A @ x)))
        return -(A.T @ (y * s)) + 8 * reg * x

    ref = minimize(f, np.zeros(5), jac=g, method="BFGS", options={"gtol": 1e-11, "maxiter": 10_000})
    assert np.allclose(p.x_star, ref.x, atol=1e-6)
    assert p.strong_convexity == pytest.approx(8 * reg)
    assert p.smoothness == pytest.approx(
        max(np.linalg.norm(p.A[i], 2) ** 2 for i in range(8)) / 4 + reg
    )


def test_logistic_separable_without_regularization_is_an_error():
    p = make_problem("logistic", agents=2, dim=30, seed=0)  # 40 samples in 30 dims
    with pytest.raises(InputError, match="regularization > 0"):
        _ = p.x_star
    q = make_problem("logistic", agents=2, dim=30, seed=0, regularization=0.1)
    assert np.linalg.norm(q.total_grad(q.x_star)) <= 1e-9


def test_logistic_is_stable_for_huge_margins():
    A = np.array([[[1.0], [-1.0]]])
    p = LogisticProblem(A, np.array([[1.0, 1.0]]))
    X = np.array([[1000.0]])
    assert np.isfinite(p.values(X)).all() and p.values(X)[0] == pytest.approx(1000.0)
    assert p.grad(X)[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("kind", PROBLEM_KINDS)
def test_npz_round_trip(kind, tmp_path):
    p = build(kind, keep_rows=True)
    path = tmp_path / f"{kind}.npz"
    save_problem_data(p, path)
    loaded = load_problem_data(kind, path)
    assert set(loaded) == set(p.arrays())
    for key, arr in p.arrays().items():
        assert np.array_equal(loaded[key], arr)
    q = make_problem(kind, agents=99, dim=99, data=str(path))
    assert (q.n_agents, q.dim) == (p.n_agents, p.dim)
    assert np.array_equal(q.x_star, p.x_star)
    r = make_problem(kind, agents=1, dim=1, data=dict(p.arrays()))
    assert np.array_equal(r.grad(np.ones((6, 4))), p.grad(np.ones((6, 4))))


def test_generation_is_seeded():
    a = make_problem("logistic", agents=3, dim=2, seed=9)
    b = make_problem("logistic", agents=3, dim=2, seed=9)
    c = make_problem("logistic", agents=3, dim=2, seed=10)
    assert np.array_equal(a.A, b.A) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.A, c.A)
    assert a.A.shape == (3, 20, 2) and build("least_squares", keep_rows=True).A.shape == (6, 4, 4)


@pytest.mark.parametrize(("kind", "kw"), CASES)
def test_subset_holds_only_its_agents(kind, kw):
    p = build(kind, **kw)
    X = np.random.default_rng(2).standard_normal((p.n_agents, p.dim))
    s = p.subset(slice(2, 5))
    assert s.n_agents == 3 and s.kind == kind
    assert np.array_equal(s.grad(X[2:5]), p.grad(X)[2:5])
    assert np.array_equal(s.values(X[2:5]), p.values(X)[2:5])
    for key, arr in s.arrays().items():
        assert arr.shape[0] == 3 and not np.shares_memory(arr, p.arrays()[key])
    with pytest.raises(RuntimeError, match="x_star"):
        _ = s.x_star
    t = p.subset(slice(2, 5), x_star=p.x_star)
    assert np.array_equal(t.x_star, p.x_star)
    assert t.f_star == pytest.approx(p.f_star)
    assert p.subset(slice(4, None)).n_agents == 2


def test_centralized_solution_is_a_copy():
    p = build("quadratic")
    x = centralized_solution(p)
    x[0] += 1.0
    assert not np.array_equal(x, p.x_star)


def test_quadratic_checks():
    Q = np.stack([np.eye(2), np.eye(2)])
    with pytest.raises(InputError, match=r"`Q\[1\]` must be symmetric"):
        QuadraticProblem(Q + np.array([np.zeros((2, 2)), [[0, 1e-3], [0, 0]]]), np.ones((2, 2)))
    with pytest.raises(InputError, match=r"`Q\[0\]` must be positive semidefinite"):
        QuadraticProblem(np.stack([-np.eye(2), 3 * np.eye(2)]), np.ones((2, 2)))
    singular = {"Q": np.stack([np.diag([1.0, 0.0])] * 2), "b": np.ones((2, 2))}
    with pytest.raises(InputError, match="sum of Q_i is singular"):
        make_problem("quadratic", agents=2, dim=2, data=singular)


@pytest.mark.parametrize(
    ("kind", "data", "needle"),
    [
        ("least_squares", {"A": np.ones((10, 5, 3)), "b": np.ones((10, 4))},
         r"`b` must have shape \(N, m\) = \(10, 5\) \(got \(10, 4\)\)"),
        ("quadratic", {"Q": np.ones((3, 4)), "b": np.ones((3, 4))},
         r"`Q` must have shape \(N, d, d\) \(got \(3, 4\)\)"),
        ("quadratic", {"Q": np.stack([np.eye(2)] * 3), "b": np.ones((3, 3))},
         r"`b` must have shape \(N, d\) = \(3, 2\)"),
        ("least_squares", {"A": np.full((2, 2, 2), np.nan), "b": np.ones((2, 2))},
         r"`A` contains NaN or inf \(first at index \(0, 0, 0\)\)"),
        ("logistic", {"A": np.ones((2, 2, 2)), "y": np.array([[0.0, 1.0], [1.0, 1.0]])},
         "only -1 and \\+1"),
        ("logistic", {"A": np.ones((2, 2, 2)), "b": np.ones((2, 2))}, "exactly the arrays A, y"),
        ("logistic", {"A": np.ones((2, 2, 2)), "y": np.array([["a", "b"], ["c", "d"]])},
         "numeric array"),
    ],
)
def test_bad_data_messages(kind, data, needle):
    with pytest.raises(InputError, match=needle) as info:
        make_problem(kind, agents=2, dim=2, data=data)
    assert "\n" not in str(info.value)


def test_bad_npz_file(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, A=np.ones((3, 2, 2)), b=np.ones((3, 3)))
    with pytest.raises(InputError, match=r"`b` must have shape \(N, m\) = \(3, 2\)"):
        load_problem_data("least_squares", path)
    with pytest.raises(InputError, match="cannot read"):
        make_problem("quadratic", agents=2, dim=2, data=str(tmp_path / "missing.npz"))


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: make_problem("lasso", agents=2, dim=2), "quadratic, least_squares, logistic"),
        (lambda: make_problem("quadratic", agents=2, dim=-3), r"`dim` must be a positive.*-3"),
        (lambda: make_problem("quadratic", agents=0, dim=2), "`agents` must be a positive"),
        (lambda: make_problem("logistic", agents=2, dim=2, regularization=-1.0), ">= 0"),
        (lambda: make_problem("quadratic", agents=2, dim=2, regularization=0.1),
         "applies to kind='logistic' or 'softmax' only"),
        (lambda: make_problem("quadratic", agents=2, dim=2, samples=3), "`samples` applies"),
        (lambda: make_problem("logistic", agents=2, dim=2, samples=0), "`samples` must be"),
        (lambda: make_problem("quadratic", agents=2, dim=2, data=3), "`data` must be"),
        (lambda: build("quadratic").grad(np.ones((5, 4))), r"`X` must have shape \(N, d\)"),
        (lambda: build("quadratic").total_value(np.ones(3)), r"`x` must have shape \(d,\)"),
        (lambda: build("quadratic").subset(slice(0, 6, 2)), "contiguous slice"),
        (lambda: build("quadratic").subset(slice(3, 3)), "at least one"),
    ],
)
def test_bad_argument_messages(call, needle):
    with pytest.raises(InputError, match=needle) as info:
        call()
    assert "\n" not in str(info.value) and ": " in str(info.value)
