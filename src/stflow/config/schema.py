"""The config's schema and its validation: :data:`SCHEMA`, :func:`load_config`,
:func:`resolve_config` (types, ranges, unknown keys, paths relative to the config file)."""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

from ..errors import InputError
from ..network import NETWORK_PARAMS, SCHEDULE_PARAMS, check_network
from ..params import check_section

_REQUIRED = object()

#: section -> key -> (default, description). ``_REQUIRED`` marks keys without a default.
SCHEMA: dict[str, dict[str, tuple]] = {
    "problem": {
        "kind": ("quadratic", "quadratic | least_squares | logistic | softmax | mlp | torch "
                 "(docs/problems.md, docs/torch.md: your own PyTorch model), or "
                 "py:FILE:ATTR[:key=value,...], your own cost; the other keys "
                 "of [problem] are the chosen kind's own (tables below)"),
    },
    "graph": {
        "kind": ("ring", "ring | path | star | complete | grid | erdos_renyi | geometric | edges"),
        "edges": (None, "list of [i, j] pairs (kind = \"edges\")"),
        "weights": (None, "edge weights: one number, or one per edge (kind = \"edges\")"),
        "seed": (0, "seed of random graphs"),
        "p": (None, "edge probability (erdos_renyi; default 2 ln(N)/N)"),
        "radius": (None, "connection radius (geometric)"),
        "chords": (0, "extra random edges added to a ring"),
        **{p.name: (p.default, p.doc) for p in SCHEDULE_PARAMS},
    },
    "method": {
        "kind": (
            "observer",
            "uncompressed | direct | observer, or a peer method (docs/peers.md): dgd | "
            "gradient_tracking | nids | choco | lead, or py:FILE:ATTR[:key=value,...], your "
            "own Method subclass (docs/methods.md); the other keys of [method] are the "
            "chosen method's own parameters (tables below)",
        ),
    },
    "compressor": {
        "spec": ("topk:k=2", "compressor spec, e.g. topk:k=2, quantize:bits=4, A|B, py:mod:attr"),
    },
    "solver": {
        "scheme": ("predict", "scheme of the primal-dual flows (`method` is its old name): predict (the default: fewest "
                   "bits in the measured comparison, docs/tune.md) | euler (SPEC 5, the "
                   "paper's pinned scheme) | gauss_seidel (docs/schemes.md); the peers run "
                   "their paper's update under each; continuous = solve_ivp (flows only, no "
                   "bits)"),
        "step": (1e-3, "h: the time one round stands for (t_k = k h, the clock of time-varying "
                 "compressors and of the flows; for the flows h also multiplies every gain, for "
                 "the peers it is only the clock: their step is [method] lr)"),
        "horizon": (30.0, "final time T; rounds = round(horizon / step) for every method"),
        "record_every": (100, "record metrics every this many rounds (and at 0 and the end)"),
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
        **{p.name: (p.default, p.doc) for p in NETWORK_PARAMS},
    },
    "compute": {
        "seconds_per_sample": (0.0, "seconds per row of a gradient evaluation (>= 0)"),
    },
    "init": {
        "x0": (None, "X(0): N rows of d numbers, one row of d (copied), or a .npy path"),
        "v0": (None, "V(0) with zero column sums: N rows of d numbers or a .npy path"),
    },
}

_INT_KEYS = {("graph", "seed"), ("graph", "chords"),
             ("solver", "record_every"), ("solver", "local_steps")}
_FLOAT_KEYS = {("graph", "p"), ("graph", "radius"),
               ("solver", "step"), ("solver", "horizon"), ("solver", "tolerance"),
               ("solver", "step_decay"), ("solver", "target_accuracy"),
               ("network", "bandwidth"), ("network", "latency"),
               ("compute", "seconds_per_sample")}
_STR_KEYS = {("graph", "kind"), ("compressor", "spec"), ("solver", "scheme")}
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
    if str(path).strip() == "":  # before Path(), which reads "" as "." (a folder)
        raise InputError("config file path is empty: give a TOML file, e.g. examples/quickstart.toml")
    path = Path(path)
    where = f"config file {str(path)!r}"
    if path.exists() and not path.is_dir() and not path.is_file():
        # a FIFO, socket or device would block the read forever (or never end)
        raise InputError(f"{where} is not a regular file (a pipe, socket or device): "
                         "give a TOML file")
    try:
        # utf-8-sig: a byte-order mark some editors write is not part of the TOML
        raw = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
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
    except RecursionError:
        raise InputError(f"{where} nests arrays or tables too deeply for TOML to be read: "
                         "flatten it (stflow's keys nest at most two levels)") from None
    except ValueError:  # an integer of more than 4300 digits
        raise InputError(f"{where} holds an integer of more than 4300 digits: "
                         "write that number with fewer digits or in float notation") from None
    if not raw:
        raise InputError(
            f"{where} is empty: add at least [problem] and [solver], or start from "
            "examples/quickstart.toml"
        )
    config = resolve_config(raw, base_dir=path.resolve().parent)
    _warn_unused_compressor(raw, config["method"]["kind"], path.resolve().parent)
    return config


