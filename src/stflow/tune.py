r"""Equal-budget tuning (``stflow tune``): the same search and the same rules for every method.

:func:`tune` searches the tunable ``[method]`` parameters a method declares
(:func:`stflow.methods.method_params`) and, for the primal-dual flows, the step ``h`` of
``[solver] step``, with Optuna's seeded TPE sampler. It spends ``budget`` candidate settings;
each candidate is one run capped at the config's number of rounds ``round(horizon / step)``.

A candidate *scores* its bits per agent to reach the target: ``bits_per_agent`` of the first
recorded row with ``relative_error <= E`` (or ``mean_agent_test_accuracy >= A``), and *counts*
only when

1. the run did not diverge and the criterion holds at every later recorded row (a run that
   reaches E and then rises above it does not count), and
2. the median of :data:`ROBUST_RUNS` runs with every tuned ``[method]`` parameter multiplied
   by its own factor drawn uniformly in ``[1 - 0.1, 1 + 0.1]`` (seeded; clipped to the
   parameter's bounds; ``h`` kept) also reaches the target under rule 1
   (``robust_bits_to_target``, a failed run counting as infinitely many bits).

The winner is the counting candidate with the fewest bits; ties keep the earlier one. The
robustness runs are extra: they do not count toward ``budget``, and they run only for a
candidate that would beat the current winner. A run that cannot beat the winner any more
(it has not reached the target after the winner's number of rounds) is cut there and rerun
in full only if it reached the target earlier (pruning; it changes the cost, not the result).

Search space (identical rule for every method, :func:`search_space`): each tunable
parameter on a log scale in a box of width ``span**2`` (``span`` each way, default
:data:`SPAN`) around the config's value (``"auto"`` resolved first); a box that would cross
a declared bound slides along it and keeps its width. Every searched value is a per-round
quantity: for the flows, one round depends on ``h alpha``, ``h beta``, ``h eta`` and
``h gamma`` only (SPEC section 5), so ``h`` stays fixed (``tune_step=True`` adds it, with
the same width; comparisons leave it off, since it multiplies every gain at once). A winner
within :data:`EDGE` of an edge that is not a bound re-centres the box on it and searches
again with :data:`WIDEN_SHARE` of the budget (``widened`` in the result). The first
candidate is the config itself. With ``tune_step``, a time-varying compressor keeps its
window per round: ``tau`` of ``scalarize`` (cyclic, random) and ``randk`` is multiplied by
``h / h_0`` and the sinusoid's ``freq`` divided by it (:func:`rescale_compressor_time`).
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = [
    "SPAN",
    "STEP_SPAN",
    "EDGE",
    "WIDEN_SHARE",
    "search_space",
    "ROBUST_RUNS",
    "PERTURBATION",
    "RECORD_EVERY",
    "TuneResult",
    "tune",
    "rescale_compressor_time",
    "config_toml",
    "first_hit",
    "write_outputs",
]

#: Default search span: each parameter within this factor of the config's value.
SPAN = 30.0
#: Kept for compatibility: ``tune_step`` now searches h with the same width as every gain.
STEP_SPAN = SPAN
#: A winner within this factor of an edge of its box is on the edge: the box is re-centred
#: on it and searched again with :data:`WIDEN_SHARE` of the budget (at most
#: :data:`MAX_WIDENINGS` times), for every method alike.
EDGE = 1.1
WIDEN_SHARE = 0.25
MAX_WIDENINGS = 2
#: Perturbed runs in the robustness check, and the relative size of the perturbation.
ROBUST_RUNS = 5
PERTURBATION = 0.1
#: ``[solver] record_every`` of the tuning runs (the config's, if smaller): rounds to the
#: target are resolved to this many rounds.
RECORD_EVERY = 10
_DIVERGED_SCORE = 100.0
#: Share of the budget spent exploring (the config, then TPE); the rest refines locally.
EXPLORE_SHARE = 0.4
SIGMA0, SIGMA_MIN = 0.5, 0.02


@dataclass
class _Criterion:
    column: str
    target: float
    at_least: bool  # accuracy: >= target; error: <= target

    def holds(self, values: np.ndarray) -> np.ndarray:
        ok = np.isfinite(values)
        return ok & (values >= self.target if self.at_least else values <= self.target)

    def label(self) -> str:
        return f"{self.column} {'>=' if self.at_least else '<='} {self.target:g}"


def first_hit(records: dict, column: str = "relative_error", target: float = 1e-6, *,
              at_least: bool = False) -> tuple[int | None, bool]:
    r"""Index of the recorded row from which the target *stays* met to the end, and whether
    there is one (one rule for ``--target`` and ``--target-accuracy``).

    The criterion is ``records[column] <= target`` (``>=`` with ``at_least``). A run counts
    exactly when its last record meets the target; it is scored at the first row from
    which every later row meets it too. A run that touches the target, leaves it and comes
    back is scored where it came back for good; one that leaves it at the end does not
    count.

    Examples
    --------
    >>> rec = {"relative_error": np.array([1.0, 1e-3, 1e-7, 1e-8])}
    >>> first_hit(rec, target=1e-6)
    (2, True)
    >>> first_hit({"relative_error": np.array([1.0, 1e-7, 1e-5])}, target=1e-6)
    (None, False)
    >>> first_hit({"relative_error": np.array([1.0, 4.8e-7, 1.5e-6, 1e-7, 1e-8])}, target=1e-6)
    (3, True)
    >>> first_hit(rec, target=1e-9)
    (None, False)
    >>> first_hit({"acc": np.array([0.5, 0.94, 0.92, 0.95])}, "acc", 0.93, at_least=True)
    (3, True)
    """
    ok = _Criterion(column, target, at_least).holds(np.asarray(records[column], dtype=float))
    if ok.size == 0 or not ok[-1]:
        return None, False
    misses = np.flatnonzero(~ok)
    return (int(misses[-1]) + 1 if misses.size else 0), True


@dataclass
class _Outcome:
    counted: bool
    bits: float  # bits to target if reached (counted or not), else bits spent
    rounds: int | None
    diverged: bool
    pruned: bool
    score: float  # for the sampler (lower is better)
    runs: int


@dataclass
class TuneResult:
    """What :func:`tune` found (``to_dict()`` is ``tuning.json``).

    ``config`` is the tuned, resolved config (None when nothing counted); ``params`` the tuned
    ``[method]`` values (plus ``step`` for the flows); ``evaluations`` the candidate settings
    tried (the budget), ``runs`` every simulator run made (pruned parts, reruns and
    robustness runs included); ``trials`` one entry per candidate.
    """

    method: str
    scheme: str
    compressor: str | None
    params: dict | None
    rounds_to_target: int | None
    bits_to_target: float | None
    robust_bits_to_target: float | None
    evaluations: int
    runs: int
    target: dict
    budget: int
    seed: int
    record_every: int
    rounds_cap: int
    reason: str
    config: dict | None = None
    trials: list = field(default_factory=list)
    #: One entry per widening of the box (a winner on an edge): the edges, the boxes before
    #: and after, and the candidates spent there.
    widened: list = field(default_factory=list)
    #: Candidates run as one batch (1: the sequential search) and, when a wave > 1 was
    #: asked for but the batch engine cannot run the config, why (the search then ran one
    #: candidate at a time).
    wave: int = 1
    batch_fallback: str | None = None

    @property
    def found(self) -> bool:
        return self.params is not None

    @property
    def interrupted(self) -> bool:
        """True when Ctrl-C or SIGTERM stopped the search before its budget was spent (the
        best so far is kept in ``tuning.json``, never written as ``tuned.toml``)."""
        return self.reason.startswith("interrupted")

    def to_dict(self) -> dict:
        keys = ("method", "scheme", "compressor", "params", "rounds_to_target",
                "bits_to_target", "robust_bits_to_target", "evaluations", "runs", "target",
                "budget", "seed", "record_every", "rounds_cap", "reason", "trials", "widened",
                "wave", "batch_fallback")
        out = {k: getattr(self, k) for k in keys}
        # a winner of the whole budget; an interrupted search keeps its best so far in
        # `params` but found nothing it could stand by
        out["found"] = self.found and not self.interrupted
        out["interrupted"] = self.interrupted
        return out


# ----------------------------------------------------------------------------- spec rewrite


def rescale_compressor_time(spec: str, factor: float) -> str:
    r"""The spec with every time window scaled by ``factor``, as each stage's class declares
    (``Compressor.rescale_time``): ``tau -> factor * tau`` for ``scalarize`` (cyclic,
    random) and ``randk``, ``freq -> freq / factor`` for the sinusoid.

    With ``h -> factor * h`` each round then sees the same window as before. Stages without a
    time scale are kept as written; a ``py:`` stage raises (its time scale is unknown).

    Examples
    --------
    >>> rescale_compressor_time("scalarize:basis=cyclic,tau=0.01", 2.0)
    'scalarize:basis=cyclic,tau=0.02'
    >>> rescale_compressor_time("randk:k=2|quantize:bits=4", 0.5)
    'randk:k=2,tau=0.005|quantize:bits=4'
    >>> rescale_compressor_time("scalarize:basis=sinusoid,freq=5", 2.0)
    'scalarize:basis=sinusoid,freq=2.5'
    """
    from .compressors._common import _parse_pairs
    from .compressors.spec import _CLASSES

    if factor == 1.0:
        return spec
    stages = []
    for stage in spec.split("|"):
        stage = stage.strip()
        if stage.startswith("py:"):
            raise InputError(
                f"cannot rescale the time windows of the user compressor {stage!r} when tuning "
                "the step: keep [solver] step fixed (tune(..., tune_step=False))"
            )
        name, _, args = stage.partition(":")
        name = name.strip()
        cls = _CLASSES.get(name)
        if cls is None:  # lowrank: no time scale
            stages.append(stage)
            continue
        pairs = _parse_pairs(args, stage) if args.strip() else {}
        new = cls.rescale_time(dict(pairs), factor)
        stages.append(stage if new == pairs else
                      f"{name}:" + ",".join(f"{k}={v}" for k, v in new.items()))
    return "|".join(stages)


# ----------------------------------------------------------------------------- TOML output


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        v = float(v)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple | np.ndarray):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise InputError(f"cannot write {v!r} ({type(v).__name__}) to TOML: give numbers or strings")


def _uses_compressor(config: dict) -> bool:
    """Whether the config's method sends compressed messages (True when it cannot say)."""
    kind = config.get("method", {}).get("kind")
    if not isinstance(kind, str):
        return True
    from .methods import method_class

    try:
        return "compressed" in method_class(kind).channels
    except Exception:  # noqa: BLE001  (a py: method file gone: keep the section)
        return True


