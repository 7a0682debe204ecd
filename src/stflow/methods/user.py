r"""A user's own method: ``[method] kind = "py:FILE:ATTR[:key=value,...]"``.

``ATTR`` is a :class:`~stflow.methods.base.Method` subclass written to the block protocol
(the contract: ``docs/methods.md``). It is a first-class kind: its ``params`` are the
``[method]`` keys (validated like a built-in's: an unknown key is an error listing its keys),
the ``key=value`` pairs of the reference replace the declared *defaults* (a ``[method]`` key
of the same name overrides them, so ``stflow tune`` can still move it), both engines run
it and ``stflow tune`` searches its tunable ``Param``\ s.

:func:`user_method_class` checks the declaration when the config is read, and returns a
subclass of ``ATTR`` whose protocol calls are guarded: an exception (``SystemExit``
included) in ``init_block``, ``send``, ``local``, ``receive`` or ``local_update``, a
message of the wrong shape or dtype, a state with missing keys or wrong shapes, or NaN/inf
produced from a finite state becomes one :class:`~stflow.errors.InputError` line naming the
reference, the call, what was expected and the fix.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import InputError
from ..params import Param
from ..user_code import call_user, load_attr, parse_ref
from .base import Method

__all__ = ["user_method_class", "GuardedMethod"]

#: Largest magnitude of a state from which a non-finite result counts as a bug of the
#: method rather than a divergence (a diverging run grows past it first).
_FINITE_LIMIT = 1e100
_CHANNELS = ("raw", "compressed")
_CACHE: dict[tuple, type] = {}


def user_method_class(ref: str, base_dir=None) -> type[Method]:
    """The guarded class of the reference ``ref`` (``py:FILE:ATTR[:key=value,...]``).

    Its ``kind`` is ``ref`` and its ``params`` are ``ATTR.params`` with the defaults the
    reference's pairs give. Errors name the reference and the fix.
    """
    key = (ref, None if base_dir is None else str(base_dir))
    if key in _CACHE:
        return _CACHE[key]
    where = f"[method] kind = {ref!r}"
    cls, pairs = load_attr(ref, "[method] kind", base_dir, expect="a stflow.methods.Method subclass")
    attr = parse_ref(ref, "[method] kind").attr
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        what = f"a {type(cls).__name__}" if not isinstance(cls, type) else f"class {cls.__name__}"
        raise InputError(
            f"{where}: {attr!r} is {what}, not a stflow.methods.Method subclass: write "
            f"`class {attr}(stflow.methods.Method)` (docs/methods.md)"
        )
    params = _check_declaration(cls, attr, where)
    by_name = {p.name: p for p in params}
    for name, value in pairs.items():
        if name not in by_name:
            raise InputError(
                f"{where}: {name}={value!r} is not a parameter of {attr} (its params are "
                f"{', '.join(by_name) or 'none'}): declare it in {attr}.params or remove it"
            )
        checked = by_name[name].check(value, ref)
        by_name[name] = dataclasses.replace(by_name[name], default=checked)
    guarded = type(cls.__name__, (GuardedMethod, cls), {
        "kind": ref, "params": tuple(by_name[p.name] for p in params), "where": where,
        "attr": attr, "__module__": cls.__module__, "__doc__": cls.__doc__,
        "__qualname__": cls.__qualname__,
    })
    _CACHE[key] = guarded
    return guarded


def _check_declaration(cls, attr: str, where: str) -> tuple[Param, ...]:
    """``cls.params`` (with ``section = "method"``), after checking the class declaration."""
    params = getattr(cls, "params", ())
    if not isinstance(params, tuple | list) or not all(isinstance(p, Param) for p in params):
        raise InputError(
            f"{where}: {attr}.params must be a tuple of stflow.params.Param (got "
            f"{params!r}): e.g. params = (Param('lr', 0.1, 'step size'),)"
        )
    reserved = {n for n in dir(Method) if not n.startswith("__")} | {
        "problem", "graph", "compressor", "n_agents", "dim", "block", "local_problem", "W",
        "kind", "draws"}
    for p in params:
        if p.name in reserved or not p.name.isidentifier():
            raise InputError(
                f"{where}: {attr}.params declares {p.name!r}, a name the Method base class "
                "uses: rename the parameter"
            )
    channels = getattr(cls, "channels", None)
    if (not isinstance(channels, tuple | list) or not channels
            or any(c not in _CHANNELS for c in channels)):
        raise InputError(
            f'{where}: {attr}.channels must be a non-empty tuple of "raw" and "compressed" '
            f'(got {channels!r}): e.g. channels = ("raw",)'
        )
    keys = getattr(cls, "state_keys", ())
    copies = getattr(cls, "copies", ())
    if not isinstance(keys, tuple | list) or "X" not in keys or not set(copies) <= set(keys):
        raise InputError(
            f'{where}: {attr}.state_keys must be a tuple containing "X" and every key of '
            f'{attr}.copies (got state_keys = {keys!r}, copies = {copies!r}): e.g. '
            'state_keys = ("X", "Xprev")'
        )
    if "X" in copies:
        raise InputError(
            f'{where}: "X" (the agents\' own iterates) cannot be one of {attr}.copies: keep '
            "public copies under another key"
        )
    return tuple(dataclasses.replace(p, section="method") for p in params)


class GuardedMethod(Method):
    """Checks around every protocol call of a user's method (see the module docstring)."""

    where = ""
    attr = ""

    def _call(self, name: str, fn, *args):
        return call_user(f"{self.where}: {self.attr}.{name}", fn, *args,
                         fix=f"fix {self.attr}.{name} (docs/methods.md)")

    def _fail(self, name: str, what: str, fix: str) -> InputError:
        return InputError(f"{self.where}: {self.attr}.{name} {what}: {fix} (docs/methods.md)")

    def _finite_in(self, *groups) -> bool:
        for group in groups:
            for a in group:
                if not np.all(np.isfinite(a)) or np.max(np.abs(a), initial=0.0) > _FINITE_LIMIT:
                    return False
        return True

    def _check_state(self, name: str, state, inputs_finite: bool) -> dict:
        block = self.block
        if not isinstance(state, dict):
            raise self._fail(name, f"returned {type(state).__name__}, not a dict of arrays",
                             f"return {{key: array}} with the keys {list(self.state_keys)}")
        if set(state) != set(self.state_keys):
            raise self._fail(
                name, f"returned the keys {sorted(state)}, not {self.attr}.state_keys = "
                f"{list(self.state_keys)}",
                "return every state key (and only those), or fix state_keys")
        for key, arr in state.items():
            rows = block.n_cols if key in self.copies else block.n_own
            what = "the block's columns (its agents and their neighbours)" if (
                key in self.copies) else "the block's own agents"
            if not isinstance(arr, np.ndarray) or arr.dtype != np.float64:
                raise self._fail(
                    name, f"returned state[{key!r}] as {_describe(arr)}, not a float64 array",
                    f"return np.float64 arrays ({rows} rows: one per agent of {what})")
            if arr.ndim < 1 or arr.shape[0] != rows:
                raise self._fail(
                    name, f"returned state[{key!r}] of shape {arr.shape}, expected {rows} rows "
                    f"(one per agent of {what}; block of agents {block.start}:{block.stop})",
                    "size state arrays by the block (X.shape[0], self.block.n_own or "
                    "self.block.n_cols for copies), never by n_agents")
            if inputs_finite and not np.all(np.isfinite(arr)):
                raise self._fail(
                    name, f"returned NaN or inf in state[{key!r}] from a finite state",
                    "make the update finite wherever it is evaluated")
        return state

    @classmethod
    def build(cls, problem, graph, compressor=None, *, scheme: str = "predict", **params):
        return call_user(f"{cls.where}: {cls.attr}(...)", super().build.__func__, cls, problem,
                         graph, compressor, scheme=scheme, fix=f"fix {cls.attr}.__init__ "
                         "(docs/methods.md)", **params)

    def bind_block(self, block):
        self._call("bind_block", super().bind_block, block)

    def init_block(self, X, V):
        out = self._call("init_block", super().init_block, X, V)
        return self._check_state("init_block", out, self._finite_in([X]))

    def send(self, state, t, h):
        out = self._call("send", super().send, state, t, h)
        n, d = self.block.n_own, self.dim
        if not isinstance(out, list | tuple) or len(out) != len(self.channels):
            got = (f"a {type(out).__name__} of {len(out)} item(s)"
                   if isinstance(out, list | tuple) else _describe(out))
            raise self._fail(
                "send", f"returned {got}, not a list of {len(self.channels)} "
                f"array(s) (one per channel of {self.attr}.channels = {tuple(self.channels)})",
                f"return [array of shape ({n}, {d})] per channel")
        for i, z in enumerate(out):
            if not isinstance(z, np.ndarray) or z.dtype != np.float64:
                raise self._fail(
                    "send", f"returned channel {i} as {_describe(z)}, not a float64 array",
                    f"return np.float64 arrays of shape ({n}, {d})")
            if z.shape != (n, d):
                raise self._fail(
                    "send", f"returned channel {i} of shape {z.shape}, expected ({n}, {d}) "
                    f"(one row per own agent of the block {self.block.start}:"
                    f"{self.block.stop})", "send the own rows only, e.g. state['X']")
            if not np.all(np.isfinite(z)) and self._finite_in(state.values()):
                raise self._fail("send", f"returned NaN or inf in channel {i} from a finite "
                                 "state", "make the message finite")
        return list(out)

    def local(self, state, t, h):
        self._call("local", super().local, state, t, h)

    def receive(self, state, messages, t, h):
        out = self._call("receive", super().receive, state, messages, t, h)
        return self._check_state("receive", out,
                                 self._finite_in(state.values(), messages))

    def local_update(self, state, t, h):
        if state is None or not self.local_steps_ok:  # the solver asks for the error
            return super().local_update(state, t, h)
        out = self._call("local_update", super().local_update, state, t, h)
        return self._check_state("local_update", out, self._finite_in(state.values()))


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    return f"a {type(value).__name__}"
