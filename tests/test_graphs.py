"""Tests for stflow.graphs: topologies, Laplacian, spectra against closed forms."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from stflow.errors import InputError
from stflow.graphs import GRAPH_KINDS, Graph, _sparse_lambda_2, _sparse_lambda_max, make_graph


def sin2(x: float) -> float:
    """4 sin^2(x) = 2 - 2 cos(2x) without cancellation."""
    return 4.0 * math.sin(x) ** 2


@pytest.mark.parametrize("n", [3, 4, 7, 10, 64])
def test_ring_spectrum_closed_form(n):
    g = make_graph("ring", n)
    assert g.lambda_2 == pytest.approx(sin2(math.pi / n), rel=1e-12)
    assert g.lambda_max == pytest.approx(sin2(math.pi * (n // 2) / n), rel=1e-12)
    if n % 2 == 0:
        assert g.lambda_max == pytest.approx(4.0, rel=1e-12)


@pytest.mark.parametrize("n", [2, 5, 30])
def test_complete_star_path_spectra(n):
    complete = make_graph("complete", n)
    assert complete.lambda_2 == pytest.approx(n, rel=1e-12)
    assert complete.lambda_max == pytest.approx(n, rel=1e-12)
    star = make_graph("star", n)
    assert star.lambda_max == pytest.approx(n, rel=1e-12)
    assert star.lambda_2 == pytest.approx(1.0 if n > 2 else 2.0, rel=1e-12)
    path = make_graph("path", n)
    assert path.lambda_2 == pytest.approx(sin2(math.pi / (2 * n)), rel=1e-12)
    assert path.lambda_max == pytest.approx(sin2(math.pi * (n - 1) / (2 * n)), rel=1e-12)


def test_weights_scale_the_spectrum_and_laplacian():
    g = make_graph("ring", 6, weights=2.5)
    assert g.lambda_2 == pytest.approx(2.5 * sin2(math.pi / 6), rel=1e-12)
    assert g.laplacian[0, 0] == pytest.approx(5.0)
    assert g.laplacian[0, 1] == pytest.approx(-2.5)
    h = make_graph("edges", None, edges=[[0, 1], [2, 1]], weights=[2.0, 3.0])
    assert h.laplacian.toarray().tolist() == [[2, -2, 0], [-2, 5, -3], [0, -3, 3]]
    assert h.degree.tolist() == [1, 2, 1]


@pytest.mark.parametrize(
    ("kind", "kw"),
    [("ring", {"chords": 4}), ("path", {}), ("star", {}), ("complete", {}), ("grid", {}),
     ("erdos_renyi", {}), ("geometric", {})],
)
def test_laplacian_structure(kind, kw):
    g = make_graph(kind, 24, seed=3, **kw)
    lap = g.laplacian
    assert lap.format == "csr" and lap.shape == (24, 24) and lap.dtype == np.float64
    assert np.allclose(np.asarray(lap.sum(axis=1)).ravel(), 0.0, atol=1e-12)
    assert abs(lap - lap.T).max() == 0.0
    assert np.array_equal(lap.diagonal(), g.degree)
    assert g.degree.dtype == np.int64
    assert np.all(g.edges[:, 0] < g.edges[:, 1])
    keys = g.edges[:, 0] * g.n + g.edges[:, 1]
    assert np.all(np.diff(keys) > 0)
    for i in (0, 5, 23):
        nb = g.neighbors(i)
        assert np.all(np.diff(nb) > 0) and nb.dtype == np.int64
        assert len(nb) == g.degree[i]
    independent = nx.laplacian_matrix(g.to_networkx(), nodelist=range(24)).toarray()
    assert np.array_equal(lap.toarray(), independent)
    assert g.lambda_2 > 0


def test_grid_shapes_and_prime_is_path():
    g = make_graph("grid", 12)  # 3 x 4
    assert g.edges.shape[0] == 3 * 3 + 2 * 4
    assert g.degree.max() == 4
    assert np.array_equal(make_graph("grid", 7).edges, make_graph("path", 7).edges)
    assert make_graph("grid", 16).lambda_2 == pytest.approx(sin2(math.pi / 8), rel=1e-12)


def test_ring_two_and_chords():
    assert make_graph("ring", 2).edges.tolist() == [[0, 1]]
    g = make_graph("ring", 20, chords=3, seed=7)
    assert g.edges.shape[0] == 23
    assert np.array_equal(g.edges, make_graph("ring", 20, chords=3, seed=7).edges)
    ring = {tuple(e) for e in make_graph("ring", 20).edges.tolist()}
    chords = [tuple(e) for e in g.edges.tolist() if tuple(e) not in ring]
    assert len(chords) == 3
    with pytest.raises(InputError, match="chords"):
        make_graph("ring", 4, chords=3)  # only 2 missing pairs in C4


def test_erdos_renyi_seeded_and_connected():
    a = make_graph("erdos_renyi", 60, seed=11)
    b = make_graph("erdos_renyi", 60, seed=11)
    c = make_graph("erdos_renyi", 60, seed=12)
    assert np.array_equal(a.edges, b.edges)
    assert not np.array_equal(a.edges, c.edges)
    assert nx.is_connected(a.to_networkx())
    expected = 60 * 59 / 2 * (2 * math.log(60) / 60)
    assert 0.6 * expected < a.edges.shape[0] < 1.4 * expected
    full = make_graph("erdos_renyi", 10, p=1.0)
    assert full.edges.shape[0] == 45
    with pytest.raises(InputError, match="raise p"):
        make_graph("erdos_renyi", 200, p=0.001)


def test_geometric_seeded_and_connected():
    a = make_graph("geometric", 80, seed=2)
    assert np.array_equal(a.edges, make_graph("geometric", 80, seed=2).edges)
    assert nx.is_connected(a.to_networkx())
    assert make_graph("geometric", 10, radius=1.5).edges.shape[0] == 45
    with pytest.raises(InputError, match="raise radius"):
        make_graph("geometric", 100, radius=0.01)


def test_explicit_edges_merge_and_infer():
    g = make_graph("edges", None, edges=[[1, 0], [0, 1], [1, 2], [2, 3]])
    assert g.n == 4
    assert g.edges.tolist() == [[0, 1], [1, 2], [2, 3]]
    assert make_graph("edges", 4, edges=np.array([[0, 1], [1, 2], [2, 3]])).n == 4
    with pytest.raises(InputError, match="disagree"):
        make_graph("edges", None, edges=[[0, 1], [1, 0]], weights=[1.0, 2.0])


def test_disconnected_is_an_error():
    with pytest.raises(InputError, match=r"graph is disconnected \(2 components\)"):
        make_graph("edges", None, edges=[[0, 1], [2, 3]])
    with pytest.raises(InputError, match=r"disconnected \(3 components\)"):
        make_graph("edges", 5, edges=[[0, 1], [1, 2]])


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: make_graph("torus", 5), "`kind` must be one of"),
        (lambda: make_graph("ring", 1), "`n` must be an integer >= 2"),
        (lambda: make_graph("ring", 5.0), "`n` must be an integer >= 2"),
        (lambda: make_graph("ring", None), "`n` must be an integer >= 2"),
        (lambda: make_graph("ring", 5, weights=-1.0), "finite and > 0"),
        (lambda: make_graph("ring", 5, weights=[1.0] * 5), "must be a scalar"),
        (lambda: make_graph("ring", 5, p=0.5), "`p` applies to kind='erdos_renyi'"),
        (lambda: make_graph("path", 5, chords=1), "`chords` applies to kind='ring'"),
        (lambda: make_graph("erdos_renyi", 5, p=1.5), "0 < p <= 1"),
        (lambda: make_graph("geometric", 5, radius=0.0), "`radius` must be > 0"),
        (lambda: make_graph("edges", None), "`edges` is required"),
        (lambda: make_graph("edges", None, edges=[[0, 0], [0, 1]]), "self loops"),
        (lambda: make_graph("edges", None, edges=[[0, -1]]), ">= 0"),
        (lambda: make_graph("edges", 2, edges=[[0, 1], [1, 2]]), r"\[0, 1\]"),
        (lambda: make_graph("edges", None, edges=[[0, 1, 2]]), r"shape \(E, 2\)"),
        (lambda: make_graph("edges", None, edges=[[0, 1]], weights=[1.0, 2.0]), "one weight"),
        (lambda: make_graph("edges", None, edges=[[0, 1]], weights=[np.nan]), "finite"),
        (lambda: make_graph("ring", 5, seed=-1), "`seed`"),
        (lambda: make_graph("ring", 5).neighbors(5), "agent index"),
    ],
)
def test_bad_input_messages(call, needle):
    with pytest.raises(InputError, match=needle) as info:
        call()
    assert "\n" not in str(info.value) and ": " in str(info.value)


def test_graph_is_immutable_and_checked():
    g = make_graph("ring", 5)
    with pytest.raises(ValueError, match="read-only"):
        g.edges[0, 0] = 3
    with pytest.raises(InputError, match="i < j"):
        Graph(3, np.array([[1, 0], [1, 2]]), np.ones(2), "edges")
    assert "Graph(kind='ring', n=5, edges=5)" == repr(g)
    assert set(GRAPH_KINDS) >= {"ring", "edges"}


def test_large_ring_spectrum_sparse():
    n = 10000
    g = make_graph("ring", n)
    assert g.lambda_2 == pytest.approx(sin2(math.pi / n), rel=1e-8)
    assert g.lambda_max == pytest.approx(4.0, rel=1e-10)


def test_large_path_spectrum_sparse():
    n = 5000
    g = make_graph("path", n)
    assert g.lambda_2 == pytest.approx(sin2(math.pi / (2 * n)), rel=1e-8)
    assert g.lambda_max == pytest.approx(sin2(math.pi * (n - 1) / (2 * n)), rel=1e-10)


@pytest.mark.parametrize(("kind", "n"), [("erdos_renyi", 400), ("geometric", 300), ("ring", 300)])
def test_sparse_eigensolvers_match_dense(kind, n):
    g = make_graph(kind, n, seed=5)
    eig = np.linalg.eigvalsh(g.laplacian.toarray())
    assert _sparse_lambda_2(g.laplacian, g.weights) == pytest.approx(eig[1], rel=1e-9)
    assert _sparse_lambda_max(g.laplacian) == pytest.approx(eig[-1], rel=1e-9)
