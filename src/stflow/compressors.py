r"""Spatio-temporal compressors: the maps, the spec parser, bit counts and wire encoding.

A compressor is a small object :math:`C : \mathbb{R}^d \times [0, \infty) \to \mathbb{R}^d`
(SPEC section 3) that acts row-wise on an ``(N, d)`` array, knows the size of its message
(SPEC section 6) and can turn rows into the exact bytes that go on the wire and back:
``decode(encode(Z, t), t)`` equals ``C(Z, t)`` bit for bit.

Specs follow the grammar ``name[:key=value[,key=value...]]``; ``A|B`` applies ``A`` and
then ``B`` to ``A``'s output; ``py:MODULE:ATTR[:key=value,...]`` loads a user compressor.
:data:`EXAMPLE_SPECS` is the one list of compressors that drives the contract tests.

Message layouts (one bit stream per row, zero-padded at the end to whole bytes; unsigned
integers big-endian bit order, floats little-endian IEEE float64):

==============  ===================================================  =====================
name            message                                              bits
==============  ===================================================  =====================
identity        d float64                                            64 d
topk            k indices (ceil(log2 d) bits, increasing), k float64  k (ceil(log2 d) + 64)
quantize        float64 m, d levels ``level + s`` of b bits          64 + b d
scalarize       one float64 phi(t)^T z                               64
sign            float64 ``||z||_1 / d``, d bits (1 = nonnegative)    64 + d
randk           k float64 in increasing index order (S(t) is shared)  64 k
fixedquant      d int64 levels                                       64 d
==============  ===================================================  =====================
"""

from __future__ import annotations

import abc
import functools
import importlib
import importlib.util
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = [
    "Compressor",
    "Identity",
    "TopK",
    "Quantize",
    "Scalarize",
    "Sign",
    "RandK",
    "FixedQuant",
    "Composition",
    "CallableCompressor",
    "make_compressor",
    "compressor_names",
    "COMPRESSOR_DOCS",
    "COMPRESSOR_SUMMARY",
    "EXAMPLE_SPECS",
]

#: Every key of every compressor: ``{name: {key: (default, description)}}``.
COMPRESSOR_DOCS: dict[str, dict[str, tuple[object, str]]] = {
    "identity": {},
    "topk": {"k": (1, "entries kept per message, 1 <= k <= d")},
    "quantize": {"bits": (4, "bits per level, 2 <= bits <= 53; s = 2^(bits-1) - 1 levels")},
    "scalarize": {
        "basis": ("cyclic", "direction phi(t): cyclic, sinusoid, random or constant"),
        "tau": (0.01, "time each cyclic/random direction is held, > 0"),
        "freq": (5.0, "sinusoid base frequency f > 0; omega_j = 2 pi f (j + 1)"),
        "seed": (0, "shared seed of the random basis, >= 0"),
    },
    "sign": {},
    "randk": {
        "k": (1, "coordinates sent per message, 1 <= k <= d"),
        "seed": (0, "shared seed of the coordinate sets, >= 0"),
        "tau": (0.01, "time each coordinate set is held, > 0"),
    },
    "fixedquant": {"step": (0.1, "quantization step Delta > 0 (not spatio-temporal)")},
}

#: One line per compressor, for ``--help`` and the docs.
COMPRESSOR_SUMMARY: dict[str, str] = {
    "identity": "C(z) = z (no compression)",
    "topk": "greedy sparsifier: keep the k largest |z_j|, ties to the lower index",
    "quantize": "norm-scaled uniform quantizer: m rint(s z / m) / s with m = max |z_j|",
    "scalarize": "one scalar per message: C = phi(t) phi(t)^T z",
    "sign": "scaled sign: (||z||_1 / d) sgn(z), sgn(0) = +1",
    "randk": "shared-seed random sparsifier: keep k coordinates redrawn every tau",
    "fixedquant": "fixed-step quantizer Delta rint(z / Delta); NOT spatio-temporal",
}

#: Example specs covering every compressor and two kinds of composition (valid for d >= 3).
EXAMPLE_SPECS: tuple[str, ...] = (
    "identity",
    "topk:k=1",
    "topk:k=3",
    "quantize:bits=2",
    "quantize:bits=4",
    "quantize:bits=8",
    "scalarize:basis=cyclic",
    "scalarize:basis=sinusoid",
    "scalarize:basis=random",
    "scalarize:basis=constant",
    "sign",
    "randk:k=2",
    "fixedquant:step=0.1",
    "topk:k=2|quantize:bits=4",
    "randk:k=2|quantize:bits=3",
    "quantize:bits=3|topk:k=2",
)

_BASES = ("cyclic", "sinusoid", "random", "constant")
_MAX_LEVEL_BITS = 53  # levels and s must be exact float64 integers


def compressor_names() -> tuple[str, ...]:
    """Names of the built-in compressors (``py:MODULE:ATTR`` loads user ones).

    Examples
    --------
    >>> compressor_names()[:3]
    ('identity', 'topk', 'quantize')
    """
    return tuple(COMPRESSOR_DOCS)


