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
    "Run",
    "run_config",
    "config_markdown",
    "resolve_auto_gains",
]

_REQUIRED = object()

#: section -> key -> (default, description). ``_REQUIRED`` marks keys without a default.
SCHEMA: dict[str, dict[str, tuple]] = {
    "problem": {
        "kind": ("quadratic", "quadratic | least_squares | logistic"),
        "agents": (10, "number of agents N (ignored when `data` holds problem arrays)"),
        "dim": (8, "dimension d of the decision variable (ignored when `data` is given)"),
        "seed": (0, "seed of the generated data (of the shuffle, for a data table)"),
        "data": (None, "path to a .npz with the problem's arrays (Q,b | A,b | A,y), or a data "
                 "table: a .csv with a header row, or a .npz with X and `target` (docs/reproduce.md)"),
        "regularization": (0.0, "L2 weight of the logistic problem (>= 0)"),
        "samples": (None, "samples per agent m of generated least_squares / logistic data"),
        "dataset": (None, "built-in data table: breast_cancer | diabetes (no download)"),
        "target": (None, "data table: name of the target column (CSV default: the last one)"),
        "standardize": (True, "data table: standardize features (and a least-squares target)"),
        "intercept": (True, "data table: append a column of ones"),
        "test_fraction": (0.0, "data table: share of rows held out, 0 <= f < 1"),
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
            "gradient_tracking | nids | choco | lead",
        ),
        "alpha": (2.0, "consensus gain (> 0, or \"auto\")"),
        "beta": (2.0, "dual gain (> 0, or \"auto\")"),
        "eta": (1.0, "gradient gain (> 0, or \"auto\")"),
        "gamma": (50.0, "observer gain (> 0, or \"auto\")"),
        "lr": (
            "auto",
            "peer methods: step size (> 0, or \"auto\" = c / L_f, L_f = max_i Lipschitz "
            "constant of grad f_i; c = 0.5 dgd, 0.3 gradient_tracking, 1.0 nids, 0.5 choco, "
            "0.5 lead)",
        ),
        "choco_gamma": (0.1, "choco: consensus step gamma in (0, 1]"),
        "lead_alpha": (0.1, "lead: weight alpha in (0, 1] of the compressed-state tracking H"),
        "lead_gamma": (1.0, "lead: dual step gamma in (0, 2]"),
        "nids_c": (0.5, "nids: mixing W~ = I - c (I - W), c in (0, 1]; 0.5 = exact diffusion"),
    },
    "compressor": {
        "spec": ("topk:k=2", "compressor spec, e.g. topk:k=2, quantize:bits=4, A|B, py:mod:attr"),
    },
    "solver": {
        "method": ("euler", "euler | continuous (solve_ivp, no bits)"),
        "step": (1e-3, "Euler step h = time of one communication round"),
        "horizon": (30.0, "final time; steps = round(horizon / step)"),
        "record_every": (100, "record metrics every this many steps (and at 0 and the end)"),
        "tolerance": (1e-8, "converged when the final relative error <= tolerance"),
    },
    "init": {
        "x0": (None, "X(0): N rows of d numbers, one row of d (copied), or a .npy path"),
        "v0": (None, "V(0) with zero column sums: N rows of d numbers or a .npy path"),
    },
}

_INT_KEYS = {("problem", "agents"), ("problem", "dim"), ("problem", "seed"),
             ("problem", "samples"), ("graph", "seed"), ("graph", "chords"),
             ("solver", "record_every")}
_FLOAT_KEYS = {("problem", "regularization"), ("graph", "p"), ("graph", "radius"),
               ("solver", "step"), ("solver", "horizon"), ("solver", "tolerance"),
               ("flow", "choco_gamma"), ("flow", "lead_alpha"), ("flow", "lead_gamma"),
               ("flow", "nids_c")}
_STR_KEYS = {("problem", "kind"), ("problem", "data"), ("graph", "kind"), ("flow", "kind"),
             ("compressor", "spec"), ("solver", "method")}
GAIN_KEYS = ("alpha", "beta", "eta", "gamma")


