r"""Many runs as one program: the batched simulator (:func:`run_batch`).

S runs of one shape (N agents, dimension d, one method kind and scheme) are one run of
S·N agents on a block-diagonal graph: run s holds the rows ``s*N:(s+1)*N`` of every state
array. The method is built once on the stacked problem and graph (its one definition, no
batch code in it); what differs between the runs becomes a column ``(S·N, 1)`` broadcast
over the rows:

- the method's float parameters (the flows' gains, a peer's ``lr``) and the step ``h``;
- the compressor and the clock: rows are compressed once per group of runs sharing the
  compressor's spec and (unless it is a built-in time-invariant one) the time t_k, so row
  (s, i) gets exactly what agent i of run s gets alone (compressors are row-wise maps and
  their shared draws are keyed on (seed, window), never on a row's position);
- the problem data: every run's arrays concatenated along the agent axis
  (:meth:`stflow.problems.Problem.arrays`), so ``grad`` is one batched call; when every
  run has the same problem, its ``_tiled(S)`` (where defined: least squares in Gram form)
  reads the one copy of the data for all runs.

Every operation on a row is the one its single run makes (same IEEE operations in the same
order: a Laplacian row of the block-diagonal matrix has the same entries in the same order),
so a batch equals its runs done one by one, bit for bit; :func:`run_batch` checks that on a
two-run probe of a few rounds before it commits to a stack, and runs a group one by one
(``solve``) when the probe differs or the method cannot be stacked.

Each run stops on its own: it is recorded with its own :class:`~stflow.metrics.Recorder`,
checked for divergence on its own rows, and frozen when it reaches its horizon or diverges
(a diverged run's rows are reset to zero so that no inf/NaN arithmetic slows the others).
The MPI engine is unchanged (S = 1).
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from dataclasses import fields, is_dataclass, replace
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from ..interrupts import catch_interrupts
from .simulate import (
    GROWTH_LIMIT,
    Solution,
    _blown_up,
    _classify,
    _diverged_message,
    _interrupted_message,
    _scale,
    make_recorder,
    solve,
)

__all__ = ["run_batch", "evaluate_batch", "batch_memory", "batch_refusal", "BatchInfo",
           "PROBE_ROUNDS"]

#: Rounds of the two-run probe that must equal the single runs bit for bit before a group is
#: run stacked.
PROBE_ROUNDS = 3
#: Share of the available memory (``MemAvailable``) a batch may use; larger batches are
#: split into chunks that fit.
MEMORY_SHARE = 0.5
#: State-sized (N, d) temporaries a step allocates besides the state (measured upper bound
#: for the flows: gradient, message, Laplacian product, update buffers).
_TEMPORARIES = 8
#: Built-in compressors whose ``C(z, t)`` does not depend on t when ``period == 0`` and
#: ``time_scale == inf`` (a user compressor's declaration is not trusted for that).
_TRUSTED_PREFIX = "stflow.compressors."


class BatchInfo(SimpleNamespace):
    """How :func:`run_batch` ran the configs: ``chunks`` (list of lists of config indices
    run as one stack), ``sequential`` (indices run one by one) and ``reasons`` (index ->
    why it was not stacked); empty until a batch ran."""

    def __init__(self, **kw):
        super().__init__(**{"chunks": [], "sequential": [], "reasons": {}, **kw})


class _NotStackable(Exception):
    """The group cannot run as one stack (the reason is the message)."""


# -- building -----------------------------------------------------------------------------


def _build_runs(configs, max_bytes: int | None = None):
    """``build_run`` of every config, building each distinct problem and graph once.

    With ``max_bytes``, more than one distinct problem whose arrays together exceed it is
    refused (an :class:`InputError`) before any run starts: every problem of a batch is
    held until the batch returns. The first problem's size times the number of distinct
    problems is checked before the second is built, the sum of the built ones after each
    (one problem is never refused: its runs need it in any case)."""
    import json

    from ..config.build import Run, _load_init, build_method, build_problem, default_x0
    from ..graphs import make_graph

    keys = [json.dumps(c["problem"], sort_keys=True, default=str) for c in configs]
    distinct = len(set(keys))
    problems, graphs, runs = {}, {}, []
    for cfg0, pkey in zip(configs, keys, strict=True):
        cfg = copy.deepcopy(cfg0)
        if pkey not in problems:
            problems[pkey] = build_problem(cfg["problem"])
            if max_bytes is not None and distinct > 1:
                _check_held(list(problems.values()), max_bytes, distinct)
        problem = problems[pkey]
        g = cfg["graph"]
        gkey = json.dumps([g, problem.n_agents], sort_keys=True, default=str)
        if gkey not in graphs:
            kw = {k: g[k] for k in ("edges", "weights", "p", "radius") if g[k] is not None}
            graphs[gkey] = make_graph(g["kind"], problem.n_agents, seed=g["seed"],
                                      chords=g["chords"], **kw)
        graph = graphs[gkey]
        if graph.n != problem.n_agents:
            raise InputError(
                f"[graph] has {graph.n} agents but the problem has {problem.n_agents}: "
                "make the edge list cover agents 0..N-1"
            )
        x0 = _load_init(cfg["init"]["x0"], "x0")
        if x0 is None:
            x0 = default_x0(problem)
        v0 = _load_init(cfg["init"]["v0"], "v0")
        compressor, method = build_method(cfg, problem, graph)
        runs.append(Run(cfg, problem, graph, compressor, method, x0, v0))
    return runs


def _check_solver(s: dict, flow) -> None:
    """The argument checks :func:`stflow.engines.simulate.solve` makes, before any run starts
    (so a bad config in a batch fails at once, with the same line)."""
    from .simulate import SOLVER_METHODS

    step, horizon = s["step"], s["horizon"]
    if s["scheme"] is not None and s["scheme"] not in SOLVER_METHODS:
        raise InputError(
            f"[solver] scheme must be one of {', '.join(SOLVER_METHODS)} (got {s['scheme']!r}): "
            "pick one of those")
    if not (isinstance(step, int | float) and math.isfinite(step) and step > 0):
        raise InputError(f"[solver] step must be a positive number (got {step!r}): e.g. 1e-3")
    if not (isinstance(horizon, int | float) and math.isfinite(horizon) and horizon > 0):
        raise InputError(
            f"[solver] horizon must be a positive number (got {horizon!r}): e.g. horizon = 30")
    if step > horizon * (1 + 1e-12):
        raise InputError(
            f"[solver] step must not exceed horizon (got step={step:g} > horizon={horizon:g}): "
            "lower step or raise horizon")
    if int(s["record_every"]) < 1:
        raise InputError(f"[solver] record_every must be >= 1 (got {s['record_every']!r})")
    if not s["tolerance"] > 0:
        raise InputError(
            f"[solver] tolerance must be positive (got {s['tolerance']!r}): e.g. 1e-8")
    ls = s["local_steps"]
    if isinstance(ls, bool) or not isinstance(ls, int) or ls < 1:
        raise InputError(f"[solver] local_steps must be an integer >= 1 (got {ls!r}): e.g. 1")
    if ls > 1 and not flow.local_steps_ok:
        flow.local_update(None, 0.0, step)  # raises the method's clear error


def _stack_problem(problems):
    """One problem holding every run's agents (arrays concatenated along the agent axis)."""
    first = problems[0]
    if any(type(p) is not type(first) for p in problems):
        raise _NotStackable("the runs' problems are of different kinds")
    try:
        tiled = getattr(first, "_tiled", None)
        stacked = None
        if tiled is not None and all(p is first for p in problems):
            stacked = tiled(len(problems))  # one problem: its data read, not copied
        if stacked is None:
            parts = [p.arrays() for p in problems]
            arrays = {k: np.concatenate([a[k] for a in parts]) for k in parts[0]}
            stacked = first._from_arrays(arrays, x_star=np.zeros(int(first.dim)), f_star=0.0)
    except (AttributeError, NotImplementedError, TypeError, ValueError, KeyError) as exc:
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise _NotStackable(
            f"its problem ({type(first).__name__}) cannot be stacked ({why})") from None
    stacked._agent_ids = np.concatenate([p.agent_ids for p in problems])
    # Constants a method reads at construction: the runs' own values (not the stack's).
    for name in ("smoothness", "solution_curvature", "strong_convexity"):
        if isinstance(getattr(type(stacked), name, None), property):
            continue
        if all(name in vars(p) for p in problems):  # already computed: no new work
            stacked.__dict__[name] = max(float(vars(p)[name]) for p in problems)
    return stacked