# --------------------------------------------------------------------------- bit packing


def _index_width(d: int) -> int:
    """ceil(log2 d) for d >= 1 (0 for d = 1)."""
    return (int(d) - 1).bit_length()


def _uint_bits(values: np.ndarray, width: int) -> np.ndarray:
    """(N, n) nonnegative ints -> (N, n * width) bits, most significant bit first."""
    values = np.asarray(values)
    n_rows = values.shape[0]
    if width == 0:
        return np.zeros((n_rows, 0), dtype=np.uint8)
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = (values.astype(np.uint64)[..., None] >> shifts) & np.uint64(1)
    return bits.reshape(n_rows, -1).astype(np.uint8)


def _bits_uint(bits: np.ndarray, count: int, width: int) -> np.ndarray:
    """(N, count * width) bits -> (N, count) int64; inverse of :func:`_uint_bits`."""
    n_rows = bits.shape[0]
    if width == 0:
        return np.zeros((n_rows, count), dtype=np.int64)
    weights = np.left_shift(np.int64(1), np.arange(width - 1, -1, -1, dtype=np.int64))
    return (bits.reshape(n_rows, count, width).astype(np.int64) * weights).sum(axis=2)


def _raw_bits(values: np.ndarray, dtype: str = "<f8") -> np.ndarray:
    """(N, n) numbers -> (N, 64 n) bits of their little-endian 8-byte representation."""
    raw = np.ascontiguousarray(values, dtype=dtype)
    return np.unpackbits(raw.view(np.uint8).reshape(raw.shape[0], -1), axis=1)


def _bits_raw(bits: np.ndarray, count: int, dtype: str = "<f8") -> np.ndarray:
    """(N, 64 count) bits -> (N, count) numbers; inverse of :func:`_raw_bits`."""
    raw = np.ascontiguousarray(np.packbits(bits, axis=1))
    out = raw.view(dtype).reshape(bits.shape[0], count)
    return out.astype(np.float64 if dtype == "<f8" else np.int64)


def _pack_uint(values: np.ndarray, width: int) -> bytes:
    """Bit-pack nonnegative integers with ``width`` bits each (big-endian bit order).

    Examples
    --------
    >>> _pack_uint(np.array([1, 2, 3]), 2).hex()  # 01 10 11 + 2 padding bits
    '6c'
    """
    bits = _uint_bits(np.asarray(values).reshape(1, -1), width)
    return np.packbits(bits, axis=1)[0].tobytes()


def _unpack_uint(buf: bytes, count: int, width: int, bit_offset: int = 0) -> np.ndarray:
    """Read ``count`` integers of ``width`` bits starting ``bit_offset`` bits into ``buf``.

    Examples
    --------
    >>> _unpack_uint(bytes.fromhex("6c"), 3, 2).tolist()
    [1, 2, 3]
    """
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8))
    chunk = bits[bit_offset : bit_offset + count * width].reshape(1, -1)
    return _bits_uint(chunk, count, width)[0]


# --------------------------------------------------------------------------- base classes


