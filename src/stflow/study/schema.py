r"""The study file (TOML): its keys, declared once as :class:`stflow.params.Param`, and the
plan of cells it expands to.

A study file has one ``[study]`` table (the target, the trials, the quantities), an optional
base config (``[study] base = "FILE.toml"`` and/or inline ``[base.SECTION]`` tables) and the
axes, each an array of tables: ``[[method]]`` (required), ``[[compressor]]``,
``[[problem]]`` and ``[[graph]]``. A *cell* is one point of the product
methods x compressors x problems x graphs x seeds; :func:`load_study` checks everything a
cell needs (each cell's config is resolved by :func:`stflow.config.resolve_config`) before
anything runs, so a bad file is one line and exit 2.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..params import Param

__all__ = [
    "STUDY_PARAMS",
    "METHOD_ENTRY_PARAMS",
    "TUNE_PARAMS",
    "COMPRESSOR_ENTRY_PARAMS",
    "QUANTITIES",
    "AXES",
    "Study",
    "Cell",
    "load_study",
    "parse_study",
]

#: What a study can report per cell: name -> results.csv column.
QUANTITIES = {
    "bits": "bits_to_target",
    "rounds": "rounds_to_target",
    "samples": "samples_to_target",
    "modeled_seconds": "modeled_seconds_to_target",
    "wall_seconds": "wall_seconds_to_target",
    "final": "final_value",
}

#: The axes of a study: array-of-tables name -> what one entry is.
AXES = {
    "method": "a method: kind, optional label, scheme, step, compressor, tune, and its own "
              "[method] settings",
    "compressor": "a compressor: spec (may use {step} and {seed}) and optional label",
    "problem": "overrides of [base.problem] (and a label), e.g. a data set or a split",
    "graph": "overrides of [base.graph] (and a label)",
}


def _p(name, default, doc, **kw) -> Param:
    return Param(name, default, doc, tunable=False, **kw)


#: Keys of ``[study]``.
STUDY_PARAMS: tuple[Param, ...] = (
    _p("title", "stflow study", "title of the report", type="str", section="study"),
    _p("target", None, "relative error to reach (one target per study; or target_accuracy)",
       none=True, example=1e-6, section="study"),
    _p("target_accuracy", None, "mean agent test accuracy to reach (learning problems)",
       none=True, high=1.0, example=0.9, section="study"),
    _p("seeds", [0], "trials: each seed is the data seed ([problem] seed, unless data_seed), "
       "the tuner's seed, the initial point's seed (init = \"random\") and {seed} in a "
       "compressor spec",
       type="any", section="study", example=[0, 1, 2]),
    _p("data_seed", None, "[problem] seed of every cell (the trials then vary the tuner, the "
       "initial point and {seed} only); default: each trial's seed", type="int", low=0,
       none=True, example=0, section="study"),
    _p("rounds", None, "rounds per run (horizon = rounds x step for every cell); default the "
       "base config's", type="int", low=1, none=True, example=3000, section="study"),
    _p("record_every", 10, "record metrics every this many rounds (rounds to the target are "
       "resolved to it)", type="int", low=1, section="study"),
    _p("init", "zeros", "initial points: zeros (or the base config's [init]) | random "
       "(standard normal X(0) drawn from the trial's seed)", choices=("zeros", "random"),
       type="str", section="study"),
    _p("quantities", ["bits", "rounds", "final"], "columns of the summary tables: "
       + ", ".join(QUANTITIES), type="any", section="study", example=["bits", "rounds"]),
    _p("base", None, "base config file (TOML, relative to the study file); [base.SECTION] "
       "tables override it", type="str", none=True, example="base.toml", section="study"),
)

#: Keys of a ``[[method]]`` entry besides the method's own ``[method]`` settings.
METHOD_ENTRY_PARAMS: tuple[Param, ...] = (
    _p("kind", None, "[method] kind", type="str", section="method", example="observer"),
    _p("label", None, "name in tables and figures (default: kind, and scheme if given)",
       type="str", none=True, section="method", example="flow predict"),
    _p("scheme", None, "[solver] scheme of this method's cells", type="str", none=True,
       section="method", example="predict"),
    _p("step", None, "[solver] step h of this method's cells", none=True, example=0.01,
       section="method"),
    _p("compressor", None, '"none": run once uncompressed (a method that sends raw messages '
       "must say so); or the label of one [[compressor]] entry: this method runs with that "
       "compressor only", type="str", none=True, section="method", example="none"),
    _p("rounds", None, "rounds of this method's cells (horizon = rounds x step); default the "
       "study's", type="int", low=1, none=True, section="method", example=500),
    _p("solver", None, "more [solver] settings of this method's cells, e.g. { local_steps = 4 } "
       "(not step, scheme, horizon or record_every: the entry and the study set those)",
       type="any", none=True, section="method", example={"local_steps": 4}),
    _p("note", None, "free text shown with the method in the report (e.g. how its fixed "
       "settings were found)", type="str", none=True, section="method",
       example="tuned offline with budget 12"),
    _p("tune", None, "tune with the same rules for every method: { budget = B } (target: the "
       "study's)", type="any", none=True, section="method", example={"budget": 50}),
)

#: Keys of a method's ``tune = { ... }``.
TUNE_PARAMS: tuple[Param, ...] = (
    _p("budget", None, "candidate settings tried (stflow tune --budget)", type="int", low=1,
       section="method.tune", example=50),
    _p("span", 30.0, "search box: a factor around the config's values", low=1.0,
       section="method.tune"),
    _p("wave", 1, "candidates run as one batch (stflow tune --wave; 1: one at a time, the "
       "sequential search)", type="int", low=1, section="method.tune", example=10),
    _p("target", None, "relative error the tuner aims at (default: the study's target)",
       none=True, section="method.tune", example=1e-6),
    _p("target_accuracy", None, "accuracy the tuner aims at (default: the study's)",
       none=True, high=1.0, section="method.tune", example=0.9),
)

#: Keys of a ``[[compressor]]`` entry.
COMPRESSOR_ENTRY_PARAMS: tuple[Param, ...] = (
    _p("spec", None, "compressor spec; {step} is the cell's step h, {seed} the trial's seed",
       type="str", section="compressor", example="topk:k=2"),
    _p("label", None, "name in tables and figures (default: the spec)", type="str", none=True,
       section="compressor", example="topk"),
)

_LABEL = _p("label", None, "name in tables and figures", type="str", none=True,
            section="problem", example="iid")
_TABLES = ("study", "base", *AXES)


@dataclass
class Cell:
    """One run of a study: its labels, its resolved config and its tuning (or None)."""

    id: str
    method: str
    compressor: str
    problem: str
    graph: str
    seed: int
    scheme: str
    config: dict
    tune: dict | None = None
    note: str = ""


@dataclass
class Study:
    """A checked study file: its settings and its cells, in a fixed order."""

    path: str
    title: str
    target: dict  # {"column", "value", "at_least"}
    seeds: list
    quantities: list
    init: str
    cells: list = field(default_factory=list)
    text_hash: str = ""
    data_seed: int | None = None
    #: The base config's sections as given (file and inline), before the axes.
    base: dict = field(default_factory=dict)
    #: The axes as given: name -> [(label, spec or overrides)] (compressor, problem, graph).
    axes: dict = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(c.method for c in self.cells))

    def to_dict(self) -> dict:
        return {"path": self.path, "title": self.title, "target": self.target,
                "seeds": self.seeds, "quantities": self.quantities, "init": self.init,
                "hash": self.text_hash, "cells": [c.id for c in self.cells]}


def _where(path) -> str:
    return f"study file {str(path)!r}"


def _check_keys(table: str, given: dict, params, *, extra_ok: bool = False) -> dict:
    """Known keys validated (defaults filled); an unknown key is one line naming it."""
    names = [p.name for p in params]
    if not extra_ok:
        for key in given:
            if key not in names:
                raise InputError(f"unknown key {key!r} in {table}: its keys are "
                                 f"{', '.join(names)} (docs/study.md)")
    return {p.name: p.check(copy.deepcopy(given.get(p.name, p.default))) for p in params}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", str(text)).strip("-") or "x"


def _read_toml(path: Path, what: str) -> dict:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise InputError(f"{what} {str(path)!r} not found: check the path") from None
    except IsADirectoryError:
        raise InputError(f"{what} {str(path)!r} is a folder: give the TOML file") from None
    except UnicodeDecodeError:
        raise InputError(f"{what} {str(path)!r} is not UTF-8 text: save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{what} {str(path)!r} is not valid TOML: {exc}") from None


def load_study(path, *, shrink: dict | None = None) -> Study:
    """Read and check a study file; returns the :class:`Study` with every cell's config.

    ``shrink`` (``--quick`` and the tests) overrides the size: ``budget`` (each tuned method's
    budget capped to it), ``rounds`` (capped) and ``seeds`` (the first so many trials).
    """
    path = Path(path)
    if str(path).strip() == "":
        raise InputError("the study file path is empty: give a TOML file, e.g. "
                         "examples/study_compressors.toml")
    raw_bytes = None
    try:
        raw_bytes = path.read_bytes()
    except OSError:
        pass
    raw = _read_toml(path, "study file")
    study = parse_study(raw, base_dir=path.resolve().parent, path=str(path), shrink=shrink)
    study.text_hash = hashlib.sha256((raw_bytes or b"") + json.dumps(
        shrink or {}, sort_keys=True).encode()).hexdigest()[:16]
    return study


def _entries(raw: dict, axis: str) -> list[dict]:
    value = raw.get(axis)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"axis {axis!r} must be an array of tables, written [[{axis}]] "
                         f"(got a {type(value).__name__}): see docs/study.md")
    if not value:
        raise InputError(f"axis {axis!r} is empty: give at least one [[{axis}]] entry, or "
                         "leave the axis out")
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise InputError(f"[[{axis}]] entry {i + 1} must be a table (got {entry!r})")
    return value


def _labels(items: list[tuple[str, object]], axis: str) -> None:
    seen = set()
    for label, _ in items:
        if label in seen:
            raise InputError(f"two [[{axis}]] entries have the label {label!r}: give each "
                             "its own label = \"...\"")
        seen.add(label)


def parse_study(raw: dict, *, base_dir=".", path: str = "<study>",
                shrink: dict | None = None) -> Study:
    """Check a study mapping (a parsed TOML file) and expand its cells.

    Examples
    --------
    >>> s = parse_study({"study": {"target": 1e-6, "seeds": [0, 1], "rounds": 50},
    ...     "base": {"problem": {"kind": "least_squares", "agents": 4, "dim": 3}},
    ...     "method": [{"kind": "lead"}, {"kind": "choco"}],
    ...     "compressor": [{"spec": "topk:k=2"}]})
    >>> len(s.cells), s.cells[0].id, s.cells[0].config["problem"]["seed"]
    (4, 'lead__topk-k=2__default__default__s0', 0)
    >>> parse_study({"study": {"target": 1e-6}, "methods": [{"kind": "lead"}]})
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: unknown axis or table [methods] in the study file: its tables are study, base, method, compressor, problem, graph (docs/study.md)
    """
    from ..methods import method_class

    base_dir = Path(base_dir)
    for key in raw:
        if key not in _TABLES:
            raise InputError(f"unknown axis or table [{key}] in the study file: its tables are "
                             f"{', '.join(_TABLES)} (docs/study.md)")
    st_raw = raw.get("study")
    if not isinstance(st_raw, dict):
        raise InputError("the study file needs a [study] table with the target: e.g. "
                         "[study] target = 1e-6 (docs/study.md)")
    st = _check_keys("[study]", st_raw, STUDY_PARAMS)
    if (st["target"] is None) == (st["target_accuracy"] is None):
        raise InputError("[study] needs exactly one of target (relative error) and "
                         f"target_accuracy (got target = {st['target']!r}, target_accuracy = "
                         f"{st['target_accuracy']!r}): e.g. target = 1e-6")
    if st["target"] is not None and st["target"] < 1e-15:
        raise InputError(f"[study] target = {st['target']:g} is below what float64 can resolve "
                         "(relative errors stop near 1e-16): no cell can reach it; use a "
                         "target >= 1e-15")
    seeds = st["seeds"]
    if not isinstance(seeds, list) or any(isinstance(s, bool) or not isinstance(s, int)
                                          or s < 0 for s in seeds):
        raise InputError(f"[study] seeds must be a list of integers >= 0 (got {seeds!r}): "
                         "e.g. seeds = [0, 1, 2, 3, 4]")
    if not seeds:
        raise InputError("axis 'seeds' is empty: give at least one seed, e.g. seeds = [0]")
    if len(set(seeds)) != len(seeds):
        raise InputError(f"[study] seeds has repeats (got {seeds!r}): give distinct seeds")
    quantities = st["quantities"]
    if (not isinstance(quantities, list) or not quantities
            or any(q not in QUANTITIES for q in quantities)):
        raise InputError(f"[study] quantities must be a non-empty list among "
                         f"{', '.join(QUANTITIES)} (got {quantities!r}): e.g. quantities = "
                         '["bits", "rounds", "final"]')
    shrink = shrink or {}
    if shrink.get("seeds"):
        seeds = seeds[: int(shrink["seeds"])]
    rounds = st["rounds"]
    if shrink.get("rounds"):
        rounds = min(rounds, int(shrink["rounds"])) if rounds else int(shrink["rounds"])

    base: dict = {}
    base_file_dir = base_dir
    if st["base"] is not None:
        bpath = base_dir / st["base"]
        base = _read_toml(bpath, "[study] base config")
        base_file_dir = bpath.resolve().parent
    inline = raw.get("base", {})
    if not isinstance(inline, dict):
        raise InputError("[base] must hold config sections, e.g. [base.problem]")
    for section, keys in inline.items():
        if not isinstance(keys, dict):
            raise InputError(f"[base.{section}] must be a table of keys (got {keys!r})")
        base.setdefault(section, {}).update(keys)
        if st["base"] is not None:  # inline paths are relative to the study file
            pass
    for section in ("method", "compressor"):
        if section in base:
            raise InputError(f"[base.{section}] is an axis of the study: give it as "
                             f"[[{section}]] entries instead")

    methods = []
    for entry in _entries(raw, "method"):
        own = {k: v for k, v in entry.items() if k not in {p.name for p in METHOD_ENTRY_PARAMS}}
        m = _check_keys("[[method]]", {k: v for k, v in entry.items() if k not in own},
                        METHOD_ENTRY_PARAMS)
        if m["kind"] is None:
            raise InputError("a [[method]] entry has no kind: e.g. kind = \"observer\"")
        cls = method_class(m["kind"], base_dir)
        takes = "compressed" in cls.channels
        if m["compressor"] is not None and m["compressor"] != "none" and not takes:
            raise InputError(f'[[method]] {m["kind"]} sends raw messages and cannot take '
                             f'compressor {m["compressor"]!r}: write compressor = "none"')
        if m["solver"] is not None:
            if not isinstance(m["solver"], dict):
                raise InputError(f"[[method]] {m['kind']}: solver must be a table of [solver] "
                                 f"settings, e.g. solver = {{ local_steps = 4 }} (got "
                                 f"{m['solver']!r})")
            for key in ("step", "scheme", "horizon", "record_every"):
                if key in m["solver"]:
                    raise InputError(
                        f"[[method]] {m['kind']}: solver.{key} is set by the study (the "
                        "entry's step / scheme, the rounds, [study] record_every): drop it "
                        "from solver = { ... }")
        if m["compressor"] == "none" and takes:
            raise InputError(f'[[method]] {m["kind"]} sends compressed messages and needs a '
                             'compressor: drop compressor = "none" from its entry')
        tune_cfg = None
        if m["tune"] is not None:
            if not isinstance(m["tune"], dict):
                raise InputError(f"[[method]] {m['kind']}: tune must be a table, e.g. tune = "
                                 f"{{ budget = 50 }} (got {m['tune']!r})")
            tune_cfg = _check_keys(f"[[method]] {m['kind']} tune", m["tune"], TUNE_PARAMS)
            if tune_cfg["budget"] is None:
                raise InputError(f"[[method]] {m['kind']}: tune needs a budget, e.g. tune = "
                                 "{ budget = 50 }")
            if tune_cfg["target"] is None and tune_cfg["target_accuracy"] is None:
                tune_cfg["target"] = st["target"]
                tune_cfg["target_accuracy"] = st["target_accuracy"]
            if (tune_cfg["target"] is None) == (tune_cfg["target_accuracy"] is None):
                raise InputError(f"[[method]] {m['kind']}: tune takes one of target and "
                                 "target_accuracy: drop one")
            if shrink.get("budget"):
                tune_cfg["budget"] = min(tune_cfg["budget"], int(shrink["budget"]))
        label = m["label"] or (m["kind"] if m["scheme"] is None else
                               f"{m['kind']} {m['scheme']}")
        m_rounds = rounds
        if m["rounds"] is not None:
            m_rounds = (min(m["rounds"], int(shrink["rounds"])) if shrink.get("rounds")
                        else m["rounds"])
        methods.append((label, {"entry": m, "own": own, "takes": takes, "tune": tune_cfg,
                                "rounds": m_rounds}))
    if not methods:
        raise InputError("the study file has no [[method]] entry: add at least one, e.g. "
                         '[[method]] kind = "observer"')
    _labels(methods, "method")

    compressors = []
    for entry in _entries(raw, "compressor"):
        c = _check_keys("[[compressor]]", entry, COMPRESSOR_ENTRY_PARAMS)
        if c["spec"] is None:
            raise InputError('a [[compressor]] entry has no spec: e.g. spec = "topk:k=2"')
        compressors.append((c["label"] or c["spec"], c["spec"]))
    _labels(compressors, "compressor")
    comp_labels = [c[0] for c in compressors]
    for label, m in methods:
        pin = m["entry"]["compressor"]
        if pin not in (None, "none") and pin not in comp_labels:
            raise InputError(f"[[method]] {label}: compressor = {pin!r} is not the label of a "
                             "[[compressor]] entry (labels: "
                             f"{', '.join(comp_labels) or 'none given'}): give one of them, "
                             'or "none"')
        if not m["takes"] and m["entry"]["compressor"] != "none" and compressors:
            raise InputError(
                f"[[method]] {label} sends raw messages and cannot take a compressor: add "
                'compressor = "none" to its entry (it then runs once, uncompressed)')
        if m["takes"] and not compressors and "spec" not in base.get("compressor", {}):
            raise InputError(f"[[method]] {label} needs a compressor: add [[compressor]] "
                             'entries, e.g. spec = "topk:k=2"')

    problems, graphs = [], []
    for axis, out in (("problem", problems), ("graph", graphs)):
        for entry in _entries(raw, axis):
            label = entry.get("label")
            _LABEL.check(label)
            over = {k: v for k, v in entry.items() if k != "label"}
            out.append((label or ",".join(f"{k}={v}" for k, v in over.items()) or "default",
                        over))
        if not out:
            out.append(("default", {}))
        _labels(out, axis)

    if st["target_accuracy"] is not None:
        _check_accuracy_reachable(base, problems, base_file_dir)

    target = ({"column": "relative_error", "value": st["target"], "at_least": False}
              if st["target"] is not None else
              {"column": "mean_agent_test_accuracy", "value": st["target_accuracy"],
               "at_least": True})
    study = Study(path=path, title=st["title"], target=target, seeds=list(seeds),
                  quantities=list(quantities), init=st["init"], data_seed=st["data_seed"],
                  base=copy.deepcopy(base),
                  axes={"compressor": list(compressors), "problem": copy.deepcopy(problems),
                        "graph": copy.deepcopy(graphs)})
    ids = set()
    for mlabel, m in methods:
        pin = m["entry"]["compressor"]
        comps = [("none", None)] if not m["takes"] else (
            [c for c in compressors if c[0] == pin] if pin not in (None, "none") else
            compressors or [(base["compressor"]["spec"], base["compressor"]["spec"])])
        for clabel, spec in comps:
            for plabel, pover in problems:
                for glabel, gover in graphs:
                    for seed in seeds:
                        cfg = _cell_config(base, m, spec, pover, gover, seed, st, m["rounds"],
                                           base_file_dir, where=f"cell {mlabel} / {clabel} / "
                                           f"{plabel} / {glabel} / seed {seed}")
                        cid = "__".join(_slug(x) for x in (mlabel, clabel, plabel, glabel))
                        cid += f"__s{seed}"
                        if cid in ids:
                            raise InputError(f"two cells get the folder name {cid!r}: give "
                                             "the entries distinct labels")
                        ids.add(cid)
                        study.cells.append(Cell(
                            id=cid, method=mlabel, compressor=clabel, problem=plabel,
                            graph=glabel, seed=int(seed), scheme=cfg["solver"]["scheme"],
                            config=cfg, tune=m["tune"], note=m["entry"]["note"] or ""))
    return study


def _cell_config(base, m, spec, pover, gover, seed, st, rounds, base_dir, *, where) -> dict:
    from ..config import resolve_config

    raw = copy.deepcopy(base)
    raw.setdefault("problem", {}).update(copy.deepcopy(pover))
    raw["problem"]["seed"] = int(seed) if st["data_seed"] is None else int(st["data_seed"])
    raw.setdefault("graph", {}).update(copy.deepcopy(gover))
    entry = m["entry"]
    raw["method"] = {"kind": entry["kind"], **copy.deepcopy(m["own"])}
    solver = raw.setdefault("solver", {})
    solver.update(copy.deepcopy(entry["solver"] or {}))
    if entry["scheme"] is not None:
        solver["scheme"] = entry["scheme"]
    if entry["step"] is not None:
        solver["step"] = entry["step"]
    solver["record_every"] = st["record_every"]
    h = float(solver.get("step", 1e-3))
    if rounds is not None:
        solver["horizon"] = rounds * h
    if spec is not None:
        try:
            text = spec.format(step=repr(h), seed=int(seed))
        except (KeyError, IndexError, ValueError) as exc:
            raise InputError(f"[[compressor]] spec {spec!r}: only {{step}} and {{seed}} may be "
                             f"filled in (got {exc}): write other braces as {{{{ }}}}") from None
        raw["compressor"] = {"spec": text}
    elif "compressor" in raw and not m["takes"]:
        raw.pop("compressor")
    try:
        cfg = resolve_config(raw, base_dir=base_dir)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    from ..methods import method_class

    if "compressed" in method_class(cfg["method"]["kind"]).channels:
        from ..compressors import make_compressor

        try:  # a spec that does not parse fails here, before anything runs
            dim, shapes = _dim_hint(cfg)
            make_compressor(cfg["compressor"]["spec"], dim, shapes=shapes)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
    if cfg["solver"]["scheme"] == "continuous" and m["tune"] is not None:
        raise InputError(f'{where}: [solver] scheme = "continuous" sends no bits, so it '
                         'cannot be tuned: use scheme = "euler", "predict" or "gauss_seidel"')
    if not math.isfinite(cfg["solver"]["horizon"]):
        raise InputError(f"{where}: [solver] horizon must be finite")
    return cfg


_DIMS: dict[str, tuple] = {}


def _dim_hint(cfg: dict) -> tuple:
    """The cell's dimension d and parameter shapes (a model's, else None); the problem is
    built once per distinct ``[problem]``."""
    from ..config import build_problem

    key = json.dumps(cfg["problem"], sort_keys=True, default=str)
    if key not in _DIMS:
        prob = build_problem(cfg["problem"])
        _DIMS[key] = (int(prob.dim), getattr(prob, "param_shapes", None))
    return _DIMS[key]


def _check_accuracy_reachable(base, problems, base_dir) -> None:
    """An accuracy target needs problems with held-out rows: known before running."""
    from ..config import build_problem, resolve_config

    for label, over in problems:
        raw = copy.deepcopy(base)
        raw.setdefault("problem", {}).update(copy.deepcopy(over))
        prob = resolve_config({"problem": raw["problem"]}, base_dir=base_dir)["problem"]
        if not getattr(build_problem(prob), "has_test", False):
            raise InputError(
                f"[study] target_accuracy: problem {label!r} ([problem] kind = "
                f"{prob['kind']!r}) records no test accuracy, so no cell can reach it: use "
                "[study] target (relative error), or a data set with test_fraction > 0")