def _stack_graph(graphs):
    """The block-diagonal graph of the runs' graphs (not connected, so built without the
    constructor's connectivity check; its Laplacian rows are the runs' rows, in order)."""
    from ..graphs.graph import Graph

    n = graphs[0].n
    g = object.__new__(Graph)
    object.__setattr__(g, "n", n * len(graphs))
    object.__setattr__(g, "edges", np.concatenate(
        [gr.edges + s * n for s, gr in enumerate(graphs)]).astype(np.int64))
    object.__setattr__(g, "weights", np.concatenate([gr.weights for gr in graphs]))
    object.__setattr__(g, "kind", graphs[0].kind)
    laps = [gr.laplacian.tocsr() for gr in graphs]
    data = np.concatenate([m.data for m in laps])
    indices = np.concatenate([m.indices.astype(np.int64) + s * n for s, m in enumerate(laps)])
    indptr = np.concatenate([[0]] + [m.indptr[1:].astype(np.int64) + sum(
        x.nnz for x in laps[:s]) for s, m in enumerate(laps)])
    g.__dict__["laplacian"] = sp.csr_matrix((data, indices, indptr), shape=(g.n, g.n))
    g.__dict__["lambda_max"] = max(float(gr.lambda_max) for gr in graphs)
    g.__dict__["lambda_2"] = min(float(gr.lambda_2) for gr in graphs)
    return g


