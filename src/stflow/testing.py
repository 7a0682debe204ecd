r"""Check a method of your own against the block protocol: :func:`check_method`.

A method (``docs/methods.md``) must give the same run on the simulator and on the MPI
engine with any number of ranks, because both engines run the same block protocol. The
checker runs it and says which rule it breaks:

1. **declaration and protocol calls**: the class loads, its ``params``, ``channels`` and
   ``state_keys`` are well formed, ``send`` returns one float64 ``(n, d)`` array per channel,
   ``init_block`` and ``receive`` return every state key with one row per agent of the block,
   nothing raises and nothing turns NaN from a finite state (the guards of
   :mod:`stflow.methods.user`); and no call writes into the state or the messages it is
   given (a few rounds with read-only arrays: "return new arrays");
2. **determinism**: two identical simulator runs give identical metrics (no global
   ``np.random``, clock or ``id``-dependent behaviour);
3. **state in the returned dict**: a run continued by a *fresh* object from the state dict
   halfway equals the uninterrupted run (nothing needed across rounds lives on ``self``;
   a checkpoint keeps only the dict);
4. **engines agree**: ``mpiexec -n P`` runs (P = 1, 2, 3 by default) give the simulator's
   metrics to relative ``rtol`` (1e-9), and ``comm.json`` counts the bytes the simulator's
   bits imply: :math:`\lceil b/8 \rceil \cdot \sum_i \deg_i \cdot \text{rounds}`.

Equal at P = 1 but not at P = 2 names the usual causes: scratch on ``self`` that another
block's call clobbers, arrays sized by ``n_agents`` instead of the block, or randomness keyed
on a row's position instead of the agent id (``block.ids``, :func:`stflow.methods.keyed_normal`).

Examples
--------
From pytest (``assert_method_ok`` raises an :class:`AssertionError` listing the problems)::

    from stflow.testing import assert_method_ok

    def test_my_method():
        assert_method_ok("py:my_method.py:MyMethod", procs=(1, 2))
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = ["MethodCheck", "check_method", "assert_method_ok", "DEFAULT_CHECK_CONFIG"]

#: The run :func:`check_method` uses when given no config: 6 agents on a ring (blocks of
#: 6, 3 + 3 and 2 + 2 + 2 agents at P = 1, 2, 3), 40 rounds of a quadratic.
DEFAULT_CHECK_CONFIG = {
    "problem": {"kind": "quadratic", "agents": 6, "dim": 4, "seed": 0},
    "graph": {"kind": "ring"},
    "compressor": {"spec": "topk:k=2"},
    "solver": {"step": 1.0, "horizon": 40.0, "record_every": 5, "tolerance": 1e-8},
}

_SPLIT_RULE = (
    "state kept on self between send and receive that another block's call clobbers, "
    "arrays sized by n_agents instead of the block (self.block.n_own / n_cols), or "
    "randomness keyed on a row's position instead of the agent id (key it on seed, "
    "self.block.ids and the round: stflow.methods.keyed_normal); docs/methods.md"
)


@dataclass
class MethodCheck:
    """What :func:`check_method` found: ``ok`` when ``problems`` is empty; ``passed`` lists
    each check that held, with its numbers."""

    method: str
    problems: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    max_relative_difference: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        """Every check, one line each (problems first)."""
        head = f"check_method({self.method}): " + ("ok" if self.ok else
                                                   f"{len(self.problems)} problem(s)")
        return "\n".join([head, *(f"  FAIL {p}" for p in self.problems),
                          *(f"  ok   {p}" for p in self.passed)])

    def __str__(self) -> str:
        return self.report()


def _reference(method, base_dir: Path, folder: str = "the config file's folder") -> str:
    """``py:/abs/file.py:ATTR[:pairs]`` for a reference or a class defined in a file."""
    from .user_code import is_py, resolve_path

    if isinstance(method, str):
        if not is_py(method):
            return method  # a built-in kind
        return resolve_path(method, base_dir, "check_method(method)", folder=folder)
    if isinstance(method, type):
        kind = getattr(method, "kind", "")
        if isinstance(kind, str) and is_py(kind):  # already a loaded user class
            return kind
        try:
            path = inspect.getsourcefile(method)
        except TypeError:
            path = None
        if not path or not Path(path).is_file() or "<" in method.__qualname__:
            raise InputError(
                f"check_method: class {method.__qualname__} is not defined at the top level "
                "of a .py file, so the MPI ranks cannot load it: move it into a file and "
                "pass the class or 'py:FILE:ATTR'"
            )
        return f"py:{Path(path).resolve()}:{method.__qualname__}"
    raise InputError(
        f"check_method: `method` must be 'py:FILE:ATTR' or a Method subclass (got "
        f"{type(method).__name__}): e.g. check_method('py:my_method.py:MyMethod')"
    )


def _raw_config(config) -> tuple[dict, Path]:
    """The config mapping and the folder its relative paths start from."""
    if config is None:
        return copy.deepcopy(DEFAULT_CHECK_CONFIG), Path.cwd()
    if isinstance(config, dict):
        return copy.deepcopy(config), Path.cwd()
    path = Path(config)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), path.resolve().parent
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"check_method: cannot read config {str(path)!r}: {exc}") from None


def _max_rel(a: dict, b: dict) -> float:
    worst = 0.0
    for col in a:
        if col not in b:
            continue
        x, y = np.asarray(a[col], dtype=float), np.asarray(b[col], dtype=float)
        if x.shape != y.shape:
            return math.inf
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            return math.inf
        x, y = np.nan_to_num(x), np.nan_to_num(y)
        diff = np.abs(x - y)
        scale = np.maximum(np.abs(x), np.abs(y))
        rel = np.where(diff == 0, 0.0, diff / np.where(scale > 0, scale, 1.0))
        worst = max(worst, float(rel.max(initial=0.0)))
    return worst


def _manual_rounds(cfg: dict, rounds: int, swap_at: int | None):
    """X after ``rounds`` rounds of the simulator's block, switching to a freshly built
    object (handed only the state dict and the draw counter) after ``swap_at`` rounds."""
    from .config import build_run

    run = build_run(cfg)
    method, h = run.flow, float(cfg["solver"]["step"])
    state = method.initial_state(x0=run.x0, v0=run.v0)
    for k in range(rounds):
        if swap_at is not None and k == swap_at:
            fresh = build_run(cfg).flow
            fresh.draws = method.draws
            method = fresh
        state = method.step(state, k * h, h)
    return state["X"]


def _read_only(a):
    """A read-only copy of ``a`` (writing into it raises ``ValueError``)."""
    if not isinstance(a, np.ndarray):
        return a
    a = a.copy()
    a.setflags(write=False)
    return a


def _in_place_write(cfg: dict, rounds: int = 3) -> str | None:
    """The error of the first call that writes into its state or messages, or None: a few
    simulator rounds with every state array and message handed over read-only."""
    from .config import build_run

    with _quiet():
        run = build_run(cfg)
        method, h = run.flow, float(cfg["solver"]["step"])
        state = method.initial_state(x0=run.x0, v0=run.v0)
        for k in range(rounds):
            t = k * h
            state = {key: _read_only(a) for key, a in state.items()}
            try:
                out = method.send(state, t, h)
                msgs = [_read_only(z if c is None else c(z, t))
                        for z, c in zip(out, method.codecs(), strict=True)]
                method.local(state, t, h)
                state = method.receive(state, msgs, t, h)
            except (InputError, ValueError) as exc:
                if "read-only" in str(exc):  # the guard's own fix is replaced by the rule
                    return str(exc).split(": fix ")[0]
                return None  # another failure: the other checks report it
    return None


def _launcher():
    exe = shutil.which("mpiexec")
    if exe is None:
        raise FileNotFoundError
    return exe


def check_method(method=None, config=None, *, procs=(1, 2, 3), rtol: float = 1e-9,
                 mpi: bool = True, timeout: float = 120.0, workdir=None) -> MethodCheck:
    r"""Run ``method`` on the simulator and over MPI and report which rule it breaks.

    Parameters
    ----------
    method : str or type
        ``"py:FILE:ATTR[:key=value,...]"`` (``FILE`` relative to the config file's folder,
        or to the working directory without one) or a :class:`~stflow.methods.Method`
        subclass defined at the top level of a file; ``None`` keeps the config's
        ``[method] kind``.
    config : None, dict or path
        The run: a config file, a mapping of its sections, or ``None`` for
        :data:`DEFAULT_CHECK_CONFIG`. Its ``[method]`` keys are the method's parameters.
    procs : tuple of int
        Rank counts of the MPI runs (those above the number of agents are skipped).
    rtol : float
        Largest relative difference of any metric between engines (and between two
        identical simulator runs).
    mpi : bool
        False checks the simulator only (rules 1-3 of the module docstring).
    timeout : float
        Seconds each ``mpiexec`` launch may take.
    workdir : path, optional
        Where the runs write (default: a temporary folder, removed afterwards).

    Returns
    -------
    MethodCheck
        ``ok``, ``problems`` (each naming the rule and the fix) and ``passed``.

    Examples
    --------
    >>> from stflow.testing import check_method
    >>> r = check_method("dgd", mpi=False)
    >>> r.ok, r.problems
    (True, [])
    """
    from .config import resolve_config, run_config
    from .config.schema import _old_names
    from .tune import config_toml

    raw, base = _raw_config(config)
    raw = _old_names(raw)
    raw.setdefault("method", {})
    folder = ("the working directory" if config is None or isinstance(config, dict)
              else "the config file's folder")
    ref = (_reference(method, base, folder) if method is not None
           else raw["method"].get("kind", ""))
    result = MethodCheck(method=str(ref))
    if method is not None:
        raw["method"]["kind"] = ref
    try:
        with warnings.catch_warnings():  # the default config's compressor serves only
            warnings.filterwarnings("ignore", r"\[compressor\] spec = .* is not used")
            cfg = resolve_config(raw, base_dir=base)  # methods that compress
    except InputError as exc:
        result.problems.append(f"declaration / config: {exc}")
        return result
    result.method = cfg["method"]["kind"]

    # 1-2: the protocol guards, and two identical simulator runs
    try:
        with _quiet():
            run, sol = run_config(cfg)
            _, sol2 = run_config(cfg)
    except InputError as exc:
        result.problems.append(f"protocol: {exc}")
        return result
    in_place = _in_place_write(cfg)
    if in_place is not None:
        result.problems.append(
            f"in place: {in_place}: return new arrays; do not modify state or messages in "
            "place (rule 1: write X = state['X'] - self.lr * G, not X -= ...; or copy first, "
            "X = state['X'].copy()); docs/methods.md; the other checks were skipped")
        return result
    result.passed.append("in place: send, local and receive leave state and messages "
                         "unchanged (read-only arrays, 3 rounds)")
    if sol.status == "diverged":
        result.problems.append(
            f"the simulator run diverged ({sol.message}): a diverging run cannot be compared; "
            "check the update, or give a config where it converges")
        return result
    rel = _max_rel(sol.records, sol2.records)
    result.max_relative_difference["simulator_repeat"] = rel
    if rel > rtol:
        result.problems.append(
            f"determinism: two identical simulator runs differ (max relative difference "
            f"{rel:.3g}): draw randomness from a numpy Generator keyed on the config's seed, "
            "the agent id and the round (never the global np.random, the clock or id()); "
            "docs/methods.md; the other checks need a deterministic method and were skipped")
        return result
    result.passed.append(f"determinism: two simulator runs agree (max relative "
                         f"difference {rel:.3g})")

    # 3: a fresh object continues from the state dict alone
    rounds = max(2, min(sol.steps, 40))
    try:
        with _quiet():
            whole = _manual_rounds(cfg, rounds, None)
            resumed = _manual_rounds(cfg, rounds, rounds // 2)
    except InputError as exc:
        result.problems.append(f"protocol: {exc}")
        return result
    diff = float(np.max(np.abs(whole - resumed) / np.maximum(np.abs(whole), 1e-300),
                        initial=0.0))
    result.max_relative_difference["fresh_object"] = diff
    if not np.allclose(whole, resumed, rtol=rtol, atol=0.0):
        result.problems.append(
            f"state in the returned dict: a fresh object continuing from the state dict after "
            f"{rounds // 2} of {rounds} rounds ends elsewhere (max relative difference "
            f"{diff:.3g}): keep everything that must outlive a round in the dict "
            "init_block/receive return, not on self (a checkpoint saves only the dict); "
            "docs/methods.md")
    else:
        result.passed.append(f"state in the returned dict: a fresh object resumes exactly "
                             f"({rounds} rounds, swap at {rounds // 2})")
    if not mpi:
        return result

    # 4: the MPI engine at each P against the simulator
    try:
        launcher = _launcher()
    except FileNotFoundError:
        result.problems.append(
            "engines: mpiexec not found, so the MPI runs could not be made: install mpi4py and "
            "an MPI (pip install -e \".[all]\" brings the mpich wheel), or pass mpi=False")
        return result
    with _folder(workdir) as root:
        toml = root / "check.toml"
        toml.write_text(config_toml(cfg), encoding="utf-8")
        degree_sum = int(np.sum(run.graph.degree))
        bpm = int(sol.bits_per_message)
        equal_at = {}
        for p in procs:
            if p > run.problem.n_agents:
                continue
            out = root / f"mpi{p}"
            problem, rel = _mpi_run(launcher, p, toml, out, sol, timeout,
                                    degree_sum, bpm, triggered=bool(run.flow.triggered))
            if problem is not None:
                result.problems.append(f"engines (P={p}): {problem}")
                equal_at[p] = False
                continue
            result.max_relative_difference[f"mpi_P{p}"] = rel
            equal_at[p] = rel <= rtol
            if rel <= rtol:
                result.passed.append(f"engines (P={p}): metrics equal the simulator's (max "
                                     f"relative difference {rel:.3g}); comm.json bytes "
                                     "match the simulator's bits")
            elif p == 1 or not equal_at.get(1, True):
                result.problems.append(
                    f"engines (P={p}): metrics differ from the simulator's (max relative "
                    f"difference {rel:.3g} > {rtol:g}) already with one block per rank: the "
                    "method depends on something the engines set differently (use "
                    "self.grad(X) for the block's gradients and self.block / bind_block "
                    "for its rows, never self.problem); docs/methods.md")
            else:
                result.problems.append(
                    f"engines (P={p}): results differ between P=1 and P={p} (max relative "
                    f"difference {rel:.3g} > {rtol:g}): {_SPLIT_RULE}")
    return result


def _mpi_run(launcher, p, toml, out, sol, timeout, degree_sum, bpm, *, triggered):
    """``(problem or None, max relative difference)`` of one ``mpiexec -n p`` run."""
    from .output import read_metrics_csv

    here = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [env.get("PYTHONPATH")])])
    cmd = [launcher, "-n", str(p), sys.executable, "-m", "stflow.cli", "run", str(toml),
           "--out", str(out), "--backend", "mpi", "--quiet", "--no-figure", "--force"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return (f"`mpiexec -n {p}` took more than {timeout:g} s: a rank is waiting for "
                "another (does send or receive raise on one rank only?)"), math.inf
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else "(no output)"
    if proc.returncode not in (0, 1, 3) or not (out / "metrics.csv").is_file():
        return f"the MPI run failed (exit {proc.returncode}): {last}", math.inf
    rel = _max_rel(sol.records, read_metrics_csv(out / "metrics.csv"))
    comm = json.loads((out / "comm.json").read_text())
    rounds = int(comm["rounds"])
    if int(comm["bits_per_message"]) != bpm:
        return (f"comm.json says {comm['bits_per_message']} bits per message, the simulator "
                f"counts {bpm}: declare channels as the messages are sent"), rel
    expected = -(-bpm // 8) * degree_sum * rounds
    if not comm.get("bytes_match_accounting") or (
            not triggered and int(comm["bytes_total"]) != expected):
        return (f"comm.json counts {comm['bytes_total']} bytes, the simulator's bits give "
                f"{expected} (ceil({bpm}/8) bytes x {degree_sum} messages x {rounds} rounds): "
                "declare each channel \"raw\" or \"compressed\" as it is sent"), rel
    return None, rel


@contextlib.contextmanager
def _folder(workdir):
    if workdir is not None:
        path = Path(workdir)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="stflow-check-") as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def _quiet():
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def assert_method_ok(method=None, config=None, **kwargs) -> MethodCheck:
    """:func:`check_method`, raising an :class:`AssertionError` with the report when a rule
    is broken (for pytest)."""
    result = check_method(method, config, **kwargs)
    if not result.ok:
        raise AssertionError(result.report())
    return result