def config_toml(config: dict) -> str:
    """A resolved config as TOML text that :func:`stflow.config.load_config` reads back
    to the same values (floats written with ``repr``; ``None`` keys left out).

    Examples
    --------
    >>> print(config_toml({"method": {"kind": "lead", "lr": 0.25}, "init": {"x0": None}}))
    [method]
    kind = "lead"
    lr = 0.25
    <BLANKLINE>
    [init]
    <BLANKLINE>
    """
    lines = []
    for section, keys in config.items():
        if section == "compressor" and not _uses_compressor(config):
            continue  # read back, it would be named unused (stflow.config.load_config)
        lines.append(f"[{section}]")
        for key, value in keys.items():
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the search


def search_space(base: dict, tunables, *, span: float = SPAN, tune_step: bool = False,
                 centre: dict | None = None) -> dict:
    r"""The search box of every tuned value: ``name -> (low, high, log, centre)``.

    The same rule for every parameter of every method: a log-scale box of width
    ``span**2`` (``high / low = span**2``) around its centre (the config's value, ``"auto"``
    resolved, or ``centre[name]``). Every tuned value is a per-round quantity of one round
    (a peer's ``lr``, ``alpha``, ``gamma``; a flow's gains at the config's fixed step ``h``,
    since one round depends on ``h alpha, h beta, h eta, h gamma`` only), so equal widths
    mean equal freedom. A declared bound keeps the width: a box that would cross
    ``high`` is slid down to ``[high / span**2, high]`` (and up from ``low`` likewise), so
    its centre moves instead of its width shrinking. ``tune_step`` (off by default) adds the
    flows' ``h`` with the same width; it multiplies every gain, so it is off for a fair
    comparison.

    Examples
    --------
    >>> from stflow.params import Param
    >>> box = search_space({"method": {"lr": 0.5, "gamma": 0.9}},
    ...                    [Param("lr", 0.5, "step"), Param("gamma", 0.9, "mix", high=1.0)])
    >>> [round(box["lr"][1] / box["lr"][0]) for _ in (0,)], box["gamma"][1]
    ([900], 1.0)
    >>> round(box["gamma"][1] / box["gamma"][0])
    900
    """
    width = float(span) ** 2
    space = {}
    for p in tunables:
        c = float((centre or {}).get(p.name, base["method"][p.name]))
        lo, hi = c / span, c * span
        if hi > p.high:
            hi, lo = p.high, p.high / width
        floor = p.low + 1e-12 * max(abs(p.low), 1.0)
        if lo < floor:
            lo, hi = floor, min(floor * width, p.high)
        space[p.name] = (lo, hi, True, min(max(c, lo), hi))
    if tune_step:
        h = float((centre or {}).get("step", base["solver"]["step"]))
        space["step"] = (h / span, h * span, True, h)  # the same width as every gain
    return space