def _column(values, n: int) -> np.ndarray:
    return np.repeat(np.asarray(values, dtype=np.float64), n)[:, None]


def _per_row(method, flows, n: int) -> None:
    """Set on the stacked ``method`` every float attribute (or dataclass of floats, the
    flows' :class:`~stflow.methods.Gains`) that differs between the runs' methods, as a
    column of per-row values."""
    for name, v0 in vars(flows[0]).items():
        vals = [vars(f).get(name) for f in flows]
        if isinstance(v0, bool) or v0 is None:
            if any(v != v0 for v in vals):
                raise _NotStackable(f"its runs differ in {name}")
            continue
        if isinstance(v0, int | float):
            if all(v == v0 for v in vals):
                continue
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
                raise _NotStackable(f"its runs differ in {name}")
            setattr(method, name, _column(vals, n))
        elif is_dataclass(v0) and not isinstance(v0, type):
            if all(v == v0 for v in vals):
                continue
            cols = {}
            for f in fields(v0):
                fv = [getattr(v, f.name) for v in vals]
                cols[f.name] = fv[0] if all(x == fv[0] for x in fv) else _column(fv, n)
            setattr(method, name, SimpleNamespace(**cols))
        elif isinstance(v0, str) and any(v != v0 for v in vals):
            raise _NotStackable(f"its runs differ in {name}")


def _group_key(run):
    s = run.config["solver"]
    flow = run.flow
    return (type(flow), s["scheme"], s["local_steps"], s["step_decay"] is None,
            s["target_accuracy"] is None, tuple(getattr(flow, "state_keys", ())),
            tuple(getattr(flow, "channels", ())), bool(getattr(flow, "triggered", False)),
            type(run.compressor))


# -- the stack ----------------------------------------------------------------------------


class _Codec:
    """Compress the stacked rows of one channel: one call per group of runs sharing the
    compressor's spec (and t, for a compressor that depends on t)."""

    def __init__(self, compressors, n: int):
        self.n = n
        self.comps = compressors
        specs = {}
        for s, c in enumerate(compressors):
            specs.setdefault(c.spec, []).append(s)
        self.groups = [(compressors[runs[0]], np.asarray(runs)) for runs in specs.values()]
        self.fixed = [self.invariant(c) for c, _runs in self.groups]
        self.rows = [None if len(runs) == len(compressors) else
                     (runs[:, None] * n + np.arange(n)).ravel() for _c, runs in self.groups]

    @staticmethod
    def invariant(comp) -> bool:
        return (type(comp).__module__.startswith(_TRUSTED_PREFIX) and comp.period == 0
                and comp.time_scale == math.inf)

    def __call__(self, Z, t_runs):
        """``C`` of every row; ``t_runs`` is one time for all runs (a float) or ``(S,)``."""
        n = self.n
        if not isinstance(t_runs, np.ndarray) and len(self.groups) == 1:
            return self.groups[0][0](Z, t_runs)
        t_runs = np.broadcast_to(np.asarray(t_runs, dtype=np.float64), (len(self.comps),))
        out = None
        for (comp, runs), rows, fixed in zip(self.groups, self.rows, self.fixed, strict=True):
            ts = t_runs[runs]
            if fixed or np.all(ts == ts[0]):
                parts = [(rows, float(ts[0]))]
            else:
                parts = [((sel[:, None] * n + np.arange(n)).ravel(), float(tv))
                         for tv in np.unique(ts) for sel in [runs[ts == tv]]]
            for r, tv in parts:
                if r is None:
                    return comp(Z, tv)
                if out is None:
                    out = np.empty_like(Z)
                out[r] = comp(Z[r], tv)
        return out


