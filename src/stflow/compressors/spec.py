"""The spec grammar: the key tables (COMPRESSOR_DOCS, COMPRESSOR_SUMMARY, EXAMPLE_SPECS),
the composition ``A|B`` it builds, the parser and :func:`make_compressor`.

:class:`Composition` lives here, not in its own module, because it rebuilds its second
stage with :func:`make_compressor` while :func:`make_compressor` builds compositions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from ..kinds import discover
from ._bits import _bits_uint, _index_width, _uint_bits
from ._common import _parse_pairs
from .base import Compressor, _BitCompressor
from .lowrank import make_lowrank
from .user import _load_user

#: Most stages ``A|B|...`` a spec may compose (a deeper chain only repeats work and would
#: nest calls past Python's recursion limit).
MAX_STAGES = 32

__all__ = [
    "MAX_STAGES",
    "resolve_user_paths",
    "Composition",
    "make_compressor",
    "compressor_names",
    "COMPRESSOR_DOCS",
    "COMPRESSOR_SUMMARY",
    "EXAMPLE_SPECS",
]


#: The built-in compressor classes; everything below is read from their declarations
#: (``name``, ``summary``, ``params``, ``sparse``, ``keeps_zeros``, ``rescale_time``).
#: Found by :func:`stflow.kinds.discover`: every class of this package that sets ``summary``.
COMPRESSOR_CLASSES: tuple[type[Compressor], ...] = tuple(
    discover("stflow.compressors", Compressor, "summary"))

#: Every key of every compressor: ``{name: {key: (default, description)}}``.
COMPRESSOR_DOCS: dict[str, dict[str, tuple[object, str]]] = {
    c.name: {p.name: (p.default, p.doc) for p in c.params} for c in COMPRESSOR_CLASSES
}

#: One line per compressor, for ``--help`` and the docs.
COMPRESSOR_SUMMARY: dict[str, str] = {c.name: c.summary for c in COMPRESSOR_CLASSES}

#: Example specs covering every compressor (each class's ``examples``, else its name) and
#: the kinds of composition (valid for d >= 3): the one list the contract tests run.
EXAMPLE_SPECS: tuple[str, ...] = tuple(
    spec for c in COMPRESSOR_CLASSES for spec in (c.examples or (c.name,))
) + (
    "topk:k=2|quantize:bits=4",
    "topk:k=2|quantize:bits=4,scale=pow2",
    "randk:k=2|quantize:bits=3",
    "quantize:bits=3|topk:k=2",
)


def compressor_names() -> tuple[str, ...]:
    """Names of the built-in compressors (``py:MODULE:ATTR`` loads user ones).

    Examples
    --------
    >>> compressor_names()[:3]
    ('identity', 'topk', 'quantize')
    """
    return tuple(COMPRESSOR_DOCS)


class Composition(_BitCompressor):
    r"""Composition ``A|B``: :math:`C(z, t) = B(A(z, t), t)`.

    Linear when both are; :math:`L_c = L_A L_B`. The message is B's message about A's
    output, except when A is ``topk`` or ``randk`` and B is ``quantize`` or ``identity``:
    then it is A's indices (topk: k indices of ``ceil(log2 d)`` bits; randk: none) followed
    by B's message about the k kept values as a k-vector (B at dimension k, and
    :math:`L_B` at dimension k). Both give the same C because B maps zeros to zeros and a
    max over the kept entries is the max over the whole sparse vector.

    Examples
    --------
    >>> c = make_compressor("topk:k=4|quantize:bits=4", 100)
    >>> c.bits_per_message()  # 4 * 7 + 64 + 4 * 4
    108
    """

    def __init__(self, first: Compressor, second: Compressor):
        if first.dim != second.dim:
            raise InputError(
                f"composition {first.spec!r}|{second.spec!r} mixes dims {first.dim} and "
                f"{second.dim}: build both parts at the same d"
            )
        self.first, self.second = first, second
        self.dim = first.dim
        self.name = f"{first.name}|{second.name}"
        self.spec = f"{first.spec}|{second.spec}"
        self.linear = bool(first.linear and second.linear)
        self.period = max(first.period, second.period)
        self.random_support = bool(first.random_support or second.random_support)
        self.time_scale = min(first.time_scale, second.time_scale)
        self._sparse = bool(type(first).sparse) and bool(type(second).keeps_zeros)
        self._inner = make_compressor(second.spec, first.k) if self._sparse else second
        self.linear_bound = float(first.linear_bound) * float(self._inner.linear_bound)

    def bits_per_message(self) -> int:
        if not self._sparse:
            return int(self.second.bits_per_message())
        return self._index_bits() + self._inner.bits_per_message()

    def _index_bits(self) -> int:
        return self.first.k * _index_width(self.dim) if self.first.sparse == "indices" else 0

    def _apply(self, Z, t):
        if not self._sparse:
            return self.second(self.first(Z, t), t)
        # B on the k kept values only: the same numbers as B(A(z)) (B maps 0 to 0, and
        # the max over the kept entries is the max over the sparse vector), k/d the work
        idx = self._kept(Z, t)
        out = np.zeros_like(Z)
        kept = self._inner(np.take_along_axis(Z, idx, axis=1), t)
        np.put_along_axis(out, idx, kept, axis=1)
        return out

    def encode(self, Z: np.ndarray, t: float) -> list[bytes]:
        if self._sparse:
            return super().encode(Z, t)
        return self.second.encode(self.first(Z, t), t)

    def decode(self, messages: Sequence[bytes], t: float) -> np.ndarray:
        if self._sparse:
            return super().decode(messages, t)
        return self.second.decode(messages, t)

    def encode_array(self, Z: np.ndarray, t: float) -> np.ndarray:
        if self._sparse:
            return super().encode_array(Z, t)
        return self.second.encode_array(self.first(Z, t), t)

    def decode_array(self, buf: np.ndarray, t: float) -> np.ndarray:
        if self._sparse:
            return super().decode_array(buf, t)
        return self.second.decode_array(buf, t)

    def _kept(self, Z, t):
        if self.first.sparse == "indices":
            return self.first.indices(Z)
        return np.broadcast_to(self.first.support(t), (Z.shape[0], self.first.k))

    def _segments(self, Z, t):
        idx = self._kept(Z, t)
        vals = np.take_along_axis(Z, idx, axis=1)
        segs = self._inner._segments(vals, t)
        if self.first.sparse == "indices":
            segs.insert(0, ("bits", _uint_bits(idx, _index_width(self.dim))))
        return segs

    def _layout(self):
        head = [("bits", self._index_bits())] if self.first.sparse == "indices" else []
        return head + self._inner._layout()

    def _from_segments(self, segs, t):
        k = self.first.k
        n_rows = segs[0].shape[0]
        if self.first.sparse == "indices":
            idx = _bits_uint(segs[0], k, _index_width(self.dim))
            segs = segs[1:]
        else:
            idx = np.broadcast_to(self.first.support(t), (n_rows, k))
        out = np.zeros((n_rows, self.dim))
        np.put_along_axis(out, idx, self._inner._from_segments(segs, t), axis=1)
        return out


# --------------------------------------------------------------------------- spec parser


_CLASSES = {c.name: c for c in COMPRESSOR_CLASSES}


def _convert(name: str, key: str, value: str):
    """A spec value (text) as the type its :class:`~stflow.params.Param` declares."""
    param = next(p for p in _CLASSES[name].params if p.name == key)
    text = value.strip()
    try:
        parsed = {"int": int, "float": float}.get(param.type, str)(text)
    except ValueError:
        kind = "an integer" if param.type == "int" else "a number"
        raise InputError(
            f"`{key}` of {name} must be {kind} (got {key}={value!r}): e.g. {key}={param.default}"
        ) from None
    if param.choices and parsed not in param.choices:
        raise InputError(
            f"`{key}` of {name} must be one of {', '.join(map(str, param.choices))} (got "
            f"{key}={value!r}): pick one of these"
        )
    return parsed


def _build_stage(stage: str, dim: int, base_dir=None, shapes=None) -> Compressor:
    stage = stage.strip()
    if stage.startswith("py:"):
        return _load_user(stage, dim, base_dir)
    name, _, args = stage.partition(":")
    name = name.strip()
    if name == "lowrank":  # shape-aware: needs the model's param_shapes (lowrank.py)
        return make_lowrank(args, dim, shapes)
    if name not in COMPRESSOR_DOCS:
        raise InputError(
            f"`spec` names an unknown compressor {name!r} (valid: "
            f"{', '.join(compressor_names())}, lowrank, or py:MODULE:ATTR): fix the name"
        )
    raw = _parse_pairs(args, stage) if args.strip() else {}
    keys = COMPRESSOR_DOCS[name]
    for key in raw:
        if key not in keys:
            valid = ", ".join(keys) if keys else "none"
            raise InputError(
                f"compressor `{name}` has no key `{key}` (valid keys: {valid}): fix {stage!r}"
            )
    params = {key: _convert(name, key, v) for key, v in raw.items()}
    return _CLASSES[name](dim, **params)


def resolve_user_paths(spec: str, base_dir) -> str:
    """The spec with every relative ``py:`` file path made absolute against ``base_dir``.

    For a config loader that wants a spec valid from any working directory (the MPI
    ranks rebuild the compressor from the spec): stages that are not ``py:`` files, module
    names and absolute paths are kept as written.

    Examples
    --------
    >>> resolve_user_paths("py:lib/c.py:make:tau=0.1|topk:k=2", "/cfg")
    'py:/cfg/lib/c.py:make:tau=0.1|topk:k=2'
    >>> resolve_user_paths("py:my_module:make", "/cfg")
    'py:my_module:make'
    """
    from pathlib import Path

    if not isinstance(spec, str):
        return spec
    stages = []
    for stage in spec.split("|"):
        text = stage.strip()
        if text.startswith("py:"):
            module, sep, rest = text[3:].partition(":")
            path = Path(module.strip()).expanduser()
            is_file = module.endswith(".py") or "/" in module or "\\" in module
            if is_file and not path.is_absolute():
                stage = stage.replace(text, f"py:{Path(base_dir) / path}{sep}{rest}")
        stages.append(stage)
    return "|".join(stages)


def make_compressor(spec: str, dim: int, *, base_dir=None, shapes=None) -> Compressor:
    """Build a compressor from a spec string at dimension ``dim``.

    Grammar: ``name[:key=value[,key=value...]]``; ``A|B|...`` composes left to right
    (:math:`C = B \\circ A`, at most :data:`MAX_STAGES` stages);
    ``py:MODULE:ATTR[:key=value,...]`` (or ``py:path/to/file.py:ATTR``) calls
    ``ATTR(dim, **kwargs)``, which returns a :class:`Compressor` or a plain callable
    ``C(Z, t)`` (wrapped in :class:`CallableCompressor`; kwargs are parsed as int, then
    float, then str). Missing keys take the defaults in :data:`COMPRESSOR_DOCS`.

    ``base_dir`` (a folder, e.g. the config file's) resolves a relative ``py:`` file path;
    without it the path is relative to the working directory. A module name (no ``/``, no
    ``.py``) is imported from ``sys.path`` (``PYTHONPATH``) either way. ``shapes`` (a
    problem's ``param_shapes``) goes to the shape-aware ``lowrank`` stage (:mod:`.lowrank`).

    Examples
    --------
    >>> make_compressor("topk:k=2", 10).spec
    'topk:k=2'
    >>> make_compressor("topk:k=4 | quantize", 100).bits_per_message()
    108
    """
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
        raise InputError(f"`dim` must be an integer >= 1 (got dim={dim!r}): pass the problem's d")
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"`spec` must be a non-empty string (got {spec!r}): e.g. 'topk:k=2'")
    stages = spec.split("|")
    if len(stages) > MAX_STAGES:
        raise InputError(
            f"`spec` has {len(stages)} stages, more than {MAX_STAGES} (starts "
            f"{spec[:40]!r}): compose at most {MAX_STAGES} compressors"
        )
    if any(not s.strip() for s in stages):
        raise InputError(f"`spec` {spec!r} has an empty stage around '|': write A|B")
    comp = _build_stage(stages[0], int(dim), base_dir, shapes)
    for stage in stages[1:]:
        comp = Composition(comp, _build_stage(stage, int(dim), base_dir, shapes))
    return comp
