"""The config's schema and its validation: :data:`SCHEMA`, :func:`load_config`,
:func:`resolve_config` (types, ranges, unknown keys, paths relative to the config file)."""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

from ..errors import InputError

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
        "split": ("iid", "data table: how the training rows are dealt to the agents: iid "
                  "(shuffled rows) | by_label (rows sorted by label: each agent sees few "
                  "classes) | dirichlet (label skew: each class divided by "
                  "Dirichlet(concentration) proportions) | shards (labels_per_agent "
                  "label-sorted shards per agent) | quantity (iid labels, "
                  "Dirichlet(concentration) sizes); docs/problems.md"),
        "concentration": (0.5, 'data table, split = "dirichlet" or "quantity": Dirichlet '
                          "concentration alpha > 0 (small: skewed; large: near iid)"),
        "labels_per_agent": (2, 'data table, split = "shards": shards (so classes) per '
                             "agent, 1 <= L <= classes"),
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
             ("problem", "labels_per_agent"),
             ("graph", "seed"), ("graph", "chords"),
             ("solver", "record_every"), ("solver", "local_steps")}
_FLOAT_KEYS = {("problem", "regularization"), ("problem", "concentration"),
               ("graph", "p"), ("graph", "radius"),
               ("solver", "step"), ("solver", "horizon"), ("solver", "tolerance"),
               ("solver", "step_decay"), ("solver", "target_accuracy"),
               ("network", "bandwidth"), ("network", "latency"),
               ("compute", "seconds_per_sample")}
_STR_KEYS = {("problem", "kind"), ("problem", "data"), ("problem", "split"),
             ("graph", "kind"), ("flow", "kind"),
             ("compressor", "spec"), ("solver", "method")}
GAIN_KEYS = ("alpha", "beta", "eta", "gamma")
from ..compressors.spec import MAX_STAGES  # noqa: E402  (one limit: the parser's)

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
    from ..methods import METHOD_KINDS, method_params

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