def _space(base: dict, tunables, *, tune_step: bool, span: float) -> dict:
    return search_space(base, tunables, span=span, tune_step=tune_step)


def _on_edge(values: dict, space: dict, tunables) -> list[tuple[str, str]]:
    """The searched values of a winner within :data:`EDGE` of its box's edge, where the edge
    is not a declared bound (a bound cannot be widened): ``[(name, "low" | "high")]``."""
    bounds = {p.name: p for p in tunables}
    out = []
    for k, (lo, hi, _log, _c) in space.items():
        if not hi > lo or k not in values:
            continue
        v = float(values[k])
        p = bounds.get(k)
        if v <= lo * EDGE and not (p is not None and lo <= p.low + 1e-9 * max(abs(p.low), 1)):
            out.append((k, "low"))
        if v >= hi / EDGE and not (p is not None and hi >= p.high):
            out.append((k, "high"))
    return out


def _candidate(base: dict, values: dict, rounds: int, h0: float, spec0: str | None) -> dict:
    cfg = copy.deepcopy(base)
    for k, v in values.items():
        if k != "step":
            cfg["method"][k] = float(v)
    if "step" in values:
        h = float(values["step"])
        cfg["solver"]["step"] = h
        if spec0 is not None:
            cfg["compressor"]["spec"] = rescale_compressor_time(spec0, h / h0)
    h = cfg["solver"]["step"]
    cfg["solver"]["horizon"] = rounds * h
    return cfg


