r"""Spatio-temporal compressors: the maps, the spec parser, bit counts and wire encoding.

A compressor is a small object :math:`C : \mathbb{R}^d \times [0, \infty) \to \mathbb{R}^d`
(SPEC section 3) that acts row-wise on an ``(N, d)`` array, knows the size of its message
(SPEC section 6) and can turn rows into the exact bytes that go on the wire and back:
``decode(encode(Z, t), t)`` equals ``C(Z, t)`` bit for bit; ``encode_array`` /
``decode_array`` carry the same bytes as one ``(N, bytes_per_message)`` uint8 array.

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
quantize pow2   12-bit code e + 1075 (0: m = 0), d levels of b bits  12 + b d
scalarize       one float64 phi(t)^T z                               64
sign            float64 ``||z||_1 / d``, d bits (1 = nonnegative)    64 + d
randk           k float64 in increasing index order (S(t) is shared)  64 k
fixedquant      d int64 levels                                       64 d
natural         d sign bits, then d 12-bit exponent codes e + 1075    13 d
==============  ===================================================  =====================
"""

from __future__ import annotations

from ._bits import _bits_raw as _bits_raw
from ._bits import _bits_uint as _bits_uint
from ._bits import _index_width as _index_width
from ._bits import _pack_uint as _pack_uint
from ._bits import _raw_bits as _raw_bits
from ._bits import _uint_bits as _uint_bits
from ._bits import _unpack_uint as _unpack_uint
from ._common import _BASES as _BASES
from ._common import _EXAMPLE_VALUE as _EXAMPLE_VALUE
from ._common import _MAX_LEVEL_BITS as _MAX_LEVEL_BITS
from ._common import _check_k as _check_k
from ._common import _nonnegative_int as _nonnegative_int
from ._common import _parse_pairs as _parse_pairs
from ._common import _positive as _positive
from ._common import _shared_draw as _shared_draw
from ._common import _window as _window
from .base import Compressor
from .base import _BitCompressor as _BitCompressor
from .builtin import FixedQuant, Identity, Quantize, RandK, Scalarize, Sign, TopK
from .spec import _CLASSES as _CLASSES
from .spec import (
    COMPRESSOR_DOCS,
    COMPRESSOR_SUMMARY,
    EXAMPLE_SPECS,
    MAX_STAGES,
    Composition,
    compressor_names,
    make_compressor,
    resolve_user_paths,
)
from .spec import _build_stage as _build_stage
from .spec import _convert as _convert
from .user import USER_TIME_SCALE, CallableCompressor
from .user import _load_user as _load_user
from .user import _user_value as _user_value

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
    "resolve_user_paths",
    "compressor_names",
    "COMPRESSOR_DOCS",
    "COMPRESSOR_SUMMARY",
    "EXAMPLE_SPECS",
    "MAX_STAGES",
    "USER_TIME_SCALE",
]