class _Stack:
    """S runs of one group as one method on S·N agents."""

    def __init__(self, runs):
        self.runs = runs
        self.S = len(runs)
        self.n = int(runs[0].problem.n_agents)
        first = runs[0]
        s0 = first.config["solver"]
        cls = type(first.flow)
        params = {k: v for k, v in first.config["method"].items() if k != "kind"}
        scheme = s0["scheme"] if s0["scheme"] not in (None, "continuous") else "euler"
        problem = _stack_problem([r.problem for r in runs])
        graph = _stack_graph([r.graph for r in runs])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                method = cls.build(problem, graph, first.compressor, scheme=scheme, **params)
            except Exception as exc:  # noqa: BLE001 - any failure means: run one by one
                raise _NotStackable(f"its method cannot be built on the stack ({exc})") from None
        if s0["scheme"] is not None and hasattr(method, "scheme"):
            method.scheme = s0["scheme"]
        _per_row(method, [r.flow for r in runs], self.n)
        self.method = method
        self.codecs = [None if c is None else _Codec([r.flow.codecs()[i] for r in runs], self.n)
                       for i, c in enumerate(method.codecs())]
        h = np.array([float(r.config["solver"]["step"]) for r in runs])
        self.h_runs = h
        self.uniform_h = bool(np.all(h == h[0]))

    def initial_state(self):
        """The stacked state: each run's validated X(0) (and V(0)), then the stacked
        method's ``init_block`` (so gradients it takes count in the stack's draws)."""
        from ..methods.base import initial_arrays

        arrays = [initial_arrays(r.flow, r.x0, r.v0) for r in self.runs]
        X = np.concatenate([a[0] for a in arrays])
        V = None if arrays[0][1] is None else np.concatenate([a[1] for a in arrays])
        return self.method.init_block(X, V)

    def rows(self, s: int) -> slice:
        return slice(s * self.n, (s + 1) * self.n)

    def _args(self, t_runs, h_runs):
        """(t, h) for the method: floats when one value serves every run, else columns."""
        if not isinstance(t_runs, np.ndarray) and not isinstance(h_runs, np.ndarray):
            return t_runs, h_runs
        t_runs = np.broadcast_to(np.asarray(t_runs, dtype=np.float64), (self.S,))
        h_runs = np.broadcast_to(np.asarray(h_runs, dtype=np.float64), (self.S,))
        if np.all(t_runs == t_runs[0]) and np.all(h_runs == h_runs[0]):
            return float(t_runs[0]), float(h_runs[0])
        return _column(t_runs, self.n), _column(h_runs, self.n)

    def step(self, state, t_runs, h_runs, cols=None):
        """One round of every run: ``t_runs`` and ``h_runs`` are floats (the same for all
        runs) or ``(S,)`` arrays; ``cols`` = their (t, h) per row when the caller has them."""
        m = self.method
        t, h = self._args(t_runs, h_runs) if cols is None else cols
        out = m.send(state, t, h)
        msgs = [z if c is None else c(z, t_runs) for z, c in zip(out, self.codecs, strict=True)]
        m.local(state, t, h)
        return m.receive(state, msgs, t, h)

    def local_update(self, state, t_runs, h_runs):
        t, h = self._args(t_runs, h_runs)
        return self.method.local_update(state, t, h)


def _probe(runs) -> None:
    """Two runs stacked for :data:`PROBE_ROUNDS` rounds must equal each alone, bit for bit."""
    pick = [runs[0], runs[-1]] if len(runs) > 1 else [runs[0]]
    probe = _Stack([_fresh(r) for r in pick])
    singles = [_fresh(r) for r in pick]
    state = probe.initial_state()
    alone = [r.flow.initial_state(x0=r.x0, v0=r.v0) for r in singles]
    h = probe.h_runs
    with np.errstate(all="ignore"):
        for k in range(PROBE_ROUNDS):
            t = k * h
            state = probe.step(state, t, h)
            for s, r in enumerate(singles):
                alone[s] = r.flow.step(alone[s], float(t[s]), float(h[s]))
                for key, arr in alone[s].items():
                    if not np.array_equal(state[key][probe.rows(s)], arr, equal_nan=True):
                        raise _NotStackable(
                            f"its stacked round {k + 1} differs from the single run in {key}")
                rb = r.flow.round_bits()
                if rb is not None and not np.array_equal(
                        probe.method.round_bits()[probe.rows(s)], rb):
                    raise _NotStackable(f"its stacked round {k + 1} sends other bits")


def _fresh(run):
    """A copy of ``run`` with an unused method (round scratch and counters reset)."""
    flow = copy.copy(run.flow)
    flow.draws = 0
    return replace(run, flow=flow)


# -- running ------------------------------------------------------------------------------


#: Rebuild the stack without its finished runs once this share of it has finished (at once
#: when a run diverged, so its rows never reach inf or NaN).
COMPACT_SHARE = 0.25