def _run(cfg: dict, rounds: int):
    from .config import run_config

    cfg = copy.deepcopy(cfg)
    cfg["solver"]["horizon"] = rounds * cfg["solver"]["step"]
    return run_config(cfg)[1]


def _evaluate(cfg: dict, crit: _Criterion, cap: int, prune_rounds: int | None) -> _Outcome:
    runs = 0
    if prune_rounds is not None and prune_rounds < cap // 2:
        sol = _run(cfg, prune_rounds)
        runs += 1
        _check_column(sol, crit)
        i, _ = first_hit(sol.records, crit.column, crit.target, at_least=crit.at_least)
        if sol.status == "interrupted":
            raise KeyboardInterrupt
        if sol.status == "diverged" or i is None or sol.records["step"][i] >= prune_rounds:
            return _unreached(sol, crit, pruned=sol.status != "diverged", runs=runs)
    sol = _run(cfg, cap)
    runs += 1
    if sol.status == "interrupted":
        raise KeyboardInterrupt
    _check_column(sol, crit)
    i, stays = first_hit(sol.records, crit.column, crit.target, at_least=crit.at_least)
    if sol.status == "diverged" or i is None or not stays:
        return _unreached(sol, crit, pruned=False, runs=runs)
    bits = float(sol.records["bits_per_agent"][i])
    return _Outcome(True, bits, int(sol.records["step"][i]), False, False,
                    math.log10(max(bits, 1.0)), runs)


