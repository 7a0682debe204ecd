"""The TOML run configuration: schema, validation, and building the run's objects.

One table per section (``problem``, ``graph``, ``flow``, ``compressor``, ``solver``, ``init``);
:data:`SCHEMA` lists every key with its default and meaning, and drives both validation
(unknown keys are errors that list the valid ones) and ``docs/config.md``. Paths in a config
file are relative to the file.
"""

from __future__ import annotations

import copy
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = [
    "SCHEMA",
    "load_config",
    "resolve_config",
    "build_run",
    "build_problem",
    "build_method",
    "Run",
    "run_config",
    "config_markdown",
    "resolve_auto_gains",
]

_REQUIRED = object()

#: section -> key -> (default, description). ``_REQUIRED`` marks keys without a default.
SCHEMA: dict[str, dict[str, tuple]] = {
    "problem": {
        "kind": ("quadratic", "quadratic | least_squares | logistic | softmax (docs/problems.md)"),
        "agents": (10, "number of agents N (ignored when `data` holds problem arrays)"),
        "dim": (8, "dimension d of the decision variable (ignored when `data` is given)"),
        "seed": (0, "seed of the generated data (of the shuffle, for a data table)"),
        "data": (None, "path to a .npz with the problem's arrays (Q,b | A,b | A,y), or a data "
                 "table: a .csv with a header row, or a .npz with X and `target` (docs/reproduce.md)"),
        "regularization": (0.0, "L2 weight of each logistic / softmax cost (>= 0; softmax "
                           "needs > 0 to be strongly convex)"),
        "samples": (None, "samples per agent m of generated least_squares / logistic / softmax "
                    "data"),
        "classes": (None, "softmax on generated data: classes K (default 2); dim = features x K"),
        "batch": (None, "rows B per stochastic gradient evaluation (SPEC section 7; none = full "
                  "gradients; least_squares / logistic / softmax)"),
        "dataset": (None, "built-in data table: breast_cancer | diabetes | digits (no download)"),
        "target": (None, "data table: name of the target column (CSV default: the last one)"),
        "standardize": (True, "data table: standardize features (and a least-squares target)"),
        "intercept": (True, "data table: append a column of ones"),
        "test_fraction": (0.0, "data table: share of rows held out, 0 <= f < 1"),
        "split": ("iid", "data table: iid (shuffled rows) | by_label (rows sorted by label, "
                  "then dealt: each agent sees few classes)"),
    },
    "graph": {
        "kind": ("ring", "ring | path | star | complete | grid | erdos_renyi | geometric | edges"),
        "edges": (None, "list of [i, j] pairs (kind = \"edges\")"),
        "weights": (None, "edge weights: one number, or one per edge (kind = \"edges\")"),
        "seed": (0, "seed of random graphs"),
        "p": (None, "edge probability (erdos_renyi; default 2 ln(N)/N)"),
        "radius": (None, "connection radius (geometric)"),
        "chords": (0, "extra random edges added to a ring"),
    },
    "flow": {
        "kind": (
            "observer",
            "uncompressed | direct | observer, or a peer method (docs/peers.md): dgd | "
            "gradient_tracking | nids | choco | lead; the other keys of [flow] are the "
            "chosen method's own parameters (tables below)",
        ),
    },
    "compressor": {
        "spec": ("topk:k=2", "compressor spec, e.g. topk:k=2, quantize:bits=4, A|B, py:mod:attr"),
    },
    "solver": {
        "method": ("euler", "scheme of the primal-dual flows: euler (SPEC 5, pinned) | predict | "
                   "gauss_seidel (docs/schemes.md); the peers run their paper's update under "
                   "each; continuous = solve_ivp (flows only, no bits)"),
        "step": (1e-3, "Euler step h = time of one communication round"),
        "horizon": (30.0, "final time; steps = round(horizon / step)"),
        "record_every": (100, "record metrics every this many steps (and at 0 and the end)"),
        "tolerance": (1e-8, "converged when the final relative error <= tolerance"),
        "local_steps": (1, "K: per round, K - 1 local updates without messages, then the "
                        "round (SPEC section 7; flows, dgd and choco)"),
        "step_decay": (None, "k0: decaying step h_k = h / (1 + k / k0) (the flows' h, the "
                       "peers' lr), to get below the constant-step noise floor of stochastic "
                       "gradients; none = constant"),
        "target_accuracy": (None, "classification: converged when the mean agent test "
                            "accuracy reaches this (in (0, 1]); problems without x* need it"),
    },
    "network": {
        "bandwidth": (None, "bits per second per link (none = infinite); modeled_seconds "
                      "(SPEC section 8)"),
        "latency": (0.0, "seconds per round (>= 0)"),
    },
    "compute": {
        "seconds_per_sample": (0.0, "seconds per row of a gradient evaluation (>= 0)"),
    },
    "init": {
        "x0": (None, "X(0): N rows of d numbers, one row of d (copied), or a .npy path"),
        "v0": (None, "V(0) with zero column sums: N rows of d numbers or a .npy path"),
    },
}

