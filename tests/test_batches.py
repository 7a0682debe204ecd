"""Minibatch gradients of SPEC section 7: the batch sequence, unbiasedness, padding, subsets."""

from __future__ import annotations

import numpy as np
import pytest

from stflow.config import build_run, resolve_config
from stflow.errors import InputError
from stflow.problems import (
    LeastSquaresProblem,
    LogisticProblem,
    SoftmaxProblem,
    make_problem,
)


def test_batch_sequence_follows_the_rule_of_spec_7():
    # 3 agents with m = 5 rows, B = 3: evaluation 1 reads stream positions 3, 4, 5, i.e.
    # rows perm_{i,0}[3], perm_{i,0}[4], perm_{i,1}[0]
    seed, m, B = 11, 5, 3
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((3, m, 2)), rng.standard_normal((3, m))
    p = LeastSquaresProblem(A, b, batch=B, seed=seed)
    X = rng.standard_normal((3, 2))
    for i in range(3):
        stream = np.concatenate(
            [np.random.default_rng([seed, i, e]).permutation(m) for e in range(4)]
        )
        for draw in range(6):
            rows = stream[draw * B : draw * B + B]
            assert p.batch_rows(draw)[i].tolist() == rows.tolist()
            r = A[i, rows] @ X[i] - b[i, rows]
            want = (m / B) * (A[i, rows].T @ r)
            assert np.allclose(p.stochastic_grad(X, draw)[i], want, rtol=1e-13, atol=1e-13)
    # different agents, different seeds -> different rows
    assert p.batch_rows(0)[0].tolist() != p.batch_rows(0)[1].tolist()
    q = LeastSquaresProblem(A, b, batch=B, seed=seed + 1)
    assert not np.array_equal(q.batch_rows(0), p.batch_rows(0))


def padded_data(kind, rng):
    """Agent 0: 12 real rows; agent 1: 8 real rows then 4 all-zero padding rows."""
    p_feat = 3
    A = rng.standard_normal((2, 12, p_feat))
    A[1, 8:] = 0.0
    if kind == "least_squares":
        return LeastSquaresProblem, {"A": A, "b": rng.standard_normal((2, 12))}, {}
    if kind == "logistic":
        y = np.where(rng.random((2, 12)) < 0.5, -1.0, 1.0)
        return LogisticProblem, {"A": A, "y": y}, {"regularization": 0.3}
    y = rng.integers(0, 4, size=(2, 12)).astype(float)
    return SoftmaxProblem, {"A": A, "y": y}, {"regularization": 0.3, "classes": 4}


