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
    "_f8_bytes",
    "_bytes_f8",
    "_uint_segment",
    "_uint_layout",
    "_segment_uint",
    "_assemble",
    "_split",
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


# ------------------------------------------------------------------ whole-array messages
#
# A message is a sequence of segments, each ("bits", (N, n) array of 0/1) or ("bytes",
# (N, n) uint8). Byte segments (float64 payloads, byte-sized levels) are copied as bytes,
# shifted across a byte boundary when the bits before them do not fill whole bytes; only
# bit segments go through packbits/unpackbits. The bit stream is the same either way.


def _f8_bytes(values: np.ndarray, dtype: str = "<f8") -> np.ndarray:
    """(N, n) numbers -> (N, 8 n) uint8, their little-endian 8-byte representation."""
    raw = np.ascontiguousarray(values, dtype=dtype)
    return raw.view(np.uint8).reshape(raw.shape[0], -1)


def _bytes_f8(seg: np.ndarray, dtype: str = "<f8") -> np.ndarray:
    """(N, 8 n) uint8 -> (N, n) float64 (or int64 for ``"<i8"``); inverse of _f8_bytes."""
    out = np.ascontiguousarray(seg).view(dtype).reshape(seg.shape[0], -1)
    return out.astype(np.float64 if dtype == "<f8" else np.int64)


def _uint_segment(values: np.ndarray, width: int) -> tuple[str, np.ndarray]:
    """(N, n) ints of ``width`` bits as one segment: bytes when width is 8 (or 4 with n
    even: two per byte, the first in the high nibble), bits otherwise."""
    v = np.asarray(values)
    if width == 8:
        return "bytes", v.astype(np.uint8)
    if width == 4 and v.shape[1] % 2 == 0:
        v = v.astype(np.uint8)
        return "bytes", (v[:, 0::2] << 4) | v[:, 1::2]
    return "bits", _uint_bits(v, width)


def _uint_layout(count: int, width: int) -> tuple[str, int]:
    """Layout entry of :func:`_uint_segment` for ``count`` values."""
    if width == 8:
        return "bytes", count
    if width == 4 and count % 2 == 0:
        return "bytes", count // 2
    return "bits", count * width


def _segment_uint(seg: np.ndarray, count: int, width: int) -> np.ndarray:
    """Inverse of :func:`_uint_segment`: (N, count) int64."""
    if width == 8:
        return seg.astype(np.int64)
    if width == 4 and count % 2 == 0:
        out = np.empty((seg.shape[0], count), dtype=np.int64)
        out[:, 0::2] = seg >> 4
        out[:, 1::2] = seg & 15
        return out
    return _bits_uint(seg, count, width)


def _assemble(segments, n_rows: int) -> np.ndarray:
    """Segments -> (N, nbytes) uint8 messages, zero-padded at the end to whole bytes.

    Examples
    --------
    >>> seg = [("bits", np.array([[1, 0, 1]])), ("bytes", np.array([[0xFF]], np.uint8))]
    >>> [f"{b:08b}" for b in _assemble(seg, 1)[0]]  # 101 then 11111111, 5 padding bits
    ['10111111', '11100000']
    """
    out = []
    pend = np.zeros((n_rows, 0), dtype=np.uint8)
    for kind, arr in segments:
        if arr.shape[1] == 0:
            continue
        if kind == "bits":
            bits = arr if pend.shape[1] == 0 else np.concatenate([pend, arr], axis=1)
            nfull = (bits.shape[1] // 8) * 8
            if nfull:
                out.append(np.packbits(bits[:, :nfull], axis=1))
            pend = bits[:, nfull:]
            continue
        arr = np.asarray(arr, dtype=np.uint8)
        r = pend.shape[1]
        if r == 0:
            out.append(arr)
            continue
        head = np.packbits(pend, axis=1)[:, 0]  # the r pending bits, high-aligned
        shifted = arr >> r
        out.append((head | shifted[:, 0])[:, None])
        out.append(shifted[:, 1:] | (arr[:, :-1] << (8 - r)))
        pend = np.unpackbits(arr[:, -1:], axis=1)[:, 8 - r :]
    if pend.shape[1]:
        out.append(np.packbits(pend, axis=1))
    if not out:
        return np.zeros((n_rows, 0), dtype=np.uint8)
    return np.concatenate(out, axis=1)


def _split(buf: np.ndarray, layout) -> list[np.ndarray]:
    """(N, nbytes) uint8 messages -> segments, following ``layout`` = [(kind, n), ...] with
    n bits for ``"bits"`` and n bytes for ``"bytes"``; inverse of :func:`_assemble`.

    Examples
    --------
    >>> buf = np.array([[0b10111111, 0b11100000]], np.uint8)
    >>> bits, byte = _split(buf, [("bits", 3), ("bytes", 1)])
    >>> bits.tolist(), hex(int(byte[0, 0]))
    ([[1, 0, 1]], '0xff')
    """
    pos = 0
    segs = []
    for kind, n in layout:
        j, r = divmod(pos, 8)
        if kind == "bits":
            end = -(-(pos + n) // 8)
            segs.append(np.unpackbits(buf[:, j:end], axis=1)[:, r : r + n])
            pos += n
            continue
        if r == 0:
            segs.append(buf[:, j : j + n])
        else:
            segs.append((buf[:, j : j + n] << r) | (buf[:, j + 1 : j + n + 1] >> (8 - r)))
        pos += 8 * n
    return segs