def resolve_config(raw: dict, *, base_dir=None) -> dict:
    """Validate a config mapping against :data:`SCHEMA` and fill in defaults.

    With ``base_dir`` (the config file's folder), every relative path ``p`` becomes the
    absolute ``base_dir / p``: ``[problem] data``, ``[init] x0``/``v0`` given as
    files, the file of a ``py:FILE:ATTR[:key=value,...]`` ``[problem] kind`` or ``[method]
    kind``, and the file of each such stage of ``[compressor] spec`` whose ``FILE``
    contains a ``/`` or ends in ``.py``. A ``py:MODULE:ATTR`` stage (a
    module on PYTHONPATH) stays as it is.

    Examples
    --------
    >>> cfg = resolve_config({"compressor": {"spec": "quantize:bits=4"}})
    >>> cfg["compressor"]["spec"], cfg["solver"]["step"], cfg["method"]["kind"]
    ('quantize:bits=4', 0.001, 'observer')
    >>> import pathlib, tempfile
    >>> base = pathlib.Path(tempfile.mkdtemp()).resolve()
    >>> _ = (base / "comp.py").write_text("")
    >>> spec = "topk:k=4|py:comp.py:make:tau=0.1|py:my_module:make"
    >>> cfg = resolve_config({"compressor": {"spec": spec}}, base_dir=base)
    >>> cfg["compressor"]["spec"].replace(str(base), "CONFIG_FOLDER")
    'topk:k=4|py:CONFIG_FOLDER/comp.py:make:tau=0.1|py:my_module:make'
    >>> resolve_config({"solver": {"stepsize": 0.1}})
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: unknown key [solver] stepsize: valid keys are scheme, step, horizon, record_every, tolerance, local_steps, step_decay, target_accuracy
    """
    if not isinstance(raw, dict):
        raise InputError("config must be a table of sections")
    raw = _old_names(raw)
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
        if section == "method":
            out["method"] = _resolve_flow(given, base_dir)
            continue
        if section == "problem":
            out["problem"] = _resolve_problem(given, base_dir)
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
    check_network(out)
    for key in ("x0", "v0"):
        _check_init(out["init"][key], key)
    if base_dir is not None:
        base = Path(base_dir)
        if isinstance(out["problem"].get("data"), str):
            out["problem"]["data"] = str((base / out["problem"]["data"]).resolve())
        for key in ("x0", "v0"):
            if isinstance(out["init"][key], str):
                out["init"][key] = str((base / out["init"][key]).resolve())
        out["compressor"]["spec"] = _resolve_spec_files(out["compressor"]["spec"], base)
        _resolve_model_files(out["problem"], base)
    return out


def _warn_unused_compressor(raw: dict, kind: str, base_dir) -> None:
    """A ``[compressor]`` written in a config file for a method that sends only raw vectors
    (DGD, gradient tracking, NIDS, EXTRA) is not used: say so rather than ignore it silently
    (issue 20). Configs built in code (a study's cells, the tuner's candidates) are not
    warned about: they set a compressor for every method of a comparison."""
    if not isinstance(raw.get("compressor"), dict):
        return
    spec = raw.get("compressor", {}).get("spec")
    if spec is None:
        return
    from ..methods import method_class

    if "compressed" not in method_class(kind, base_dir).channels:
        import warnings

        warnings.warn(f"[compressor] spec = {spec!r} is not used: [method] kind = {kind!r} "
                      "sends uncompressed float64 vectors (64 d bits a message); remove "
                      "[compressor] or pick a compressed method (observer, direct, choco, "
                      "lead, beer, motef)", stacklevel=2)


