"""Building a run from a resolved config: problem, graph, compressor and method
(:func:`build_run`), ``"auto"`` gains, and running it on the simulator (:func:`run_config`)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .schema import GAIN_KEYS


@dataclass
class Run:
    """Everything one run needs, built from a resolved config."""

    config: dict
    problem: object
    graph: object
    compressor: object
    flow: object
    x0: np.ndarray | None
    v0: np.ndarray | None


def _load_init(value, name):
    if value is None or not isinstance(value, str):
        return value
    try:
        return np.load(value)
    except (OSError, ValueError) as exc:
        raise InputError(
            f"[init] {name}: cannot read {value!r} ({exc}): give a .npy file"
        ) from None


def build_run(config: dict) -> Run:
    """Build problem, graph, compressor and method from a resolved config.

    ``"auto"`` gains and step sizes are replaced by the values used and written back into the
    returned ``Run.config`` (so ``summary.json`` shows them).
    """
    from ..graphs import make_graph

    cfg = copy.deepcopy(config)
    problem = build_problem(cfg["problem"])
    g = cfg["graph"]
    graph_kw = {k: g[k] for k in ("edges", "weights", "p", "radius") if g[k] is not None}
    graph = make_graph(g["kind"], problem.n_agents, seed=g["seed"], chords=g["chords"], **graph_kw)
    if graph.n != problem.n_agents:
        raise InputError(
            f"[graph] has {graph.n} agents but the problem has {problem.n_agents}: "
            "make the edge list cover agents 0..N-1"
        )
    x0 = _load_init(cfg["init"]["x0"], "x0")
    if x0 is None:
        x0 = default_x0(problem)
    v0 = _load_init(cfg["init"]["v0"], "v0")
    check_target(cfg, problem)
    compressor, method = build_method(cfg, problem, graph)
    check_channel(cfg, method, graph)
    return Run(cfg, problem, graph, compressor, method, x0, v0)


def check_channel(config: dict, method, graph):
    """The run's :class:`stflow.network.Channel` (None on a perfect network), refused here,
    before anything runs, when its schedule cannot apply to the graph or the method."""
    from ..engines.driver import RoundDriver
    from ..network import make_channel

    channel = make_channel(config, graph)
    if channel is not None:
        RoundDriver.check(method, channel)
    return channel


def default_x0(problem):
    """``X(0)`` when ``[init] x0`` is not given: the problem's initial point for every agent
    (a network's PyTorch initialization), else None (zeros)."""
    init = getattr(problem, "initial_point", None)
    if init is None:
        return None
    return np.tile(np.asarray(init(), dtype=np.float64), (problem.n_agents, 1))


def build_problem(p: dict):
    """The problem of a resolved ``[problem]`` section (all agents): the kind's class builds
    it (``from_config``, :mod:`stflow.problems.registry`)."""
    from ..problems.registry import problem_class

    return problem_class(p["kind"]).from_config(p)


def check_target(cfg: dict, problem) -> None:
    """Refuse, before the first round, a run that could not be judged: ``target_accuracy``
    without held-out test rows, a network (no x*, so no relative error) with test rows but
    no ``target_accuracy`` (it would train to the horizon and only then ask for one;
    issue 20), and a cost of your own with ``x_star = None`` and neither. Both engines call
    it."""
    target = cfg["solver"].get("target_accuracy")
    has_test = bool(getattr(problem, "has_test", False))
    user = bool(getattr(problem, "user", False))
    no_optimum = (getattr(type(problem), "x_star", 0) is None
                  or bool(getattr(problem, "no_optimum", False)))
    if target is not None and not has_test:
        if user:
            raise InputError(
                f"[solver] target_accuracy needs held-out accuracies: [problem] kind = "
                f"{problem.kind!r} has no test_accuracy(X) method: give the cost object "
                "test_accuracy(X) -> (N,) (docs/problems.md), or remove target_accuracy"
            )
        raise InputError(
            "[solver] target_accuracy needs a classification problem with held-out test "
            "rows (softmax, logistic or mlp on a data set with test_fraction > 0, or a cost "
            "of your own with a test_accuracy(X) method): remove it or set test_fraction"
        )
    if target is None and has_test and no_optimum:
        raise InputError(
            f"[solver] target_accuracy is needed: [problem] kind = {problem.kind!r} has no "
            "optimum x*, so a run is judged by its mean agent test accuracy: set e.g. "
            "target_accuracy = 0.9 (1.0 trains to the horizon)"
        )
    if target is None and no_optimum and user:
        raise InputError(
            f"[problem] kind = {problem.kind!r} sets x_star = None and has no "
            "test_accuracy(X), so nothing can judge the run (no relative error, no accuracy): "
            "give the cost object its x_star (or leave x_star out: stflow solves for it), "
            "or a test_accuracy(X) -> (N,) method and set [solver] target_accuracy "
            "(docs/problems.md)"
        )


def build_method(cfg: dict, problem, graph, *, smoothness=None):
    """``(compressor, method)`` of a resolved config on ``problem`` (all agents, or one MPI
    block's local costs): ``"auto"`` values in ``cfg["method"]`` are resolved in place.

    The curvature (and, for a network (the MLP), its Hessian power iteration) is asked for
    only when a value is ``"auto"``; ``smoothness`` is kept for callers that pass it. The
    flows' auto gains and the peers' ``lr = "auto"`` use the same curvature number,
    :func:`stflow.problems.curvature_estimate` (issue 19: every method's tuning box centred
    with the same information)."""
    from ..compressors import make_compressor
    from ..methods import SCHEMES, method_class
    from ..problems import curvature_estimate

    f = cfg["method"]
    cls = method_class(f["kind"])
    compressor = None
    if "compressed" in cls.channels:
        spec = cfg["compressor"]["spec"]
        try:
            compressor = make_compressor(spec, problem.dim,
                                         shapes=getattr(problem, "param_shapes", None))
        except InputError as exc:  # name the config key when the message does not
            text = str(exc)
            if "[compressor]" in text or "compressor `" in text:
                raise
            raise InputError(f"[compressor] spec = {spec!r} (d = {problem.dim}): {text}") from None
    scheme = cfg["solver"]["scheme"]
    if cls.flow_gains:
        curvature, mu = smoothness, None
        if any(f.get(k) == "auto" for k in GAIN_KEYS):  # x* and L_f only when "auto" needs it
            curvature = curvature_estimate(problem)
            mu = getattr(problem, "strong_convexity", 0.0) / problem.n_agents
        resolve_auto_gains(f, graph=graph, smoothness=curvature, compressor=compressor,
                           step=cfg["solver"]["step"],
                           scheme=scheme if scheme in SCHEMES else "euler",
                           strong_convexity=mu, delivery=_delivery(cfg, graph))
    params = {k: v for k, v in f.items() if k != "kind"}
    method = cls.build(problem, graph, compressor,
                       scheme=scheme if scheme in SCHEMES else "euler", **params)
    for k in params:  # "auto" -> the value used, shown in summary.json
        f[k] = getattr(method, k)
    return compressor, method


#: Certified rates of built-in compressors already certified in this process, by (spec, d):
#: a tuner or a study resolves "auto" gains for the same compressor many times.
_RATES: dict[tuple[str, int], float] = {}


def certified_rate(compressor) -> float:
    """``certify(compressor).rate``, computed once per process for a built-in spec and
    dimension (a ``py:`` compressor's file may change between runs: certified every time).

    >>> from stflow.compressors import make_compressor
    >>> c = make_compressor("topk:k=2", 10)
    >>> rate = certified_rate(c)
    >>> certified_rate(make_compressor("topk:k=2", 10)) is rate, round(rate, 6)
    (True, 0.2)
    """
    from ..certify import certify

    spec = getattr(compressor, "spec", "")
    key = (spec, int(getattr(compressor, "dim", 0) or 0))
    if not spec or "py:" in spec or "lowrank" in spec:  # lowrank: its rate depends on shapes
        return certify(compressor).rate
    if key not in _RATES:
        _RATES[key] = certify(compressor).rate
    return _RATES[key]


def _delivery(cfg: dict, graph) -> float:
    """:func:`stflow.network.commit_rate` of the config's channel (1.0 without one)."""
    from ..network import commit_rate

    return commit_rate(cfg.get("network") or {}, cfg.get("graph") or {}, graph)


def resolve_auto_gains(flow_section: dict, *, graph, smoothness, compressor, step,
                       scheme: str = "predict", strong_convexity: float | None = None,
                       delivery: float = 1.0) -> dict:
    """Replace every ``"auto"`` gain of a ``[method]`` section in place (and return it).

    Uses :func:`stflow.methods.auto_gains` with the compressor's certified rate (observer flow
    only) and excitation period, the graph's ``lambda_2`` and the mean cost's
    ``strong_convexity`` and the channel's commit rate ``delivery`` (the observer flow's
    speed scales by it); ``smoothness`` is the curvature that limits the gradient step
    (:func:`build_method` passes :func:`stflow.problems.curvature_estimate`, the number the
    peers' ``lr = "auto"`` uses too). Shared by the simulator
    and the MPI engine so both run with the same gains.
    """
    from ..methods import auto_gains, method_class

    f = flow_section
    if not any(f.get(k) == "auto" for k in GAIN_KEYS):
        return f
    # the observer flow is the one declaring an observer gain gamma
    observer = any(p.name == "gamma" for p in method_class(f["kind"]).params)
    rate = None
    if compressor is not None and observer:
        rate = certified_rate(compressor)
    auto = auto_gains(
        lambda_max=graph.lambda_max,
        smoothness=smoothness,
        step=step,
        compressor_rate=rate,
        compressor_period=getattr(compressor, "period", 0.0) if compressor else 0.0,
        random_support=bool(getattr(compressor, "random_support", False)),
        observer=observer,
        scheme=scheme,
        lambda_2=graph.lambda_2,
        strong_convexity=strong_convexity,
        delivery=delivery,
    )
    for k in GAIN_KEYS:
        if f.get(k) == "auto":
            f[k] = getattr(auto, k)
    return f


def run_config(config: dict, *, progress: bool = False, stop=None, built=None):
    """Build and solve a resolved config on the simulator; returns ``(run, solution)``.

    ``built(run)`` is called once everything is built and checked, before the first round
    (``stflow run --force`` removes the earlier results only then: a config that fails to
    build leaves them untouched)."""
    from ..engines.simulate import solve
    from ..network import make_channel

    run = build_run(config)
    if built is not None:
        built(run)
    s = run.config["solver"]
    sol = solve(
        run.flow,
        step=s["step"],
        horizon=s["horizon"],
        method=s["scheme"],
        record_every=s["record_every"],
        tolerance=s["tolerance"],
        x0=run.x0,
        v0=run.v0,
        progress=progress,
        local_steps=s["local_steps"],
        stop=stop,
        step_decay=s["step_decay"],
        target_accuracy=s["target_accuracy"],
        time_model=time_model(run.config),
        channel=make_channel(run.config, run.graph),
    )
    return run, sol


def time_model(config: dict):
    """The :class:`stflow.metrics.TimeModel` of a resolved config's ``[network]`` and
    ``[compute]`` sections."""
    from ..metrics import TimeModel

    bw = config["network"]["bandwidth"]
    return TimeModel(bandwidth=math.inf if bw is None else bw,
                     latency=config["network"]["latency"],
                     seconds_per_sample=config["compute"]["seconds_per_sample"])

