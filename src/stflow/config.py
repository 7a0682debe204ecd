"""The TOML run configuration: schema, validation, and building the run's objects.

One table per section (``problem``, ``graph``, ``flow``, ``compressor``, ``solver``, ``init``);
:data:`SCHEMA` lists every key with its default and meaning, and drives both validation
(unknown keys are errors that list the valid ones) and ``docs/config.md``. Every path in a
config file is relative to the file's folder, ``py:path/to/file.py:ATTR`` compressors included.
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
    "estimate_memory",
    "total_memory",
    "preflight",
    "MAX_STEPS",
    "MAX_STAGES",
]

_REQUIRED = object()

#: section -> key -> (default, description). ``_REQUIRED`` marks keys without a default.
SCHEMA: dict[str, dict[str, tuple]] = {
    "problem": {
        "kind": ("quadratic", "quadratic | least_squares | logistic | softmax (docs/problems.md)"
                 " | mlp (a neural network, PyTorch: docs/mlp.md)"),
        "hidden": ([64], "mlp: widths of the hidden layers (ReLU), e.g. [64] or [128, 64]"),
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
        "method": ("predict", "scheme of the primal-dual flows: predict (the default: fewest "
                   "bits in the measured comparison, docs/tune.md) | euler (SPEC 5, the "
                   "paper's pinned scheme) | gauss_seidel (docs/schemes.md); the peers run "
                   "their paper's update under each; continuous = solve_ivp (flows only, no "
                   "bits)"),
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
#: Most stages a ``[compressor] spec`` may compose with ``|``.
MAX_STAGES = 64
#: Smallest allowed value of the integer keys, and the fix a message suggests.
_INT_MIN = {"agents": 2, "dim": 1, "record_every": 1, "samples": 1, "chords": 0, "seed": 0,
            "local_steps": 1, "batch": 1, "classes": 2}
_INT_FIX = {
    "agents": "a network needs at least two agents; set [problem] agents >= 2",
    "seed": "give a non-negative seed, e.g. seed = 0",
}
_EXAMPLES = {"step": 1e-3, "horizon": 30.0, "tolerance": 1e-8, "record_every": 100,
             "agents": 10, "dim": 8, "samples": 20}


def load_config(path) -> dict:
    """Read a TOML file and return the validated config with defaults filled in.

    Relative paths (``problem.data``, ``init.x0``/``v0`` given as files, a
    ``py:path/to/file.py:ATTR`` stage of ``compressor.spec``) are resolved against the config
    file's folder. A missing, unreadable, non-UTF-8, invalid or empty file is an
    :class:`~stflow.errors.InputError` (an empty config is refused rather than run with every
    default).
    """
    path = Path(path)
    where = f"config file {str(path)!r}"
    if str(path).strip() == "":
        raise InputError("config file path is empty: give a TOML file, e.g. examples/quickstart.toml")
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise InputError(f"{where} not found: check the path") from None
    except IsADirectoryError:
        raise InputError(f"{where} is a folder: give the TOML file inside it") from None
    except PermissionError:
        raise InputError(f"{where} cannot be read (permission denied): fix its permissions") from None
    except OSError as exc:
        raise InputError(f"{where} cannot be read ({exc.strerror or exc}): check the path") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{where} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}): save it as UTF-8 (TOML files must be UTF-8)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where} is not valid TOML: {exc}") from None
    if not raw:
        raise InputError(
            f"{where} is empty: add at least [problem] and [solver], or start from "
            "examples/quickstart.toml"
        )
    return resolve_config(raw, base_dir=path.resolve().parent)


def resolve_config(raw: dict, *, base_dir=None) -> dict:
    """Validate a config mapping against :data:`SCHEMA` and fill in defaults.

    With ``base_dir`` (the config file's folder), every relative path ``p`` becomes the
    absolute ``base_dir / p``: ``[problem] data``, ``[init] x0``/``v0`` given as
    files, and the file of each ``py:FILE:ATTR[:key=value,...]`` stage of ``[compressor]
    spec`` whose ``FILE`` contains a ``/`` or ends in ``.py``. A ``py:MODULE:ATTR`` stage (a
    module on PYTHONPATH) stays as it is.

    Examples
    --------
    >>> cfg = resolve_config({"compressor": {"spec": "quantize:bits=4"}})
    >>> cfg["compressor"]["spec"], cfg["solver"]["step"], cfg["flow"]["kind"]
    ('quantize:bits=4', 0.001, 'observer')
    >>> spec = "topk:k=4|py:lib/comp.py:make:tau=0.1|py:my_module:make"
    >>> resolve_config({"compressor": {"spec": spec}}, base_dir="/runs")["compressor"]["spec"]
    'topk:k=4|py:/runs/lib/comp.py:make:tau=0.1|py:my_module:make'
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
    solver = out["solver"]
    if solver["step"] > solver["horizon"]:
        raise InputError(
            f"[solver] step must be <= horizon (got step = {solver['step']:g}, horizon = "
            f"{solver['horizon']:g}): lower step or raise horizon"
        )
    if base_dir is not None:
        base = Path(base_dir)
        if out["problem"]["data"] is not None:
            out["problem"]["data"] = str((base / out["problem"]["data"]).resolve())
        for key in ("x0", "v0"):
            if isinstance(out["init"][key], str):
                out["init"][key] = str((base / out["init"][key]).resolve())
        out["compressor"]["spec"] = _resolve_spec_files(out["compressor"]["spec"], base)
    return out


def estimate_memory(config: dict) -> dict[str, int]:
    r"""Bytes a resolved config needs, estimated before anything is allocated.

    Float64 entries of the generated problem data (quadratic :math:`N d^2 + N d`, least
    squares and logistic :math:`N m d + N m` with :math:`m` = ``samples``), the centralized
    solve (:math:`3 d^2`), the state and its per-step work arrays (:math:`12 N d`), the
    graph (:math:`N^2` pair draws for complete, erdos_renyi and geometric graphs, else
    about 64 bytes per agent and edge) and the recorded rows (400 bytes per row). With
    ``[problem] data`` or ``dataset`` the arrays come from a file and count 0 (the file's
    own size bounds them).

    Examples
    --------
    >>> est = estimate_memory(resolve_config({"problem": {"agents": 10**9}}))
    >>> est["problem"] == 8 * (10**9 * 64 + 10**9 * 8 + 3 * 64), est["state"] == 8 * 12 * 8 * 10**9
    (True, True)
    """
    p, g, s = config["problem"], config["graph"], config["solver"]
    n, d = int(p["agents"]), int(p["dim"])
    if p["data"] is not None or p["dataset"] is not None:
        problem = 0
    elif p["kind"] == "quadratic":
        problem = 8 * (n * d * d + n * d + 3 * d * d)
    else:
        m = p["samples"] or (d if p["kind"] == "least_squares" else 20)
        problem = 8 * (n * m * d + n * m + 3 * d * d)
    pairs = n * n if g["kind"] in ("complete", "erdos_renyi", "geometric") else 0
    graph = 8 * pairs + 64 * (3 * n + int(g["chords"] or 0))
    steps = _step_count(s)
    rows = steps // max(1, int(s["record_every"])) + 2
    return {"problem": problem, "state": 8 * 12 * n * d, "graph": graph, "records": 400 * rows}


def total_memory() -> int:
    """Physical memory of this machine in bytes (0 when the OS does not say)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return 0


#: ``stflow run`` asks for ``--force`` above this many steps.
MAX_STEPS = 10**8


def _step_count(solver: dict) -> int:
    return max(1, int(round(solver["horizon"] / solver["step"])))


def preflight(config: dict, *, force: bool = False, memory: int | None = None) -> None:
    """Refuse, before anything is built, a run this machine cannot hold or finish.

    Raises :class:`~stflow.errors.InputError` when :func:`estimate_memory` exceeds
    ``memory`` (default: :func:`total_memory`), naming the estimate and the keys to lower;
    unless ``force``, when ``horizon / step`` exceeds :data:`MAX_STEPS` steps; and when
    ``method = "continuous"`` meets a compressor that jumps with z (top-k, quantizers,
    sign): ``solve_ivp`` would never finish.

    Examples
    --------
    >>> preflight(resolve_config({"problem": {"dim": 10**10}}), memory=2**34)
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [problem] agents = 10, dim = 10000000000 need about 1.04e+13 GB of memory (problem data 1.04e+13 GB), more than this machine's 17.2 GB: lower agents, dim or samples
    >>> preflight(resolve_config({"solver": {"horizon": 1e6}}))
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [solver] horizon / step = 1e+06 / 0.001 = 1e+09 steps, more than 1e+08: lower horizon or raise step, or add --force to run that many
    """
    s = config["solver"]
    steps = _step_count(s)
    if steps > MAX_STEPS and not force:
        raise InputError(
            f"[solver] horizon / step = {s['horizon']:g} / {s['step']:g} = {steps:.3g} steps, "
            f"more than {MAX_STEPS:.0e}: lower horizon or raise step, or add --force to run "
            "that many"
        )
    if s["method"] == "continuous" and config["flow"]["kind"] in ("direct", "observer"):
        from .compressors import _CLASSES

        spec = config["compressor"]["spec"]
        jumps = [n for n in (stage.split(":")[0].strip() for stage in spec.split("|"))
                 if n in _CLASSES and not _CLASSES[n].linear]
        if jumps:
            raise InputError(
                f'[solver] method = "continuous" cannot integrate the compressor `{spec}`: '
                f"{jumps[0]} jumps with z, so solve_ivp's step collapses at its switching "
                'surfaces and never finishes; use method = "euler" (one round per step), or '
                "a compressor linear in z (identity, scalarize, randk)"
            )
    est = estimate_memory(config)
    total = sum(est.values())
    memory = total_memory() if memory is None else memory
    if not memory or total <= memory:
        return
    gb = 1e9
    have = f"more than this machine's {memory / gb:.3g} GB"
    if est["records"] >= 0.5 * total:
        rows = est["records"] // 400
        raise InputError(
            f"[solver] horizon / step / record_every = {rows:.3g} recorded rows need about "
            f"{total / gb:.3g} GB of memory, {have}: raise record_every or lower horizon"
        )
    p = config["problem"]
    parts = ", ".join(
        f"{name} {est[key] / gb:.3g} GB"
        for name, key in (("problem data", "problem"), ("state", "state"), ("graph", "graph"))
        if est[key] >= 0.1 * total
    )
    raise InputError(
        f"[problem] agents = {p['agents']}, dim = {p['dim']} need about {total / gb:.3g} GB "
        f"of memory ({parts}), {have}: lower agents, dim or samples"
    )


def _resolve_spec_files(spec: str, base: Path) -> str:
    """``spec`` with the file of every ``py:FILE:ATTR`` stage made absolute against ``base``.

    ``FILE`` is a file when it contains ``/`` (or ``\\``) or ends in ``.py``, as in
    :func:`stflow.compressors.make_compressor`; other stages are returned unchanged.
    """
    stages = spec.split("|")
    for i, stage in enumerate(stages):
        text = stage.strip()
        if not text.startswith("py:"):
            continue
        name, sep, rest = text[3:].partition(":")
        name = name.strip()
        if not (name.endswith(".py") or "/" in name or "\\" in name):
            continue
        path = str((base / name).resolve())
        if ":" in path or "|" in path:
            raise InputError(
                f"[compressor] spec: the file of {text!r} resolves to {path!r}, which contains "
                "':' or '|' (spec separators): move the file to a folder without them"
            )
        stages[i] = stage.replace(text, f"py:{path}{sep}{rest}", 1)
    return "|".join(stages)


def _check_type(section: str, key: str, value):
    where = f"[{section}] {key}"
    if value is None:
        return None
    if (section, key) == ("problem", "hidden"):
        if (not isinstance(value, list) or any(
                isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in value)):
            raise InputError(f"{where} must be a list of positive integers (got {value!r}): "
                             "e.g. hidden = [64], or [] for no hidden layer")
        return value
    if (section, key) in _INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(
                f"{where} must be an integer (got {value!r}): write it without quotes or "
                f"decimals, e.g. {key} = {_EXAMPLES.get(key, 1)}"
            )
        low = _INT_MIN.get(key)
        if low is not None and value < low:
            raise InputError(
                f"{where} must be >= {low} (got {value}): {_INT_FIX.get(key, f'set {key} >= {low}')}"
            )
        return value
    if (section, key) in _FLOAT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(
                f"{where} must be a number (got {value!r}): e.g. {key} = {_EXAMPLES.get(key, 1.0)}"
            )
        value = float(value)
        if not math.isfinite(value):
            raise InputError(
                f"{where} must be finite (got {value}): e.g. {key} = {_EXAMPLES.get(key, 1.0)}"
            )
        if key in ("step", "horizon", "tolerance") and value <= 0:
            raise InputError(f"{where} must be > 0 (got {value}): e.g. {key} = {_EXAMPLES[key]}")
        if key == "regularization" and value < 0:
            raise InputError(f"{where} must be >= 0 (got {value}): e.g. regularization = 0.1")
        if key in ("bandwidth", "step_decay") and value <= 0:
            raise InputError(f"{where} must be > 0 (got {value}): e.g. {key} = 1e6, or omit it")
        if key in ("latency", "seconds_per_sample") and value < 0:
            raise InputError(f"{where} must be >= 0 (got {value}): e.g. {key} = 0")
        if key == "target_accuracy" and not 0 < value <= 1:
            raise InputError(f"{where} must be in (0, 1] (got {value}): e.g. 0.93, or omit it")
        return value
    if (section, key) in _STR_KEYS:
        if not isinstance(value, str):
            raise InputError(
                f'{where} must be a string (got {value!r}): put it in quotes, e.g. {key} = "..."'
            )
        if (section, key) == ("compressor", "spec") and value.count("|") >= MAX_STAGES:
            raise InputError(
                f"[compressor] spec must have at most {MAX_STAGES} stages joined by `|` (got "
                f"{value.count('|') + 1}): compose fewer compressors"
            )
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
    if x0 is None:
        x0 = default_x0(problem)
    v0 = _load_init(cfg["init"]["v0"], "v0")
    compressor, method = build_method(cfg, problem, graph)
    return Run(cfg, problem, graph, compressor, method, x0, v0)


def default_x0(problem):
    """``X(0)`` when ``[init] x0`` is not given: the problem's initial point for every agent
    (a network's PyTorch initialization), else None (zeros)."""
    init = getattr(problem, "initial_point", None)
    if init is None:
        return None
    return np.tile(np.asarray(init(), dtype=np.float64), (problem.n_agents, 1))


def build_problem(p: dict):
    """The problem of a resolved ``[problem]`` section (all agents)."""
    from .problems import make_problem

    if p["kind"] == "mlp" and p["dataset"] is None and p["data"] is None:
        p = {**p, "dataset": "digits"}  # the network's default data set
    if p["kind"] != "mlp" and p["hidden"] != SCHEMA["problem"]["hidden"][0]:
        raise InputError(
            f"[problem] hidden applies to kind = \"mlp\" only (got hidden = {p['hidden']!r} "
            f"with kind = {p['kind']!r}): remove hidden"
        )
    if p["dataset"] is not None or p["target"] is not None or str(p["data"]).endswith(".csv"):
        from .datasets import problem_from_config

        return problem_from_config(p)
    if p["data"] is not None:
        from .datasets import check_npz_file

        check_npz_file(p["data"])
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


def build_method(cfg: dict, problem, graph, *, smoothness=None):
    """``(compressor, method)`` of a resolved config on ``problem`` (all agents, or one MPI
    block's local costs): ``"auto"`` values in ``cfg["flow"]`` are resolved in place.

    ``smoothness`` (L_f of all agents; default ``problem.smoothness``) is asked for only when
    a flow gain is ``"auto"``: for a network (the MLP) it costs a Hessian power iteration."""
    from .compressors import make_compressor
    from .methods import FLOW_KINDS, SCHEMES, make_method, method_class

    f = cfg["flow"]
    cls = method_class(f["kind"])
    compressor = None
    if "compressed" in getattr(cls, "channels", ()) or f["kind"] in ("direct", "observer"):
        compressor = make_compressor(cfg["compressor"]["spec"], problem.dim,
                                     shapes=getattr(problem, "param_shapes", None))
    scheme = cfg["solver"]["method"]
    if f["kind"] in FLOW_KINDS:
        curvature, mu = smoothness, None
        if any(f.get(k) == "auto" for k in GAIN_KEYS):  # x* and L_f only when "auto" needs it
            if smoothness is None:
                smoothness = problem.smoothness
            curvature = getattr(problem, "solution_curvature", smoothness)
            mu = getattr(problem, "strong_convexity", 0.0) / problem.n_agents
        resolve_auto_gains(f, graph=graph, smoothness=curvature, compressor=compressor,
                           step=cfg["solver"]["step"],
                           scheme=scheme if scheme in SCHEMES else "euler",
                           strong_convexity=mu)
    params = {k: v for k, v in f.items() if k != "kind"}
    method = make_method(f["kind"], problem, graph, compressor,
                         scheme=scheme if scheme in SCHEMES else "euler", **params)
    for k in params:  # "auto" -> the value used, shown in summary.json
        f[k] = getattr(method, k)
    return compressor, method


def resolve_auto_gains(flow_section: dict, *, graph, smoothness, compressor, step,
                       scheme: str = "euler", strong_convexity: float | None = None) -> dict:
    """Replace every ``"auto"`` gain of a ``[flow]`` section in place (and return it).

    Uses :func:`stflow.methods.auto_gains` with the compressor's certified rate (observer flow
    only) and excitation period, the graph's ``lambda_2`` and the mean cost's
    ``strong_convexity``; ``smoothness`` is the curvature that limits the gradient step
    (:func:`build_method` passes ``problem.solution_curvature``). Shared by the simulator
    and the MPI engine so both run with the same gains.
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
        scheme=scheme,
        lambda_2=graph.lambda_2,
        strong_convexity=strong_convexity,
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
        "sections or keys are errors that list the valid ones. With `[problem] data`, N and d",
        "come from the arrays. `examples/quickstart.toml` is the canonical example. This file",
        "is generated by `stflow.config.config_markdown()` and `tests/test_docs.py` checks it",
        "against the code.",
        "",
        "**Paths.** Every path in a config is relative to the config file's folder (not the",
        "working directory): `[problem] data`, `[init] x0` / `v0` given as `.npy` files, and",
        "the file of a `py:path/to/file.py:ATTR[:key=value,...]` stage of `[compressor] spec`",
        "(a name containing `/` or ending in `.py` is a file). A `py:MODULE:ATTR` stage (no",
        "`/`, no `.py`) names a module on PYTHONPATH and is imported as it is. Absolute paths",
        "stay as they are. Example: `examples/my_compressor.toml` loads",
        "`py:my_compressor.py:make`, the file next to it, from any working directory.",
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
