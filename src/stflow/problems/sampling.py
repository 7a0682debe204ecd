r"""Counter-based minibatches of SPEC section 7: which rows a gradient evaluation uses.

Agent ``i`` with ``m_i`` rows reads its rows as one endless stream: the concatenation of
permutations :math:`\pi_{i,0}, \pi_{i,1}, \dots` of ``range(m_i)``, permutation ``e`` (its
e-th pass over its data) drawn by ``numpy.random.default_rng([seed, i, e]).permutation(m_i)``.
Gradient evaluation number ``draw`` (0-based, counted per agent) uses stream positions
``draw * B, ..., draw * B + B - 1``; a batch that crosses the end of a pass continues in the
next permutation. Nothing depends on who computes it, so the simulator and every MPI rank
draw the same batches without communicating.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["batch_rows", "BatchSampler"]


def _permutation(seed: int, agent: int, epoch: int, m: int) -> np.ndarray:
    return np.random.default_rng([int(seed), int(agent), int(epoch)]).permutation(int(m))


def batch_rows(seed: int, agent: int, draw: int, m: int, batch: int) -> np.ndarray:
    r"""Row indices (``batch`` of them) used by gradient evaluation ``draw`` of ``agent``.

    .. math:: \text{rows} = \big(\pi_{i, \lfloor p/m \rfloor}[p \bmod m]\big)_{p = dB}^{dB + B - 1}

    Examples
    --------
    >>> perm0 = np.random.default_rng([7, 2, 0]).permutation(5)
    >>> perm1 = np.random.default_rng([7, 2, 1]).permutation(5)
    >>> rows = batch_rows(7, 2, 1, m=5, batch=3)  # positions 3, 4 (pass 0), 5 (pass 1)
    >>> rows.tolist() == [perm0[3], perm0[4], perm1[0]]
    True
    """
    if not 1 <= batch <= m:
        raise InputError(
            f"[problem] batch must satisfy 1 <= batch <= m_i (got batch={batch}, m_i={m} for "
            f"agent {agent}): lower batch, or omit it for full gradients"
        )
    first = int(draw) * int(batch)
    pos = np.arange(first, first + batch)
    epochs = pos // m
    out = np.empty(batch, dtype=np.int64)
    for e in np.unique(epochs):
        sel = epochs == e
        out[sel] = _permutation(seed, agent, int(e), m)[pos[sel] % m]
    return out


class BatchSampler:
    """:func:`batch_rows` for a block of agents, caching each agent's current permutation.

    Parameters
    ----------
    seed : int
        The problem's ``[problem] seed``.
    agents : array of int
        Global ids of the agents of this block (their rows of the stacked data).
    rows_per_agent : array of int
        ``m_i`` of each of those agents.
    batch : int
        B.

    Examples
    --------
    >>> s = BatchSampler(7, agents=np.array([2]), rows_per_agent=np.array([5]), batch=3)
    >>> s.rows(1)[0].tolist() == batch_rows(7, 2, 1, 5, 3).tolist()
    True
    """

    def __init__(self, seed: int, *, agents, rows_per_agent, batch: int):
        self.seed = int(seed)
        self.agents = np.asarray(agents, dtype=np.int64)
        self.m = np.asarray(rows_per_agent, dtype=np.int64)
        self.batch = int(batch)
        for a, m in zip(self.agents, self.m, strict=True):
            if not 1 <= self.batch <= m:
                batch_rows(self.seed, int(a), 0, int(m), self.batch)  # raises the clear error
        self._cache: list[dict[int, np.ndarray]] = [{} for _ in self.agents]

    def _perm(self, j: int, epoch: int) -> np.ndarray:
        cache = self._cache[j]
        perm = cache.get(epoch)
        if perm is None:
            if len(cache) > 2:
                cache.clear()
            perm = cache[epoch] = _permutation(self.seed, int(self.agents[j]), epoch,
                                               int(self.m[j]))
        return perm

    def rows(self, draw: int) -> list[np.ndarray]:
        """Row indices of evaluation ``draw`` for every agent of the block (a list)."""
        out = []
        first = int(draw) * self.batch
        for j, m in enumerate(self.m):
            m = int(m)
            e0, e1 = first // m, (first + self.batch - 1) // m
            p0 = first % m
            if e0 == e1:
                out.append(self._perm(j, e0)[p0 : p0 + self.batch])
            else:
                head = self._perm(j, e0)[p0:]
                tail = self._perm(j, e1)[: self.batch - head.size]
                out.append(np.concatenate([head, tail]))
        return out