def _run_stack(stack: _Stack, stop=None, metrics=None) -> list[Solution]:
    """Run every run of ``stack`` to its own end; one :class:`Solution` per run
    (``metrics``: the metric columns to compute, :class:`~stflow.metrics.Recorder`)."""
    from ..config.build import time_model

    runs, S, n = stack.runs, stack.S, stack.n
    solver = [r.config["solver"] for r in runs]
    h = stack.h_runs
    n_steps = np.array([max(1, int(round(s["horizon"] / s["step"]))) for s in solver])
    record_every = np.array([int(s["record_every"]) for s in solver])
    check_every = np.minimum(record_every, 50)
    local_steps = int(solver[0]["local_steps"])
    decay = None if solver[0]["step_decay"] is None else np.array(
        [float(s["step_decay"]) for s in solver])
    recs = [make_recorder(r.flow, r.problem, local_steps=local_steps,
                          time_model=time_model(r.config)) for r in runs]
    for rec in recs:
        rec.metrics = None if metrics is None else frozenset(metrics)
    triggered = bool(getattr(stack.method, "triggered", False))
    degree = [np.asarray(r.graph.degree, dtype=float) for r in runs]
    sent, p2p = np.zeros(S), np.zeros(S)
    state = stack.initial_state()
    rows = [slice(p * n, (p + 1) * n) for p in range(S)]  # of the runs in the stack
    limits = np.array([GROWTH_LIMIT * _scale(r.flow, {k: v[rows[s]] for k, v in state.items()})
                       for s, r in enumerate(runs)])

    def bits_of(s):
        return (float(sent[s]) / n, float(p2p[s]) / n) if triggered else None

    def snapshot(s, st):
        p = pos[s]
        return {key: v[p * n : (p + 1) * n].copy() for key, v in st.items()}

    start = time.perf_counter()
    m = stack.method
    for s in range(S):
        recs[s].record(0, 0.0, state["X"][rows[s]], draws=m.draws)
    members = np.arange(S)  # global ids of the runs in the current stack, in row order
    pos = {s: s for s in range(S)}
    active = np.ones(S, dtype=bool)
    diverged = False
    final = [None] * S  # per run: (state, draws, diverged_at, time at its end)
    t_next = np.zeros(S)
    scalar_h = stack.uniform_h and decay is None
    h0 = float(h[0])
    h_mem, h_col = h, _column(h, n)
    events = _events(n_steps, record_every, check_every)
    signal_name = "SIGINT"
    done = 0
    with catch_interrupts() as flag, np.errstate(all="ignore"):
        stop_flags = [flag] if stop is None else [flag, stop]
        try:
            for k in range(int(n_steps.max())):
                cols = None
                if decay is None:
                    if scalar_h:
                        t, hk = k * h0, h0
                    else:
                        t, hk, cols = k * h_mem, h_mem, (k * h_col, h_col)
                else:
                    scale = 1.0 / (1.0 + k / decay[members])
                    m.set_step_scale(float(scale[0]) if np.all(scale == scale[0])
                                     else _column(scale, n))
                    t, hk = t_next[members], h[members] * scale
                    t_next[members] = t + hk
                cur = state
                for _ in range(local_steps - 1):
                    if any(f.requested for f in stop_flags):  # huge local_steps: stop now,
                        signal_name = getattr(flag, "signal", None) or "a stop request"
                        raise KeyboardInterrupt  # the round abandoned, `state` before it
                    cur = stack.local_update(cur, t, hk)
                new = stack.step(cur, t, hk, cols)
                done = k + 1
                if triggered:
                    rb = m.round_bits()
                    for p, s in enumerate(members):
                        sent[s] += float(rb[p * n : (p + 1) * n].sum())
                        p2p[s] += float(rb[p * n : (p + 1) * n] @ degree[s])
                if done in events:
                    due = active[members] & ((done % check_every[members] == 0)
                                             | (done == n_steps[members]))
                    if due.any():
                        near = _near_limit(new, len(members), limits[members])
                        for p in np.flatnonzero(due & near):
                            s = members[p]
                            own = {key: v[p * n : (p + 1) * n] for key, v in new.items()}
                            if _blown_up(own, limits[s]):
                                final[s] = (snapshot(s, state), m.draws, done,
                                            float(t_next[s]))
                                active[s] = False
                                diverged = True
                                for v in new.values():
                                    v[p * n : (p + 1) * n] = 0.0
                    for p in np.flatnonzero(active[members] & (
                            (done % record_every[members] == 0) | (done == n_steps[members]))):
                        s = members[p]
                        tt = done * h[s] if decay is None else t_next[s]
                        recs[s].record(done, tt, new["X"][p * n : (p + 1) * n],
                                       draws=m.draws, bits=bits_of(s))
                        if done == n_steps[s]:
                            final[s] = (snapshot(s, new), m.draws, None, float(t_next[s]))
                            active[s] = False
                state = new
                if not active.any():
                    break
                if any(f.requested for f in stop_flags):
                    signal_name = getattr(flag, "signal", None) or "a stop request"
                    break
                if done in events:
                    left = int(active[members].sum())
                    if left < len(members) and (diverged or
                                                left <= (1 - COMPACT_SHARE) * len(members)):
                        keep = members[active[members]]
                        idx = np.concatenate([np.arange(pos[s] * n, (pos[s] + 1) * n)
                                              for s in keep])
                        state = {key: v[idx] for key, v in state.items()}
                        draws = m.draws
                        stack = _Stack([runs[s] for s in keep])
                        m = stack.method
                        m.draws = draws
                        members, pos = keep, {s: p for p, s in enumerate(keep)}
                        scalar_h = stack.uniform_h and decay is None
                        h0 = float(h[keep[0]])
                        h_mem, h_col = h[keep], _column(h[keep], n)
                        diverged = False
        except KeyboardInterrupt:
            pass
    wall = (time.perf_counter() - start) / S
    out = []
    for s, r in enumerate(runs):
        interrupted_at = None
        if final[s] is None:  # stopped by an interrupt before its horizon
            interrupted_at = done
            final[s] = (snapshot(s, state), m.draws, None, float(t_next[s]))
        st, draws, diverged_at, t_end = final[s]
        hs = h[s]

        def t_of(nn, hs=hs, t_end=t_end):
            return nn * hs if decay is None else t_end

        rec = recs[s]
        if interrupted_at is not None and rec.last_step != interrupted_at:
            rec.record(interrupted_at, t_of(interrupted_at), st["X"], draws=draws,
                       bits=bits_of(s))
        records = rec.columns()
        steps_run = diverged_at if diverged_at is not None else rec.last_step
        sv = solver[s]
        if diverged_at is not None:
            status = "diverged"
            message = _diverged_message(r.flow, None, hs, diverged_at, t_of(diverged_at))
        elif interrupted_at is not None:
            status = "interrupted"
            message = _interrupted_message(signal_name, interrupted_at, n_steps[s],
                                           t_of(interrupted_at))
        else:
            status, message = _classify(records, sv["tolerance"], sv["target_accuracy"],
                                        getattr(r.flow, "stall_hint", None))
        bpm = r.flow.bits_per_message
        out.append(Solution(
            status=status, message=message, steps=int(steps_run),
            t_final=float(t_of(steps_run)), grad_evals=int(draws * n),
            bits_per_message=bpm,
            bits_per_agent=float(steps_run * bpm) if not triggered else bits_of(s)[0],
            records=records, state=st, tolerance=sv["tolerance"], wall_seconds=wall))
    return out


