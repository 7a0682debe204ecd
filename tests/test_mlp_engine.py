"""The MLP problem inside the engine: one round of DGD and of the observer flow on a tiny
network equals the update written out by hand (per-agent gradients from plain autograd),
``kind = "mlp"`` with ``hidden`` builds the expected d, and ``stflow run`` without PyTorch
gives the clear error naming the extra."""

import sys

import numpy as np
import pytest

from stflow.errors import InputError

N, M, P, CLASSES, HIDDEN = 3, 4, 2, 2, 3
#: d of Linear(2, 3), ReLU, Linear(3, 2): weights and biases.
D = HIDDEN * P + HIDDEN + CLASSES * HIDDEN + CLASSES
#: Metropolis weights of the path 0 - 1 - 2 (degrees 1, 2, 1), by hand.
W = np.array([[2 / 3, 1 / 3, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.0, 1 / 3, 2 / 3]])
#: Laplacian of the same path.
L = np.array([[1.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 1.0]])


def _data():
    rng = np.random.default_rng(3)
    return rng.standard_normal((N, M, P)), rng.integers(0, CLASSES, (N, M))


def _problem(batch=None):
    from stflow.problems.mlp import MLPProblem

    F, y = _data()
    return MLPProblem(F, y, hidden=[HIDDEN], classes=CLASSES, batch=batch, seed=2)


def _autograd_rows(x, F, y, scale=1.0):
    """scale * gradient of the summed cross-entropy of Linear-ReLU-Linear on (F, y), written
    with plain torch ops (the layout of docs/mlp.md: W1 (3, 2), b1, W2 (2, 3), b2)."""
    import torch

    xt = torch.tensor(x, requires_grad=True)
    W1 = xt[:6].view(HIDDEN, P)
    b1 = xt[6:9]
    W2 = xt[9:15].view(CLASSES, HIDDEN)
    b2 = xt[15:17]
    h = torch.relu(torch.tensor(F) @ W1.T + b1)
    logits = h @ W2.T + b2
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y), reduction="sum")
    (scale * loss).backward()
    return xt.grad.numpy().copy()


def _points(problem, seed=1):
    return problem.initial_point() + 0.5 * np.random.default_rng(seed).standard_normal(
        (N, problem.dim))


def _one_round(method, X0, h=1.0):
    from stflow.engines.simulate import solve

    return solve(method, step=h, horizon=h, x0=X0, record_every=1, tolerance=1e-8)


def test_one_dgd_round_equals_the_hand_written_update():
    pytest.importorskip("torch")
    from stflow.graphs import make_graph
    from stflow.methods import make_method

    p = _problem()
    assert p.dim == D == 17
    F, y = _data()
    X0 = _points(p)
    lr = 0.05
    m = make_method("dgd", p, make_graph("path", N), lr=lr)
    sol = _one_round(m, X0)
    G = np.stack([_autograd_rows(X0[i], F[i], y[i]) for i in range(N)])
    X1 = W @ X0 - lr * G
    assert sol.steps == 1
    np.testing.assert_allclose(sol.state["X"], X1, rtol=0, atol=1e-12)
    # the round moved X by more than rounding: the check can fail
    assert np.abs(X1 - X0).max() > 1e-2
    assert sol.records["bits_per_agent"][-1] == 64 * D


def test_one_observer_round_with_batches_equals_the_hand_written_update():
    pytest.importorskip("torch")
    from stflow.compressors import make_compressor
    from stflow.graphs import make_graph
    from stflow.methods import make_method
    from stflow.problems.sampling import batch_rows

    B = 2
    p = _problem(batch=B)
    F, y = _data()
    X0 = _points(p, 4)
    h, alpha, beta, eta, gamma = 0.1, 2.0, 1.5, 0.3, 4.0
    m = make_method("observer", p, make_graph("path", N), make_compressor("topk:k=2", D),
                    alpha=alpha, beta=beta, eta=eta, gamma=gamma, scheme="euler")
    sol = _one_round(m, X0, h)
    # SPEC sections 5 and 7: batch draw 0 of agent i, scaled by m_i / B; Xhat(0) = V(0) = 0
    G = np.stack([_autograd_rows(X0[i], F[i, batch_rows(2, i, 0, M, B)],
                                 y[i, batch_rows(2, i, 0, M, B)], scale=M / B)
                  for i in range(N)])
    Xhat0 = np.zeros_like(X0)
    V0 = np.zeros_like(X0)
    E = X0 - Xhat0
    Q = np.zeros_like(E)  # top-2 of each row, ties -> lower index
    for i in range(N):
        keep = np.argsort(-np.abs(E[i]), kind="stable")[:2]
        Q[i, keep] = E[i, keep]
    X1 = X0 + h * (-alpha * L @ Xhat0 - beta * V0 - eta * G)
    V1 = V0 + h * beta * L @ Xhat0
    Xhat1 = Xhat0 + h * gamma * Q
    np.testing.assert_allclose(sol.state["X"], X1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sol.state["V"], V1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sol.state["Xhat"], Xhat1, rtol=0, atol=1e-12)
    assert np.abs(Xhat1).max() > 1e-2 and np.abs(X1 - X0).max() > 1e-2