@pytest.mark.parametrize("kind", ["least_squares", "logistic", "softmax"])
def test_one_epoch_averages_to_the_full_gradient(kind):
    cls, arrays, kw = padded_data(kind, np.random.default_rng(3))
    p = cls(*arrays.values(), batch=4, seed=7, **kw)
    assert p.rows_per_agent.tolist() == [12, 8]  # padding rows are not counted
    assert p.samples_per_eval.tolist() == [4, 4]
    X = np.random.default_rng(4).standard_normal((2, p.dim))
    full = p.grad(X)
    for i, m in enumerate(p.rows_per_agent):
        for epoch in range(2):  # every epoch, not just the first
            draws = range(epoch * m // 4, (epoch + 1) * m // 4)
            mean = np.mean([p.stochastic_grad(X, d)[i] for d in draws], axis=0)
            assert np.linalg.norm(mean - full[i]) <= 1e-12 * np.linalg.norm(full[i])
    # a single batch is not the full gradient (the test above can fail)
    assert np.linalg.norm(p.stochastic_grad(X, 0)[1] - full[1]) > 1e-3
    # padding rows are never drawn: agent 1's rows stay below 8
    assert max(p.batch_rows(d)[1].max() for d in range(20)) == 7


def test_full_gradient_without_batch():
    cls, arrays, kw = padded_data("softmax", np.random.default_rng(5))
    p = cls(*arrays.values(), **kw)
    X = np.ones((2, p.dim))
    assert p.batch is None and np.array_equal(p.stochastic_grad(X, 3), p.grad(X))
    assert p.samples_per_eval.tolist() == [12, 8]
    q = make_problem("quadratic", agents=3, dim=2)
    assert q.batch is None and np.array_equal(q.stochastic_grad(np.ones((3, 2)), 0),
                                              q.grad(np.ones((3, 2))))
    assert q.samples_per_eval.tolist() == [1, 1, 1] and q.agent_ids.tolist() == [0, 1, 2]
    assert q.subset(slice(1, 3)).agent_ids.tolist() == [1, 2]


@pytest.mark.parametrize("kind", ["least_squares", "logistic", "softmax"])
def test_subset_draws_the_same_batches(kind):
    p = make_problem(kind, agents=6, dim=4, seed=2, samples=9, batch=4,
                     **({"regularization": 0.1} if kind != "least_squares" else {}))
    s = p.subset(slice(2, 5), x_star=p.x_star)
    assert s.agent_ids.tolist() == [2, 3, 4] and s.batch == 4 and s.seed == p.seed
    t = s.subset(slice(1, 3))
    assert t.agent_ids.tolist() == [3, 4]
    X = np.random.default_rng(0).standard_normal((6, p.dim))
    for draw in (0, 1, 2, 7):
        full = p.stochastic_grad(X, draw)
        assert np.array_equal(s.stochastic_grad(X[2:5], draw), full[2:5])
        assert np.array_equal(t.stochastic_grad(X[3:5], draw), full[3:5])
    # the copy an engine makes with _from_arrays keeps ids, batch and seed
    c = s._from_arrays(s.arrays(), x_star=p.x_star)
    assert c.agent_ids.tolist() == [2, 3, 4]
    assert np.array_equal(c.stochastic_grad(X[2:5], 5), p.stochastic_grad(X, 5)[2:5])


def test_data_table_batches_and_held_out_rows():
    from stflow.datasets import dataset_problem

    p, split = dataset_problem("breast_cancer", agents=10, regularization=1e-2,
                               test_fraction=0.2, batch=5, seed=1)
    assert p.rows_per_agent.tolist() == split.block_sizes and p.has_test
    X = np.zeros((2, p.dim))
    X[1] = p.x_star
    acc = p.test_accuracy(X)
    # x = 0 scores 0 on every row -> predicts +1 everywhere
    assert acc[0] == pytest.approx(np.mean(split.y_test == 1.0))
    assert acc[1] >= 0.95
    n_train = sum(split.block_sizes)
    w = p.x_star
    loss = np.logaddexp(0, -split.y_train * (split.X_train @ w)).sum()
    assert p.train_loss(w) == pytest.approx((loss + 10 * 0.5e-2 * w @ w) / n_train, rel=1e-12)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: make_problem("least_squares", agents=2, dim=3, samples=4, batch=5),
         "batch <= m_i"),
        (lambda: make_problem("logistic", agents=2, dim=3, batch=0), "positive integer"),
        (lambda: make_problem("logistic", agents=2, dim=3, batch=-2), "positive integer"),
        (lambda: make_problem("logistic", agents=2, dim=3, batch=True), "positive integer"),
        (lambda: make_problem("quadratic", agents=2, dim=3, batch=2), "kind='quadratic'"),
        (lambda: make_problem("logistic", agents=2, dim=3, batch=2).stochastic_grad(
            np.zeros((2, 3)), -1), "draw"),
        (lambda: LeastSquaresProblem(np.ones((2, 1, 1)), np.ones((2, 1)), agent_ids=[0]),
         "agent_ids"),
    ],
)
def test_bad_batch_input(call, needle):
    with pytest.raises(InputError, match=needle) as info:
        call()
    assert "\n" not in str(info.value)


def test_batch_from_config():
    cfg = resolve_config({"problem": {"kind": "softmax", "agents": 4, "dim": 6, "classes": 3,
                                      "regularization": 0.1, "batch": 5, "seed": 3}})
    p = build_run(cfg).problem
    assert (p.kind, p.batch, p.seed, p.classes, p.dim) == ("softmax", 5, 3, 3, 6)
    with pytest.raises(InputError, match="batch <= m_i"):
        build_run(resolve_config({"problem": {"kind": "logistic", "batch": 21}}))
    with pytest.raises(InputError, match="needs a data table"):
        build_run(resolve_config({"problem": {"kind": "logistic", "split": "by_label"}}))
