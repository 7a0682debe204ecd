"""Issue 19: one search rule for every method (stflow tune).

Reads the search box of every method stflow discovers (and of a user's ``py:`` method) on
one problem and checks: every tuned value is searched in a log box of the same width
``SPAN**2`` around its centre (the config's value with "auto" resolved; a box that would
cross a declared bound slides, keeping its width); the flows' step h is not searched on top
of their gains; a winner on an edge of its box makes the tuner re-centre and search again,
and says so.
"""

import math
from pathlib import Path

import numpy as np
import pytest

import stflow.problems
from stflow.config import build_run, resolve_config
from stflow.methods import AUTO_LR, METHOD_KINDS, PEER_KINDS
from stflow.tune import EDGE, SPAN, _on_edge, _prepare, search_space, tune

USER = Path(__file__).parent / "user_methods"


UNCOMPRESSED = ("uncompressed", "dgd", "gradient_tracking", "nids", "extra")


def _config(kind: str) -> dict:
    raw = {"problem": {"kind": "least_squares", "agents": 6, "dim": 4, "seed": 3},
           "method": {"kind": kind}, "solver": {"step": 1.0, "horizon": 50.0}}
    if kind in ("observer", "direct", "uncompressed"):
        raw["solver"]["step"] = 0.01
        raw["solver"]["horizon"] = 0.5
    if kind not in UNCOMPRESSED:
        raw["compressor"] = {"spec": "topk:k=2"}
    if kind == "direct":  # the direct flow's guaranteed case: a linear compressor
        raw["compressor"] = {"spec": "scalarize:basis=cyclic"}
    return resolve_config(raw)


def _kinds():
    return [*METHOD_KINDS, f"py:{USER / 'good_methods.py'}:CompressedGossip"]


@pytest.mark.parametrize("kind", _kinds())
def test_every_method_searches_boxes_of_one_width_around_its_own_centre(kind):
    cfg = _config(kind)
    base, tunables, tune_step, _spec = _prepare(cfg, 10, None)
    assert tunables, kind  # every method has something to tune
    assert tune_step is False  # h fixed for every method: the same per-round units
    space = search_space(base, tunables)
    assert "step" not in space
    assert set(space) == {p.name for p in tunables}
    for p in tunables:
        lo, hi, log, c = space[p.name]
        assert log
        assert math.isclose(hi / lo, SPAN ** 2, rel_tol=1e-9), (kind, p.name, lo, hi)
        assert lo <= c <= hi
        value = float(base["method"][p.name])
        assert c == pytest.approx(value)  # centred on the config's (resolved) value
        if value * SPAN <= p.high and value / SPAN > p.low:  # no bound in the way:
            assert math.isclose(lo * SPAN, value) and math.isclose(hi / SPAN, value)
        else:  # slid along a bound, the width kept
            assert hi == p.high or lo > p.low


def test_a_bounded_box_slides_and_keeps_its_width():
    cfg = _config("lead")
    base, tunables, _, _ = _prepare(cfg, 10, None)
    box = search_space(base, tunables)
    lo, hi, _, c = box["gamma"]  # LEAD's gamma <= 2, centre 1.0: [1/30, 30] would cross 2
    assert hi == 2.0 and math.isclose(lo, 2.0 / SPAN ** 2) and c == 1.0
    lo, hi, _, c = box["alpha"]  # alpha <= 1, centre 0.1
    assert hi == 1.0 and math.isclose(lo, 1.0 / SPAN ** 2)


def test_on_edge_flags_only_edges_that_are_not_bounds():
    cfg = _config("lead")
    base, tunables, _, _ = _prepare(cfg, 10, None)
    box = search_space(base, tunables)
    lr_lo, lr_hi = box["lr"][:2]
    values = {"lr": lr_hi, "alpha": 1.0, "gamma": box["gamma"][0] * EDGE * 0.99}
    assert sorted(_on_edge(values, box, tunables)) == [("gamma", "low"), ("lr", "high")]
    inside = {"lr": math.sqrt(lr_lo * lr_hi), "alpha": 0.5, "gamma": 1.0}
    assert _on_edge(inside, box, tunables) == []


def test_a_winner_on_the_edge_widens_the_box_and_says_so():
    # gradient tracking started 25x below its auto lr (0.0765): the best lr of the first box
    # [0.003 / 30, 0.003 * 30] is its upper edge, 0.09; the tuner re-centres there.
    cfg = resolve_config({"problem": {"agents": 4, "dim": 3, "seed": 2},
                          "method": {"kind": "gradient_tracking", "lr": 0.003},
                          "solver": {"step": 1.0, "horizon": 4000}})
    res = tune(cfg, budget=14, target=1e-6)
    assert res.found and len(res.widened) >= 1
    first = res.widened[0]
    assert first["edges"] == ["lr at its high edge"]
    assert first["from"]["lr"] == pytest.approx([0.003 / SPAN, 0.003 * SPAN])
    new_lo, new_hi = first["to"]["lr"]
    assert new_hi > 0.003 * SPAN and math.isclose(new_hi / new_lo, SPAN ** 2)
    assert res.evaluations == 14 + sum(w["candidates"] for w in res.widened)
    assert res.params["lr"] >= 0.003 * SPAN / EDGE  # at least as good as the edge winner
    phases = {t["phase"] for t in res.trials}
    assert "widened 1" in phases
    assert res.to_dict()["widened"] == res.widened


