"""User compressors: :class:`CallableCompressor` wrapping a plain callable, and loading
``py:MODULE:ATTR[:key=value,...]`` specs from a module or a file."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..errors import InputError
from ..user_code import _describe
from ._bits import _bytes_f8, _f8_bytes
from ._common import _parse_pairs
from .base import Compressor, _BitCompressor

__all__ = [
    "CallableCompressor",
    "USER_TIME_SCALE",
]


#: Time scale assumed for a user callable that does not declare ``time_scale``: the
#: certificate then integrates with steps this small, so a C(z, t) that switches every
#: ``tau >= USER_TIME_SCALE`` is not aliased. Declare ``fn.time_scale = inf`` on a
#: time-invariant callable to certify it faster.
USER_TIME_SCALE = 1e-3


class CallableCompressor(_BitCompressor):
    r"""Wrap a plain callable ``fn(Z, t) -> (N, d)`` as a compressor.

    The message is the raw float64 output: 64 d bits. ``linear`` is False and
    ``linear_bound`` is inf (unknown) unless given; ``certify`` estimates both. A factory's
    callable may carry the attributes ``linear``, ``linear_bound``, ``period``,
    ``time_scale`` (default :data:`USER_TIME_SCALE`) and ``random_support``.

    Examples
    --------
    >>> c = CallableCompressor(lambda Z, t: 0.5 * Z, 2, spec="py:halve", linear=True)
    >>> c(np.array([2.0, -4.0]), 0.0).tolist(), c.bits_per_message()
    ([1.0, -2.0], 128)
    """

    name = "py"

    def __init__(
        self,
        fn: Callable,
        dim: int,
        *,
        spec: str = "py",
        linear: bool = False,
        linear_bound: float = math.inf,
        period: float = 0.0,
        time_scale: float = math.inf,
        random_support: bool = False,
    ):
        self.fn, self.dim, self.spec = fn, int(dim), spec
        self.linear, self.linear_bound = bool(linear), float(linear_bound)
        self.period, self.time_scale = float(period), float(time_scale)
        self.random_support = bool(random_support)

    def bits_per_message(self) -> int:
        return 64 * self.dim

    def _apply(self, Z, t):
        return _checked_output(self.spec, _guarded(self.spec, self.fn, Z, t), Z, t)

    def _segments(self, Z, t):
        return [("bytes", _f8_bytes(self._apply(Z, t)))]

    def _layout(self):
        return [("bytes", 8 * self.dim)]

    def _from_segments(self, segs, t):
        return _bytes_f8(segs[0])


def _guarded(spec: str, fn: Callable, *args):
    """``fn(*args)``; any exception of user code becomes one InputError line naming ``spec``."""
    try:
        return fn(*args)
    except (InputError, MemoryError):
        raise
    except (Exception, SystemExit) as exc:  # sys.exit in user code is its error, not ours
        raise InputError(f"compressor `{spec}` raised {_describe(exc)}: fix the compressor") from exc


def _as_float(out, who: str, fix: str) -> np.ndarray:
    """``out`` as a float64 array, or one InputError line: ``{who} TYPE, not an array of
    numbers (...): {fix}``."""
    try:
        return np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{who} {type(out).__name__}, not an array of numbers ({exc}): {fix}") from exc


def _checked_output(spec: str, out, Z: np.ndarray, t: float) -> np.ndarray:
    """A user compressor's C(Z, t) as float64, after checking its shape and finiteness."""
    if np.iscomplexobj(out):  # numpy would drop the imaginary part with a warning a call
        raise InputError(f"compressor `{spec}` returned complex values at t={t:.6g}: return "
                         "a real (N, d) float array")
    out = _as_float(out, f"compressor `{spec}` returned", "return an (N, d) float array")
    if out.shape != Z.shape:
        raise InputError(
            f"compressor `{spec}` returned shape {out.shape} for input {Z.shape} at t={t:.6g}: "
            "return one row of d values per input row"
        )
    if not np.isfinite(out).all() and np.isfinite(Z).all() and np.abs(Z).max() < 1e150:
        raise InputError(
            f"compressor `{spec}` returned NaN or inf for a finite input at t={t:.6g}: "
            "make C(z, t) finite for every finite z"
        )
    return out


def _checked_decoded(spec: str, out, rows: int, dim: int, t: float) -> np.ndarray:
    """A user compressor's ``decode`` output as float64 (rows, dim), checked: the receiving
    side of C(Z, t), so the same rules (shape, finite values) with ``decode`` named."""
    out = _as_float(out, f"compressor `{spec}`: decode returned",
                    f"return a ({rows}, {dim}) float array, one row per message")
    if out.shape != (rows, dim):
        raise InputError(
            f"compressor `{spec}`: decode returned shape {out.shape} for {rows} message(s) "
            f"at t={t:.6g}, not ({rows}, {dim}): return one row of d values per message, "
            "equal to C(Z, t) of the row that encode was given"
        )
    if not np.isfinite(out).all():
        raise InputError(
            f"compressor `{spec}`: decode returned NaN or inf at t={t:.6g}: decoding what "
            "encode made of a finite input must give C(Z, t), which is finite"
        )
    return out


