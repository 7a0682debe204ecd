"""The built-in compressors: Identity, TopK, Quantize, Scalarize, Sign, RandK, FixedQuant."""

from __future__ import annotations

import math

import numpy as np

from .. import kernels
from ..errors import InputError
from ..params import Param
from ._bits import (
    _bits_uint,
    _bytes_f8,
    _f8_bytes,
    _index_width,
    _segment_uint,
    _uint_bits,
    _uint_layout,
    _uint_segment,
)
from ._common import (
    _BASES,
    _MAX_LEVEL_BITS,
    _check_k,
    _nonnegative_int,
    _positive,
    _shared_draw,
    _window,
)
from .base import _BitCompressor

_SCALES = ("float64", "pow2")
_ARGMAX_K = 8  # TopK.indices uses k rounds of argmax up to this k
_POW2_CODE_BITS = 12  # exponent code e + 1075 of the power-of-two scale
_POW2_BIAS = 1075  # code 0 means m = 0; e >= -1074 (smallest subnormal) gives code >= 1

__all__ = [
    "Identity",
    "TopK",
    "Quantize",
    "Scalarize",
    "Sign",
    "RandK",
    "FixedQuant",
]



def _k(doc: str) -> Param:
    return Param("k", 1, doc, type="int", low=1, section="compressor")