def _check_init(value, key: str) -> None:
    """``[init] x0``/``v0``: None, a .npy path, one row of d numbers or N rows of d numbers
    (booleans, strings, tables and ragged rows are refused here, before anything is built;
    the sizes N and d are checked against the problem when the run is built).

    Examples
    --------
    >>> _check_init([[1.0, 2.0], [3.0]], "x0")
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [init] x0 must be rectangular: row 1 has 1 numbers, row 0 has 2: give N rows of d numbers each
    """
    if value is None or isinstance(value, str):
        return
    where = f"[init] {key}"
    fix = (f"give one row of d numbers ({key} = [0.0, 1.0, ...], copied to every agent), N "
           f"rows of d numbers ({key} = [[...], [...]]) or a .npy file path")
    if not isinstance(value, list) or not value:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise InputError(f"{where} must be a list of numbers or of rows (got {shown}): {fix}")
    rows = value if isinstance(value[0], list) else [value]
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise InputError(f"{where} mixes numbers and rows (item {i} is {row!r}): {fix}")
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, int | float):
                at = f"{key}[{i}][{j}]" if rows is value else f"{key}[{j}]"
                shown = repr(v) if len(repr(v)) <= 40 else type(v).__name__
                raise InputError(f"{where} must hold numbers: {at} is {shown}: {fix}")
        if len(row) != len(rows[0]):
            raise InputError(
                f"{where} must be rectangular: row {i} has {len(row)} numbers, row 0 has "
                f"{len(rows[0])}: give N rows of d numbers each"
            )


def _resolve_model_files(problem: dict, base: Path) -> None:
    """``[problem] model`` and ``loss`` given as ``py:FILE:ATTR`` (``kind = "torch"``): the
    file made absolute against the config's folder, like ``[problem] kind``."""
    from ..user_code import is_py, resolve_path

    for key in ("model", "loss"):
        if is_py(problem.get(key)):
            problem[key] = resolve_path(problem[key], base, f"[problem] {key}")


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
        if not Path(path).is_file():
            from ..user_code import _not_found

            raise _not_found("[compressor] spec", spec, path,
                             f"{str(base)!r} (the config file's folder)")
        stages[i] = stage.replace(text, f"py:{path}{sep}{rest}", 1)
    return "|".join(stages)


def _check_type(section: str, key: str, value):
    where = f"[{section}] {key}"
    if value is None:
        return None
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


def _old_names(raw: dict) -> dict:
    """``[method]`` is read as ``[method]`` and ``[solver] scheme`` as ``[solver] scheme``
    (their names before the method section held peers and users' methods too)."""
    raw = dict(raw)
    if "flow" in raw:
        if "method" in raw:
            raise InputError(
                "[method] and [method] are one section ([method] is its old name): keep [method]"
            )
        raw["method"] = raw.pop("flow")
    solver = raw.get("solver")
    if isinstance(solver, dict) and "method" in solver:
        if "scheme" in solver:
            raise InputError(
                "[solver] scheme and scheme are one key (method is its old name): keep scheme"
            )
        solver = dict(solver)
        solver["scheme"] = solver.pop("method")
        raw["solver"] = solver
    return raw


def _kind_of(section: str, given: dict, base_dir, example: str) -> str:
    """The section's ``kind`` (a ``py:`` file made absolute against ``base_dir``)."""
    from ..user_code import is_py, resolve_path

    kind = given.get("kind", SCHEMA[section]["kind"][0])
    if not isinstance(kind, str):
        raise InputError(
            f"[{section}] kind must be a string (got {kind!r}): e.g. {example}, or kind = "
            f'"py:FILE.py:ATTR" (your own, docs/extending.md)'
        )
    if is_py(kind):
        return resolve_path(kind, base_dir, f"[{section}] kind") if base_dir else kind.strip()
    return kind


def _resolve_problem(given: dict, base_dir) -> dict:
    """``[problem]``: ``kind`` plus exactly the chosen kind's declared keys (a user's cost:
    the keys its factory takes, :mod:`stflow.problems.user`)."""
    from ..problems.registry import problem_class, problem_params

    kind = _kind_of("problem", given, base_dir, 'kind = "quadratic"')
    cls = problem_class(kind)
    if getattr(cls, "user", False):
        return {"kind": kind, **cls.check_keys(given)}
    return {"kind": kind, **check_section("problem", kind, given, problem_params(kind))}


def _resolve_flow(given: dict, base_dir=None) -> dict:
    """``[method]``: ``kind`` plus exactly the chosen method's declared parameters (a user's
    ``py:FILE:ATTR`` method: its class's ``params``, whose defaults the reference's
    ``key=value`` pairs replace; ``FILE`` made absolute against ``base_dir``)."""
    from ..methods import method_class

    kind = _kind_of("method", given, base_dir, 'kind = "observer"')
    params = method_class(kind, base_dir).params
    return {"kind": kind, **check_section("method", kind, given, params)}