class _UserCompressor(Compressor):
    """A user's :class:`Compressor` instance with every call guarded: an exception, a wrong
    shape or a NaN becomes one InputError line naming the spec. Other attributes are the
    user object's."""

    def __init__(self, inner: Compressor, stage: str):
        self._inner = inner
        self.name = getattr(inner, "name", "") or "py"
        self.spec = getattr(inner, "spec", "") or stage
        self.dim = int(inner.dim)
        self.linear = bool(getattr(inner, "linear", False))
        self.linear_bound = float(getattr(inner, "linear_bound", math.inf))
        self.period = float(getattr(inner, "period", 0.0))
        self.random_support = bool(getattr(inner, "random_support", False))
        self.time_scale = float(getattr(inner, "time_scale", math.inf))

    def __getattr__(self, name):
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __call__(self, Z, t):
        Z2, one = self._rows(Z)
        out = _checked_output(self.spec, _guarded(self.spec, self._inner, Z2, t), Z2, float(t))
        return out[0] if one else out

    def bits_per_message(self) -> int:
        return int(_guarded(self.spec, self._inner.bits_per_message))

    def encode(self, Z, t):
        return _guarded(self.spec, self._inner.encode, Z, t)

    def decode(self, messages, t):
        return _checked_decoded(self.spec, _guarded(self.spec, self._inner.decode, messages, t),
                                len(messages), self.dim, float(t))

    def encode_array(self, Z, t):
        return self._check_buffer(
            np.asarray(_guarded(self.spec, self._inner.encode_array, Z, t))
        )

    def decode_array(self, buf, t):
        buf = self._check_buffer(buf)
        return _checked_decoded(self.spec, _guarded(self.spec, self._inner.decode_array, buf, t),
                                int(buf.shape[0]), self.dim, float(t))


def _user_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _load_user(stage: str, dim: int, base_dir=None) -> Compressor:
    parts = stage[3:].split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InputError(
            f"compressor `{stage}` must read py:MODULE:ATTR[:key=value,...]: "
            "give a module (or .py path) and an attribute"
        )
    modname, attr = parts[0].strip(), parts[1].strip()
    kwargs = {}
    if len(parts) == 3 and parts[2].strip():
        kwargs = {k: _user_value(v) for k, v in _parse_pairs(parts[2], stage).items()}
    from ..user_code import PyRef, _import

    module = _import(PyRef(stage, modname, attr, kwargs), "[compressor] spec", base_dir)
    if not hasattr(module, attr):
        raise InputError(
            f"compressor `{stage}`: module {modname!r} has no attribute {attr!r}: "
            "check the name after the second colon"
        )
    import inspect

    if inspect.isbuiltin(getattr(module, attr)):  # py:os:_exit would end stflow with code d
        raise InputError(
            f"compressor `{stage}`: '{modname}.{attr}' is a built-in function, not a "
            "compressor factory written in Python (calling it could end stflow with an exit "
            "status that is not stflow's): name your own factory"
        )
    try:
        result = getattr(module, attr)(dim, **kwargs)
    except (Exception, SystemExit) as exc:  # the user's factory: any failure is input
        raise InputError(
            f"compressor `{stage}`: {attr}({dim}, **{kwargs}) raised "
            f"{_describe(exc)}: fix the factory or its keys"
        ) from exc
    if isinstance(result, Compressor):
        builtin = type(result).__module__.startswith("stflow.")
        comp = result if builtin else _UserCompressor(result, stage)
    elif callable(result) and not hasattr(result, "encode"):
        comp = CallableCompressor(
            result,
            dim,
            spec=stage,
            linear=bool(getattr(result, "linear", False)),
            linear_bound=float(getattr(result, "linear_bound", math.inf)),
            period=float(getattr(result, "period", 0.0)),
            # unknown time dependence: sample finely, or a t-varying C could alias
            time_scale=float(getattr(result, "time_scale", USER_TIME_SCALE)),
            random_support=bool(getattr(result, "random_support", False)),
        )
    else:
        raise InputError(
            f"compressor `{stage}`: {attr}({dim}) returned {type(result).__name__}: return a "
            "stflow.compressors.Compressor subclass instance or a callable C(Z, t)"
        )
    try:
        probe = np.asarray(comp(np.zeros((2, dim)), 0.0))
    except InputError:
        raise
    except (Exception, SystemExit) as exc:
        raise InputError(
            f"compressor `{stage}`: C(zeros((2, {dim})), 0) raised {_describe(exc)}: "
            "make C accept (N, d) arrays"
        ) from exc
    if probe.shape != (2, dim) or getattr(comp, "dim", None) != dim:
        raise InputError(
            f"compressor `{stage}`: C(zeros((2, {dim})), 0) has shape {probe.shape} and dim "
            f"{getattr(comp, 'dim', None)}: return (N, d) = (2, {dim}) at dim {dim}"
        )
    if isinstance(comp, _UserCompressor):
        _check_wire(comp, stage)
    return comp


def _check_wire(comp: Compressor, stage: str) -> None:
    """Refuse, when it is built, a user compressor whose ``encode`` disagrees with its own
    ``bits_per_message()``: the simulator and ``certify`` count the declared bits, MPI sends
    what ``encode`` makes, so the two would silently report different costs (or MPI fail
    mid-run on every rank)."""
    Z = np.random.default_rng(0).standard_normal((2, comp.dim))
    bits = comp.bits_per_message()
    nbytes = comp.bytes_per_message()
    messages = comp.encode(Z, 0.0)
    try:
        sizes = [len(m) for m in messages]
    except TypeError:
        sizes = None
    if sizes is None or len(sizes) != 2:
        raise InputError(
            f"compressor `{stage}`: encode(Z, t) of {len(Z)} rows returned "
            f"{type(messages).__name__}, not {len(Z)} messages: return one bytes object per row"
        )
    if any(n != nbytes for n in sizes):
        bad = next(n for n in sizes if n != nbytes)
        raise InputError(
            f"compressor `{stage}`: encode gives messages of {bad} bytes ({8 * bad} bits) at "
            f"d = {comp.dim}, but bits_per_message() says {bits} bits ({nbytes} bytes): make "
            "bits_per_message() return the bits one encoded message holds (docs/compressors.md)"
        )
