r"""The spectral compressor ``lowrank:rank=r``: the top r singular triplets of each weight
matrix of a model, vectors (biases) sent as they are.

z in R^d is read as the concatenation of blocks with known shapes (a model's
``param_shapes``, flat order, row-major). Blocks of two or more axes are matrices
(``(a, b, c, ...)`` is read as ``(a, b c ...)``); blocks of fewer axes are vectors.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from ._common import _parse_pairs
from .base import Compressor

__all__ = ["LowRank", "LOWRANK_DOCS", "make_lowrank"]

#: Keys of ``lowrank`` (same layout as ``COMPRESSOR_DOCS``).
LOWRANK_DOCS: dict[str, tuple[object, str]] = {
    "rank": (1, "singular triplets kept per weight matrix, >= 1 (capped at min(rows, cols))"),
}


def _normalize_shapes(shapes, dim: int) -> list[tuple[int, ...]]:
    out = []
    for item in shapes:
        shape = item[1] if isinstance(item, tuple | list) and len(item) == 2 and isinstance(
            item[0], str) else item
        try:
            shape = tuple(int(s) for s in np.atleast_1d(np.asarray(shape, dtype=np.int64)))
        except (TypeError, ValueError):
            shape = None
        if shape is None or any(s < 1 for s in shape):
            raise InputError(
                f"`shapes` must be a list of (name, shape) pairs or shapes with positive sizes "
                f"(got {item!r}): pass problem.param_shapes"
            )
        out.append(shape)
    total = sum(math.prod(s) for s in out)
    if total != dim:
        raise InputError(
            f"`shapes` must cover d = {dim} entries (got {total}): pass the problem's "
            "param_shapes and build the compressor at its dim"
        )
    return out


class LowRank(Compressor):
    r"""Top-r singular triplets of every weight matrix; vectors pass through.

    For each matrix block :math:`W = \sum_k \sigma_k u_k v_k^T` (SVD, :math:`\sigma_1 \ge
    \sigma_2 \ge \dots`) and :math:`r' = \min(r, \text{rows}, \text{cols})`:

    .. math:: C(W) = \sum_{k=1}^{r'} \sigma_k u_k v_k^T,

    computed as the left-to-right sum of the r' outer products of the float64 factors that
    are sent, so ``decode(encode(Z)) == C(Z)`` bit for bit. Vector blocks (biases) are kept
    exactly. ``C`` does not depend on t.

    ST: on a matrix block the flow :math:`\dot W = -C(W)` keeps the singular vectors and
    shrinks the r' largest singular values at rate 1: a greedy (top-k) selection in the
    singular basis, so :math:`\frac{d}{dt}\|W\|_F^2 = -2\|C(W)\|_F^2 \le
    -\frac{2 r'}{\min(\text{rows}, \text{cols})} \|W\|_F^2`; vector blocks decay at rate 1.
    :math:`\|C(z)\| \le \|z\|`, so :math:`L_c = 1`. Not linear (the SVD depends on z).

    Message, per block in flat order, float64 little-endian: a matrix sends
    :math:`\sigma_1..\sigma_{r'}`, then :math:`u_1..u_{r'}` (rows floats each), then
    :math:`v_1..v_{r'}` (cols floats each); a vector sends its entries. Bits:
    :math:`64 (\sum_{\text{matrices}} r' (\text{rows} + \text{cols} + 1) +
    \sum_{\text{vectors}} \text{size})`.

    Parameters
    ----------
    dim : int
        d.
    rank : int
        r >= 1.
    shapes : sequence
        ``problem.param_shapes`` (``(name, shape)`` pairs) or bare shapes, covering d in
        flat order (required: there is no default layout).

    Examples
    --------
    >>> c = LowRank(6, rank=1, shapes=[("w", (2, 2)), ("b", (2,))])
    >>> z = np.array([3.0, 0.0, 0.0, 1.0, 5.0, -5.0])  # W = diag(3, 1), bias (5, -5)
    >>> c(z, 0.0).tolist(), c.bits_per_message()  # 64 * (1 * (2 + 2 + 1) + 2)
    ([3.0, 0.0, 0.0, 0.0, 5.0, -5.0], 448)
    """

    name = "lowrank"
    linear = False
    linear_bound = 1.0

    def __init__(self, dim: int, rank: int = 1, *, shapes=None):
        self.dim = int(dim)
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 1:
            raise InputError(
                f"`rank` must be an integer >= 1 (got rank={rank!r}): e.g. lowrank:rank=2"
            )
        self.rank = int(rank)
        self.spec = f"lowrank:rank={self.rank}"
        if shapes is None:
            raise InputError(
                "`shapes` is needed by lowrank (got shapes=None): use it with [problem] kind = "
                '"mlp", or pass shapes=problem.param_shapes to make_compressor'
            )
        self.shapes = _normalize_shapes(list(shapes), self.dim)
        self._blocks = []  # (start, stop, rows, cols, r') with r' = 0 for vectors
        start = 0
        for s in self.shapes:
            size = math.prod(s)
            if len(s) >= 2:
                rows, cols = s[0], size // s[0]
                self._blocks.append((start, start + size, rows, cols,
                                     min(self.rank, rows, cols)))
            else:
                self._blocks.append((start, start + size, size, 1, 0))
            start += size
        self._floats = sum(r * (a + b + 1) if r else a for _, _, a, b, r in self._blocks)

    def bits_per_message(self) -> int:
        return 64 * self._floats

    def _factors(self, Z: np.ndarray) -> np.ndarray:
        """(N, floats) message payload: per block sigma, U columns, V rows, or the vector."""
        out = np.empty((Z.shape[0], self._floats))
        pos = 0
        for start, stop, a, b, r in self._blocks:
            if r == 0:
                out[:, pos : pos + a] = Z[:, start:stop]
                pos += a
                continue
            U, s, Vt = np.linalg.svd(Z[:, start:stop].reshape(-1, a, b), full_matrices=False)
            out[:, pos : pos + r] = s[:, :r]
            pos += r
            out[:, pos : pos + r * a] = np.swapaxes(U[:, :, :r], 1, 2).reshape(-1, r * a)
            pos += r * a
            out[:, pos : pos + r * b] = Vt[:, :r, :].reshape(-1, r * b)
            pos += r * b
        return out

    def _rebuild(self, P: np.ndarray) -> np.ndarray:
        """C from the payload: the left-to-right sum of sigma_k u_k v_k^T per matrix."""
        out = np.empty((P.shape[0], self.dim))
        pos = 0
        for start, stop, a, b, r in self._blocks:
            if r == 0:
                out[:, start:stop] = P[:, pos : pos + a]
                pos += a
                continue
            s = P[:, pos : pos + r]
            U = P[:, pos + r : pos + r + r * a].reshape(-1, r, a)
            V = P[:, pos + r + r * a : pos + r + r * (a + b)].reshape(-1, r, b)
            pos += r * (a + b + 1)
            W = (s[:, 0, None] * U[:, 0])[:, :, None] * V[:, 0, None, :]
            for k in range(1, r):
                W += (s[:, k, None] * U[:, k])[:, :, None] * V[:, k, None, :]
            out[:, start:stop] = W.reshape(-1, a * b)
        return out

    def __call__(self, Z: np.ndarray, t: float) -> np.ndarray:
        Z2, one = self._rows(Z)
        out = self._rebuild(self._factors(Z2))
        return out[0] if one else out

    def encode(self, Z: np.ndarray, t: float) -> list[bytes]:
        Z2, _ = self._rows(Z)
        P = np.ascontiguousarray(self._factors(Z2), dtype="<f8")
        return [row.tobytes() for row in P]

    def decode(self, messages: Sequence[bytes], t: float) -> np.ndarray:
        buf = self._check_messages(messages)
        P = np.ascontiguousarray(buf).view("<f8").astype(np.float64)
        return self._rebuild(P.reshape(len(messages), self._floats))


def make_lowrank(args: str, dim: int, shapes=None) -> LowRank:
    """Build ``lowrank`` from the text after ``lowrank:`` (``"rank=2"`` or ``""``).

    Examples
    --------
    >>> make_lowrank("rank=2", 12, [(3, 4)]).spec, make_lowrank("", 12, [(3, 4)]).rank
    ('lowrank:rank=2', 1)
    """
    stage = f"lowrank:{args}" if args.strip() else "lowrank"
    raw = _parse_pairs(args, stage) if args.strip() else {}
    for key in raw:
        if key not in LOWRANK_DOCS:
            raise InputError(
                f"compressor `lowrank` has no key `{key}` (valid keys: "
                f"{', '.join(LOWRANK_DOCS)}): fix {stage!r}"
            )
    params = {}
    if "rank" in raw:
        try:
            params["rank"] = int(raw["rank"])
        except ValueError:
            raise InputError(
                f"`rank` of lowrank must be an integer (got rank={raw['rank']!r}): e.g. rank=2"
            ) from None
    return LowRank(dim, shapes=shapes, **params)