class Compressor(abc.ABC):
    r"""The compressor protocol: a row-wise map :math:`C(z, t)` with a wire format.

    Subclasses implement ``__call__``, ``bits_per_message``, ``encode`` and ``decode`` and set
    the attributes below. ``decode(encode(Z, t), t)`` must equal ``C(Z, t)`` bit for bit and
    every message must be exactly ``ceil(bits_per_message() / 8)`` bytes.

    Attributes
    ----------
    name, spec : str
        Short name (``"topk"``) and canonical spec (``"topk:k=2"``).
    dim : int
        d, fixed at construction.
    linear : bool
        True when :math:`C(z, t) = C(t) z`.
    linear_bound : float
        Proven :math:`L_c` with :math:`\|C(z, t)\| \le L_c \|z\|` (``inf`` if unknown).
    period : float
        Excitation period (time for the directions to span R^d); 0 when C does not depend
        on t, ``inf`` when it never spans.
    time_scale : float
        Largest time step that still resolves how C(., t) changes with t: the window tau of
        a piecewise-constant C, one radian of the fastest harmonic of a smooth one,
        ``inf`` when C does not depend on t.

    Examples
    --------
    >>> c = make_compressor("topk:k=1", 3)
    >>> isinstance(c, Compressor), c.linear, c.bits_per_message()
    (True, False, 66)
    """

    name: str = ""
    spec: str = ""
    dim: int = 0
    linear: bool = False
    linear_bound: float = math.inf
    period: float = 0.0
    time_scale: float = math.inf

    @abc.abstractmethod
    def __call__(self, Z: np.ndarray, t: float) -> np.ndarray:
        """C(Z, t) row-wise: (N, d) -> (N, d), or (d,) -> (d,)."""

    @abc.abstractmethod
    def bits_per_message(self) -> int:
        """Bits of one message at ``self.dim`` (SPEC section 6)."""

    @abc.abstractmethod
    def encode(self, Z: np.ndarray, t: float) -> list[bytes]:
        """One message (bytes) per row of Z."""

    @abc.abstractmethod
    def decode(self, messages: Sequence[bytes], t: float) -> np.ndarray:
        """Messages -> (len(messages), d) array equal to C(Z, t)."""

    def bytes_per_message(self) -> int:
        """``ceil(bits_per_message() / 8)``: bytes of one message on the wire."""
        return -(-int(self.bits_per_message()) // 8)

    def describe(self) -> dict:
        """Spec, linearity, bits per message and L_c as a plain dict.

        Examples
        --------
        >>> make_compressor("sign", 4).describe()["bits_per_message"]
        68
        """
        return {
            "spec": self.spec,
            "linear": bool(self.linear),
            "bits_per_message": int(self.bits_per_message()),
            "linear_bound": float(self.linear_bound),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, dim={self.dim})"

    def _rows(self, Z: np.ndarray, arg: str = "Z") -> tuple[np.ndarray, bool]:
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim == 1 and Z.shape[0] == self.dim:
            return Z.reshape(1, -1), True
        if Z.ndim == 2 and Z.shape[1] == self.dim:
            return Z, False
        raise InputError(
            f"`{arg}` must have shape (N, d) or (d,) with d={self.dim} (got shape {Z.shape}): "
            f"pass one row per agent to compressor {self.spec!r}"
        )

    def _check_messages(self, messages: Sequence[bytes]) -> np.ndarray:
        """Messages -> (M, nbytes) uint8, after checking every length."""
        nbytes = self.bytes_per_message()
        bad = [i for i, m in enumerate(messages) if len(m) != nbytes]
        if bad:
            raise InputError(
                f"`messages` must be {nbytes} bytes each for {self.spec!r} at d={self.dim} "
                f"(message {bad[0]} has {len(messages[bad[0]])}): decode what encode produced"
            )
        buf = np.frombuffer(b"".join(bytes(m) for m in messages), dtype=np.uint8)
        return buf.reshape(len(messages), nbytes)


class _BitCompressor(Compressor):
    """Built-in compressor defined by ``_apply``, ``_encode_bits`` and ``_decode_bits``."""

    def __call__(self, Z: np.ndarray, t: float) -> np.ndarray:
        Z2, one = self._rows(Z)
        out = self._apply(Z2, float(t))
        return out[0] if one else out

    def encode(self, Z: np.ndarray, t: float) -> list[bytes]:
        Z2, _ = self._rows(Z)
        bits = self._encode_bits(Z2, float(t))
        return [row.tobytes() for row in np.packbits(bits, axis=1)]

    def decode(self, messages: Sequence[bytes], t: float) -> np.ndarray:
        buf = self._check_messages(messages)
        if buf.shape[0] == 0:
            return np.zeros((0, self.dim))
        nbits = int(self.bits_per_message())
        bits = np.unpackbits(buf, axis=1, count=nbits)
        return self._decode_bits(bits, float(t))

    @abc.abstractmethod
    def _apply(self, Z: np.ndarray, t: float) -> np.ndarray: ...

    @abc.abstractmethod
    def _encode_bits(self, Z: np.ndarray, t: float) -> np.ndarray: ...

    @abc.abstractmethod
    def _decode_bits(self, bits: np.ndarray, t: float) -> np.ndarray: ...


@functools.lru_cache(maxsize=64)
def _shared_draw(kind: str, seed: int, window: int, d: int, k: int) -> np.ndarray:
    """Read-only draw shared by all agents: a k-subset (``"subset"``) or a unit vector."""
    rng = np.random.default_rng([seed, window])
    if kind == "subset":
        out = np.sort(rng.choice(d, k, replace=False))
    else:
        g = rng.standard_normal(d)
        out = g / np.linalg.norm(g)
    out.setflags(write=False)
    return out


def _window(t: float, tau: float) -> int:
    """Index floor(t / tau + 1e-9) of the window holding time t."""
    if not t >= 0.0:
        raise InputError(f"`t` must be >= 0 (got t={t}): compressor time starts at 0")
    return math.floor(t / tau + 1e-9)


# --------------------------------------------------------------------------- compressors


class Identity(_BitCompressor):
    r"""No compression, :math:`C(z, t) = z`; message d float64 (64 d bits).

    Examples
    --------
    >>> c = Identity(3)
    >>> c(np.array([1.0, -2.0, 3.0]), 0.0).tolist(), c.bits_per_message()
    ([1.0, -2.0, 3.0], 192)
    """

    name = "identity"
    linear = True
    linear_bound = 1.0

    def __init__(self, dim: int):
        self.dim = int(dim)
        self.spec = "identity"

    def bits_per_message(self) -> int:
        return 64 * self.dim

    def _apply(self, Z, t):
        return Z.copy()

    def _encode_bits(self, Z, t):
        return _raw_bits(Z)

    def _decode_bits(self, bits, t):
        return _bits_raw(bits, self.dim)


class TopK(_BitCompressor):
    r"""Greedy sparsifier: keep the k entries of largest :math:`|z_j|`, ties to the lower index.

    .. math:: C(z)_j = z_j \,[j \in S_k(z)], \qquad
              \frac{d}{dt}\|z\|^2 = -2\|C(z)\|^2 \le -\frac{2k}{d}\|z\|^2,

    so :math:`\|z\|` decays at rate at least k/d and :math:`L_c = 1` (SPEC section 3).
    Message: the k kept indices in increasing order, ``ceil(log2 d)`` bits each, then their
    k float64 values: :math:`k(\lceil \log_2 d \rceil + 64)` bits.

    Examples
    --------
    >>> c = TopK(3, k=1)
    >>> c(np.array([1.0, -1.0, 1.0]), 0.0).tolist()  # tie: the lower index wins
    [1.0, 0.0, 0.0]
    >>> c.bits_per_message()  # 1 * (2 + 64)
    66
    """

    name = "topk"
    linear = False
    linear_bound = 1.0

    def __init__(self, dim: int, k: int = 1):
        self.dim, self.k = int(dim), int(k)
        _check_k(self.k, self.dim)
        self.spec = f"topk:k={self.k}"

    def bits_per_message(self) -> int:
        return self.k * (_index_width(self.dim) + 64)

    def mask(self, Z: np.ndarray) -> np.ndarray:
        """(N, d) boolean mask of the kept entries, exactly k per row."""
        A = np.abs(Z)
        k, d = self.k, self.dim
        thr = np.partition(A, d - k, axis=1)[:, d - k : d - k + 1]  # k-th largest |z_j|
        keep = A >= thr
        # Fast path: a row with exactly k entries >= its threshold has no tie to break.
        bad = np.flatnonzero(np.count_nonzero(keep, axis=1) != k)
        if bad.size:  # ties at the threshold (or NaN): keep the lowest indices among them
            Ab, tb = A[bad], thr[bad]
            above = Ab > tb
            tie = Ab == tb
            room = k - above.sum(axis=1, keepdims=True)
            keep[bad] = above | (tie & (np.cumsum(tie, axis=1) <= room))
        return keep

    def indices(self, Z: np.ndarray) -> np.ndarray:
        """(N, k) kept indices per row, increasing."""
        return np.nonzero(self.mask(Z))[1].reshape(Z.shape[0], self.k)

    def _apply(self, Z, t):
        return np.where(self.mask(Z), Z, 0.0)

    def _encode_bits(self, Z, t):
        idx = self.indices(Z)
        vals = np.take_along_axis(Z, idx, axis=1)
        return np.concatenate([_uint_bits(idx, _index_width(self.dim)), _raw_bits(vals)], 1)

    def _decode_bits(self, bits, t):
        nib = self.k * _index_width(self.dim)
        idx = _bits_uint(bits[:, :nib], self.k, _index_width(self.dim))
        out = np.zeros((bits.shape[0], self.dim))
        np.put_along_axis(out, idx, _bits_raw(bits[:, nib:], self.k), axis=1)
        return out


class Quantize(_BitCompressor):
    r"""Norm-scaled uniform quantizer with b bits per entry (SPEC section 3).

    .. math:: s = 2^{b-1} - 1, \quad m = \max_j |z_j|, \quad
              C(z) = m\,\mathrm{rint}(s z / m) / s \quad (C = 0 \text{ when } m = 0),

    with round-half-to-even. The largest entry is kept exactly. Every nonzero entry has
    :math:`|z_j| > m / 2s` and :math:`|C_j| \le |z_j| + m/2s < 2|z_j|`, so
    :math:`\|C\|^2 \le m^2 + 4(\|z\|^2 - m^2) \le (4 - 3/d)\|z\|^2`; also
    :math:`\|C - z\| \le \sqrt{d-1}\, m / 2s`. Hence
    :math:`L_c = \min(\sqrt{4 - 3/d},\ 1 + \sqrt{d-1}/2s)`.
    Message: float64 m, then d levels stored as ``level + s`` in b bits: 64 + b d bits.

    Examples
    --------
    >>> c = Quantize(3, bits=3)  # s = 3, m = 1: rint([1.5, -3, 0.75]) = [2, -3, 1]
    >>> (c(np.array([0.5, -1.0, 0.25]), 0.0) * 3).round(12).tolist()
    [2.0, -3.0, 1.0]
    >>> c.bits_per_message()
    73
    """

    name = "quantize"
    linear = False

    def __init__(self, dim: int, bits: int = 4):
        self.dim, self.bits = int(dim), int(bits)
        if not 2 <= self.bits <= _MAX_LEVEL_BITS:
            raise InputError(
                f"`bits` must satisfy 2 <= bits <= {_MAX_LEVEL_BITS} (got bits={self.bits}): "
                "use at least 2 bits (a sign and one level)"
            )
        self.s = 2 ** (self.bits - 1) - 1
        self.spec = f"quantize:bits={self.bits}"
        d, s = self.dim, self.s
        self.linear_bound = float(min(math.sqrt(4.0 - 3.0 / d), 1.0 + math.sqrt(d - 1) / (2 * s)))

    def bits_per_message(self) -> int:
        return 64 + self.dim * self.bits

    def _levels(self, Z):
        m = np.abs(Z).max(axis=1, keepdims=True, initial=0.0)
        if np.all(m > 0):
            return m, np.rint(self.s * Z / m)
        safe = np.where(m > 0, m, 1.0)
        return m, np.where(m > 0, np.rint(self.s * Z / safe), 0.0)

    def _apply(self, Z, t):
        m, L = self._levels(Z)
        return m * L / self.s

    def _encode_bits(self, Z, t):
        m, L = self._levels(Z)
        codes = (L + self.s).astype(np.int64)
        return np.concatenate([_raw_bits(m), _uint_bits(codes, self.bits)], axis=1)

    def _decode_bits(self, bits, t):
        m = _bits_raw(bits[:, :64], 1)
        L = (_bits_uint(bits[:, 64:], self.dim, self.bits) - self.s).astype(np.float64)
        return m * L / self.s


class Scalarize(_BitCompressor):
    r"""Scalarizer: one scalar per message along a known, moving direction :math:`\phi(t)`.

    .. math:: C(z, t) = \phi(t)\,\phi(t)^T z, \qquad \text{message } \phi(t)^T z
              \text{ (one float64, 64 bits)}.

    Bases (a basis is data, one function :math:`\phi(t)`; :math:`w = \lfloor t/\tau + 10^{-9}
    \rfloor` is the window index):

    - ``cyclic``: :math:`\phi = e_{w \bmod d}`; period :math:`d\tau`.
    - ``sinusoid``: :math:`\phi_j = \sqrt{2/d}\,\sin(\omega_j t + \pi/4)`,
      :math:`\omega_j = 2\pi f (j+1)`. Over one period 1/f,
      :math:`\int \phi\phi^T dt = I/(d f)`, so phi is persistently exciting;
      :math:`\|\phi\|^2 = (1/d)\sum_j (1 + \sin 2\omega_j t) \le 2`. The phase pi/4 keeps
      :math:`\phi(0) \neq 0`. The default f = 5 gives period 0.2; the flows need a period
      short against :math:`1/(\alpha \lambda_{max}(L))` (SPEC section 3): with f = 1 the
      observer flow at the default gains on a ring diverges. Raise f for stiffer graphs or
      larger gains, keeping the Euler step below about :math:`1/\omega_d`.
    - ``random``: unit Gaussian direction from ``default_rng([seed, w])``, the same for every
      agent (shared seed); period :math:`d\tau` (time to span R^d).
    - ``constant``: :math:`\phi = \mathbf{1}/\sqrt{d}`; NOT persistently exciting (period
      inf): the certificate rejects it.

    Linear in z; :math:`L_c = \sup_t \|\phi(t)\|^2` (1, or 2 for ``sinusoid``).

    Examples
    --------
    >>> c = Scalarize(4, basis="cyclic", tau=0.1)
    >>> int(np.argmax(c.phi(0.3)))  # floor(0.3 / 0.1 + 1e-9) = 3 despite 0.3/0.1 < 3
    3
    >>> c(np.array([1.0, 2.0, 3.0, 4.0]), 0.3).tolist(), c.bits_per_message()
    ([0.0, 0.0, 0.0, 4.0], 64)
    """

    name = "scalarize"
    linear = True

    def __init__(
        self, dim: int, basis: str = "cyclic", tau: float = 0.01, freq: float = 5.0, seed: int = 0
    ):
        self.dim = int(dim)
        if basis not in _BASES:
            raise InputError(
                f"`basis` must be one of {', '.join(_BASES)} (got basis={basis!r}): "
                "pick one of these"
            )
        self.basis = basis
        self.tau = _positive("tau", tau)
        self.freq = _positive("freq", freq)
        self.seed = _nonnegative_int("seed", seed)
        self.spec = f"scalarize:basis={basis},tau={self.tau!r},freq={self.freq!r},seed={self.seed}"
        d = self.dim
        self.linear_bound = 2.0 if basis == "sinusoid" else 1.0
        self.period = {
            "cyclic": d * self.tau,
            "random": d * self.tau,
            "sinusoid": 1.0 / self.freq,
            "constant": math.inf,
        }[basis]
        self.time_scale = {
            "cyclic": self.tau,
            "random": self.tau,
            "sinusoid": 1.0 / (2 * math.pi * self.freq * d),
            "constant": math.inf,
        }[basis]
        self._omega = 2.0 * math.pi * self.freq * np.arange(1, d + 1)

    def phi(self, t: float) -> np.ndarray:
        """The direction :math:`\\phi(t)`, shape (d,)."""
        t = float(t)
        d = self.dim
        if self.basis == "sinusoid":
            _window(t, 1.0)  # only checks t >= 0
            return math.sqrt(2.0 / d) * np.sin(self._omega * t + math.pi / 4)
        if self.basis == "constant":
            return np.full(d, 1.0 / math.sqrt(d))
        w = _window(t, self.tau)
        if self.basis == "cyclic":
            phi = np.zeros(d)
            phi[w % d] = 1.0
            return phi
        return _shared_draw("unit", self.seed, w, d, 0).copy()

    def bits_per_message(self) -> int:
        return 64

    def _apply(self, Z, t):
        phi = self.phi(t)
        return (Z @ phi)[:, None] * phi

    def _encode_bits(self, Z, t):
        return _raw_bits((Z @ self.phi(t))[:, None])

    def _decode_bits(self, bits, t):
        return _bits_raw(bits, 1) * self.phi(t)


class Sign(_BitCompressor):
    r"""Scaled sign: :math:`C(z) = (\|z\|_1 / d)\,\mathrm{sgn}(z)`, sgn(0) = +1.

    :math:`\|C\| = \|z\|_1/\sqrt{d} \le \|z\|`, so :math:`L_c = 1` (equality for entries of
    equal magnitude); :math:`z^T C = \|z\|_1^2/d \ge \|z\|^2/d` gives decay at rate >= 1/d.
    Message: float64 scale, then d sign bits (1 = nonnegative): 64 + d bits.

    Examples
    --------
    >>> Sign(4)(np.array([2.0, 0.0, -1.0, 1.0]), 0.0).tolist()
    [1.0, 1.0, -1.0, 1.0]
    """

    name = "sign"
    linear = False
    linear_bound = 1.0

    def __init__(self, dim: int):
        self.dim = int(dim)
        self.spec = "sign"

    def bits_per_message(self) -> int:
        return 64 + self.dim

    @staticmethod
    def _scale(Z):
        return np.abs(Z).sum(axis=1, keepdims=True) / Z.shape[1]

    def _apply(self, Z, t):
        return self._scale(Z) * np.where(Z >= 0, 1.0, -1.0)

    def _encode_bits(self, Z, t):
        return np.concatenate([_raw_bits(self._scale(Z)), (Z >= 0).astype(np.uint8)], axis=1)

    def _decode_bits(self, bits, t):
        return _bits_raw(bits[:, :64], 1) * np.where(bits[:, 64:] == 1, 1.0, -1.0)


class RandK(_BitCompressor):
    r"""Shared-seed random sparsifier: :math:`C(z, t) = P_{S(t)} z`.

    :math:`S(t)` = ``default_rng([seed, w]).choice(d, k, replace=False)`` with
    :math:`w = \lfloor t/\tau + 10^{-9} \rfloor`: the SAME set for every agent and row, so
    indices are never sent. Message: the k kept values in increasing index order, 64 k bits.
    Linear, :math:`L_c = 1`; period :math:`\tau d / k` (time for the sets to cover R^d on
    average).

    Examples
    --------
    >>> c = RandK(5, k=2, seed=0, tau=0.1)
    >>> bool(np.array_equal(c.support(0.05), c.support(0.0)))  # same window, same set
    True
    >>> c.support(0.0).size, c.bits_per_message()
    (2, 128)
    """

    name = "randk"
    linear = True
    linear_bound = 1.0

    def __init__(self, dim: int, k: int = 1, seed: int = 0, tau: float = 0.01):
        self.dim, self.k = int(dim), int(k)
        _check_k(self.k, self.dim)
        self.seed = _nonnegative_int("seed", seed)
        self.tau = _positive("tau", tau)
        self.spec = f"randk:k={self.k},seed={self.seed},tau={self.tau!r}"
        self.period = self.tau * self.dim / self.k
        self.time_scale = self.tau

    def support(self, t: float) -> np.ndarray:
        """S(t): the k kept coordinates, increasing, shape (k,)."""
        return _shared_draw("subset", self.seed, _window(float(t), self.tau), self.dim, self.k)

    def bits_per_message(self) -> int:
        return 64 * self.k

    def _apply(self, Z, t):
        S = self.support(t)
        out = np.zeros_like(Z)
        out[:, S] = Z[:, S]
        return out

    def _encode_bits(self, Z, t):
        return _raw_bits(Z[:, self.support(t)])

    def _decode_bits(self, bits, t):
        out = np.zeros((bits.shape[0], self.dim))
        out[:, self.support(t)] = _bits_raw(bits, self.k)
        return out


class FixedQuant(_BitCompressor):
    r"""Fixed-step quantizer :math:`C(z) = \Delta\,\mathrm{rint}(z/\Delta)` (NOT ST).

    Entries below :math:`\Delta/2` are zeroed (dead zone), so dz/dt = -C(z) stops once
    :math:`\|z\|_\infty \le \Delta/2`: not exponentially stable. Nonzero entries satisfy
    :math:`|C_j| < 2|z_j|`, so :math:`L_c = 2`. Message: d int64 levels, 64 d bits.

    Examples
    --------
    >>> FixedQuant(3, step=0.5)(np.array([0.2, 0.8, -1.3]), 0.0).tolist()
    [0.0, 1.0, -1.5]
    """

    name = "fixedquant"
    linear = False
    linear_bound = 2.0

    def __init__(self, dim: int, step: float = 0.1):
        self.dim = int(dim)
        self.step = _positive("step", step)
        self.spec = f"fixedquant:step={self.step!r}"

    def bits_per_message(self) -> int:
        return 64 * self.dim

    def _apply(self, Z, t):
        return self.step * np.rint(Z / self.step)

    def _encode_bits(self, Z, t):
        L = np.rint(Z / self.step)
        if not np.all(np.abs(L) < 2.0**62):
            raise InputError(
                f"`Z` is too large for {self.spec!r}: levels |z/step| must stay below 2^62 "
                "and be finite; raise step"
            )
        return _raw_bits(L.astype(np.int64), "<i8")

    def _decode_bits(self, bits, t):
        return self.step * _bits_raw(bits, self.dim, "<i8").astype(np.float64)


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
        self.time_scale = min(first.time_scale, second.time_scale)
        self._sparse = type(first) in (TopK, RandK) and type(second) in (Quantize, Identity)
        self._inner = make_compressor(second.spec, first.k) if self._sparse else second
        self.linear_bound = float(first.linear_bound) * float(self._inner.linear_bound)

    def bits_per_message(self) -> int:
        if not self._sparse:
            return int(self.second.bits_per_message())
        return self._index_bits() + self._inner.bits_per_message()

    def _index_bits(self) -> int:
        return self.first.k * _index_width(self.dim) if type(self.first) is TopK else 0

    def _apply(self, Z, t):
        return self.second(self.first(Z, t), t)

    def encode(self, Z: np.ndarray, t: float) -> list[bytes]:
        if self._sparse:
            return super().encode(Z, t)
        return self.second.encode(self.first(Z, t), t)

    def decode(self, messages: Sequence[bytes], t: float) -> np.ndarray:
        if self._sparse:
            return super().decode(messages, t)
        return self.second.decode(messages, t)

    def _kept(self, Z, t):
        if type(self.first) is TopK:
            return self.first.indices(Z)
        return np.broadcast_to(self.first.support(t), (Z.shape[0], self.first.k))

    def _encode_bits(self, Z, t):
        idx = self._kept(Z, t)
        vals = np.take_along_axis(Z, idx, axis=1)
        parts = [self._inner._encode_bits(vals, t)]
        if type(self.first) is TopK:
            parts.insert(0, _uint_bits(idx, _index_width(self.dim)))
        return np.concatenate(parts, axis=1)

    def _decode_bits(self, bits, t):
        nib, k = self._index_bits(), self.first.k
        if type(self.first) is TopK:
            idx = _bits_uint(bits[:, :nib], k, _index_width(self.dim))
        else:
            idx = np.broadcast_to(self.first.support(t), (bits.shape[0], k))
        out = np.zeros((bits.shape[0], self.dim))
        np.put_along_axis(out, idx, self._inner._decode_bits(bits[:, nib:], t), axis=1)
        return out


#: Time scale assumed for a user callable that does not declare ``time_scale``: the
#: certificate then integrates with steps this small, so a C(z, t) that switches every
#: ``tau >= USER_TIME_SCALE`` is not aliased. Declare ``fn.time_scale = inf`` on a
#: time-invariant callable to certify it faster.
USER_TIME_SCALE = 1e-3


class CallableCompressor(_BitCompressor):
    r"""Wrap a plain callable ``fn(Z, t) -> (N, d)`` as a compressor.

    The message is the raw float64 output: 64 d bits. ``linear`` is False and
    ``linear_bound`` is inf (unknown) unless given; ``certify`` estimates both. A factory's
    callable may carry the attributes ``linear``, ``linear_bound``, ``period`` and
    ``time_scale`` (default :data:`USER_TIME_SCALE`).

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
    ):
        self.fn, self.dim, self.spec = fn, int(dim), spec
        self.linear, self.linear_bound = bool(linear), float(linear_bound)
        self.period, self.time_scale = float(period), float(time_scale)

    def bits_per_message(self) -> int:
        return 64 * self.dim

    def _apply(self, Z, t):
        out = np.asarray(self.fn(Z, t), dtype=np.float64)
        if out.shape != Z.shape:
            raise InputError(
                f"compressor `{self.spec}` returned shape {out.shape} for input {Z.shape}: "
                "return one row per input row"
            )
        return out

    def _encode_bits(self, Z, t):
        return _raw_bits(self._apply(Z, t))

    def _decode_bits(self, bits, t):
        return _bits_raw(bits, self.dim)


# --------------------------------------------------------------------------- spec parser


def _check_k(k: int, d: int) -> None:
    if not 1 <= k <= d:
        raise InputError(f"`k` must satisfy 1 <= k <= d (got k={k}, d={d}): lower k or raise dim")


def _positive(key: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise InputError(
            f"`{key}` must be a finite number > 0 (got {key}={value}): pass e.g. "
            f"{key}={_EXAMPLE_VALUE.get(key, 1.0)}"
        )
    return value


def _nonnegative_int(key: str, value: int) -> int:
    if int(value) != value or value < 0:
        raise InputError(f"`{key}` must be an integer >= 0 (got {key}={value}): pass e.g. {key}=0")
    return int(value)


_EXAMPLE_VALUE = {"tau": 0.01, "freq": 5.0, "step": 0.1}

_CLASSES = {
    "identity": Identity,
    "topk": TopK,
    "quantize": Quantize,
    "scalarize": Scalarize,
    "sign": Sign,
    "randk": RandK,
    "fixedquant": FixedQuant,
}


def _parse_pairs(text: str, stage: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in text.split(","):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise InputError(
                f"compressor `{stage}`: {item.strip()!r} is not key=value: "
                "write name:key=value,key=value"
            )
        if key in pairs:
            raise InputError(f"compressor `{stage}`: key `{key}` given twice: keep one")
        pairs[key] = value
    return pairs


def _convert(name: str, key: str, value: str):
    default = COMPRESSOR_DOCS[name][key][0]
    try:
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        kind = "an integer" if isinstance(default, int) else "a number"
        raise InputError(
            f"`{key}` of {name} must be {kind} (got {key}={value!r}): e.g. {key}={default}"
        ) from None
    return value


def _build_stage(stage: str, dim: int) -> Compressor:
    stage = stage.strip()
    if stage.startswith("py:"):
        return _load_user(stage, dim)
    name, _, args = stage.partition(":")
    name = name.strip()
    if name not in COMPRESSOR_DOCS:
        raise InputError(
            f"`spec` names an unknown compressor {name!r} (valid: "
            f"{', '.join(compressor_names())}, or py:MODULE:ATTR): fix the name"
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


def make_compressor(spec: str, dim: int) -> Compressor:
    """Build a compressor from a spec string at dimension ``dim``.

    Grammar: ``name[:key=value[,key=value...]]``; ``A|B|...`` composes left to right
    (:math:`C = B \\circ A`); ``py:MODULE:ATTR[:key=value,...]`` (or
    ``py:path/to/file.py:ATTR``) calls ``ATTR(dim, **kwargs)``, which returns a
    :class:`Compressor` or a plain callable ``C(Z, t)`` (wrapped in
    :class:`CallableCompressor`; kwargs are parsed as int, then float, then str). Missing
    keys take the defaults in :data:`COMPRESSOR_DOCS`.

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
    if any(not s.strip() for s in stages):
        raise InputError(f"`spec` {spec!r} has an empty stage around '|': write A|B")
    comp = _build_stage(stages[0], int(dim))
    for stage in stages[1:]:
        comp = Composition(comp, _build_stage(stage, int(dim)))
    return comp


def _user_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _load_user(stage: str, dim: int) -> Compressor:
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
    module = _import_user(stage, modname)
    if not hasattr(module, attr):
        raise InputError(
            f"compressor `{stage}`: module {modname!r} has no attribute {attr!r}: "
            "check the name after the second colon"
        )
    try:
        result = getattr(module, attr)(dim, **kwargs)
    except Exception as exc:  # the user's factory: report any failure as input
        raise InputError(
            f"compressor `{stage}`: {attr}({dim}, **{kwargs}) raised "
            f"{type(exc).__name__}: {exc}: fix the factory or its keys"
        ) from exc
    if isinstance(result, Compressor):
        comp = result
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
    except Exception as exc:
        raise InputError(
            f"compressor `{stage}`: C(zeros((2, {dim})), 0) raised {type(exc).__name__}: "
            f"{exc}: make C accept (N, d) arrays"
        ) from exc
    if probe.shape != (2, dim) or getattr(comp, "dim", None) != dim:
        raise InputError(
            f"compressor `{stage}`: C(zeros((2, {dim})), 0) has shape {probe.shape} and dim "
            f"{getattr(comp, 'dim', None)}: return (N, d) = (2, {dim}) at dim {dim}"
        )
    return comp


def _import_user(stage: str, modname: str):
    if modname.endswith(".py") or "/" in modname or "\\" in modname:
        path = Path(modname)
        if not path.is_file():
            raise InputError(
                f"compressor `{stage}`: file '{modname}' not found: give a path relative to "
                "the working directory or an absolute one"
            )
        key = f"stflow_user_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[key]
            raise InputError(
                f"compressor `{stage}`: importing '{modname}' raised {type(exc).__name__}: "
                f"{exc}: fix the file"
            ) from exc
        return module
    try:
        return importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name == modname or modname.startswith(f"{exc.name}."):
            raise InputError(
                f"compressor `{stage}`: module '{modname}' not found: check PYTHONPATH or "
                "give a file path"
            ) from None
        raise InputError(
            f"compressor `{stage}`: importing '{modname}' failed: {exc}: install what it needs"
        ) from exc
    except Exception as exc:
        raise InputError(
            f"compressor `{stage}`: importing '{modname}' raised {type(exc).__name__}: {exc}: "
            "fix the module"
        ) from exc
