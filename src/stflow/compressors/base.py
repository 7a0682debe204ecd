"""The compressor protocol :class:`Compressor` and the bit-stream base class of the
built-in compressors."""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from ..errors import InputError
from ._bits import _assemble, _split

__all__ = [
    "Compressor",
]


class Compressor(abc.ABC):
    r"""The compressor protocol: a row-wise map :math:`C(z, t)` with a wire format.

    Subclasses implement ``__call__``, ``bits_per_message``, ``encode`` and ``decode`` and set
    the attributes below. ``decode(encode(Z, t), t)`` must equal ``C(Z, t)`` bit for bit and
    every message must be exactly ``ceil(bits_per_message() / 8)`` bytes.

    The whole-array wire format :meth:`encode_array` / :meth:`decode_array` carries the same
    bytes as one ``(N, bytes_per_message())`` uint8 array (row i = message i); the base class
    builds it on ``encode``/``decode``, the built-in compressors override it with whole-array
    bit packing (no per-row Python loop).

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
    random_support : bool
        True when the directions C keeps are drawn at random (``randk``, the random
        scalarizer): ``period`` is then a mean, and a direction may wait several periods;
        ``"auto"`` gains keep the flow twice as slow against it (docs/gains.md).

    Examples
    --------
    >>> from stflow.compressors import make_compressor
    >>> c = make_compressor("topk:k=1", 3)
    >>> isinstance(c, Compressor), c.linear, c.bits_per_message()
    (True, False, 66)
    """

    name: str = ""
    spec: str = ""
    dim: int = 0
    #: The declaration (``docs/extending.md``): a one-line summary, the spec keys as
    #: :class:`~stflow.params.Param` (``section="compressor"``), and two encoding flags:
    #: ``sparse`` -- ``"indices"`` (sends the kept indices) or ``"shared"`` (a support
    #: both ends draw from a shared seed) for a sparsifier; ``keeps_zeros`` -- C maps 0 to
    #: 0 and depends on the nonzero entries only, so ``S|C`` after a sparsifier S runs C on
    #: the k kept values (the sparse encoding of :class:`~stflow.compressors.Composition`).
    summary: ClassVar[str] = ""
    params: ClassVar[tuple] = ()
    #: Specs the contract tests and E1 run (valid for d >= 3; default: the bare name).
    examples: ClassVar[tuple[str, ...]] = ()
    sparse: ClassVar[str | None] = None
    keeps_zeros: ClassVar[bool] = False

    @classmethod
    def rescale_time(cls, pairs: dict, factor: float) -> dict:
        """The spec's ``key=value`` pairs (strings) with every time window scaled so that
        each round sees the same window when the step becomes ``factor`` times larger
        (``stflow tune`` when it moves h); time-invariant compressors return them as they
        are."""
        return pairs
    linear: bool = False
    linear_bound: float = math.inf
    period: float = 0.0
    time_scale: float = math.inf
    random_support: bool = False

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

    def encode_array(self, Z: np.ndarray, t: float) -> np.ndarray:
        """All messages as one array: (N, d) -> uint8 (N, bytes_per_message()).

        Row i holds exactly the bytes of ``encode(Z, t)[i]``.

        Examples
        --------
        >>> from stflow.compressors import make_compressor
        >>> c = make_compressor("sign", 4)
        >>> buf = c.encode_array(np.array([[2.0, 0.0, -1.0, 1.0]]), 0.0)
        >>> buf.shape, buf.dtype.name, int(buf[0, -1]) == 0b11010000
        ((1, 9), 'uint8', True)
        """
        Z2, _ = self._rows(Z)
        messages = self.encode(Z2, t)
        return self._check_messages(messages)

    def decode_array(self, buf: np.ndarray, t: float) -> np.ndarray:
        """Messages as one uint8 (N, bytes_per_message()) array -> (N, d) float64 = C(Z, t).

        Examples
        --------
        >>> from stflow.compressors import make_compressor
        >>> c = make_compressor("topk:k=1", 3)
        >>> Z = np.array([[1.0, -4.0, 2.0], [0.5, 0.0, 0.0]])
        >>> c.decode_array(c.encode_array(Z, 0.0), 0.0).tolist()
        [[0.0, -4.0, 0.0], [0.5, 0.0, 0.0]]
        """
        buf = self._check_buffer(buf)
        if buf.shape[0] == 0:
            return np.zeros((0, self.dim))
        return np.asarray(self.decode([row.tobytes() for row in buf], t), dtype=np.float64)

    def bytes_per_message(self) -> int:
        """``ceil(bits_per_message() / 8)``: bytes of one message on the wire."""
        return -(-int(self.bits_per_message()) // 8)

    def describe(self) -> dict:
        """Spec, linearity, bits per message and L_c as a plain dict.

        Examples
        --------
        >>> from stflow.compressors import make_compressor
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

    def _check_buffer(self, buf: np.ndarray) -> np.ndarray:
        """Check a whole-array message buffer: uint8 of shape (M, bytes_per_message())."""
        nbytes = self.bytes_per_message()
        arr = np.asarray(buf)
        if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != nbytes:
            raise InputError(
                f"`buf` must be a uint8 array of shape (M, {nbytes}) for {self.spec!r} at "
                f"d={self.dim} (got {arr.dtype} of shape {arr.shape}): decode what "
                "encode_array produced"
            )
        return arr


class _BitCompressor(Compressor):
    """Built-in compressor defined by ``_apply`` and its message as segments: ``_segments``
    (Z -> list of ("bits" | "bytes", (N, n) array)), ``_layout`` (the kinds and sizes) and
    ``_from_segments`` (segments -> C(Z, t)); see :func:`stflow.compressors._bits._assemble`.
    """

    def __call__(self, Z: np.ndarray, t: float) -> np.ndarray:
        Z2, one = self._rows(Z)
        out = self._apply(Z2, float(t))
        return out[0] if one else out

    def encode(self, Z: np.ndarray, t: float) -> list[bytes]:
        return [row.tobytes() for row in self.encode_array(Z, t)]

    def decode(self, messages: Sequence[bytes], t: float) -> np.ndarray:
        return self.decode_array(self._check_messages(messages), t)

    def encode_array(self, Z: np.ndarray, t: float) -> np.ndarray:
        Z2, _ = self._rows(Z)
        return _assemble(self._segments(Z2, float(t)), Z2.shape[0])

    def decode_array(self, buf: np.ndarray, t: float) -> np.ndarray:
        buf = self._check_buffer(buf)
        if buf.shape[0] == 0:
            return np.zeros((0, self.dim))
        return self._from_segments(_split(buf, self._layout()), float(t))

    @abc.abstractmethod
    def _apply(self, Z: np.ndarray, t: float) -> np.ndarray: ...

    @abc.abstractmethod
    def _segments(self, Z: np.ndarray, t: float) -> list: ...

    @abc.abstractmethod
    def _layout(self) -> list: ...

    @abc.abstractmethod
    def _from_segments(self, segs: list, t: float) -> np.ndarray: ...