def test_the_start_is_the_first_candidate_and_the_winner_is_never_worse():
    cfg = _config("lead")
    res = tune(cfg, budget=6, target=1e-3)
    first = res.trials[0]
    run = build_run(cfg)
    for k, v in first["params"].items():
        assert v == pytest.approx(float(run.config["method"][k]))
    counted = [t["bits_to_target"] for t in res.trials
               if t["bits_to_target"] is not None and t["robust_bits_to_target"] is not None]
    if res.found:
        assert res.bits_to_target == min(counted)
        if first["robust_bits_to_target"] is not None:
            assert res.bits_to_target <= first["bits_to_target"]
    assert np.isfinite(len(res.trials))


def _logistic_config(kind: str) -> dict:
    """A logistic cost, where the curvature at x* is below L_f (so a method that used L_f
    instead of the shared estimate would show); flows with euler (no eta raise)."""
    raw = {"problem": {"kind": "logistic", "agents": 6, "dim": 4, "seed": 3,
                       "regularization": 0.1},
           "method": {"kind": kind}, "solver": {"step": 1.0, "horizon": 50.0}}
    if kind in ("observer", "direct", "uncompressed"):
        raw["solver"].update(step=0.01, horizon=0.5, scheme="euler")
        gains = ("alpha", "beta", "eta") + (("gamma",) if kind == "observer" else ())
        raw["method"].update(dict.fromkeys(gains, "auto"))
    if kind not in UNCOMPRESSED:
        raw["compressor"] = {"spec": "topk:k=2"}
    if kind == "direct":
        raw["compressor"] = {"spec": "scalarize:basis=cyclic"}
    return resolve_config(raw)


#: The centre each method derives from the curvature: a flow's eta = s / L, a peer's lr.
CURVED = {kind: ("eta" if kind in ("observer", "direct", "uncompressed") else "lr")
          for kind in METHOD_KINDS}


@pytest.mark.parametrize("kind", METHOD_KINDS)
def test_every_methods_centre_comes_from_the_one_curvature_estimate(kind, monkeypatch):
    # stflow.problems.curvature_estimate is patched to return `scale` times its value: the
    # box centre that depends on the curvature must scale by exactly 1 / scale for every
    # method (flows' eta, peers' lr), and every other centre must stay.
    real = stflow.problems.curvature_estimate
    calls = []
    scale = [1.0]

    def patched(problem):
        calls.append(problem)
        return scale[0] * real(problem)

    monkeypatch.setattr(stflow.problems, "curvature_estimate", patched)
    boxes = []
    for s in (1.0, 4.0):
        scale[0] = s
        base, tunables, _, _ = _prepare(_logistic_config(kind), 10, None)
        boxes.append(search_space(base, tunables))
    assert calls, f"{kind}: its auto values did not ask curvature_estimate"
    name = CURVED[kind]
    assert boxes[1][name][3] == pytest.approx(boxes[0][name][3] / 4.0, rel=1e-12), kind
    for other in boxes[0]:
        if other != name:
            assert boxes[1][other][3] == pytest.approx(boxes[0][other][3], rel=1e-12), other


def test_flows_and_peers_use_the_curvature_at_x_star_not_l_f():
    # on this logistic cost L* (the curvature at x*) is well below L_f; the peers' lr =
    # auto_lr / L* and the flows' euler eta = s / L* with s = min(0.3 / h, ...) use it alike
    run = build_run(_logistic_config("lead"))
    p = run.problem
    l_star, l_f = p.solution_curvature, p.smoothness
    assert l_star < 0.9 * l_f
    assert stflow.problems.curvature_estimate(p) == l_star
    for kind in PEER_KINDS:
        if kind == "extra":
            continue
        lr = build_run(_logistic_config(kind)).config["method"]["lr"]
        assert lr == pytest.approx(AUTO_LR[kind] / l_star, rel=1e-12), kind
    flow = build_run(_logistic_config("uncompressed")).config["method"]
    # uncompressed flow, euler: s = 0.3 / h = 30 (no observer or period cap), eta = s / L*
    assert flow["eta"] == pytest.approx(30.0 / l_star, rel=1e-12)
    assert flow["alpha"] * run.graph.lambda_max == pytest.approx(60.0, rel=1e-12)
