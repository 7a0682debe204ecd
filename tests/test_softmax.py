"""Softmax (multinomial logistic) problem: values, gradients, Hessian, bounds, x*, accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from stflow.errors import InputError
from stflow.problems import SoftmaxProblem, make_problem


def build(reg=0.1, **kw):
    # N = 4 agents, K = 3 classes, p = 3 features: d = 9
    return make_problem("softmax", agents=4, dim=9, classes=3, seed=5, regularization=reg, **kw)


def test_value_by_hand():
    # one agent, rows a = (1, 0) label 0 and a = (0, 2) label 1; W = [[1, 0], [0, -1]]
    A = np.array([[[1.0, 0.0], [0.0, 2.0]]])
    p = SoftmaxProblem(A, np.array([[0, 1]]), regularization=0.5)
    x = np.array([[1.0, 0.0, 0.0, -1.0]])  # W[f, k] = x[f * K + k]
    # row 0: z = (1, 0), loss log(e + 1) - 1; row 1: z = (0, -2), loss log(1 + e^-2) + 2
    want = np.log(np.e + 1) - 1 + np.log(1 + np.exp(-2.0)) + 2 + 0.25 * 2.0
    assert p.values(x)[0] == pytest.approx(want, rel=1e-14)
    assert (p.dim, p.n_features, p.classes) == (4, 2, 2)


def test_grad_and_hessian_match_finite_differences():
    p = build()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((p.n_agents, p.dim))
    h = 1e-6
    fd = np.empty_like(X)
    for k in range(p.dim):
        E = np.zeros_like(X)
        E[:, k] = h
        fd[:, k] = (p.values(X + E) - p.values(X - E)) / (2 * h)
    assert np.abs(fd - p.grad(X)).max() <= 1e-6 * max(1.0, np.abs(fd).max())
    x = X[0]
    H = p._hessian_sum(x)
    fdh = np.empty((p.dim, p.dim))
    for k in range(p.dim):
        e = np.zeros(p.dim)
        e[k] = h
        fdh[:, k] = (p.total_grad(x + e) - p.total_grad(x - e)) / (2 * h)
    assert np.abs(fdh - H).max() <= 1e-6 * max(1.0, np.abs(H).max())
    assert np.allclose(H, H.T, atol=1e-12)


def test_smoothness_and_strong_convexity_bounds():
    p = build(reg=0.05)
    rng = np.random.default_rng(1)
    worst = 0.0
    for i in range(p.n_agents):  # each f_i's Hessian at a few points stays below L
        one = p.subset(slice(i, i + 1))
        for _ in range(3):
            x = 3.0 * rng.standard_normal(p.dim)
            lam = np.linalg.eigvalsh(one._hessian_sum(x))
            worst = max(worst, lam[-1])
            assert lam[0] >= 0.05 * (1 - 1e-9)  # f_i is r-strongly convex
    assert worst <= p.smoothness
    assert worst >= 0.2 * p.smoothness  # the bound is not vacuous
    low = np.linalg.eigvalsh(p._hessian_sum(p.x_star))[0]
    assert low >= p.strong_convexity * (1 - 1e-9) and p.strong_convexity == pytest.approx(0.2)


def test_x_star_is_optimal_and_matches_scikit_learn():
    p = build(reg=0.1)
    x = p.x_star
    assert np.linalg.norm(p.total_grad(x)) <= 1e-10
    W = x.reshape(p.n_features, p.classes)
    assert np.abs(W.sum(axis=1)).max() <= 1e-10  # class columns sum to zero at the optimum
    rng = np.random.default_rng(2)
    for _ in range(5):  # strictly better than nearby points
        assert p.total_value(x + 1e-3 * rng.standard_normal(p.dim)) > p.f_star
    linear_model = pytest.importorskip("sklearn.linear_model")
    rows = p.A.reshape(-1, p.n_features)
    labels = p.y.ravel().astype(int)
    # sum_i f_i = sum CE + (N r / 2) ||W||^2  <=>  sklearn C = 1 / (N r), no intercept
    clf = linear_model.LogisticRegression(C=1.0 / (p.n_agents * 0.1), fit_intercept=False,
                                          tol=1e-12, max_iter=10_000)
    clf.fit(rows, labels)
    assert np.abs(clf.coef_.T.ravel() - x).max() <= 1e-5 * np.abs(x).max()


def test_without_regularization():
    p = build(reg=0.0, samples=200)  # 800 noisy rows in 3 features: not separable
    x = p.x_star
    assert p.strong_convexity == 0.0
    assert np.linalg.norm(p.total_grad(x)) <= 1e-8
    assert np.abs(x.reshape(3, 3).sum(axis=1)).max() <= 1e-10  # the minimum-norm minimizer
    A = np.array([[[1.0], [-1.0]]])  # class = sign of the feature: separable
    q = SoftmaxProblem(A, np.array([[1, 0]]))
    with pytest.raises(InputError, match="regularization > 0"):
        _ = q.x_star


def test_test_accuracy_and_train_loss_by_hand():
    # agent 1 holds one real row and one padding (all-zero) row
    A = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]]])
    y = np.array([[0, 1], [1, 0]])
    test = (np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]]), np.array([0, 1, 1]))
    p = SoftmaxProblem(A, y, regularization=0.5, test=test)
    assert p.rows_per_agent.tolist() == [2, 1] and p.has_test
    # W = I: predictions argmax(a) = 0, 1, 0 -> 2 of 3; W = -I: 1, 0, 1 -> 1 of 3
    X = np.vstack([np.eye(2).ravel(), -np.eye(2).ravel()])
    assert p.test_accuracy(X).tolist() == [2 / 3, 1 / 3]
    x = np.eye(2).ravel()
    # three real rows: (1,0)->0, (0,1)->1, (1,1)->1 with z = a; ridge 2 agents * 0.25 * 2
    ce = 2 * np.log(np.e + 1) - 2 + np.log(2.0) - 1 + 1
    assert p.train_loss(x) == pytest.approx((ce + 2 * 0.25 * 2.0) / 3, rel=1e-13)
    assert not make_problem("softmax", agents=2, dim=4).has_test
    assert np.isnan(make_problem("softmax", agents=2, dim=4).test_accuracy(np.zeros(4))).all()


def test_generated_data_and_npz_round_trip(tmp_path):
    p = make_problem("softmax", agents=3, dim=12, classes=4, samples=7, seed=1)
    assert p.A.shape == (3, 7, 3) and (p.dim, p.classes) == (12, 4)
    assert set(np.unique(p.y)) <= {0.0, 1.0, 2.0, 3.0}
    np.savez(tmp_path / "s.npz", **p.arrays())
    q = make_problem("softmax", agents=1, dim=1, data=str(tmp_path / "s.npz"))
    assert q.classes == int(p.y.max()) + 1 and np.array_equal(q.A, p.A)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: SoftmaxProblem(np.ones((1, 2, 1)), np.array([[0, 1.5]])), "integer class"),
        (lambda: SoftmaxProblem(np.ones((1, 2, 1)), np.array([[0, -1]])), "classes"),
        (lambda: SoftmaxProblem(np.ones((1, 2, 1)), np.array([[0, 3]]), classes=3), "0..2"),
        (lambda: SoftmaxProblem(np.ones((1, 2, 1)), np.array([[0, 0]])), ">= 2"),
        (lambda: make_problem("softmax", agents=2, dim=7, classes=3), "multiple of"),
        (lambda: make_problem("least_squares", agents=2, dim=2, classes=3), "'softmax' only"),
        (lambda: SoftmaxProblem(np.ones((1, 2, 1)), np.array([[0, 1]]),
                                test=(np.ones((2, 3)), np.zeros(2))), "A_test"),
    ],
)
def test_bad_input(call, needle):
    with pytest.raises(InputError, match=needle) as info:
        call()
    assert "\n" not in str(info.value)
