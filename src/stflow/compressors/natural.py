r"""Natural compression, deterministic: every entry rounded to the nearest power of two.

Horváth, Ho, Horváth, Sahu, Canini & Richtárik, "Natural compression for distributed deep
learning" (MSML 2022) round each entry to one of the two powers of two around it, at random
and unbiased; this deterministic variant rounds in the log scale,

.. math:: C(z)_j = \operatorname{sgn}(z_j)\, 2^{\operatorname{round}(\log_2 |z_j|)}, \qquad
          C(0)_j = 0,

so :math:`2^{-1/2} |z_j| \le |C(z)_j| \le 2^{1/2} |z_j|` with the same sign:
:math:`z^T C(z) \ge \|z\|^2 / \sqrt{2}` and :math:`L_c = \sqrt{2}`. The flow
:math:`\dot z = -C(z)` then decays at rate at least :math:`1/\sqrt{2}` whatever d is: it is
spatio-temporal (SPEC section 3) and time-invariant. Message: per entry a sign bit and a
12-bit exponent code ``e + 1075`` (0: the entry is 0), :math:`13 d` bits. Exponents are
clamped to float64's range [-1074, 1023]; entries below :math:`2^{-1074.5}` are sent as 0.

This module is the worked example of docs/extending.md: a built-in compressor is one
module (this one) and its test (``tests/test_natural.py``).
"""

from __future__ import annotations

import numpy as np

from ._bits import _bits_uint, _uint_bits
from .base import _BitCompressor

__all__ = ["Natural"]

#: Code of exponent e is e + _BIAS; code 0 is the zero entry.
_BIAS = 1075
_WIDTH = 12


class Natural(_BitCompressor):
    r"""Round every entry to the nearest power of two in the log scale (sign kept).

    Examples
    --------
    >>> c = Natural(4)
    >>> c(np.array([3.0, -0.7, 0.0, 1.5]), 0.0).tolist()  # log2 3 = 1.58 -> 2^2; 1.5 -> 2^1
    [4.0, -0.5, 0.0, 2.0]
    >>> c.bits_per_message()
    52
    """

    name = "natural"
    summary = "natural compression: each entry to the nearest power of two (log scale), sign kept"
    params = ()
    keeps_zeros = True
    linear = False
    linear_bound = float(np.sqrt(2.0))

    def __init__(self, dim: int):
        self.dim = int(dim)
        self.spec = "natural"

    def bits_per_message(self) -> int:
        return self.dim * (1 + _WIDTH)

    @staticmethod
    def _codes(Z: np.ndarray) -> np.ndarray:
        """The 12-bit exponent code of every entry (0 for a zero entry)."""
        mag = np.abs(Z)
        with np.errstate(divide="ignore"):
            e = np.rint(np.log2(np.where(mag > 0, mag, 1.0)))
        e = np.clip(e, -_BIAS, 1023)
        codes = (e + _BIAS).astype(np.int64)
        return np.where(mag > 0, codes, 0)

    @staticmethod
    def _values(codes: np.ndarray, negative: np.ndarray) -> np.ndarray:
        out = np.ldexp(1.0, (codes - _BIAS).astype(np.int64))
        out = np.where(codes > 0, out, 0.0)
        return np.where(negative, -out, out)

    def _apply(self, Z, t):
        return self._values(self._codes(Z), Z < 0)

    def _segments(self, Z, t):
        return [("bits", (Z < 0).astype(np.uint8)), ("bits", _uint_bits(self._codes(Z), _WIDTH))]

    def _layout(self):
        return [("bits", self.dim), ("bits", self.dim * _WIDTH)]

    def _from_segments(self, segs, t):
        codes = _bits_uint(segs[1], self.dim, _WIDTH)
        return self._values(codes, segs[0] == 1)
