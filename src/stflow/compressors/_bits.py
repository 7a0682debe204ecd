"""Bit packing helpers shared by the wire formats: unsigned integers (big-endian bit order)
and raw little-endian 8-byte numbers, row-wise on (N, n) arrays."""

from __future__ import annotations

import numpy as np

__all__ = [
    "_index_width",
    "_uint_bits",
    "_bits_uint",
    "_raw_bits",
    "_bits_raw",
    "_pack_uint",
    "_unpack_uint",
]


def _index_width(d: int) -> int:
    """ceil(log2 d) for d >= 1 (0 for d = 1)."""
    return (int(d) - 1).bit_length()


def _uint_dtype(width: int) -> type:
    """Smallest unsigned numpy type with at least ``width`` bits (width <= 64)."""
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if width <= 8 * np.dtype(dtype).itemsize:
            return dtype
    raise ValueError(f"width {width} > 64")


def _uint_bits(values: np.ndarray, width: int) -> np.ndarray:
    """(N, n) nonnegative ints -> (N, n * width) bits, most significant bit first.

    Whole-array: one shift per bit position (at most 64), never a loop over rows.
    """
    values = np.asarray(values)
    n_rows = values.shape[0]
    if width == 0:
        return np.zeros((n_rows, 0), dtype=np.uint8)
    v = values.reshape(n_rows, -1).astype(_uint_dtype(width))
    out = np.empty(v.shape + (width,), dtype=np.uint8)
    for j in range(width):
        out[:, :, j] = v >> (width - 1 - j)  # keeps the low byte, masked below
    out &= 1
    return out.reshape(n_rows, -1)


def _bits_uint(bits: np.ndarray, count: int, width: int) -> np.ndarray:
    """(N, count * width) bits -> (N, count) int64; inverse of :func:`_uint_bits`."""
    n_rows = bits.shape[0]
    if width == 0:
        return np.zeros((n_rows, count), dtype=np.int64)
    b3 = bits.reshape(n_rows, count, width)
    dtype = _uint_dtype(width)
    out = np.zeros((n_rows, count), dtype=dtype)
    for j in range(width):
        out <<= dtype(1)
        out |= b3[:, :, j]
    return out.astype(np.int64)


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