def _unreached(sol, crit: _Criterion, *, pruned: bool, runs: int) -> _Outcome:
    if sol.status == "diverged":
        return _Outcome(False, math.inf, None, True, False, _DIVERGED_SCORE, runs)
    vals = np.asarray(sol.records[crit.column], dtype=float)
    i, _ = first_hit(sol.records, crit.column, crit.target, at_least=crit.at_least)
    tail = vals if i is None else vals[i:]
    if not np.all(np.isfinite(tail)):
        return _Outcome(False, math.inf, None, True, False, _DIVERGED_SCORE, runs)
    if crit.at_least:
        gap = 10.0 * max(crit.target - float(tail.min()), 0.0)
    else:
        gap = math.log10(max(float(tail.max()), crit.target) / crit.target)
    spent = max(float(sol.records["bits_per_agent"][-1]), 1.0)
    return _Outcome(False, spent, None, False, pruned, math.log10(spent) + 1.0 + gap, runs)


def _check_column(sol, crit: _Criterion) -> None:
    if crit.column not in sol.records:
        raise InputError(
            f"--target-accuracy needs a learning problem whose metrics record {crit.column} "
            f"(got columns {', '.join(sol.records)}): use --target with the relative error"
        )


def _perturbed(values: dict, space: dict, tunables, rng) -> dict:
    out = dict(values)
    bounds = {p.name: p for p in tunables}
    for name in bounds:
        p = bounds[name]
        v = values[name] * (1.0 + PERTURBATION * rng.uniform(-1.0, 1.0))
        out[name] = float(min(max(v, p.low + 1e-12 * max(abs(p.low), 1.0)), p.high))
    return out


def _prepare(config: dict, record_every: int, tune_step):
    """The base config with "auto" resolved, the tunable params and whether h is tuned."""
    from .config import build_run
    from .methods import method_class

    if not isinstance(config, dict) or "method" not in config or "solver" not in config:
        raise InputError("`config` must be a resolved config (stflow.config.load_config)")
    s = config["solver"]
    if s["scheme"] == "continuous":
        raise InputError(
            '[solver] scheme = "continuous" sends no bits, so there is nothing to tune: use '
            'scheme = "euler", "predict" or "gauss_seidel"'
        )
    kind = config["method"]["kind"]
    base = copy.deepcopy(config)
    base["solver"]["record_every"] = min(int(s["record_every"]), int(record_every))
    run = build_run(base)  # resolves "auto" into run.config (and checks the config)
    base["method"] = copy.deepcopy(run.config["method"])
    cls = method_class(kind)
    tunables = [p for p in cls.params if p.tuned
                and not (p.requires and not base["method"].get(p.requires))
                and not (p.zero and base["method"].get(p.name) == 0)]
    is_flow = cls.flow_gains
    spec = base["compressor"]["spec"] if run.compressor is not None else None
    if tune_step is None:  # fixed h: the gains are the per-round quantities, as a peer's lr
        tune_step = False
    if tune_step and not is_flow:
        raise InputError(
            f'tune_step is only for the primal-dual flows (got [method] kind = "{kind}", whose '
            "step h is only the clock of the compressor): leave tune_step unset"
        )
    return base, tunables, bool(tune_step), spec


