"""The batched simulator (stflow.engines.batch): a batch equals its runs done one by one.

Every discovered method (each flow under each scheme) and every contract compressor
(EXAMPLE_SPECS) runs as a stack of three configs that differ in gains or lr, step and
problem seed; every recorded column, the final state and the counters must equal
``run_config`` of each config alone (bit for bit: the stack makes the same operations per
row), and ``BatchInfo`` must show that the stack ran (not the one-by-one fallback).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import stflow
from stflow.compressors import make_compressor
from stflow.compressors.spec import EXAMPLE_SPECS
from stflow.engines.batch import BatchInfo, batch_memory, evaluate_batch, run_batch
from stflow.errors import InputError
from stflow.methods import FLOW_KINDS, METHOD_KINDS, SCHEMES, method_params

# the direct flow warns about nonlinear compressors, alone and in a batch alike
pytestmark = pytest.mark.filterwarnings("ignore::stflow.errors.DirectFlowWarning")


def _config(kind="observer", spec="topk:k=2", scheme="euler", i=0, *, agents=6, dim=4,
            horizon=3.0, step=None, record_every=20, **extra):
    names = {p.name for p in method_params(kind)}
    method = {"kind": kind}
    if kind in FLOW_KINDS:
        method.update(alpha=2.0 * (1 + 0.1 * i), beta=2.0, eta=1.0 * (1 + 0.05 * i))
        if "gamma" in names:
            method["gamma"] = 50.0
    elif "lr" in names:
        method["lr"] = 0.05 * (1 + 0.1 * i)
    method.update(extra.pop("method", {}))
    solver = {"step": step or 0.01 * (1 + 0.5 * (i % 2)), "horizon": horizon,
              "scheme": scheme, "record_every": record_every, **extra}
    return stflow.resolve_config({
        "problem": {"agents": agents, "dim": dim, "seed": i % 2},
        "method": method, "compressor": {"spec": spec}, "solver": solver})


def _assert_same(batch_sol, alone):
    assert batch_sol.status == alone.status
    assert batch_sol.message == alone.message
    assert (batch_sol.steps, batch_sol.grad_evals) == (alone.steps, alone.grad_evals)
    assert batch_sol.bits_per_agent == alone.bits_per_agent
    assert batch_sol.t_final == alone.t_final
    assert set(batch_sol.records) == set(alone.records)
    for key, col in alone.records.items():
        a = np.asarray(col, dtype=float)
        b = np.asarray(batch_sol.records[key], dtype=float)
        assert a.shape == b.shape, key
        np.testing.assert_array_equal(b, a, err_msg=key)  # exact, NaN == NaN
    for key, arr in alone.state.items():
        np.testing.assert_array_equal(batch_sol.state[key], arr, err_msg=key)
    drop = {"wall_seconds"}
    sb = {k: v for k, v in batch_sol.summary().items() if k not in drop}
    sa = {k: v for k, v in alone.summary().items() if k not in drop}
    assert sb == sa


def _check(configs, *, stacked=True, **kw):
    info = BatchInfo()
    out = run_batch(configs, info=info, **kw)
    assert len(out) == len(configs)
    for cfg, (_run, sol) in zip(configs, out, strict=True):
        _assert_same(sol, stflow.run_config(cfg)[1])
    if stacked:
        assert sorted(i for c in info.chunks for i in c) == list(range(len(configs))), (
            info.reasons)
        assert info.sequential == []
    return info, out


CASES = [(k, s) for k in METHOD_KINDS for s in (SCHEMES if k in FLOW_KINDS else ("euler",))]


@pytest.mark.parametrize(("kind", "scheme"), CASES)
def test_every_method_and_scheme_batches_exactly(kind, scheme):
    _check([_config(kind, scheme=scheme, i=i) for i in range(3)])


@pytest.mark.parametrize("spec", EXAMPLE_SPECS)
def test_every_compressor_batches_exactly(spec):
    """Quantizers included: a row gets the same operations as alone, so no rounding
    difference can move it to another level."""
    _check([_config("observer", spec=spec, i=i) for i in range(3)])


def test_direct_flow_with_error_feedback_and_trigger_batch_exactly():
    _check([_config("direct", spec="quantize:bits=3", i=i,
                    method={"error_feedback": True}) for i in range(3)])
    # event-triggered sending: per-run bit counts (steps equal, so the clock is shared)
    cfgs = [_config("observer", i=i, step=0.01, method={"trigger": 0.05 * (1 + i)})
            for i in range(3)]
    info, out = _check(cfgs)
    bits = [sol.bits_per_agent for _r, sol in out]
    assert len(set(bits)) == 3  # the runs really sent differently


def test_time_varying_compressor_with_different_steps():
    """scalarize's direction depends on t and the runs' clocks differ: compressed per
    group of equal t, still exact."""
    _check([_config("observer", spec="scalarize:basis=cyclic,tau=0.02", i=i)
            for i in range(4)])


def test_step_decay_and_local_steps_batch_exactly():
    _check([_config("observer", i=i, step_decay=50.0 * (1 + i)) for i in range(3)])
    _check([_config("observer", i=i, local_steps=3) for i in range(3)])
    _check([_config("dgd", i=i, step_decay=40.0) for i in range(3)])


def test_each_run_stops_on_its_own():
    """Run 1 diverges (step far too large), run 2 has a shorter horizon and records more
    often; each equals its single run, and the others do not notice."""
    cfgs = [_config("observer", i=0),
            _config("observer", i=0, step=0.2, horizon=40.0),
            _config("observer", i=0, horizon=1.0, record_every=7),
            _config("observer", i=0, horizon=5.0)]
    info, out = _check(cfgs)
    statuses = [sol.status for _r, sol in out]
    assert statuses[1] == "diverged"
    assert out[1][1].steps < 200
    assert out[2][1].steps == 100 and out[3][1].steps == 500
    assert out[2][1].records["step"].tolist()[:3] == [0, 7, 14]


def test_one_shape_or_a_one_line_refusal():
    with pytest.raises(InputError, match=r"config 1 has N=7, d=4 but config 0 has N=6, d=4"):
        run_batch([_config(i=0), _config(i=0, agents=7)])
    with pytest.raises(InputError, match="non-empty list"):
        run_batch([])
    with pytest.raises(InputError, match=r"\[solver\] tolerance"):
        run_batch([_config(i=0), _config(i=1, tolerance=-1.0)])


def test_a_batch_that_does_not_fit_is_split():
    cfgs = [_config(i=i) for i in range(5)]
    run = stflow.build_run(cfgs[0])
    per = batch_memory(run)
    # quadratic data Q (N, d, d) and b (N, d), 3 state arrays + 8 temporaries of (N, d)
    data = (6 * 4 * 4 + 6 * 4) * 8
    assert per == data + (2 * 3 + 8) * 6 * 4 * 8
    # the two problems (seeds 0 and 1) are held beside the stacks, which copy their data
    info, _ = _check(cfgs, max_bytes=2 * data + int(2.5 * per), stacked=False)
    assert [len(c) for c in info.chunks] == [2, 2]  # 5 runs -> 2 + 2 + 1 alone
    assert info.sequential == [4] and "alone" in info.reasons[4]
    info, _ = _check(cfgs, max_bytes=int(2.5 * per), stacked=False)  # held data counted
    assert [len(c) for c in info.chunks] == [] and info.sequential == [0, 1, 2, 3, 4]


def test_distinct_problems_over_the_limit_are_refused_before_any_run(monkeypatch):
    """More than one problem whose arrays exceed max_bytes: one line naming max_bytes,
    raised after the first problem is built (its size times four), no run stepped; a
    limit the first's size fits but the built ones pass is refused when they pass it."""
    from stflow.config import build as build_mod
    from stflow.engines import batch as B

    cfgs = [_ls_config(0) for _ in range(4)]
    for i, c in enumerate(cfgs):
        c["problem"]["seed"] = i  # four distinct problems
    data = B._data_bytes(stflow.build_run(cfgs[0]))
    assert data == (6 * 4 * 4 + 6 * 4 + 6) * 8 + 6 * 8
    built, stepped = [], []
    real_build, real_stack = build_mod.build_problem, B._run_stack
    monkeypatch.setattr(build_mod, "build_problem", lambda p: built.append(p) or real_build(p))
    monkeypatch.setattr(B, "_run_stack", lambda *a: stepped.append(a) or real_stack(*a))
    with pytest.raises(InputError, match=r"4 distinct problems need about .*max_bytes.*fewer"):
        run_batch(cfgs, max_bytes=int(3.5 * data))
    assert len(built) == 1 and stepped == []
    # the second problem larger (logistic, 200 rows an agent): the estimate from the first
    # passes, the sum of the two built does not
    other = copy.deepcopy(cfgs)
    other[1]["problem"] = stflow.resolve_config({"problem": {
        "kind": "logistic", "agents": 6, "dim": 4, "samples": 200}})["problem"]
    big = B._problem_bytes(build_mod.build_problem(other[1]["problem"]))
    assert big == 6 * 200 * (4 + 1) * 8  # A (6, 200, 4) and y (6, 200)
    built.clear()
    with pytest.raises(InputError, match="distinct problems"):
        run_batch(other, max_bytes=4 * data + 1)
    assert len(built) == 2 and stepped == []
    # under the limit: the four are held, and the stacks fit in what is left
    state = B._state_bytes(stflow.build_run(cfgs[0]))
    info = BatchInfo()
    out = run_batch(cfgs, max_bytes=4 * data + 2 * (data + state), info=info)
    assert [len(c) for c in info.chunks] == [2, 2] and len(out) == 4
    # one problem is never refused, whatever the limit (its runs need it anyway)
    same = [_ls_config(i) for i in range(3)]
    info = BatchInfo()
    run_batch(same, max_bytes=data // 2, info=info)
    assert info.sequential == [0, 1, 2]


def _ls_config(i, *, spec="quantize:bits=4", scheme="predict", agents=6, dim=4):
    cfg = _config("observer", spec=spec, scheme=scheme, i=i, agents=agents, dim=dim)
    cfg["problem"] = stflow.resolve_config({"problem": {
        "kind": "least_squares", "agents": agents, "dim": dim, "seed": 3}})["problem"]
    return cfg


@pytest.mark.parametrize("spec,scheme", [("quantize:bits=4", "predict"), ("topk:k=2", "euler")])
def test_runs_on_one_problem_share_its_data_and_still_match(spec, scheme, monkeypatch):
    """Least squares in Gram form: the stack reads the one problem's matrices for all runs
    (row r -> agent r mod N), and every run still equals its single run bit for bit."""
    from stflow.engines import batch as B
    from stflow.problems import LeastSquaresProblem

    seen = []
    tiled = LeastSquaresProblem._tiled

    def spy(self, copies):
        out = tiled(self, copies)
        seen.append((copies, out))
        return out

    monkeypatch.setattr(LeastSquaresProblem, "_tiled", spy)
    cfgs = [_ls_config(i, spec=spec, scheme=scheme) for i in range(4)]
    _check(cfgs)
    stacks = [(c, p) for c, p in seen if c == 4]
    assert stacks, seen
    copies, prob = stacks[0]
    assert prob.n_agents == 24 and prob.gram.shape == (6, 4, 4)  # not copied 4 times
    assert prob._gram_index.tolist() == list(range(6)) * 4
    # memory: the data once, then each run's state and temporaries
    runs = B._build_runs(cfgs)
    data, state = B._data_bytes(runs[0]), B._state_bytes(runs[0])
    assert data == (6 * 4 * 4 + 6 * 4 + 6) * 8 + 6 * 8  # gram, atb, btb (float), rows (int)
    assert [len(c) for c in B._chunks([0, 1, 2, 3], runs, data + 2 * state)] == [2, 2]
    assert [len(c) for c in B._chunks([0, 1, 2, 3], runs, 2 * (data + state))] == [2, 2]
    assert [len(c) for c in B._chunks([0, 1, 2, 3], runs, data + 4 * state)] == [4]


def test_what_cannot_be_stacked_runs_one_by_one_and_still_matches():
    cfgs = [_config("observer", spec="scalarize:basis=cyclic", scheme="continuous", i=i)
            for i in range(2)] + [_config("dgd", i=0)]
    info, _ = _check(cfgs, stacked=False)
    assert info.chunks == [] and info.sequential == [0, 1, 2]
    assert "continuous" in info.reasons[0]


def test_evaluate_batch_runs_rounds_of_each_step():
    cfgs = [_config(i=i) for i in range(3)]
    sols = evaluate_batch(cfgs, 40)
    assert [s.steps for s in sols] == [40, 40, 40]
    assert [s.t_final for s in sols] == pytest.approx([0.4, 0.6, 0.4])
    with pytest.raises(InputError, match="rounds"):
        evaluate_batch(cfgs, 0)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 9])
