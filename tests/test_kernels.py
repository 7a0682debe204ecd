"""The compiled kernels (stflow.kernels) give the bits of their numpy twins."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from stflow import _numba_kernels as nk
from stflow import kernels
from stflow.compressors import make_compressor

rng = np.random.default_rng(0)


def test_the_compiled_kernels_run():
    assert kernels.compiled(), "numba is a dependency: pip install -e ."


def _with_ties(n, d, seed):
    """Rows drawn from a few values (ties everywhere), signs and zeros included."""
    r = np.random.default_rng(seed)
    return r.choice([-2.0, -1.0, -0.0, 0.0, 1.0, 2.0, 0.5], size=(n, d))


@pytest.mark.parametrize("k,d", [(k, d) for k in (1, 2, 3, 5, 8) for d in (1, 2, 3, 10, 17)
                                 if k <= d])
def test_topk_kernel_equals_argmax_rounds_and_the_mask(k, d):
    comp = make_compressor(f"topk:k={k}", d)
    for seed in range(4):
        for Z in (np.random.default_rng(seed).standard_normal((50, d)), _with_ties(50, d, seed)):
            got = kernels.topk_apply(Z, k)
            twin = kernels.topk_apply_numpy(Z, k)
            assert np.array_equal(got, twin)
            assert np.array_equal(np.signbit(got), np.signbit(twin))  # -0.0 kept as sent
            assert np.array_equal(got != 0, comp.mask(Z) & (Z != 0))
            assert (np.count_nonzero(comp.mask(Z), axis=1) == k).all()
            assert np.array_equal(comp(Z, 0.0), np.where(comp.mask(Z), Z, 0.0))


def test_topk_kernel_ties_go_to_the_lower_index():
    Z = np.array([[1.0, -3.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    assert kernels.topk_apply(Z, 2).tolist() == [[0, -3.0, 3.0, 0, 0], [2.0, 2.0, 0, 0, 0]]
    assert kernels.topk_apply(Z, 1).tolist() == [[0, -3.0, 0, 0, 0], [2.0, 0, 0, 0, 0]]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_topk_kernel_hands_nan_and_inf_rows_to_the_mask_path(bad):
    Z = rng.standard_normal((6, 5))
    Z[3, 2] = bad
    assert kernels.topk_apply(Z, 2) is None  # the compressor then takes its mask path
    comp = make_compressor("topk:k=2", 5)
    out = comp(Z, 0.0)
    assert (np.count_nonzero(comp.mask(Z), axis=1) == 2).all()
    assert out[3, 2] == bad or np.isnan(out[3, 2])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 40), st.integers(0, 2**31 - 1),
       st.booleans())
def test_gram_grad_kernel_equals_its_twin(d, n, seed, shared):
    r = np.random.default_rng(seed)
    m = 3 if shared else n
    A = r.standard_normal((m, d + 2, d))
    gram = np.swapaxes(A, 1, 2) @ A
    atb = r.standard_normal((m, d))
    X = r.standard_normal((n, d)) * 10.0 ** r.integers(-8, 8)
    index = r.integers(0, m, size=n) if shared else None
    got = kernels.gram_grad(X, gram, atb, index)
    twin = kernels.gram_grad_numpy(X, gram, atb, index)
    assert np.array_equal(got, twin)
    ref = np.einsum("nd,nde->ne", X, gram[index] if shared else gram) - (
        atb[index] if shared else atb)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def test_gram_grad_sums_in_order():
    """x^T G with x = (1, 1e16, -1e16): in order (1 + 1e16) - 1e16 = 0, not 1."""
    gram = np.eye(3)[None] * 0 + 1.0  # every entry 1
    X = np.array([[1.0, 1e16, -1e16]])
    assert kernels.gram_grad(X, gram, np.zeros((1, 3))).tolist() == [[0.0, 0.0, 0.0]]


@pytest.mark.parametrize("n,d", [(1, 1), (7, 3), (40, 10)])
def test_csr_kernel_equals_scipy(n, d):
    A = sp.random(n, n, density=0.4, random_state=1, format="csr") - sp.eye(n, format="csr")
    A = A.tocsr()
    X = rng.standard_normal((n, d))
    X[0] = -0.0
    got = kernels.csr_matmul(A, X)
    ref = A @ X
    assert np.array_equal(got, ref)
    assert np.array_equal(np.signbit(got), np.signbit(ref))


def _param(kind, n):
    return 0.7 if kind == "scalar" else rng.uniform(0.5, 2.0, size=(n, 1))


@pytest.mark.parametrize("kind", ["scalar", "column", "strided"])
def test_elementwise_kernels_equal_their_twins(kind):
    """Gains as numbers or per-row columns, on C-ordered arrays or strided views (every
    other column of a wider array): each kernel equals its twin."""
    n, d = 33, 7
    wide = 2 if kind == "strided" else 1
    X, V, L, G = (rng.standard_normal((n, d * wide))[:, ::wide] for _ in range(4))
    a, b, e, h = (_param("column" if kind == "column" else "scalar", n) for _ in range(4))
    for fast, twin, args in [
        (kernels.primal_dual_update, kernels.primal_dual_update_numpy, (X, V, L, G, h, a, b, e)),
        (kernels.predict_update, kernels.predict_update_numpy, (X, V, L, h, a, b)),
        (kernels.observer_copy, kernels.observer_copy_numpy, (X, V, a, h)),
        (kernels.predict_point, kernels.predict_point_numpy, (X, V, G, h, b, e)),
    ]:
        got, ref = fast(*args), twin(*args)
        for g, r in zip(got if isinstance(got, tuple) else [got],
                        ref if isinstance(ref, tuple) else [ref], strict=True):
            assert np.array_equal(g, r), fast.__name__
    # by hand: X + h * (((-a * L) - b * V) - e * G), V + h * (b * L)
    Xn, Vn = kernels.primal_dual_update(X, V, L, G, h, a, b, e)
    assert np.array_equal(Xn, X + h * (((-a * L) - b * V) - e * G))
    assert np.array_equal(Vn, V + h * (b * L))


def test_kernels_refuse_what_they_cannot_take_and_the_twin_runs():
    X = rng.standard_normal((4, 3))
    per_agent_gain = np.arange(3.0)  # broadcast along d: not a per-row column
    got = kernels.observer_copy(X, X, per_agent_gain, 0.5)
    assert np.array_equal(got, kernels.observer_copy_numpy(X, X, per_agent_gain, 0.5))
    f32 = X.astype(np.float32)
    assert kernels.primal_dual_update(f32, f32, f32, f32, 0.1, 1.0, 1.0, 1.0)[0].dtype == np.float32


_RUN = """
import json, sys
import stflow
from stflow import kernels
cfg = {"problem": {"kind": "least_squares", "agents": 8, "dim": 5, "seed": 1},
       "graph": {"kind": "ring", "chords": 1, "seed": 0},
       "method": {"kind": "observer", "alpha": 5.0, "beta": 5.0, "eta": 1.0, "gamma": 100.0},
       "compressor": {"spec": sys.argv[1]},
       "solver": {"step": 1e-3, "horizon": 4.0, "scheme": sys.argv[2]}}