def tune(
    config: dict,
    *,
    budget: int,
    target: float | None = None,
    target_accuracy: float | None = None,
    seed: int = 0,
    span: float = SPAN,
    record_every: int = RECORD_EVERY,
    tune_step: bool | None = None,
    progress: bool = False,
    wave: int = 1,
) -> TuneResult:
    r"""Tune the method of a resolved ``config`` with ``budget`` candidate settings.

    Minimizes the bits per agent to reach ``relative_error <= target`` (or
    ``mean_agent_test_accuracy >= target_accuracy``) under the rules of the module docstring:

    .. math:: \min_{\theta \in \Theta} b(\theta) \ \text{ s.t. the run stays at the target
              and } \operatorname{median}_{j \le 5} b(\theta \odot (1 + 0.1 u_j)) < \infty,
              \quad u_j \sim U[-1, 1]^p,

    with Optuna's TPE sampler seeded by ``seed`` (the config itself is the first candidate).
    ``tune_step`` (default off) also tunes the flows' ``h``. A winner on an edge of its box
    (:func:`search_space`) re-centres the box on it and spends :data:`WIDEN_SHARE` of the
    budget more there (``widened`` in the result says so).

    ``wave`` > 1 asks the sampler for ``wave`` candidates at a time and runs them as one
    batch (:func:`stflow.tune_batch.search_batched`; every score is the one a single run
    gives, but a seed draws other candidates than with ``wave = 1``, the default and the
    sequential search). A config the batch engine cannot stack
    (:func:`stflow.engines.batch.batch_refusal`: a lossy ``[network]``, a torch model, ...)
    is searched one candidate at a time, with the reason in ``batch_fallback`` (and on the
    progress lines).

    Examples
    --------
    >>> from stflow.config import resolve_config
    >>> cfg = resolve_config({"problem": {"agents": 4, "dim": 3}, "method": {"kind": "lead"},
    ...     "compressor": {"spec": "quantize:bits=4"},
    ...     "solver": {"step": 1.0, "horizon": 300}})
    >>> res = tune(cfg, budget=3, target=1e-6)
    >>> res.found, res.evaluations, res.bits_to_target == res.rounds_to_target * (64 + 3 * 4)
    (True, 3, True)
    """
    if isinstance(budget, bool) or not isinstance(budget, int | np.integer) or budget < 1:
        raise InputError(f"--budget must be an integer >= 1 (got {budget!r}): e.g. --budget 30")
    if (target is None) == (target_accuracy is None):
        raise InputError(
            "give exactly one of --target E (relative error) and --target-accuracy A "
            f"(got target={target!r}, target_accuracy={target_accuracy!r}): e.g. --target 1e-6"
        )
    if target is not None:
        if not (isinstance(target, int | float) and math.isfinite(target) and target > 0):
            raise InputError(f"--target must be a number > 0 (got {target!r}): e.g. --target 1e-6")
        crit = _Criterion("relative_error", float(target), False)
    else:
        if not (isinstance(target_accuracy, int | float) and 0 < target_accuracy <= 1):
            raise InputError(
                f"--target-accuracy must be in (0, 1] (got {target_accuracy!r}): e.g. 0.9"
            )
        crit = _Criterion("mean_agent_test_accuracy", float(target_accuracy), True)
    if not (isinstance(span, int | float) and math.isfinite(span) and span > 1):
        raise InputError(f"`span` must be a number > 1 (got {span!r}): e.g. span = 100")
    if isinstance(record_every, bool) or not isinstance(record_every, int) or record_every < 1:
        raise InputError(f"`record_every` must be an integer >= 1 (got {record_every!r})")
    if isinstance(wave, bool) or not isinstance(wave, int | np.integer) or wave < 1:
        raise InputError(f"--wave must be an integer >= 1 (got {wave!r}): e.g. --wave 10")

    base, tunables, tune_step, spec0 = _prepare(config, record_every, tune_step)
    s = base["solver"]
    h0 = float(s["step"])
    cap = max(1, int(round(s["horizon"] / h0)))
    space = _space(base, tunables, tune_step=tune_step, span=float(span))
    kind, scheme = base["method"]["kind"], s["scheme"]
    widened = []
    search, fallback = _search, None
    if int(wave) > 1:
        from .engines.batch import batch_refusal

        fallback = batch_refusal(base)
        if fallback is None:
            from .tune_batch import search_batched

            def search(*args, **kw):
                return search_batched(*args, wave=int(wave), **kw)
        elif progress:
            from .progress import emit_line

            emit_line(f"stflow tune: --wave {int(wave)} not used, one candidate at a time: "
                      f"the batch engine cannot stack this config ({fallback})")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        best, trials, runs, reason = search(base, space, tunables, crit, cap, h0, spec0,
                                            budget=int(budget), seed=int(seed),
                                            progress=progress)
        extra = max(1, int(round(WIDEN_SHARE * int(budget))))
        while best is not None and not reason and len(widened) < MAX_WIDENINGS:
            edges = _on_edge(best[0], space, tunables)
            if not edges:
                break
            new_space = search_space(base, tunables, span=float(span), tune_step=tune_step,
                                     centre=best[0])
            widened.append({"edges": [f"{k} at its {side} edge" for k, side in edges],
                            "from": {k: [space[k][0], space[k][1]] for k, _ in edges},
                            "to": {k: [new_space[k][0], new_space[k][1]] for k, _ in edges},
                            "candidates": extra})
            space = new_space
            best2, trials2, runs2, reason = search(
                base, space, tunables, crit, cap, h0, spec0, budget=extra,
                seed=int(seed) + len(widened), progress=progress)
            for t in trials2:
                t["phase"] = f"widened {len(widened)}"
            trials += trials2
            runs += runs2
            if best2 is not None and best2[1].bits < best[1].bits:
                best = best2
    seen = set()
    for w in caught:  # each distinct warning of the runs once
        key = (w.category, str(w.message))
        if key not in seen:
            seen.add(key)
            warnings.warn(w.message, w.category, stacklevel=2)
    common = dict(method=kind, scheme=scheme, evaluations=len(trials), runs=runs,
                  target={"column": crit.column, "value": crit.target,
                          "direction": ">=" if crit.at_least else "<="},
                  budget=int(budget), seed=int(seed), record_every=s["record_every"],
                  rounds_cap=cap, trials=trials, widened=widened,
                  wave=int(wave) if int(wave) > 1 and fallback is None else 1,
                  batch_fallback=fallback)
    if best is None:
        return TuneResult(compressor=spec0, params=None, rounds_to_target=None,
                          bits_to_target=None, robust_bits_to_target=None,
                          reason=reason or (
                              f"no candidate of {len(trials)} reached {crit.label()} within "
                              f"{cap} rounds and stayed there with its gains perturbed by "
                              f"+-{PERTURBATION:.0%}: raise --budget or [solver] horizon"),
                          **common)
    values, outcome, robust = best
    cfg = _candidate(base, values, cap, h0, spec0)
    params = {p.name: cfg["method"][p.name] for p in tunables}
    if tune_step:
        params["step"] = cfg["solver"]["step"]
    return TuneResult(
        compressor=cfg["compressor"]["spec"] if spec0 is not None else None,
        params=params, rounds_to_target=outcome.rounds, bits_to_target=outcome.bits,
        robust_bits_to_target=robust, config=cfg,
        reason=reason or f"best of {len(trials)} candidates", **common)


