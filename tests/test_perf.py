"""Tests for the memory-traffic work of issue 11: the Gram form of least squares (same
trajectories as the row form), the exact smoothness, the set-up without copies, the numpy
connectivity check and the lazy imports."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from stflow import Gains, PrimalDualFlow
from stflow.compressors import make_compressor
from stflow.errors import InputError
from stflow.graphs import make_graph
from stflow.graphs._validate import _component_count
from stflow.problems import LeastSquaresProblem, make_problem, save_problem_data
from stflow.problems.least_squares import _max_top_eigenvalue


def _row_form(A, b):
    """The least-squares costs evaluated from the rows, as before the Gram form."""

    def grad(X):
        r = (A @ X[:, :, None])[:, :, 0] - b
        return (r[:, None, :] @ A)[:, 0, :]

    return SimpleNamespace(n_agents=A.shape[0], dim=A.shape[2], grad=grad)


@pytest.mark.parametrize(("samples", "spec"), [(12, "identity"), (6, "identity"),
                                               (12, "topk:k=2")])
def test_gram_form_trajectory_equals_the_row_form(samples, spec):
    p = make_problem("least_squares", agents=12, dim=6, samples=samples, seed=3, keep_rows=True)
    assert p.form == "gram"
    rows = _row_form(p.A, p.b)
    graph = make_graph("ring", 12, chords=2)
    gains = Gains(alpha=2.0, beta=2.0, eta=1.0, gamma=50.0)
    comp = make_compressor(spec, 6)
    ours = PrimalDualFlow("observer", p, graph, comp, gains=gains)
    ref = PrimalDualFlow("observer", rows, graph, comp, gains=gains)
    x0 = np.random.default_rng(0).standard_normal((12, 6))
    s, r = ours.initial_state(x0=x0), ref.initial_state(x0=x0)
    scale = 0.0
    for k in range(2000):
        s, r = ours.step(s, k * 1e-2, 1e-2), ref.step(r, k * 1e-2, 1e-2)
        scale = max(scale, float(np.abs(r["X"]).max()))
    err = max(float(np.abs(s[key] - r[key]).max()) for key in s)
    assert 0.0 < err <= 1e-10 * scale  # the rounding differs, and only the rounding
    assert np.linalg.norm(s["X"] - p.x_star) < 1e-3 * np.sqrt(12) * np.linalg.norm(p.x_star)


def test_gram_form_values_grad_and_optimum_match_the_rows():
    rng = np.random.default_rng(5)
    A, b = rng.standard_normal((7, 9, 4)), rng.standard_normal((7, 9))
    gram = LeastSquaresProblem(A, b, keep_rows=False)
    assert gram.form == "gram" and not gram.keeps_rows
    X = rng.standard_normal((7, 4))
    r = (A @ X[:, :, None])[:, :, 0] - b
    assert np.allclose(gram.values(X), 0.5 * (r**2).sum(axis=1), rtol=1e-13, atol=0)
    assert np.allclose(gram.grad(X), np.einsum("nmd,nm->nd", A, r), rtol=1e-12, atol=1e-13)
    x_ls = np.linalg.lstsq(A.reshape(-1, 4), b.ravel(), rcond=None)[0]
    assert np.allclose(gram.x_star, x_ls, rtol=1e-12, atol=1e-14)
    top = max(np.linalg.norm(A[i], 2) ** 2 for i in range(7))
    assert gram.smoothness == pytest.approx(top, rel=1e-13)
    with pytest.raises(InputError, match="keep_rows=True"):
        _ = gram.A
    sub = gram.subset(slice(2, 5))
    assert sorted(sub.arrays()) == ["atb", "btb", "gram", "rows"]
    assert sub.rows_per_agent.tolist() == [9, 9, 9] and sub.agent_ids.tolist() == [2, 3, 4]
    assert np.array_equal(sub.grad(X[2:5]), gram.grad(X)[2:5])


def test_max_top_eigenvalue_is_the_exact_maximum():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((300, 12, 8))
    g = np.swapaxes(a, 1, 2) @ a
    g[137] *= 1.0 + 1e-9  # the maximum, barely above a close second
    g[12] = g[137] / (1.0 + 1e-9)
    exact = float(np.linalg.eigvalsh(g)[:, -1].max())
    assert _max_top_eigenvalue(g) == exact
    assert _max_top_eigenvalue(np.zeros((100, 3, 3))) == 0.0


def test_generated_data_is_held_once(monkeypatch):
    import tracemalloc

    from stflow.problems import least_squares

    monkeypatch.setattr(least_squares, "_CHUNK_FLOATS", 1 << 12)
    data = 400 * 20 * 20 * 8
    tracemalloc.start()
    try:
        p = make_problem("least_squares", agents=400, dim=20, seed=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data < peak < 1.3 * data  # G_i written over A_i: no second (N, d, d) array
    q = make_problem("least_squares", agents=400, dim=20, seed=2, keep_rows=True)
    assert np.array_equal(p.gram, q.gram) and np.array_equal(p.x_star, q.x_star)
    assert p.smoothness == q.smoothness
    with pytest.raises(InputError, match="keep_rows=True"):
        save_problem_data(p, "unused.npz")


def test_user_arrays_are_not_modified_or_frozen():
    A = np.random.default_rng(0).standard_normal((3, 4, 4))
    before = A.copy()
    p = make_problem("least_squares", agents=1, dim=1, data={"A": A, "b": np.ones((3, 4))})
    assert np.array_equal(A, before) and A.flags.writeable
    assert not np.shares_memory(p.gram, A)


@pytest.mark.parametrize("seed", range(6))
def test_component_count_matches_csgraph(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    e = rng.integers(0, n, size=(int(rng.integers(0, 2 * n)), 2))
    adj = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    assert _component_count(n, e) == connected_components(adj, directed=False)[0]
    ring = np.stack([np.arange(n), (np.arange(n) + 1) % n], axis=1)
    assert _component_count(n, ring) == 1


def test_a_small_run_imports_no_matplotlib_scipy_special_or_csgraph():
    code = (
        "import sys\n"
        "from stflow.config import resolve_config, run_config\n"
        "run_config(resolve_config({'problem': {'agents': 5, 'dim': 3},"
        " 'solver': {'horizon': 0.01}}))\n"
        "bad = [m for m in ('matplotlib', 'scipy.special', 'scipy.sparse.csgraph')"
        " if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_gram_form_counts_rows_and_batch_keeps_them():
    rng = np.random.default_rng(4)
    A, b = rng.standard_normal((4, 7, 3)), rng.standard_normal((4, 7))
    A[1, 5:] = 0.0  # padding rows at the end of agent 1's block, as datasets writes them
    A[2] = 0.0
    gram = LeastSquaresProblem(A, b, keep_rows=False)
    assert gram.rows_per_agent.tolist() == [7, 5, 0, 7]
    assert gram.samples_per_eval.tolist() == [7, 5, 0, 7]
    p = make_problem("least_squares", agents=3, dim=4, samples=6, seed=1, batch=3)
    assert p.form == "gram" and p.keeps_rows and p.A.shape == (3, 6, 4)
    X = rng.standard_normal((3, 4))
    epoch = (p.stochastic_grad(X, 0) + p.stochastic_grad(X, 1)) / 2
    assert np.allclose(epoch, p.grad(X), rtol=1e-12, atol=1e-12)