def test_topk_selection_with_ties_and_inf_equals_the_mask(k):
    """The fast selection (argmax rounds on a flat view, min/max ordering for k = 2) keeps
    the k largest |z_j| with ties to the lower index: the same entries as ``mask``."""
    rng = np.random.default_rng(k)
    Z = rng.integers(-3, 4, size=(200, 10)).astype(float)  # many ties
    Z[5, 2] = -np.inf
    c = make_compressor(f"topk:k={k}", 10)
    mask = c.mask(Z)
    np.testing.assert_array_equal(c(Z, 0.0), np.where(mask, Z, 0.0))
    np.testing.assert_array_equal(c.indices(Z), np.nonzero(mask)[1].reshape(200, k))
    assert c(np.array([[1.0, -2.0, 2.0, 0.5] + [0.0] * 6]), 0.0)[0, :4].tolist() == (
        [0.0, -2.0, 0.0, 0.0] if k == 1 else [0.0, -2.0, 2.0, 0.0] if k == 2 else
        [1.0, -2.0, 2.0, 0.0] if k == 3 else [1.0, -2.0, 2.0, 0.5])


@pytest.mark.parametrize("problem", [
    {"kind": "least_squares", "agents": 6, "dim": 4, "samples": 20, "batch": 3, "seed": 0},
    {"kind": "logistic", "dataset": "breast_cancer", "agents": 5, "regularization": 1e-2,
     "test_fraction": 0.2, "seed": 0},
])
def test_minibatches_and_learning_columns_batch_exactly(problem):
    """Minibatch draws are keyed on the agent ids, which the stack keeps per run; the
    learning columns (accuracies, train loss) come from each run's own problem."""
    cfgs = [stflow.resolve_config({
        "problem": problem,
        "method": {"kind": "observer", "alpha": 2.0 * (1 + 0.1 * i), "beta": 2.0, "eta": 1.0,
                   "gamma": 50.0},
        "compressor": {"spec": "topk:k=2"},
        "solver": {"step": 0.01, "horizon": 2.0, "record_every": 20}}) for i in range(3)]
    _check(cfgs)