def _events(n_steps, record_every, check_every) -> set[int]:
    """Rounds after which some run checks, records or ends."""
    out: set[int] = set()
    for n, r, c in {(int(a), int(b), int(e)) for a, b, e in
                    zip(n_steps, record_every, check_every, strict=True)}:
        out.update(range(c, n + 1, c))
        out.update(range(r, n + 1, r))
        out.add(n)
    return out


#: A run whose state norm (computed for all runs at once) is within this relative margin of
#: its limit, or not finite, is checked again exactly as a single run checks it.
_MARGIN = 1e-6


def _near_limit(state, S: int, limits: np.ndarray) -> np.ndarray:
    """Runs whose some state array may be non-finite or above its limit, ``(S,)`` bool: a
    screen (one reduction per array for all runs); the decision is the single run's own
    ``_blown_up`` on the runs it flags."""
    flag = np.zeros(S, dtype=bool)
    for arr in state.values():
        sq = np.einsum("ij,ij->i", arr, arr).reshape(S, -1).sum(axis=1)
        flag |= ~np.isfinite(sq) | (sq > (limits * (1.0 - _MARGIN)) ** 2)
    return flag


def _solve_one(run, stop=None) -> Solution:
    """One run alone, as :func:`stflow.config.run_config` runs it (its channel included)."""
    from ..config.build import time_model
    from ..network import make_channel

    s = run.config["solver"]
    return solve(run.flow, step=s["step"], horizon=s["horizon"], method=s["scheme"],
                 record_every=s["record_every"], tolerance=s["tolerance"], x0=run.x0,
                 v0=run.v0, local_steps=s["local_steps"], stop=stop,
                 step_decay=s["step_decay"], target_accuracy=s["target_accuracy"],
                 time_model=time_model(run.config),
                 channel=make_channel(run.config, run.graph))


#: Why a config with channel faults runs one by one.
_CHANNEL_REASON = ("[network] faults (drop, bursts, activation) or a [graph] schedule: the "
                   "stack does not simulate a lossy channel")


def _has_channel(run) -> bool:
    from ..network import make_channel

    return make_channel(run.config, run.graph) is not None


class _Stop:
    """Stop requested by the caller's ``stop`` or by an interrupt of an earlier chunk."""

    def __init__(self, stop):
        self.stop, self.halted = stop, False

    @property
    def requested(self) -> bool:
        return self.halted or (self.stop is not None and bool(self.stop.requested))


# -- memory -------------------------------------------------------------------------------


def _problem_bytes(problem) -> int:
    arrays = getattr(problem, "arrays", None)
    if arrays is None:
        return 0
    try:
        found = arrays()
    except Exception:  # noqa: BLE001 - a problem without arrays cannot be stacked anyway
        return 0
    return sum(int(a.nbytes) for a in found.values() if isinstance(a, np.ndarray))


