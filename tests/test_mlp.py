"""The MLP problem (batched gradients against per-agent autograd, SPEC section 7 batches,
PyTorch's initialization, the missing-extra error) and the lowrank compressor (hand-checked
rank-1 example, wire round trip, bit counts, certificate)."""

import math
import sys

import numpy as np
import pytest

from stflow.compressors import make_compressor
from stflow.compressors.lowrank import LowRank
from stflow.errors import InputError
from stflow.problems.mlp import mlp_param_shapes
from stflow.problems.sampling import batch_rows

N, M, P, CLASSES = 3, 7, 5, 4
ROWS = np.array([7, 5, 6])  # agents 1 and 2 have padded rows


def _data(seed=0):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((N, M, P))
    y = rng.integers(0, CLASSES, (N, M))
    test_F = rng.standard_normal((11, P))
    test_y = rng.integers(0, CLASSES, 11)
    return F, y, test_F, test_y


def _problem(**kw):
    from stflow.problems.mlp import MLPProblem

    F, y, tF, ty = _data()
    opts = dict(hidden=[6, 3], classes=CLASSES, seed=5, test_features=tF, test_labels=ty,
                rows_per_agent=ROWS)
    opts.update(kw)
    return MLPProblem(F, y, **opts)


def _autograd(problem, x, F, y, scale=1.0):
    """Gradient of scale * sum of cross-entropies of one model on rows (F, y), by autograd."""
    import torch

    xt = torch.tensor(x, requires_grad=True)
    logits = problem._forward(xt, torch.tensor(F))
    loss = scale * torch.nn.functional.cross_entropy(logits, torch.tensor(y), reduction="sum")
    loss.backward()
    return xt.grad.numpy()


def _points(p, seed=1):
    return p.initial_point() + 0.3 * np.random.default_rng(seed).standard_normal((N, p.dim))


# ------------------------------------------------------------------------------ MLP problem


def test_batched_gradients_equal_per_agent_autograd():
    pytest.importorskip("torch")
    p = _problem()
    X = _points(p)
    F, y, _, _ = _data()
    G = p.grad(X)
    for i in range(N):
        ref = _autograd(p, X[i], F[i, : ROWS[i]], y[i, : ROWS[i]])  # padded rows excluded
        assert np.max(np.abs(G[i] - ref)) <= 1e-12 * max(1.0, np.abs(ref).max())
    assert p.dim == 6 * 5 + 6 + 3 * 6 + 3 + 4 * 3 + 4


def test_values_at_zero_are_m_i_log_classes():
    pytest.importorskip("torch")
    p = _problem()
    # every logit is 0, so each real row costs log(4); padded rows cost nothing
    np.testing.assert_allclose(p.values(np.zeros((N, p.dim))), ROWS * math.log(CLASSES),
                               rtol=1e-14)
    assert p.train_loss(np.zeros(p.dim)) == pytest.approx(math.log(CLASSES), rel=1e-14)


def test_stochastic_grad_uses_the_spec_rows_scaled_by_m_over_b():
    pytest.importorskip("torch")
    B = 4
    p = _problem(batch=B, agent_ids=[10, 11, 12])
    F, y, _, _ = _data()
    X = _points(p, 2)
    for draw in (0, 1, 3):  # draw 1 crosses agent 1's first pass (m_1 = 5)
        G = p.stochastic_grad(X, draw)
        for i in range(N):
            rows = batch_rows(5, 10 + i, draw, int(ROWS[i]), B)  # SPEC 7, global id 10 + i
            assert rows.max() < ROWS[i]
            ref = _autograd(p, X[i], F[i, rows], y[i, rows], scale=ROWS[i] / B)
            assert np.max(np.abs(G[i] - ref)) <= 1e-12 * max(1.0, np.abs(ref).max())
    assert p.samples_per_eval.tolist() == [B, B, B]
    assert _problem().samples_per_eval.tolist() == ROWS.tolist()


def test_minibatch_gradients_average_to_the_full_gradient_over_a_pass():
    pytest.importorskip("torch")
    from stflow.problems.mlp import MLPProblem

    F, y, _, _ = _data()
    p = MLPProblem(F[:, :6], y[:, :6], hidden=[4], classes=CLASSES, batch=2, seed=3)
    X = _points(p, 3)
    mean = sum(p.stochastic_grad(X, k) for k in range(3)) / 3  # draws 0..2 = pass 0
    np.testing.assert_allclose(mean, p.grad(X), rtol=1e-11, atol=1e-12)