def test_lossy_channel_runs_one_by_one_with_its_faults():
    """[network] faults are not simulated by the stack: such configs run alone, with their
    channel (before, the batch ran them without it and lost no message)."""
    cfgs = [_config(i=i, horizon=1.0) for i in range(3)]
    for c in cfgs:
        c["network"]["drop"] = 0.3
    info, out = _check(cfgs, stacked=False)
    assert info.chunks == [] and info.sequential == [0, 1, 2]
    assert "[network] faults" in info.reasons[0]
    clean = [_config(i=i, horizon=1.0) for i in range(3)]
    lossless = stflow.run_config(clean[0])[1].records["relative_error"]
    assert not np.array_equal(out[0][1].records["relative_error"], lossless)


def test_batch_refusal_names_what_the_stack_cannot_run():
    from stflow.engines.batch import batch_refusal

    assert batch_refusal(_config("lead")) is None
    cont = _config(spec="scalarize:basis=cyclic", scheme="continuous")
    assert "continuous" in batch_refusal(cont)
    lossy = _config()
    lossy["network"]["drop"] = 0.1
    assert "[network] faults" in batch_refusal(lossy)
    from pathlib import Path

    huber = stflow.load_config(Path(__file__).resolve().parents[1] / "examples" / "huber.toml")
    assert batch_refusal(huber) == (
        "its problem (UserProblem) cannot be stacked (NotImplementedError)")


def test_evaluate_batch_with_only_the_scored_metric():
    """The tuner's batches compute only the column they score: equal to the single runs on
    it and on every counter, the other metrics NaN (a run alone in its group too)."""
    cfgs = [_config(i=i, horizon=0.6) for i in range(3)] + [_config("lead", horizon=0.6)]
    sols = evaluate_batch(cfgs, 40, metrics=("relative_error",))
    for cfg, sol in zip(cfgs, sols, strict=True):
        c = dict(cfg, solver={**cfg["solver"], "horizon": 40 * cfg["solver"]["step"]})
        alone = stflow.run_config(c)[1].records
        for key in ("step", "t", "relative_error", "bits_per_agent", "bits_per_agent_p2p",
                    "samples_per_agent", "modeled_seconds"):
            np.testing.assert_array_equal(sol.records[key], alone[key], err_msg=key)
        assert np.isnan(sol.records["consensus_error"]).all()
        assert np.isnan(sol.records["optimality_gap"]).all()
        assert np.isfinite(alone["optimality_gap"]).all()