def test_two_observer_rounds_use_the_first_rounds_messages():
    """Round 2 mixes L Xhat^1 and V^1, and takes batch draw 1: the whole update, twice."""
    pytest.importorskip("torch")
    from stflow.compressors import make_compressor
    from stflow.graphs import make_graph
    from stflow.methods import make_method
    from stflow.problems.sampling import batch_rows

    B = 2
    p = _problem(batch=B)
    F, y = _data()
    X = _points(p, 5)
    X0 = X.copy()
    h, alpha, beta, eta, gamma = 0.1, 2.0, 1.5, 0.3, 4.0
    m = make_method("observer", p, make_graph("path", N), make_compressor("identity", D),
                    alpha=alpha, beta=beta, eta=eta, gamma=gamma, scheme="euler")
    from stflow.engines.simulate import solve

    sol = solve(m, step=h, horizon=2 * h, x0=X0, record_every=1, tolerance=1e-8)
    V = np.zeros_like(X)
    Xhat = np.zeros_like(X)
    for draw in (0, 1):
        G = np.stack([_autograd_rows(X[i], F[i, batch_rows(2, i, draw, M, B)],
                                     y[i, batch_rows(2, i, draw, M, B)], scale=M / B)
                      for i in range(N)])
        Q = X - Xhat
        X, V, Xhat = (X + h * (-alpha * L @ Xhat - beta * V - eta * G),
                      V + h * beta * L @ Xhat, Xhat + h * gamma * Q)
    assert sol.steps == 2
    np.testing.assert_allclose(sol.state["X"], X, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sol.state["V"], V, rtol=0, atol=1e-12)
    assert np.abs(V).max() > 1e-3  # the dual moved in round 2: the check can fail


@pytest.mark.parametrize("hidden, d", [([64], 65 * 64 + 64 + 64 * 10 + 10),
                                       ([8, 5], 65 * 8 + 8 + 8 * 5 + 5 + 5 * 10 + 10)])
def test_config_mlp_hidden_builds_the_expected_dim(hidden, d):
    pytest.importorskip("torch")
    from stflow.config import build_run, resolve_config

    cfg = resolve_config({"problem": {"kind": "mlp", "dataset": "digits", "agents": 4,
                                      "hidden": hidden, "batch": 8, "test_fraction": 0.25},
                          "method": {"kind": "dgd", "lr": 1e-3},
                          "solver": {"step": 1.0, "horizon": 1.0, "target_accuracy": 0.5}})
    run = build_run(cfg)
    assert run.problem.dim == d
    assert run.problem.n_agents == 4
    # every agent starts at PyTorch's init, the same row
    assert run.x0.shape == (4, d) and np.all(run.x0 == run.x0[0])


def test_stflow_run_without_torch_names_the_extra(tmp_path, monkeypatch, capsys):
    from stflow.cli import main

    cfg = tmp_path / "mlp.toml"
    cfg.write_text('[problem]\nkind = "mlp"\ndataset = "digits"\nagents = 4\nhidden = [4]\n'
                   '[method]\nkind = "dgd"\nlr = 0.001\n'
                   '[solver]\nstep = 1.0\nhorizon = 5.0\ntarget_accuracy = 0.5\n')
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    code = main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert 'kind = "mlp" needs PyTorch' in err and 'pip install "stflow[torch]"' in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(InputError, match=r"stflow\[torch\]"):
        from stflow.problems.mlp import MLPProblem

        F, y = _data()
        MLPProblem(F, y, classes=CLASSES)