def test_subset_keeps_ids_and_gives_the_parents_rows():
    pytest.importorskip("torch")
    p = _problem(batch=3)
    X = _points(p, 4)
    s = p.subset(slice(1, 3))
    assert s.agent_ids.tolist() == [1, 2] and s.rows_per_agent.tolist() == [5, 6]
    assert np.array_equal(s.grad(X[1:]), p.grad(X)[1:])
    assert np.array_equal(s.stochastic_grad(X[1:], 2), p.stochastic_grad(X, 2)[1:])
    assert np.array_equal(s.test_accuracy(X[1:]), p.test_accuracy(X)[1:])
    with pytest.raises(InputError, match="`rows` must select at least one"):
        p.subset(slice(2, 2))


def test_initial_point_is_pytorch_default_init_from_the_seed():
    torch = pytest.importorskip("torch")
    p = _problem()
    torch.manual_seed(5)
    net = torch.nn.Sequential(
        torch.nn.Linear(P, 6, dtype=torch.float64), torch.nn.ReLU(),
        torch.nn.Linear(6, 3, dtype=torch.float64), torch.nn.ReLU(),
        torch.nn.Linear(3, CLASSES, dtype=torch.float64),
    )
    ref = torch.cat([q.detach().reshape(-1) for q in net.parameters()]).numpy()
    assert np.array_equal(p.initial_point(), ref)
    names = [n for n, _ in net.named_parameters()]
    assert [n for n, _ in p.param_shapes] == names
    assert [s for _, s in p.param_shapes] == [tuple(q.shape) for q in net.parameters()]


def test_accuracy_per_agent_and_at_a_point():
    pytest.importorskip("torch")
    p = _problem()
    X = _points(p, 5)
    _, _, tF, ty = _data()
    acc = p.test_accuracy(X)
    for i in range(N):
        logits = p._forward(*map(__import__("torch").tensor, (X[i], tF))).detach().numpy()
        assert acc[i] == np.mean(logits.argmax(axis=1) == ty)
        assert p.accuracy_at(X[i]) == acc[i]
    assert p.has_test and p.x_star is None and p.kind == "mlp"
    same = _problem(test_features=None, test_labels=None, test=(tF, ty))
    assert np.array_equal(same.test_accuracy(X), acc) and same.test_set[0].shape == (11, P)
    assert 0.0 < p.smoothness < np.inf


def test_bad_input_names_the_argument():
    pytest.importorskip("torch")
    F, y, _, _ = _data()
    with pytest.raises(InputError, match=r"`labels` must hold integers 0 <= label < classes"):
        _problem(classes=3)
    with pytest.raises(InputError, match="`hidden` must be a list of positive integer"):
        _problem(hidden=[4, 0])
    with pytest.raises(InputError, match="batch must satisfy 1 <= batch <= m_i"):
        _problem(batch=6)  # agent 1 has 5 rows


def test_missing_torch_names_the_extra(monkeypatch):
    from stflow.problems.mlp import MLPProblem

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    F, y, _, _ = _data()
    with pytest.raises(InputError, match=r'kind = "mlp" needs PyTorch .*pip install '
                                         r'"stflow\[torch\]"'):
        MLPProblem(F, y, classes=CLASSES)


# ------------------------------------------------------------------------- lowrank compressor


def test_lowrank_rank_one_by_hand():
    # W = [[2, 1], [1, 2]] = 3 u u^T + 1 w w^T, u = (1, 1)/sqrt 2: rank 1 keeps 3 u u^T
    c = make_compressor("lowrank:rank=1", 6, shapes=[("w", (2, 2)), ("b", (2,))])
    z = np.array([2.0, 1.0, 1.0, 2.0, 0.5, -7.0])
    np.testing.assert_allclose(c(z, 0.0), [1.5, 1.5, 1.5, 1.5, 0.5, -7.0], atol=1e-14)
    assert c.bits_per_message() == 64 * (1 * (2 + 2 + 1) + 2)
    (msg,) = c.encode(z, 0.0)
    assert len(msg) == 56
    sigma, u0, u1, v0, v1, b0, b1 = np.frombuffer(msg, dtype="<f8")
    assert sigma == pytest.approx(3.0, rel=1e-14) and (b0, b1) == (0.5, -7.0)
    assert abs(u0) == pytest.approx(2**-0.5, rel=1e-14) and u0 * v0 > 0 and u0 * u1 > 0


