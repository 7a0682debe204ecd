"""A user's own code, named in a config as ``py:FILE:ATTR[:key=value,...]``.

One grammar for every place a config accepts user code (``[problem] kind``, ``[problem]
model`` and ``loss``, ``[method] kind``, a ``[compressor] spec`` stage):

- ``FILE`` is a path when it contains ``/`` (or ``\\``) or ends in ``.py``, relative to the
  config file's folder (:func:`resolve_path`); otherwise it is a module imported from
  ``sys.path`` (``PYTHONPATH``);
- a file is imported with its own folder first on ``sys.path`` for the duration of the
  import (as ``python FILE`` does), so it can import helper modules beside it at its top
  level;
- ``ATTR`` is an attribute of that module (a class or a factory);
- ``key=value`` pairs (comma-separated) are keyword arguments, parsed as int, then float,
  then ``true``/``false``, then kept as a string.

Loading runs the user's file with the user's permissions: a config file that names ``py:``
code is a program. Every failure of user code (an exception, ``SystemExit``, a missing
attribute) becomes one :class:`~stflow.errors.InputError` line naming the reference, what
was expected and the fix (:func:`call_user`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError

__all__ = ["PyRef", "is_py", "parse_ref", "resolve_path", "load_attr", "call_user",
           "parse_value", "py_files"]


def is_py(text) -> bool:
    """True when ``text`` names user code (``py:...``)."""
    return isinstance(text, str) and text.strip().startswith("py:")


def parse_value(text: str):
    """A ``key=value`` value: int, then float, then a boolean, else the string.

    Examples
    --------
    >>> [parse_value(v) for v in ("3", "0.5", "true", "huber")]
    [3, 0.5, True, 'huber']
    """
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    return text


@dataclass(frozen=True)
class PyRef:
    """A parsed ``py:FILE:ATTR[:key=value,...]`` reference."""

    text: str
    module: str
    attr: str
    kwargs: dict = field(default_factory=dict)

    @property
    def is_file(self) -> bool:
        m = self.module
        return m.endswith(".py") or "/" in m or "\\" in m


def parse_ref(text: str, where: str) -> PyRef:
    """Parse ``text`` (``where`` names the config key, for messages).

    Examples
    --------
    >>> r = parse_ref("py:costs/huber.py:make:delta=0.5,scale=2", "[problem] kind")
    >>> r.module, r.attr, r.kwargs, r.is_file
    ('costs/huber.py', 'make', {'delta': 0.5, 'scale': 2}, True)
    >>> parse_ref("py:huber", "[problem] kind")
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [problem] kind = 'py:huber' must read py:FILE:ATTR[:key=value,...]: give a file (or module) and an attribute, e.g. py:my_cost.py:make
    """
    body = text.strip()[3:]
    parts = body.split(":")
    # a Windows drive letter is not supported; a path holds no ':' (resolve_path checks)
    if len(parts) not in (2, 3) or not parts[0].strip() or not parts[1].strip():
        raise InputError(
            f"{where} = {text!r} must read py:FILE:ATTR[:key=value,...]: give a file (or "
            "module) and an attribute, e.g. py:my_cost.py:make"
        )
    kwargs = {}
    if len(parts) == 3 and parts[2].strip():
        for pair in parts[2].split(","):
            key, eq, value = pair.partition("=")
            if not eq or not key.strip() or not key.strip().isidentifier():
                raise InputError(
                    f"{where} = {text!r}: {pair.strip()!r} is not key=value: write "
                    "py:FILE:ATTR:key=value,key2=value2"
                )
            kwargs[key.strip()] = parse_value(value.strip())
    return PyRef(text.strip(), parts[0].strip(), parts[1].strip(), kwargs)


def py_files(text) -> list[str]:
    """The ``FILE`` paths (as written) of every ``py:FILE:ATTR[:key=value,...]`` reference
    in ``text``, including each ``py:`` stage of a composed compressor spec (``A|B``);
    modules (no ``/``, not ending in ``.py``) are not files and are left out.

    Examples
    --------
    >>> py_files("py:/runs/cost.py:make:scale=0.5")
    ['/runs/cost.py']
    >>> py_files("py:/runs/c.py:make|quantize:bits=4|py:my_module:make|py:lib/d.py:f")
    ['/runs/c.py', 'lib/d.py']
    >>> py_files("quadratic"), py_files(3)
    ([], [])
    """
    if not isinstance(text, str):
        return []
    found = []
    for stage in text.split("|"):
        stage = stage.strip()
        if not stage.startswith("py:"):
            continue
        module = stage[3:].split(":", 1)[0].strip()
        if module and PyRef(stage, module, "").is_file:
            found.append(module)
    return found


def _not_found(where: str, text: str, path, folder) -> InputError:
    rel = (f"relative to {folder}" if folder is not None
           else "relative to the working directory")
    return InputError(f"{where} = {text!r}: file '{path}' not found: give a path {rel} or an "
                      "absolute one")


def resolve_path(text: str, base_dir, where: str, *,
                 folder: str = "the config file's folder") -> str:
    """``text`` with its ``FILE`` made absolute against ``base_dir`` (a module stays); a
    file that does not exist is an :class:`InputError` saying that ``FILE`` is relative to
    ``base_dir`` (``folder`` says what that folder is).

    Examples
    --------
    >>> resolve_path("py:lib/cost.py:make:delta=1", "/runs", "[problem] kind")
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [problem] kind = 'py:lib/cost.py:make:delta=1': file '/runs/lib/cost.py' not found: give a path relative to '/runs' (the config file's folder) or an absolute one
    >>> resolve_path("py:my_module:make", "/runs", "[problem] kind")
    'py:my_module:make'
    """
    ref = parse_ref(text, where)
    if not ref.is_file or base_dir is None:
        return text
    path = str((Path(base_dir) / Path(ref.module).expanduser()).resolve())
    if ":" in path or "|" in path:
        raise InputError(
            f"{where}: the file of {text!r} resolves to {path!r}, which contains ':' or '|' "
            "(separators of py: references): move the file to a folder without them"
        )
    if not Path(path).is_file():
        raise _not_found(where, text.strip(), path, f"{str(base_dir)!r} ({folder})")
    stripped = text.strip()
    return stripped.replace(ref.module, path, 1)


def _import(ref: PyRef, where: str, base_dir=None):
    if ref.is_file:
        path = Path(ref.module).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        if not path.is_file():
            raise _not_found(where, ref.text, path, None if base_dir is None else
                             f"{str(base_dir)!r} (the config file's folder)")
        key = f"stflow_user_{abs(hash(str(path.resolve())))}"
        if key in sys.modules:
            return sys.modules[key]
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        # as `python FILE` does: the file's folder first on sys.path while it is imported,
        # so the file imports helper modules beside it (they stay in sys.modules)
        folder = str(path.resolve().parent)
        sys.path.insert(0, folder)
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:
            del sys.modules[key]
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise InputError(
                f"{where} = {ref.text!r}: importing '{path.name}' raised "
                f"{_describe(exc)}: fix the file"
            ) from None
        finally:
            with contextlib.suppress(ValueError):  # unless the user's file removed it
                sys.path.remove(folder)
        return module
    try:
        return importlib.import_module(ref.module)
    except ModuleNotFoundError as exc:
        if exc.name == ref.module or ref.module.startswith(f"{exc.name}."):
            raise InputError(
                f"{where} = {ref.text!r}: module '{ref.module}' not found: check PYTHONPATH "
                "or give a file path ending in .py"
            ) from None
        raise InputError(
            f"{where} = {ref.text!r}: importing '{ref.module}' failed: {exc}: install what "
            "it needs"
        ) from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise InputError(
            f"{where} = {ref.text!r}: importing '{ref.module}' raised {_describe(exc)}: "
            "fix the module"
        ) from None


def load_attr(text: str, where: str, base_dir=None, *, expect: str = "a class or a factory"):
    """``(obj, kwargs)``: the attribute a ``py:`` reference names and its ``key=value``
    pairs. ``expect`` says what the attribute should be, for the message when it is missing.
    """
    ref = parse_ref(text, where)
    module = _import(ref, where, base_dir)
    if not hasattr(module, ref.attr):
        names = sorted(n for n in vars(module) if not n.startswith("_"))
        shown = ", ".join(names[:8]) or "no public names"
        if len(names) > 8:
            shown += f", ... and {len(names) - 8} more"
        raise InputError(
            f"{where} = {ref.text!r}: '{ref.module}' has no attribute {ref.attr!r} (it has "
            f"{shown}): name {expect} defined in it"
        )
    obj = getattr(module, ref.attr)
    if inspect.isbuiltin(obj):  # e.g. py:os:_exit, py:sys:exit: not code of the user's
        raise InputError(
            f"{where} = {ref.text!r}: '{ref.module}.{ref.attr}' is a built-in function, not "
            f"{expect} written in Python (calling it could end stflow with an exit status "
            "that is not stflow's): name your own code"
        )
    return obj, dict(ref.kwargs)


def _describe(exc: BaseException) -> str:
    """``Type: first line of the message`` and where the user's code raised it."""
    at = user_line(exc)
    at = f" at {at}" if at else ""
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}){at} (user code must not exit the program)"
    text = str(exc).strip().splitlines()
    return (f"{type(exc).__name__}{at}: {text[0]}" if text else f"{type(exc).__name__}{at}")


