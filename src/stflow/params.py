"""How a kind declares its config keys: :class:`Param`.

A problem, method or compressor class lists its keys once, as ``params`` on the class
(its kind name is ``kind``). Config validation, ``docs/config.md``, the tuner's search box
and the help text all read these declarations; see ``docs/extending.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import InputError

__all__ = ["Param", "check_section"]


@dataclass(frozen=True)
class Param:
    """One key a kind declares: its name, default, meaning, type and bounds.

    ``type`` is ``"float"`` (the default), ``"int"``, ``"str"``, ``"bool"``, ``"ints"`` (a
    list of positive integers) or ``"any"`` (a user's key: any TOML value). For floats
    ``low < value <= high`` (``low`` excluded); for ints ``low <= value <= high``.
    ``auto`` allows the string ``"auto"``; ``zero`` allows the value 0 too (an off switch:
    the tuner keeps a 0 as it is); ``none`` allows leaving it unset (``None``); ``log`` says
    the tuner searches it on a log scale. A non-empty ``choices`` makes it a switch: the
    value must be one of them, of the same type (declare it with ``tunable=False``).
    ``section`` is the config section the key lives in (for messages).

    Examples
    --------
    >>> p = Param("lr", "auto", "step size", high=10.0, auto=True)
    >>> p.check(0.5, "dgd"), p.check("auto", "dgd")
    (0.5, 'auto')
    >>> p.check(-1, "dgd")
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [method] lr must be a number in (0, 10] or "auto" for kind = "dgd" (got -1): e.g. lr = 'auto' (step size)
    >>> ef = Param("error_feedback", False, "memory", choices=(True, False), tunable=False)
    >>> ef.check(True, "direct")
    True
    >>> ef.check(1, "direct")
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [method] error_feedback must be true or false for kind = "direct" (got 1): e.g. error_feedback = false (memory)
    >>> m = Param("samples", None, "rows per agent", type="int", low=1, none=True, example=20,
    ...           section="problem")
    >>> m.check(None, "logistic"), m.check(20, "logistic")
    (None, 20)
    >>> m.check(0, "logistic")
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [problem] samples must be an integer >= 1 for kind = "logistic" (got 0): e.g. samples = 20, or leave it out (rows per agent)
    """

    name: str
    default: Any
    doc: str
    low: float = 0.0
    high: float = math.inf
    auto: bool = False
    log: bool = True
    tunable: bool = True
    zero: bool = False
    #: Tuned only when this other parameter is nonzero (it has no effect otherwise).
    requires: str | None = None
    choices: tuple = ()
    type: str = "float"
    none: bool = False
    section: str = "method"
    #: An example value for messages (default: the default, else a typical value).
    example: Any = None

    @property
    def tuned(self) -> bool:
        """True when the tuner searches this key (a tunable number)."""
        return self.tunable and self.type == "float" and not self.choices

    def _where(self, kind: str) -> str:
        return f'[{self.section}] {self.name}' + (f' must be {{}} for kind = "{kind}"' if kind
                                                  else " must be {}")

    def _fail(self, kind, expected: str, value, extra: str = "") -> InputError:
        ex = self.example if self.example is not None else self.default
        if ex is None:
            ex = {"int": 1, "str": "...", "bool": True, "ints": [64]}.get(self.type, 1.0)
        unset = ", or leave it out" if self.none and self.default is None else ""
        return InputError(
            self._where(kind).format(expected)
            + f" (got {value!r}): e.g. {self.name} = {repr(ex) if self.type == 'float' and not self.choices else _toml(ex)}"
            + f"{unset}{extra} ({self.doc})"
        )

    def check(self, value, kind: str = ""):
        """The validated value (converted: ints to float for a float key)."""
        if value is None and (self.none or self.default is None):
            return None
        if self.choices:
            if any(type(value) is type(c) and value == c for c in self.choices):
                return value
            allowed = " or ".join(_toml(c) for c in self.choices)
            raise self._fail(kind, allowed, value)
        if self.type == "any":
            return value
        if self.type == "str":
            if not isinstance(value, str):
                raise self._fail(kind, "a string (in quotes)", value)
            return value
        if self.type == "bool":
            if not isinstance(value, bool):
                raise self._fail(kind, "true or false", value)
            return value
        if self.type == "ints":
            if not isinstance(value, list) or any(
                    isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in value):
                raise self._fail(kind, "a list of positive integers", value)
            return list(value)
        if self.type == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
            if not ok or not (self.low <= value <= self.high):
                rng = (f">= {self.low:g}" if math.isinf(self.high)
                       else f"in [{self.low:g}, {self.high:g}]")
                raise self._fail(kind, f"an integer {rng}", value)
            return int(value)
        if self.auto and value == "auto":
            return value
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if self.zero and ok and value == 0:
            return 0.0
        if not (ok and math.isfinite(value) and self.low < value <= self.high):
            rng = "> 0" if self.low == 0 and math.isinf(self.high) else (
                f"> {self.low:g}" if math.isinf(self.high) else
                f"in ({self.low:g}, {self.high:g}]")
            if self.zero:
                rng = ">= 0" if self.low == 0 and math.isinf(self.high) else rng + " or 0"
            auto = ' or "auto"' if self.auto else ""
            raise self._fail(kind, f"a number {rng}{auto}", value)
        return float(value)


def check_section(section: str, kind: str, given: dict, params, *, skip=("kind",)) -> dict:
    """``given`` (a config section) validated against ``params``: unknown keys are errors
    that list the valid ones; missing keys take their defaults.

    Examples
    --------
    >>> ps = (Param("lr", 0.1, "step size", section="method"),)
    >>> check_section("method", "dgd", {"kind": "dgd"}, ps)
    {'lr': 0.1}
    >>> check_section("method", "dgd", {"kind": "dgd", "rate": 1}, ps)
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: unknown key [method] rate for kind = "dgd": its keys are kind, lr (docs/config.md lists every kind's keys)
    """
    names = [p.name for p in params]
    for key in given:
        if key not in skip and key not in names:
            raise InputError(
                f'unknown key [{section}] {key} for kind = "{kind}": its keys are '
                f"{', '.join([*skip, *names])} (docs/config.md lists every kind's keys)"
            )
    import copy

    return {p.name: p.check(copy.deepcopy(given.get(p.name, p.default)), kind) for p in params}


def _toml(value) -> str:
    """``value`` as written in a TOML file (``true``, ``"name"``, ``2.0``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else repr(value)