def _data_bytes(run) -> int:
    return _problem_bytes(run.problem)


def _held_bytes(runs) -> int:
    """The arrays of the batch's distinct problems, each counted once."""
    return sum(_problem_bytes(p) for p in {id(r.problem): r.problem for r in runs}.values())


def _check_held(problems: list, max_bytes: int, distinct: int) -> None:
    """Refuse when the built problems, or the first one's size times ``distinct``, exceed
    ``max_bytes``."""
    sizes = [_problem_bytes(p) for p in problems]
    need = max(sum(sizes), sizes[0] * distinct)
    if need > max_bytes:
        raise InputError(
            f"run_batch: the configs' {distinct} distinct problems need about "
            f"{need / 2**20:.0f} MB of data ({sizes[0] / 2**20:.1f} MB each; all are held "
            f"until the batch returns), over the memory limit of {max_bytes / 2**20:.0f} MB "
            "(max_bytes, default half the available memory): run fewer distinct problems "
            "per batch, or raise max_bytes")


def _state_bytes(run) -> int:
    n, d = int(run.problem.n_agents), int(run.problem.dim)
    keys = len(getattr(run.flow, "state_keys", ("X",)))
    return (2 * keys + _TEMPORARIES) * n * d * 8


def batch_memory(run) -> int:
    """Bytes one run adds to a stack: its problem arrays, its state arrays and the step's
    (N, d) temporaries (:data:`_TEMPORARIES`). Runs on one problem that the stack reads
    without copying (``Problem._tiled``) add only the state and temporaries; the data
    counts once (:func:`run_batch` splits by that)."""
    return _data_bytes(run) + _state_bytes(run)