def user_line(exc: BaseException) -> str | None:
    r"""``FILE:LINE (in FUNC)`` of the deepest traceback frame in user code (not stflow, not
    the standard library or an installed package), or None.

    >>> try:
    ...     exec(compile("def f():\n    1 / 0\nf()", "/home/me/cost.py", "exec"))
    ... except ZeroDivisionError as exc:
    ...     user_line(exc)
    '/home/me/cost.py:2 (in f)'
    """
    import sysconfig

    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    libs = tuple(os.path.abspath(sysconfig.get_paths()[k]) + os.sep
                 for k in ("stdlib", "platstdlib", "purelib", "platlib"))
    found = None
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        name = os.path.abspath(code.co_filename)
        if (os.path.isabs(code.co_filename) and not name.startswith(package)
                and not name.startswith(libs)):
            found = f"{code.co_filename}:{tb.tb_lineno} (in {code.co_name})"
        tb = tb.tb_next
    return found


def call_user(where: str, fn, *args, fix: str = "fix the code", **kwargs):
    """``fn(*args, **kwargs)``, where ``fn`` is user code: any exception (``SystemExit``
    included, never ``KeyboardInterrupt``) becomes one :class:`InputError` naming ``where``.

    Examples
    --------
    >>> call_user("[problem] kind = 'py:c.py:make'", lambda: 1 / 0, fix="fix make")
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [problem] kind = 'py:c.py:make' raised ZeroDivisionError: division by zero: fix make
    """
    try:
        return fn(*args, **kwargs)
    except (InputError, KeyboardInterrupt, MemoryError):
        raise
    except BaseException as exc:
        raise InputError(f"{where} raised {_describe(exc)}: {fix}") from exc