_INT_KEYS = {("problem", "agents"), ("problem", "dim"), ("problem", "seed"),
             ("problem", "samples"), ("problem", "classes"), ("problem", "batch"),
             ("graph", "seed"), ("graph", "chords"),
             ("solver", "record_every"), ("solver", "local_steps")}
_FLOAT_KEYS = {("problem", "regularization"), ("graph", "p"), ("graph", "radius"),
               ("solver", "step"), ("solver", "horizon"), ("solver", "tolerance"),
               ("solver", "step_decay"), ("solver", "target_accuracy"),
               ("network", "bandwidth"), ("network", "latency"),
               ("compute", "seconds_per_sample")}
_STR_KEYS = {("problem", "kind"), ("problem", "data"), ("problem", "split"),
             ("graph", "kind"), ("flow", "kind"),
             ("compressor", "spec"), ("solver", "method")}
GAIN_KEYS = ("alpha", "beta", "eta", "gamma")


def load_config(path) -> dict:
    """Read a TOML file and return the validated config with defaults filled in.

    Relative paths (``problem.data``, ``init.x0``/``v0`` given as files) are resolved against
    the config file's folder.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"config file {str(path)!r} not found: check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    return resolve_config(raw, base_dir=path.resolve().parent)


def resolve_config(raw: dict, *, base_dir=None) -> dict:
    """Validate a config mapping against :data:`SCHEMA` and fill in defaults.

    Examples
    --------
    >>> cfg = resolve_config({"compressor": {"spec": "quantize:bits=4"}})
    >>> cfg["compressor"]["spec"], cfg["solver"]["step"], cfg["flow"]["kind"]
    ('quantize:bits=4', 0.001, 'observer')
    >>> resolve_config({"solver": {"stepsize": 0.1}})
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: unknown key [solver] stepsize: valid keys are method, step, horizon, record_every, tolerance, local_steps, step_decay, target_accuracy
    """
    if not isinstance(raw, dict):
        raise InputError("config must be a table of sections")
    out: dict = {}
    for section in raw:
        if section not in SCHEMA:
            raise InputError(
                f"unknown section [{section}]: valid sections are {', '.join(SCHEMA)}"
            )
        if not isinstance(raw[section], dict):
            raise InputError(f"[{section}] must be a table of keys")
    for section, keys in SCHEMA.items():
        given = raw.get(section, {})
        if section == "flow":
            out["flow"] = _resolve_flow(given)
            continue
        for key in given:
            if key not in keys:
                raise InputError(
                    f"unknown key [{section}] {key}: valid keys are {', '.join(keys)}"
                )
        sec = {}
        for key, (default, _doc) in keys.items():
            value = copy.deepcopy(given.get(key, default))
            sec[key] = _check_type(section, key, value)
        out[section] = sec
    if base_dir is not None:
        base = Path(base_dir)
        if out["problem"]["data"] is not None:
            out["problem"]["data"] = str((base / out["problem"]["data"]).resolve())
        for key in ("x0", "v0"):
            if isinstance(out["init"][key], str):
                out["init"][key] = str((base / out["init"][key]).resolve())
    return out


def _check_type(section: str, key: str, value):
    where = f"[{section}] {key}"
    if value is None:
        return None
    if (section, key) in _INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where} must be an integer (got {value!r})")
        if key in ("agents", "dim", "record_every", "samples", "local_steps") and value < 1:
            raise InputError(f"{where} must be >= 1 (got {value})")
        if key == "chords" and value < 0:
            raise InputError(f"{where} must be >= 0 (got {value})")
        return value
    if (section, key) in _FLOAT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{where} must be a number (got {value!r})")
        value = float(value)
        if not math.isfinite(value):
            raise InputError(f"{where} must be finite (got {value})")
        if key in ("step", "horizon", "tolerance") and value <= 0:
            raise InputError(f"{where} must be > 0 (got {value}): e.g. step = 1e-3")
        if key == "regularization" and value < 0:
            raise InputError(f"{where} must be >= 0 (got {value})")
        if key in ("bandwidth", "step_decay") and value <= 0:
            raise InputError(f"{where} must be > 0 (got {value}): e.g. {key} = 1e6, or omit it")
        if key in ("latency", "seconds_per_sample") and value < 0:
            raise InputError(f"{where} must be >= 0 (got {value}): e.g. {key} = 0")
        if key == "target_accuracy" and not 0 < value <= 1:
            raise InputError(f"{where} must be in (0, 1] (got {value}): e.g. 0.93, or omit it")
        return value
    if (section, key) in _STR_KEYS:
        if not isinstance(value, str):
            raise InputError(f"{where} must be a string (got {value!r})")
        return value
    return value


def _resolve_flow(given: dict) -> dict:
    """``[flow]``: ``kind`` plus exactly the chosen method's declared parameters."""
    from .methods import METHOD_KINDS, method_params

    kind = given.get("kind", SCHEMA["flow"]["kind"][0])
    if not isinstance(kind, str) or kind not in METHOD_KINDS:
        raise InputError(
            f"[flow] kind must be one of {', '.join(METHOD_KINDS)} (got {kind!r}): pick one "
            "of those"
        )
    params = method_params(kind)
    names = [p.name for p in params]
    for key in given:
        if key != "kind" and key not in names:
            raise InputError(
                f'unknown key [flow] {key} for kind = "{kind}": its keys are '
                f"{', '.join(['kind', *names])} (docs/config.md lists every method's keys)"
            )
    out = {"kind": kind}
    for p in params:
        out[p.name] = p.check(copy.deepcopy(given.get(p.name, p.default)), kind)
    return out


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
    from .graphs import make_graph

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
    v0 = _load_init(cfg["init"]["v0"], "v0")
    compressor, method = build_method(cfg, problem, graph, smoothness=problem.smoothness)
    return Run(cfg, problem, graph, compressor, method, x0, v0)