def _shares_data(runs) -> bool:
    """Every run has the same problem and the stack will read it without copying."""
    first = runs[0].problem
    tiled = getattr(first, "_tiled", None)
    return (len(runs) > 1 and all(r.problem is first for r in runs) and tiled is not None
            and tiled(1) is not None)


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def _chunks(idx: list[int], runs, max_bytes: int, held: int = 0) -> list[list[int]]:
    """``idx`` in chunks whose stacks fit in ``max_bytes`` beside the ``held`` bytes of the
    batch's problems (built before any chunk runs and kept until the batch returns)."""
    first = runs[idx[0]]
    room = max_bytes - held
    if _shares_data([runs[i] for i in idx]):  # the stack reads the held data: state only
        size = max(1, int(room // max(_state_bytes(first), 1)))
    else:  # the stack copies each run's data
        size = max(1, int(room // max(batch_memory(first), 1)))
    return [idx[i : i + size] for i in range(0, len(idx), size)]


# -- the entry points ---------------------------------------------------------------------


def run_batch(configs, *, max_bytes: int | None = None, stop=None, info: BatchInfo | None = None,
              metrics=None):
    r"""Run resolved configs of one shape as one vectorized program; ``[(run, solution)]``
    in the order given, each equal to :func:`stflow.run_config` of that config alone.

    All configs must have the same number of agents N and dimension d (else an
    :class:`~stflow.errors.InputError`). Configs that share the method kind, scheme, state
    layout, ``local_steps`` and whether ``step_decay`` / ``target_accuracy`` are set are one
    group; a group runs as one stack of S·N agents (module docstring) in chunks of at most
    ``max_bytes`` (default: :data:`MEMORY_SHARE` of the available memory, see
    :func:`batch_memory`) beside the arrays of the batch's problems (each distinct problem
    once: all are built before the first chunk and held until the batch returns; configs
    with more than one distinct problem whose arrays exceed ``max_bytes`` are refused with
    an :class:`~stflow.errors.InputError` before any run starts), or one by one when it
    cannot be stacked (a single config, the
    ``continuous`` scheme, a problem without :meth:`~stflow.problems.Problem.arrays`, or a
    probe that differs). Pass ``info=BatchInfo()`` to learn which. Results differ from the
    single runs only in ``wall_seconds`` (the stack's time divided by its runs).
    ``metrics`` (names of metric columns, e.g. ``("relative_error",)``) computes only those
    in the stacked runs, the others NaN (:class:`~stflow.metrics.Recorder`); the computed
    ones and the counters are still equal to the single runs'.

    Examples
    --------
    >>> import stflow
    >>> cfgs = [stflow.resolve_config({"problem": {"agents": 4, "dim": 3},
    ...     "method": {"kind": "observer", "alpha": a, "beta": 2.0, "eta": 1.0, "gamma": 50.0},
    ...     "compressor": {"spec": "topk:k=1"},
    ...     "solver": {"step": 0.01, "horizon": 5.0}}) for a in (1.0, 2.0)]
    >>> out = run_batch(cfgs)
    >>> alone = stflow.run_config(cfgs[1])[1]
    >>> out[1][1].records["relative_error"].tolist() == alone.records["relative_error"].tolist()
    True
    """
    configs = list(configs)
    if not configs or not all(isinstance(c, dict) for c in configs):
        raise InputError(
            "run_batch: `configs` must be a non-empty list of resolved config dicts "
            "(stflow.resolve_config): pass one dict per run")
    limit = int(MEMORY_SHARE * _available_memory()) if max_bytes is None else int(max_bytes)
    runs = _build_runs(configs, limit)
    held = _held_bytes(runs)
    shape0 = (int(runs[0].problem.n_agents), int(runs[0].problem.dim))
    for i, r in enumerate(runs):
        shape = (int(r.problem.n_agents), int(r.problem.dim))
        if shape != shape0:
            raise InputError(
                f"run_batch: configs must share one shape (N agents, dim d): config {i} has "
                f"N={shape[0]}, d={shape[1]} but config 0 has N={shape0[0]}, d={shape0[1]}; "
                "batch configs of one shape together")
        _check_solver(r.config["solver"], r.flow)
    info = BatchInfo() if info is None else info
    info.chunks, info.sequential, info.reasons = [], [], {}
    groups: dict = {}
    for i, r in enumerate(runs):
        if r.config["solver"]["scheme"] == "continuous":
            info.reasons[i] = "scheme = continuous (solve_ivp) has no rounds to stack"
            continue
        if _has_channel(r):
            info.reasons[i] = _CHANNEL_REASON
            continue
        groups.setdefault(_group_key(r), []).append(i)
    sols: list = [None] * len(runs)
    halt = _Stop(stop)  # an interrupt ends the batch: later chunks stop at their first round

    def done(found):
        if any(sol.status == "interrupted" for sol in found):
            halt.halted = True

    for idx in groups.values():
        for chunk in _chunks(idx, runs, limit, held):
            if len(chunk) < 2 and metrics is None:  # a stack of one pays off only by
                info.reasons[chunk[0]] = "alone in its group or memory chunk"  # `metrics`
                continue
            try:
                _probe([runs[i] for i in chunk])
                stack = _Stack([runs[i] for i in chunk])
            except Exception as exc:  # noqa: BLE001 - any failure of the stack: one by one
                for i in chunk:
                    info.reasons[i] = str(exc)
                continue
            found = _run_stack(stack, halt, metrics)
            for i, sol in zip(chunk, found, strict=True):
                sols[i] = sol
            del stack  # free this chunk's stacked data before the next one is built
            info.chunks.append(chunk)
            done(found)
    for i, r in enumerate(runs):
        if sols[i] is None:
            info.sequential.append(i)
            sols[i] = _solve_one(r, halt)
            done([sols[i]])
    return list(zip(runs, sols, strict=True))


def batch_refusal(config: dict) -> str | None:
    """Why configs like ``config`` (its shape and kinds, other parameters) would not run
    as one stack, or None when they would: the checks of :func:`run_batch` (a lossy
    channel, ``scheme = "continuous"``, a problem or method that cannot be stacked, a
    two-run probe that differs) made on two copies of ``config``, before any run.

    Examples
    --------
    >>> import stflow
    >>> cfg = stflow.resolve_config({"problem": {"agents": 4, "dim": 3},
    ...     "method": {"kind": "lead"}, "compressor": {"spec": "topk:k=1"},
    ...     "solver": {"step": 1.0, "horizon": 20}})
    >>> batch_refusal(cfg) is None
    True
    >>> cfg["network"]["drop"] = 0.1
    >>> batch_refusal(cfg)[:20]
    '[network] faults (dr'
    """
    if config["solver"]["scheme"] == "continuous":
        return "scheme = continuous (solve_ivp) has no rounds to stack"
    runs = _build_runs([config, config])
    if _has_channel(runs[0]):
        return _CHANNEL_REASON
    try:
        _probe(runs)
        _Stack(runs)
    except Exception as exc:  # noqa: BLE001 - any failure of the stack is a reason
        return str(exc)
    return None


def evaluate_batch(configs, rounds: int, *, max_bytes: int | None = None,
                   metrics=None) -> list[Solution]:
    """The tuner's batch evaluation: every config run for ``rounds`` rounds of its own step
    (``horizon = rounds * step``, as ``stflow tune`` runs a candidate), as one batch;
    the solutions in the order given (``metrics``: as in :func:`run_batch`)."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise InputError(f"evaluate_batch: `rounds` must be an integer >= 1 (got {rounds!r})")
    cfgs = []
    for c in configs:
        c = copy.deepcopy(c)
        c["solver"]["horizon"] = rounds * c["solver"]["step"]
        cfgs.append(c)
    return [sol for _run, sol in run_batch(cfgs, max_bytes=max_bytes, metrics=metrics)]