def _open_search(space, *, budget: int, seed: int, progress: bool, liar: bool = False):
    """What the sequential and the batched search share: the TPE study (``liar``: Optuna's
    ``constant_liar``, for candidates asked before earlier ones are scored) with the
    centre enqueued first, the distributions of the searched keys, the fixed values of the
    others, and a progress callback ``tick(runs)`` (a bar counting every run, robustness
    reruns too, when ``progress``)."""
    try:
        import optuna
        from optuna.distributions import FloatDistribution
    except ImportError:
        raise InputError(
            "stflow tune needs optuna (not installed): pip install 'stflow[tune]'"
        ) from None

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    extra = {"constant_liar": True} if liar else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # multivariate TPE / constant_liar are experimental
        sampler = optuna.samplers.TPESampler(
            seed=seed, multivariate=True, n_startup_trials=max(3, min(10, budget // 3)),
            **extra)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    dists = {k: FloatDistribution(lo, hi, log=log) for k, (lo, hi, log, _c) in space.items()
             if hi > lo}
    fixed = {k: c for k, (lo, hi, _log, c) in space.items() if not hi > lo}
    study.enqueue_trial({k: min(max(c, lo), hi) for k, (lo, hi, _l, c) in space.items()
                         if k in dists})
    bar = None
    if progress:  # a tqdm bar in a terminal, plain lines at intervals elsewhere
        from .progress import progress_bar

        # every run counts (robustness reruns too): at most 2 + ROBUST_RUNS per candidate
        bar = progress_bar(total=budget * (2 + ROBUST_RUNS), desc="stflow tune", unit="run")

    def tick(n: int) -> None:
        if bar is not None and n:
            bar.update(min(n, bar.total - bar.n))

    return study, dists, fixed, bar, tick


def _search(base, space, tunables, crit, cap, h0, spec0, *, budget, seed, progress):
    study, dists, fixed, bar, tick = _open_search(space, budget=budget, seed=seed,
                                                  progress=progress)
    best = None  # (values, outcome, robust bits)
    trials, runs, reason = [], 0, ""
    explore = max(1, int(round(EXPLORE_SHARE * budget)))
    es = _LocalSearch(space, np.random.default_rng([seed, 1]))
    try:
        for n in range(budget):
            if n >= explore and es.center is not None:
                study.enqueue_trial(es.propose())
            trial = study.ask(dists)
            values = {**fixed, **trial.params}
            cfg = _candidate(base, values, cap, h0, spec0)
            prune = None if best is None else best[1].rounds  # bits = rounds * bits/round
            out = _evaluate(cfg, crit, cap, prune)
            runs += out.runs
            tick(out.runs)
            entry = {"params": {k: float(v) for k, v in values.items()},
                     "bits_to_target": out.bits if out.counted else None,
                     "rounds_to_target": out.rounds, "diverged": out.diverged,
                     "pruned": out.pruned, "robust_bits_to_target": None,
                     "phase": "explore" if n < explore else "refine"}
            score = out.score
            if out.counted and (best is None or out.bits < best[1].bits):
                rng = np.random.default_rng([seed, n])
                bits = []
                for _ in range(ROBUST_RUNS):
                    pv = _perturbed(values, space, tunables, rng)
                    o = _evaluate(_candidate(base, pv, cap, h0, spec0), crit, cap, None)
                    runs += o.runs
                    tick(o.runs)
                    bits.append(o.bits if o.counted else math.inf)
                robust = float(np.median(bits))
                entry["robust_bits_to_target"] = None if math.isinf(robust) else robust
                if math.isfinite(robust):
                    best = (values, out, robust)
                else:
                    score += 0.5
            trials.append(entry)
            study.tell(trial, score)
            es.update({k: values[k] for k in dists}, score, refining=n >= explore)
            if bar is not None:
                bar.set_postfix_str(f"candidate {n + 1} of {budget}" + (
                    f", best {best[1].bits:,.0f} bits" if best is not None else ""))
        if bar is not None:  # the budget is spent: fill the rest of the upper bound
            tick(bar.total - bar.n)
    except KeyboardInterrupt:
        reason = f"interrupted after {len(trials)} of {budget} candidates"
    finally:
        if bar is not None:
            bar.close()
    return best, trials, runs, reason


class _LocalSearch:
    """(1+1) evolution strategy in log space around the best-scoring candidate so far.

    A proposal multiplies every searched value by ``exp(sigma z)``, ``z ~ N(0, 1)`` (clipped
    to the search box); ``sigma`` grows 1.5-fold after an improvement and shrinks by
    ``1.5^(-1/4)`` after a failure (the one-fifth success rule).
    """

    def __init__(self, space, rng):
        self.box = {k: (lo, hi) for k, (lo, hi, _log, _c) in space.items() if hi > lo}
        self.rng = rng
        self.center, self.score, self.sigma = None, math.inf, SIGMA0

    def propose(self) -> dict:
        out = {}
        for k, (lo, hi) in self.box.items():
            v = self.center[k] * math.exp(self.sigma * self.rng.standard_normal())
            out[k] = float(min(max(v, lo), hi))
        return out

    def update(self, values: dict, score: float, *, refining: bool) -> None:
        if score < self.score:
            self.center, self.score = dict(values), score
            if refining:
                self.sigma *= 1.5
        elif refining:
            self.sigma = max(self.sigma / 1.5 ** 0.25, SIGMA_MIN)


def write_outputs(result: TuneResult, out_dir) -> None:
    """Write ``tuning.json`` and, when a setting was found, ``tuned.toml`` into ``out_dir``."""
    from .output import atomic_output, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    toml = out / "tuned.toml"
    if result.config is not None and not result.interrupted:
        with atomic_output(toml) as f:
            f.write(config_toml(result.config).encode())
    elif toml.exists():  # --force over an earlier tuning, or interrupted: no stale winner
        toml.unlink()
    write_json(out / "tuning.json", result.to_dict())