def build_problem(p: dict):
    """The problem of a resolved ``[problem]`` section (all agents)."""
    from .problems import make_problem

    if p["dataset"] is not None or p["target"] is not None or str(p["data"]).endswith(".csv"):
        from .datasets import problem_from_config

        return problem_from_config(p)
    if p["split"] != "iid":
        raise InputError(
            f"[problem] split = {p['split']!r} needs a data table: set dataset = \"digits\""
            " (or data/target), or remove split"
        )
    return make_problem(
        p["kind"],
        agents=p["agents"],
        dim=p["dim"],
        seed=p["seed"],
        data=p["data"],
        regularization=p["regularization"],
        samples=p["samples"],
        classes=p["classes"],
        batch=p["batch"],
    )


def build_method(cfg: dict, problem, graph, *, smoothness):
    """``(compressor, method)`` of a resolved config on ``problem`` (all agents, or one MPI
    block's local costs): ``"auto"`` values in ``cfg["flow"]`` are resolved in place."""
    from .compressors import make_compressor
    from .methods import FLOW_KINDS, SCHEMES, make_method, method_class

    f = cfg["flow"]
    cls = method_class(f["kind"])
    compressor = None
    if "compressed" in getattr(cls, "channels", ()) or f["kind"] in ("direct", "observer"):
        compressor = make_compressor(cfg["compressor"]["spec"], problem.dim)
    scheme = cfg["solver"]["method"]
    if f["kind"] in FLOW_KINDS:
        resolve_auto_gains(f, graph=graph, smoothness=smoothness, compressor=compressor,
                           step=cfg["solver"]["step"])
    params = {k: v for k, v in f.items() if k != "kind"}
    method = make_method(f["kind"], problem, graph, compressor,
                         scheme=scheme if scheme in SCHEMES else "euler", **params)
    for k in params:  # "auto" -> the value used, shown in summary.json
        f[k] = getattr(method, k)
    return compressor, method