def test_lowrank_round_trip_bits_and_truncation():
    shapes = mlp_param_shapes(64, [64], 10)
    d = sum(math.prod(s) for _, s in shapes)
    Z = np.random.default_rng(0).standard_normal((4, d))
    for r, floats in ((1, 129 + 64 + 75 + 10), (2, 2 * 129 + 64 + 2 * 75 + 10),
                      (20, 20 * 129 + 64 + 10 * 75 + 10)):  # W2 is 10 x 64: rank capped at 10
        c = make_compressor(f"lowrank:rank={r}", d, shapes=shapes)
        assert c.bits_per_message() == 64 * floats and c.bytes_per_message() == 8 * floats
        C = c(Z, 1.5)
        msgs = c.encode(Z, 1.5)
        assert all(len(m) == 8 * floats for m in msgs)
        assert np.array_equal(c.decode(msgs, 1.5), C)  # bit for bit
        assert np.array_equal(c(Z[2], 0.0), C[2])
        W = Z[:, :4096].reshape(4, 64, 64)
        U, s, Vt = np.linalg.svd(W)
        best = (U[:, :, :r] * s[:, None, :r]) @ Vt[:, :r]
        np.testing.assert_allclose(C[:, :4096].reshape(4, 64, 64), best, atol=1e-12)
        assert np.array_equal(C[:, 4096:4160], Z[:, 4096:4160])  # bias passes through
    assert not c.linear and c.linear_bound == 1.0 and c.spec == "lowrank:rank=20"


def test_lowrank_is_certified_spatio_temporal():
    from stflow.certify import certify

    c = LowRank(9 + 2 * 4 + 3, rank=1, shapes=[(3, 3), (2, 4), (3,)])
    cert = certify(c, horizon=30.0)  # the default 5 d = 100 only takes longer
    assert cert.spatio_temporal, cert.reason
    # greedy in the singular basis: ||W||_F^2 decays at rate >= 2 r / min(rows, cols),
    # so ||z|| at rate >= 1 / 3; the 3 x 3 block with three equal singular values attains
    # it (the 2 x 4 block decays at 1 / 2, the bias at 1), so the fitted rate is 1 / 3
    assert cert.rate == pytest.approx(1.0 / 3.0, abs=2e-3)
    assert cert.linear_bound <= 1.0 + 1e-12


def test_lowrank_bad_input():
    with pytest.raises(InputError, match="`shapes` is needed by lowrank"):
        make_compressor("lowrank:rank=2", 10)
    with pytest.raises(InputError, match="`shapes` must cover d = 10 entries"):
        make_compressor("lowrank", 10, shapes=[(3, 3)])
    with pytest.raises(InputError, match="`rank` must be an integer >= 1"):
        make_compressor("lowrank:rank=0", 9, shapes=[(3, 3)])
    with pytest.raises(InputError, match="compressor `lowrank` has no key `k`"):
        make_compressor("lowrank:k=2", 9, shapes=[(3, 3)])


def test_make_mlp_problem_infers_classes_and_padding():
    pytest.importorskip("torch")
    from stflow.problems.mlp import make_mlp_problem

    F, y, tF, _ = _data()
    F[1, 5:] = 0.0  # agent 1: rows 5 and 6 are padding
    p = make_mlp_problem(F, y, hidden=[4], test_features=tF, test_labels=np.full(11, 6))
    assert p.classes == 7 and p.rows_per_agent.tolist() == [7, 5, 7]
    q = make_mlp_problem(F, y, hidden=[4])
    assert not q.has_test and np.isnan(q.test_accuracy(np.zeros((2, q.dim)))).all()
    assert p.test_accuracy(np.zeros(p.dim)).shape == (1,)  # one model, e.g. xbar