_run, sol = stflow.run_config(stflow.resolve_config(cfg))
print(json.dumps({"compiled": kernels.compiled(), "X": sol.state["X"].tolist(),
                  "err": [float(e) for e in sol.records["relative_error"]]}))
"""


@pytest.mark.parametrize("spec,scheme", [("topk:k=2", "predict"), ("topk:k=1", "euler"),
                                         ("quantize:bits=4", "predict")])
def test_a_run_without_numba_gives_the_same_bits(spec, scheme):
    """``STFLOW_KERNELS=numpy`` (what runs when numba is missing) equals the compiled run."""
    out = {}
    for mode in ("", "numpy"):
        env = {**os.environ, "STFLOW_KERNELS": mode}
        p = subprocess.run([sys.executable, "-c", _RUN, spec, scheme], env=env,
                           capture_output=True, text=True, check=True)
        out[mode] = json.loads(p.stdout)
    assert out[""]["compiled"] and not out["numpy"]["compiled"]
    assert out[""]["X"] == out["numpy"]["X"]
    assert out[""]["err"] == out["numpy"]["err"]
    assert out[""]["err"][-1] < 0.5 * out[""]["err"][0]


def test_the_numba_module_compiles_without_fastmath():
    """No fused multiply-add or reassociation: the kernels' bits are the twins'."""
    for f in (nk.gram_grad, nk.primal_dual_update, nk.csr_matmul):
        assert not f.targetoptions.get("fastmath")