def resolve_auto_gains(flow_section: dict, *, graph, smoothness, compressor, step) -> dict:
    """Replace every ``"auto"`` gain of a ``[flow]`` section in place (and return it).

    Uses :func:`stflow.methods.auto_gains` with the compressor's certified rate (observer flow
    only) and excitation period; shared by the simulator and the MPI engine so both run
    with the same gains.
    """
    from .methods import auto_gains

    f = flow_section
    if not any(f.get(k) == "auto" for k in GAIN_KEYS):
        return f
    rate = None
    if compressor is not None and f["kind"] == "observer":
        from .certify import certify

        rate = certify(compressor).rate
    auto = auto_gains(
        lambda_max=graph.lambda_max,
        smoothness=smoothness,
        step=step,
        compressor_rate=rate,
        compressor_period=getattr(compressor, "period", 0.0) if compressor else 0.0,
        observer=f["kind"] == "observer",
    )
    for k in GAIN_KEYS:
        if f.get(k) == "auto":
            f[k] = getattr(auto, k)
    return f


def run_config(config: dict, *, progress: bool = False, stop=None):
    """Build and solve a resolved config on the simulator; returns ``(run, solution)``."""
    from .engines.simulate import solve

    run = build_run(config)
    s = run.config["solver"]
    sol = solve(
        run.flow,
        step=s["step"],
        horizon=s["horizon"],
        method=s["method"],
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
    )
    return run, sol


def time_model(config: dict):
    """The :class:`stflow.metrics.TimeModel` of a resolved config's ``[network]`` and
    ``[compute]`` sections."""
    from .metrics import TimeModel

    bw = config["network"]["bandwidth"]
    return TimeModel(bandwidth=math.inf if bw is None else bw,
                     latency=config["network"]["latency"],
                     seconds_per_sample=config["compute"]["seconds_per_sample"])


def config_markdown() -> str:
    """The reference table of every section and key, as written to ``docs/config.md``."""
    lines = [
        "# Run configuration (`stflow run CONFIG.toml --out DIR`)",
        "",
        "A config is a TOML file with the sections below. Every key is optional; unknown",
        "sections or keys are errors that list the valid ones. Paths are relative to the config",
        "file. With `[problem] data`, N and d come from the arrays. `examples/quickstart.toml`",
        "is the canonical example. This file is generated by `stflow.config.config_markdown()`",
        "and `tests/test_docs.py` checks it against the code.",
        "",
    ]
    for section, keys in SCHEMA.items():
        lines += [f"## [{section}]", "", "| key | default | meaning |", "|---|---|---|"]
        for key, (default, doc) in keys.items():
            shown = "none" if default is None else repr(default).replace("'", '"')
            lines.append(f"| `{key}` | `{shown}` | {doc.replace('|', chr(92) + '|')} |")
        lines.append("")
        if section == "flow":
            lines += _method_tables()
    return "\n".join(lines)


def _method_tables() -> list[str]:
    from .methods import METHOD_KINDS, method_params

    lines = []
    for kind in METHOD_KINDS:
        lines += [f"### [flow] kind = \"{kind}\"", "", "| key | default | meaning |",
                  "|---|---|---|"]
        for p in method_params(kind):
            shown = repr(p.default).replace("'", '"')
            lines.append(f"| `{p.name}` | `{shown}` | {p.doc.replace('|', chr(92) + '|')} |")
        lines.append("")
    return lines