class Identity(_BitCompressor):
    r"""No compression, :math:`C(z, t) = z`; message d float64 (64 d bits).

    Examples
    --------
    >>> c = Identity(3)
    >>> c(np.array([1.0, -2.0, 3.0]), 0.0).tolist(), c.bits_per_message()
    ([1.0, -2.0, 3.0], 192)
    """

    name = "identity"
    summary = "C(z) = z (no compression)"
    params = ()
    keeps_zeros = True
    linear = True
    linear_bound = 1.0

    def __init__(self, dim: int):
        self.dim = int(dim)
        self.spec = "identity"

    def bits_per_message(self) -> int:
        return 64 * self.dim

    def _apply(self, Z, t):
        return Z.copy()

    def _segments(self, Z, t):
        return [("bytes", _f8_bytes(Z))]

    def _layout(self):
        return [("bytes", 8 * self.dim)]

    def _from_segments(self, segs, t):
        return _bytes_f8(segs[0])


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
    examples = ("topk:k=1", "topk:k=3")
    summary = "greedy sparsifier: keep the k largest |z_j|, ties to the lower index"
    params = (_k("entries kept per message, 1 <= k <= d"),)
    sparse = "indices"
    linear = False
    linear_bound = 1.0

    def __init__(self, dim: int, k: int = 1):
        self.dim, self.k = int(dim), int(k)
        _check_k(self.k, self.dim)
        self.spec = f"topk:k={self.k}"

    def bits_per_message(self) -> int:
        return self.k * (_index_width(self.dim) + 64)

    def mask(self, Z: np.ndarray) -> np.ndarray:
        """(N, d) boolean mask of the kept entries, exactly k per row (a NaN counts as the
        largest |z_j|, so a diverging state still sends k entries and is caught as diverged)."""
        A = np.abs(Z)
        if np.isnan(A).any():
            A = np.where(np.isnan(A), np.inf, A)
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
        """(N, k) kept indices per row, increasing (the nonzeros of :meth:`mask`).

        For k <= 8: k rounds of ``argmax`` (the first maximum, so ties go to the lower
        index), each removing the entry it found; otherwise (or with NaN) from the mask.
        """
        idx = self._picked(Z)
        if self.k == 2:  # two entries: order them without a sort call
            lo = np.minimum(idx[:, 0], idx[:, 1])
            np.maximum(idx[:, 0], idx[:, 1], out=idx[:, 1])
            idx[:, 0] = lo
        elif self.k > 1:
            idx.sort(axis=1)
        return idx

    def _picked(self, Z: np.ndarray) -> np.ndarray:
        """(N, k) kept indices per row in the order :meth:`indices` finds them (unsorted).

        ``argmax`` returns a row's first NaN when it has one, so a NaN row shows up in the
        entry the first round picks; then every row goes through :meth:`mask`.
        """
        k = self.k
        n = Z.shape[0]
        idx = None if k > _ARGMAX_K else kernels.topk_picked_numpy(Z, k)
        if idx is None:
            return np.nonzero(self.mask(Z))[1].reshape(n, k)
        return idx

    def _apply(self, Z, t):
        if self.k <= _ARGMAX_K:
            out = kernels.topk_apply(Z, self.k)  # None on a NaN or inf row: the mask path
            if out is not None:
                return out
        return np.where(self.mask(Z), Z, 0.0)

    def _segments(self, Z, t):
        idx = self.indices(Z)
        vals = np.take_along_axis(Z, idx, axis=1)
        return [("bits", _uint_bits(idx, _index_width(self.dim))), ("bytes", _f8_bytes(vals))]

    def _layout(self):
        return [("bits", self.k * _index_width(self.dim)), ("bytes", 8 * self.k)]

    def _from_segments(self, segs, t):
        idx = _bits_uint(segs[0], self.k, _index_width(self.dim))
        out = np.zeros((segs[1].shape[0], self.dim))
        np.put_along_axis(out, idx, _bytes_f8(segs[1]), axis=1)
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

    ``scale="pow2"`` (SPEC section 3, "Power-of-two scale") sends the exponent
    :math:`e = \min\{e \in \mathbb{Z} : 2^e \ge m\}` (exact, from ``frexp``) as a 12-bit
    code :math:`e + 1075` (code 0 means m = 0) instead of the float64 m, and uses
    :math:`m' = 2^e`:

    .. math:: C(z) = m'\,\mathrm{rint}(s z / m') / s, \qquad m \le m' < 2m.

    The largest entry has :math:`|s z_j / m'| > s/2 \ge 1/2`, so it never rounds to 0 and
    the flow stays ST. Every entry moves by at most :math:`m'/2s < m/s`, and an entry that
    does not round to 0 has :math:`|z_j| \ge m'/2s`, so :math:`|C_j| \le 2|z_j|` and
    :math:`L_c = \min(2,\ 1 + \sqrt{d}/s)`.
    Message: 12 + b d bits.

    Examples
    --------
    >>> c = Quantize(3, bits=3)  # s = 3, m = 1: rint([1.5, -3, 0.75]) = [2, -3, 1]
    >>> (c(np.array([0.5, -1.0, 0.25]), 0.0) * 3).round(12).tolist()
    [2.0, -3.0, 1.0]
    >>> c.bits_per_message()
    73
    >>> p = Quantize(3, bits=3, scale="pow2")  # m = 0.75 -> m' = 1: rint([1.5, -2.25, 0.75])
    >>> (p(np.array([0.5, -0.75, 0.25]), 0.0) * 3).tolist(), p.bits_per_message()
    ([2.0, -2.0, 1.0], 21)
    """

    name = "quantize"
    examples = ("quantize:bits=2", "quantize:bits=4", "quantize:bits=8",
                "quantize:bits=2,scale=pow2", "quantize:bits=4,scale=pow2")
    summary = "norm-scaled uniform quantizer: m rint(s z / m) / s with m = max |z_j|"
    params = (
        Param("bits", 4, "bits per level, 2 <= bits <= 53; s = 2^(bits-1) - 1 levels",
              type="int", low=2, high=53, section="compressor"),
        Param("scale", "float64", "how m is sent: float64 (64 bits) or pow2 (12-bit "
              "exponent of 2^e >= m)", choices=("float64", "pow2"), type="str",
              section="compressor"),
    )
    keeps_zeros = True
    linear = False

    def __init__(self, dim: int, bits: int = 4, scale: str = "float64"):
        self.dim, self.bits = int(dim), int(bits)
        if not 2 <= self.bits <= _MAX_LEVEL_BITS:
            raise InputError(
                f"`bits` must satisfy 2 <= bits <= {_MAX_LEVEL_BITS} (got bits={self.bits}): "
                f"pick bits between 2 (a sign and one level) and {_MAX_LEVEL_BITS}"
            )
        if scale not in _SCALES:
            raise InputError(
                f"`scale` of quantize must be one of {', '.join(_SCALES)} (got scale={scale!r}): "
                "use scale=float64 (default) or scale=pow2"
            )
        self.scale = scale
        self.s = 2 ** (self.bits - 1) - 1
        # canonical spec: the default float64 scale is not spelled out (older specs unchanged)
        self.spec = f"quantize:bits={self.bits}" + (",scale=pow2" if scale == "pow2" else "")
        d, s = self.dim, self.s
        if scale == "pow2":
            self.linear_bound = float(min(2.0, 1.0 + math.sqrt(d) / s))
        else:
            self.linear_bound = float(
                min(math.sqrt(4.0 - 3.0 / d), 1.0 + math.sqrt(d - 1) / (2 * s))
            )

    def bits_per_message(self) -> int:
        head = _POW2_CODE_BITS if self.scale == "pow2" else 64
        return head + self.dim * self.bits

    def _scale_of(self, Z):
        """Per row: the scale used (m, or m' = 2^e) and, for pow2, the 12-bit codes."""
        m = np.abs(Z).max(axis=1, keepdims=True, initial=0.0)
        if self.scale != "pow2":
            return m, None
        frac, ex = np.frexp(m)
        e = np.where(frac == 0.5, ex - 1, ex)  # smallest e with 2^e >= m (m = 2^(ex-1) exact)
        codes = np.where(m > 0, e + _POW2_BIAS, 0).astype(np.int64)
        return np.where(m > 0, np.ldexp(1.0, e), 0.0), codes

    def _levels_at(self, Z, m):
        if np.all(m > 0):
            return np.rint(self.s * Z / m)
        safe = np.where(m > 0, m, 1.0)
        return np.where(m > 0, np.rint(self.s * Z / safe), 0.0)

    def _apply(self, Z, t):
        m, _ = self._scale_of(Z)
        return m * self._levels_at(Z, m) / self.s

    def _segments(self, Z, t):
        m, codes = self._scale_of(Z)
        levels = (self._levels_at(Z, m) + self.s).astype(np.int64)
        head = ("bytes", _f8_bytes(m)) if codes is None else (
            "bits", _uint_bits(codes, _POW2_CODE_BITS)
        )
        return [head, _uint_segment(levels, self.bits)]

    def _layout(self):
        head = ("bits", _POW2_CODE_BITS) if self.scale == "pow2" else ("bytes", 8)
        return [head, _uint_layout(self.dim, self.bits)]

    def _from_segments(self, segs, t):
        if self.scale == "pow2":
            codes = _bits_uint(segs[0], 1, _POW2_CODE_BITS)
            m = np.where(codes > 0, np.ldexp(1.0, codes - _POW2_BIAS), 0.0)
        else:
            m = _bytes_f8(segs[0])
        L = (_segment_uint(segs[1], self.dim, self.bits) - self.s).astype(np.float64)
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
    examples = ("scalarize:basis=cyclic", "scalarize:basis=sinusoid", "scalarize:basis=random",
                "scalarize:basis=constant")
    summary = "one scalar per message: C = phi(t) phi(t)^T z"
    params = (
        Param("basis", "cyclic", "direction phi(t): cyclic, sinusoid, random or constant",
              choices=("cyclic", "sinusoid", "random", "constant"), type="str",
              section="compressor"),
        Param("tau", 0.01, "time each cyclic/random direction is held, > 0",
              section="compressor"),
        Param("freq", 5.0, "sinusoid base frequency f > 0; omega_j = 2 pi f (j + 1)",
              section="compressor"),
        Param("seed", 0, "shared seed of the random basis, >= 0", type="int",
              section="compressor"),
    )

    @classmethod
    def rescale_time(cls, pairs: dict, factor: float) -> dict:
        """Round windows kept when h -> factor h: tau * factor (cyclic, random), freq /
        factor (sinusoid)."""
        basis = pairs.get("basis", "cyclic")
        if basis == "sinusoid":
            return {**pairs, "freq": repr(float(pairs.get("freq", 5.0)) / factor)}
        if basis in ("cyclic", "random"):
            return {**pairs, "tau": repr(float(pairs.get("tau", 0.01)) * factor)}
        return pairs
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
        self.random_support = basis == "random"
        self.time_scale = {
            "cyclic": self.tau,
            "random": self.tau,
            "sinusoid": 1.0 / (2 * math.pi * self.freq * d),
            "constant": math.inf,
        }[basis]
        self._omega = None  # sinusoid frequencies, built on first use

    def phi(self, t: float) -> np.ndarray:
        """The direction :math:`\\phi(t)`, shape (d,)."""
        t = float(t)
        d = self.dim
        if self.basis == "sinusoid":
            _window(t, 1.0)  # only checks t >= 0
            if self._omega is None:
                self._omega = 2.0 * math.pi * self.freq * np.arange(1, d + 1)
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

    def _segments(self, Z, t):
        return [("bytes", _f8_bytes((Z @ self.phi(t))[:, None]))]

    def _layout(self):
        return [("bytes", 8)]

    def _from_segments(self, segs, t):
        return _bytes_f8(segs[0]) * self.phi(t)


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
    summary = "scaled sign: (||z||_1 / d) sgn(z), sgn(0) = +1"
    params = ()
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

    def _segments(self, Z, t):
        return [("bytes", _f8_bytes(self._scale(Z))), ("bits", (Z >= 0).view(np.uint8))]

    def _layout(self):
        return [("bytes", 8), ("bits", self.dim)]

    def _from_segments(self, segs, t):
        return _bytes_f8(segs[0]) * np.where(segs[1] == 1, 1.0, -1.0)


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
    examples = ("randk:k=2",)
    summary = "shared-seed random sparsifier: keep k coordinates redrawn every tau"
    params = (
        _k("coordinates sent per message, 1 <= k <= d"),
        Param("seed", 0, "shared seed of the coordinate sets, >= 0", type="int",
              section="compressor"),
        Param("tau", 0.01, "time each coordinate set is held, > 0", section="compressor"),
    )
    sparse = "shared"

    @classmethod
    def rescale_time(cls, pairs: dict, factor: float) -> dict:
        """Round windows kept when h -> factor h: tau * factor."""
        return {**pairs, "tau": repr(float(pairs.get("tau", 0.01)) * factor)}
    linear = True
    linear_bound = 1.0

    def __init__(self, dim: int, k: int = 1, seed: int = 0, tau: float = 0.01):
        self.dim, self.k = int(dim), int(k)
        _check_k(self.k, self.dim)
        self.seed = _nonnegative_int("seed", seed)
        self.tau = _positive("tau", tau)
        self.spec = f"randk:k={self.k},seed={self.seed},tau={self.tau!r}"
        self.period = self.tau * self.dim / self.k
        self.random_support = True
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

    def _segments(self, Z, t):
        return [("bytes", _f8_bytes(Z[:, self.support(t)]))]

    def _layout(self):
        return [("bytes", 8 * self.k)]

    def _from_segments(self, segs, t):
        out = np.zeros((segs[0].shape[0], self.dim))
        out[:, self.support(t)] = _bytes_f8(segs[0])
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
    examples = ("fixedquant:step=0.1",)
    summary = "fixed-step quantizer Delta rint(z / Delta); NOT spatio-temporal"
    params = (
        Param("step", 0.1, "quantization step Delta > 0 (not spatio-temporal)",
              section="compressor"),
    )
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

    def _segments(self, Z, t):
        L = np.rint(Z / self.step)
        if not np.all(np.abs(L) < 2.0**62):
            raise InputError(
                f"`Z` is too large for {self.spec!r}: levels |z/step| must stay below 2^62 "
                "and be finite; raise step"
            )
        return [("bytes", _f8_bytes(L.astype(np.int64), "<i8"))]

    def _layout(self):
        return [("bytes", 8 * self.dim)]

    def _from_segments(self, segs, t):
        return self.step * _bytes_f8(segs[0], "<i8").astype(np.float64)