def load_config(path) -> dict:
    """Read a TOML file and return the validated config with defaults filled in.

    Relative paths (``problem.data``, ``init.x0``/``v0`` given as files, a
    ``py:path/to/file.py:ATTR`` stage of ``compressor.spec``) are resolved against the config
    file's folder.
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
    stflow.errors.InputError: unknown key [solver] stepsize: valid keys are method, step, horizon, record_every, tolerance
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
        out["compressor"]["spec"] = _resolve_spec_files(out["compressor"]["spec"], base)
    return out


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
    if (section, key) in _INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where} must be an integer (got {value!r})")
        if key in ("agents", "dim", "record_every", "samples") and value < 1:
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
        return value
    if (section, key) in _STR_KEYS:
        if not isinstance(value, str):
            raise InputError(f"{where} must be a string (got {value!r})")
        return value
    if section == "flow" and key in (*GAIN_KEYS, "lr"):
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f'{where} must be a positive number or "auto" (got {value!r})')
        if not (math.isfinite(value) and value > 0):
            raise InputError(
                f'`{key}` must be a positive finite number (got {value!r}): '
                f'set [flow] {key} > 0 or "auto"'
            )
        return float(value)
    return value


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
    """Build problem, graph, compressor and flow from a resolved config.

    ``"auto"`` gains are replaced by :func:`stflow.flows.auto_gains` and written back into the
    returned ``Run.config`` (so ``summary.json`` shows the values used).
    """
    from .compressors import make_compressor
    from .flows import FLOW_KINDS, Gains, PrimalDualFlow
    from .graphs import make_graph
    from .peers import PEER_KINDS, make_peer
    from .problems import make_problem

    cfg = copy.deepcopy(config)
    p = cfg["problem"]
    if p["dataset"] is not None or p["target"] is not None or str(p["data"]).endswith(".csv"):
        from .datasets import problem_from_config

        problem = problem_from_config(p)
    else:
        problem = make_problem(
            p["kind"],
            agents=p["agents"],
            dim=p["dim"],
            seed=p["seed"],
            data=p["data"],
            regularization=p["regularization"],
            samples=p["samples"],
        )
    g = cfg["graph"]
    graph_kw = {k: g[k] for k in ("edges", "weights", "p", "radius") if g[k] is not None}
    graph = make_graph(g["kind"], problem.n_agents, seed=g["seed"], chords=g["chords"], **graph_kw)
    if graph.n != problem.n_agents:
        raise InputError(
            f"[graph] has {graph.n} agents but the problem has {problem.n_agents}: "
            "make the edge list cover agents 0..N-1"
        )
    f = cfg["flow"]
    x0 = _load_init(cfg["init"]["x0"], "x0")
    v0 = _load_init(cfg["init"]["v0"], "v0")
    if f["kind"] in PEER_KINDS:
        compressor = None
        if f["kind"] in ("choco", "lead"):
            compressor = make_compressor(cfg["compressor"]["spec"], problem.dim)
        params = {"lr": f["lr"]}
        if f["kind"] == "choco":
            params["gamma"] = f["choco_gamma"]
        elif f["kind"] == "lead":
            params.update(alpha=f["lead_alpha"], gamma=f["lead_gamma"])
        elif f["kind"] == "nids":
            params["c"] = f["nids_c"]
        flow = make_peer(f["kind"], problem, graph, compressor, **params)
        f["lr"] = flow.lr  # "auto" -> the value used, shown in summary.json
        return Run(cfg, problem, graph, compressor, flow, x0, v0)
    if f["kind"] not in FLOW_KINDS:
        raise InputError(
            f"[flow] kind must be one of {', '.join(FLOW_KINDS + PEER_KINDS)} "
            f"(got {f['kind']!r}): pick one of those"
        )
    compressor = None
    if f["kind"] != "uncompressed":
        compressor = make_compressor(cfg["compressor"]["spec"], problem.dim)
    resolve_auto_gains(
        f, graph=graph, smoothness=problem.smoothness, compressor=compressor,
        step=cfg["solver"]["step"],
    )
    gains = Gains(**{k: f[k] for k in GAIN_KEYS})
    flow = PrimalDualFlow(f["kind"], problem, graph, compressor, gains=gains)
    return Run(cfg, problem, graph, compressor, flow, x0, v0)


def resolve_auto_gains(flow_section: dict, *, graph, smoothness, compressor, step) -> dict:
    """Replace every ``"auto"`` gain of a ``[flow]`` section in place (and return it).

    Uses :func:`stflow.flows.auto_gains` with the compressor's certified rate (observer flow
    only) and excitation period; shared by the simulator and the MPI backend so both run
    with the same gains.
    """
    from .flows import auto_gains

    f = flow_section
    if not any(f[k] == "auto" for k in GAIN_KEYS):
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
        if f[k] == "auto":
            f[k] = getattr(auto, k)
    return f


def run_config(config: dict, *, progress: bool = False):
    """Build and solve a resolved config; returns ``(run, solution)``."""
    from .solve import solve

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
    )
    return run, sol


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
    return "\n".join(lines)
