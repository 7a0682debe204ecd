r"""The distributed-graph communicator and the per-round exchange of encoded messages.

Each round every agent i broadcasts one message (its compressor's bytes, SPEC sections 3
and 6) to each neighbour j. :class:`NeighbourExchange` delivers them: messages to agents on
the same rank are used in place (no MPI, but counted), the others go through ONE
distributed-graph communicator built once (``Create_dist_graph_adjacent``, sources = the
ranks holding in-neighbours, ``reorder=False``): first, once, the byte counts
(``Neighbor_alltoall``; every message has one size), then each round the payloads
(non-blocking ``Ineighbor_alltoallv`` with explicit counts and displacements), encoded as
whole arrays and only for the agents that have a neighbour on another rank. One copy is sent per directed edge (i, j), so the bytes handed to MPI plus
the same-rank deliveries equal the SPEC's point-to-point count exactly:

.. math::

    \text{bytes per round} = \lceil b / 8 \rceil \sum_i \deg(i)

with :math:`b` the bits of one message. Deliveries from rank r to rank q are ordered by
(sender i, receiver j), which both sides derive from the graph alone.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["ExchangePlan", "NeighbourExchange", "BlockExchange", "encode_rows", "decode_rows", "channel_bytes",
           "comm_summary", "flag_rows", "unflag_rows", "split_flagged"]


class ExchangePlan:
    r"""Who sends what to whom, derived from the graph and the block offsets only.

    Attributes
    ----------
    cols : numpy.ndarray
        Global ids of the agents whose communicated rows this rank needs: its own block and
        the halo (off-rank neighbours), sorted.
    own_pos, recv_pos : numpy.ndarray
        Positions in ``cols`` of the own agents and of each received message's sender.
    send_rows : numpy.ndarray
        Local row (0 .. n_r-1) of each outgoing message, grouped by destination rank.
    neighbours : list of int
        The other ranks this rank exchanges with (sources = destinations, sorted).
    send_counts, recv_counts : numpy.ndarray
        Messages per neighbour rank.
    same_rank : int
        Directed edges inside the block (deliveries that skip MPI).
    laplacian : scipy.sparse.csr_matrix
        Rows ``start:stop`` of L restricted to ``cols``, entries in the original order.

    Examples
    --------
    >>> from stflow.graphs import make_graph
    >>> plan = ExchangePlan(make_graph("ring", 6), np.array([0, 2, 4, 6]), rank=1)
    >>> plan.cols.tolist(), plan.neighbours, plan.send_rows.tolist(), plan.same_rank
    ([1, 2, 3, 4], [0, 2], [0, 1], 2)
    """

    def __init__(self, graph, offsets: np.ndarray, rank: int):
        lap = graph.laplacian.tocsr()
        start, stop = int(offsets[rank]), int(offsets[rank + 1])
        self.start, self.stop = start, stop
        block = lap[start:stop]
        rows = np.repeat(np.arange(start, stop), np.diff(block.indptr))
        nbr = block.indices.astype(np.int64)
        off = nbr != rows
        src, dst = rows[off], nbr[off]  # directed edges i -> j with i on this rank
        owner = np.searchsorted(offsets, dst, side="right") - 1
        remote = owner != rank
        self.same_rank = int(np.count_nonzero(~remote))
        # outgoing: grouped by destination rank, then (i, j)
        order = np.lexsort((dst[remote], src[remote], owner[remote]))
        out_owner = owner[remote][order]
        self.send_rows = (src[remote][order] - start).astype(np.int64)
        # incoming (L symmetric): edges j -> i with i on this rank; sender j, receiver i
        in_order = np.lexsort((src[remote], dst[remote], owner[remote]))
        in_owner = owner[remote][in_order]
        senders = dst[remote][in_order]
        self.neighbours = [int(q) for q in np.unique(out_owner)]
        self.send_counts = np.array([np.count_nonzero(out_owner == q) for q in self.neighbours],
                                    dtype=np.int64)
        self.recv_counts = np.array([np.count_nonzero(in_owner == q) for q in self.neighbours],
                                    dtype=np.int64)
        #: per own agent: neighbours on the same rank (deliveries that skip MPI)
        self.same_rank_degree = np.bincount(src[~remote] - start, minlength=stop - start)
        self.cols = np.union1d(np.arange(start, stop), senders).astype(np.int64)
        self.own_pos = np.searchsorted(self.cols, np.arange(start, stop))
        self.recv_pos = np.searchsorted(self.cols, senders)
        self.laplacian = sp.csr_matrix(
            (block.data.copy(), np.searchsorted(self.cols, nbr), block.indptr.copy()),
            shape=(stop - start, self.cols.size),
        )


def encode_rows(compressor, Z: np.ndarray, t: float) -> np.ndarray:
    """Messages of the rows of ``Z: (n, d)`` as ``(n, nbytes)`` uint8, one whole-array call.

    ``compressor=None`` means raw little-endian float64 rows (``8 d`` bytes each).

    Examples
    --------
    >>> encode_rows(None, np.array([[1.0, -2.0]]), 0.0).shape
    (1, 16)
    """
    if compressor is None:
        return np.ascontiguousarray(Z, dtype="<f8").view(np.uint8).reshape(Z.shape[0], -1)
    enc = getattr(compressor, "encode_array", None)
    if enc is not None:
        return enc(Z, t)
    msgs = compressor.encode(Z, t)
    return np.frombuffer(b"".join(msgs), dtype=np.uint8).reshape(len(msgs), -1)


def decode_rows(compressor, buf: np.ndarray, t: float, dim: int) -> np.ndarray:
    """Inverse of :func:`encode_rows`: ``(m, nbytes)`` uint8 -> ``(m, d)`` float64 = C(Z, t).

    Examples
    --------
    >>> from stflow.compressors import make_compressor
    >>> c = make_compressor("topk:k=1", 4)
    >>> Z = np.array([[0.0, -3.0, 1.0, 2.0]])
    >>> decode_rows(c, encode_rows(c, Z, 0.0), 0.0, 4).tolist()
    [[0.0, -3.0, 0.0, 0.0]]
    """
    if compressor is None:
        return np.ascontiguousarray(buf).view("<f8").reshape(buf.shape[0], dim)
    dec = getattr(compressor, "decode_array", None)
    if dec is not None:
        return dec(np.ascontiguousarray(buf), t)
    return compressor.decode([r.tobytes() for r in buf], t)


def flag_rows(buf: np.ndarray, nbits: int, active: np.ndarray) -> np.ndarray:
    r"""Event-triggered messages: one flag bit (1 = sent) followed by the first ``nbits``
    bits of each row of ``buf`` (silent rows: all zero), ``(n, ceil((1 + nbits) / 8))``
    uint8. A silent message is its first byte only (:func:`split_flagged`).

    Examples
    --------
    >>> flag_rows(np.array([[0b10110000], [0b11110000]], dtype=np.uint8), 4,
    ...           np.array([True, False])).tolist()
    [[216], [0]]
    """
    bits = np.unpackbits(np.ascontiguousarray(buf), axis=1)[:, :nbits]
    out = np.concatenate([np.asarray(active, dtype=np.uint8)[:, None], bits], axis=1)
    out[~np.asarray(active, dtype=bool)] = 0
    return np.packbits(out, axis=1)


def unflag_rows(buf: np.ndarray, nbits: int) -> np.ndarray:
    """Inverse of :func:`flag_rows` for sent rows: drop the flag bit, ``ceil(nbits / 8)``
    bytes per row (the padding bits zero).

    Examples
    --------
    >>> unflag_rows(np.array([[216]], dtype=np.uint8), 4).tolist()
    [[176]]
    """
    bits = np.unpackbits(np.ascontiguousarray(buf), axis=1)[:, 1:1 + nbits]
    return np.packbits(bits, axis=1)


def join_channels(parts: list, nbits: list) -> np.ndarray:
    r"""Several channels' messages as one bit stream per row: the first ``nbits[c]`` bits of
    each channel's byte rows, concatenated and packed, ``(n, ceil(sum(nbits) / 8))`` uint8,
    so a message of two 132-bit channels is 33 bytes, not 2 x 17 (SPEC section 6: bytes =
    the bit count rounded up once per message). Byte-aligned channels are just placed side
    by side.

    Examples
    --------
    >>> a = np.array([[0b10100000]], dtype=np.uint8)    # 3 bits: 101
    >>> b = np.array([[0b11000000]], dtype=np.uint8)    # 2 bits: 11
    >>> join_channels([a, b], [3, 2]).tolist()          # 10111 then padding
    [[184]]
    """
    if len(parts) == 1 or all(n % 8 == 0 for n in nbits):
        return parts[0] if len(parts) == 1 else np.hstack(parts)
    bits = [np.unpackbits(np.ascontiguousarray(p), axis=1)[:, :n] for p, n in zip(
        parts, nbits, strict=True)]
    return np.packbits(np.concatenate(bits, axis=1), axis=1)


def split_channels(buf: np.ndarray, nbits: list, nbytes: list) -> list:
    """Inverse of :func:`join_channels`: each channel's ``(m, nbytes[c])`` byte rows.

    Examples
    --------
    >>> [p.tolist() for p in split_channels(np.array([[184]], dtype=np.uint8), [3, 2], [1, 1])]
    [[[160]], [[192]]]
    """
    if len(nbits) == 1 or all(n % 8 == 0 for n in nbits):
        out, offset = [], 0
        for nb in nbytes:
            out.append(buf[:, offset:offset + nb])
            offset += nb
        return out
    bits = np.unpackbits(np.ascontiguousarray(buf), axis=1)
    out, offset = [], 0
    for n, nb in zip(nbits, nbytes, strict=True):
        rows = np.zeros((buf.shape[0], 8 * nb), dtype=np.uint8)
        rows[:, :n] = bits[:, offset:offset + n]
        out.append(np.packbits(rows, axis=1))
        offset += n
    return out


def channel_bits(compressor, dim: int) -> int:
    """Bits of one channel's message: the compressor's, or 64 d for raw float64 rows."""
    return 64 * int(dim) if compressor is None else int(compressor.bits_per_message())


def split_flagged(payload: np.ndarray, count: int, nbytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``count`` concatenated event-triggered messages (a silent one is 1 byte, a sent
    one ``nbytes``) into (sent mask, ``(count, nbytes)`` uint8 rows; silent rows zero).

    Examples
    --------
    >>> sent, rows = split_flagged(np.array([0, 200, 7, 0], dtype=np.uint8), 3, 2)
    >>> sent.tolist(), rows.tolist()
    ([False, True, False], [[0, 0], [200, 7], [0, 0]])
    """
    sent = np.zeros(count, dtype=bool)
    rows = np.zeros((count, nbytes), dtype=np.uint8)
    pos = 0
    for k in range(count):
        if payload[pos] & 0x80:
            sent[k] = True
            rows[k] = payload[pos:pos + nbytes]
            pos += nbytes
        else:
            pos += 1
    if pos != payload.size:
        raise RuntimeError(f"event-triggered payload of {payload.size} bytes parsed as {pos}")
    return sent, rows


def channel_bytes(compressor, dim: int) -> int:
    """Bytes of one message of one channel (SPEC section 6, rounded up to whole bytes)."""
    return 8 * int(dim) if compressor is None else int(compressor.bytes_per_message())


class NeighbourExchange:
    """The run's distributed-graph communicator and its message exchange (a context manager).

    Messages have a fixed size, so the byte counts are exchanged once, at construction
    (``Neighbor_alltoall``), and checked against the plan; each round then posts one
    non-blocking ``Ineighbor_alltoallv`` (:meth:`start`), which the caller completes with
    :meth:`finish` after the work that does not need the messages.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The world communicator (one rank per agent block).
    plan : ExchangePlan
    bytes_per_message : int

    Attributes
    ----------
    bytes_mpi, bytes_same_rank, messages : int
        Bytes handed to MPI, bytes delivered in place, messages delivered (all rounds).
    """

    def __init__(self, comm, plan: ExchangePlan, bytes_per_message: int):
        from mpi4py import MPI

        self._MPI = MPI
        self.plan = plan
        self.nbytes = int(bytes_per_message)
        self.graph_comm = comm.Create_dist_graph_adjacent(
            plan.neighbours, plan.neighbours, reorder=False
        )
        b = self.nbytes
        self._scounts = (plan.send_counts * b).astype(np.int32)
        self._rcounts = (plan.recv_counts * b).astype(np.int32)
        self._sdispl = np.concatenate([[0], np.cumsum(self._scounts)[:-1]]).astype(np.int32)
        self._rdispl = np.concatenate([[0], np.cumsum(self._rcounts)[:-1]]).astype(np.int32)
        self._sizes_out = self._scounts.astype(np.int64)
        self._sizes_in = np.zeros(len(plan.neighbours), dtype=np.int64)
        self._recv = np.empty((int(plan.recv_counts.sum()), b), dtype=np.uint8)
        self._request = None
        self._send = None
        # the senders of the outgoing messages, each encoded once (a row may go to several)
        self.send_agents, self._send_index = np.unique(plan.send_rows, return_inverse=True)
        self.bytes_mpi = 0
        self.bytes_same_rank = 0
        self.messages = 0
        #: event-triggered runs: the bytes the SPEC's count gives for the messages so far
        #: (each message rounded up to whole bytes), kept by the runner
        self.expected_bytes = 0
        if plan.neighbours:  # counts before payloads: once, since every message has one size
            self.graph_comm.Neighbor_alltoall([self._sizes_out, MPI.INT64_T],
                                              [self._sizes_in, MPI.INT64_T])
            if not np.array_equal(self._sizes_in, self._rcounts):
                raise RuntimeError(
                    f"message sizes from neighbour ranks {plan.neighbours} were "
                    f"{self._sizes_in.tolist()} bytes, expected {self._rcounts.tolist()}"
                )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()
        return False

    def free(self) -> None:
        """Free the distributed-graph communicator (idempotent)."""
        if self._request is not None:
            self._request.Cancel()
            self._request = None
        if self.graph_comm is not None and self.graph_comm != self._MPI.COMM_NULL:
            self.graph_comm.Free()
        self.graph_comm = None

    def start(self, encoded: np.ndarray) -> None:
        """Post this round's messages: ``encoded: (len(send_agents), nbytes)`` uint8, one
        row per sender in :attr:`send_agents` order (replicated here per directed edge)."""
        plan, MPI = self.plan, self._MPI
        self.bytes_same_rank += plan.same_rank * self.nbytes
        self.messages += plan.same_rank + int(plan.send_counts.sum())
        if not plan.neighbours:
            return
        self._send = np.ascontiguousarray(encoded[self._send_index])
        self._request = self.graph_comm.Ineighbor_alltoallv(
            [self._send, (self._scounts, self._sdispl), MPI.BYTE],
            [self._recv, (self._rcounts, self._rdispl), MPI.BYTE],
        )
        self.bytes_mpi += int(self._send.nbytes)

    def finish(self) -> np.ndarray:
        """Wait for the posted round; ``(m, nbytes)`` uint8, message k from agent
        ``plan.cols[plan.recv_pos[k]]``."""
        if self._request is not None:
            self._request.Wait()
            self._request = None
        return self._recv

    def start_flagged(self, flagged: np.ndarray, active: np.ndarray) -> None:
        """Post this round's event-triggered messages (:func:`flag_rows`, one row per sender in
        :attr:`send_agents` order; ``active`` the flags of every own agent): a silent message
        is 1 byte, so the byte counts change every round and are exchanged first
        (``Neighbor_alltoall``)."""
        plan, MPI = self.plan, self._MPI
        nb = self.nbytes
        own_sizes = np.where(active, nb, 1)
        sizes = own_sizes[self.send_agents]
        self.bytes_same_rank += int(np.dot(plan.same_rank_degree, own_sizes))
        self.messages += plan.same_rank + int(plan.send_counts.sum())
        self._flag_count = int(plan.recv_counts.sum())
        if not plan.neighbours:
            return
        edge = sizes[self._send_index]
        mask = np.arange(nb)[None, :] < edge[:, None]
        self._send = np.ascontiguousarray(flagged[self._send_index][mask])
        starts = np.concatenate([[0], np.cumsum(plan.send_counts)[:-1]])
        scounts = np.add.reduceat(edge, starts).astype(np.int64)
        rcounts = np.zeros(len(plan.neighbours), dtype=np.int64)
        self.graph_comm.Neighbor_alltoall([scounts, MPI.INT64_T], [rcounts, MPI.INT64_T])
        sd = np.concatenate([[0], np.cumsum(scounts)[:-1]]).astype(np.int32)
        rd = np.concatenate([[0], np.cumsum(rcounts)[:-1]]).astype(np.int32)
        self._recv_flagged = np.empty(int(rcounts.sum()), dtype=np.uint8)
        self._request = self.graph_comm.Ineighbor_alltoallv(
            [self._send, (scounts.astype(np.int32), sd), MPI.BYTE],
            [self._recv_flagged, (rcounts.astype(np.int32), rd), MPI.BYTE],
        )
        self.bytes_mpi += int(self._send.nbytes)

    def finish_flagged(self, nbytes: int) -> tuple[np.ndarray, np.ndarray]:
        """Wait for the posted event-triggered round: (sent mask, ``(m, nbytes)`` flagged
        rows) in the order of :meth:`finish`."""
        if self._request is not None:
            self._request.Wait()
            self._request = None
        if not self.plan.neighbours:
            return np.zeros(0, dtype=bool), np.zeros((0, nbytes), dtype=np.uint8)
        return split_flagged(self._recv_flagged, self._flag_count, nbytes)

    def exchange(self, own: np.ndarray) -> np.ndarray:
        """Blocking round: ``own: (n_r, nbytes)`` rows of every own agent -> received rows."""
        self.start(own[self.send_agents])
        return self.finish()


def comm_summary(per_rank, *, offsets, rounds, bits_per_message, bytes_per_message,
                 messages_per_round, expected_bytes=None) -> dict:
    r"""The content of ``comm.json`` from each rank's ``[bytes_mpi, bytes_same_rank, messages]``.

    ``bytes_match_accounting`` is true when the bytes actually handed to MPI plus the
    same-rank deliveries equal the SPEC's count rounded up to whole bytes per message,

    .. math:: \lceil b / 8 \rceil \cdot \text{messages per round} \cdot \text{rounds},

    and every message was delivered.

    Examples
    --------
    Ring of 6 agents on 2 ranks, 10 rounds of 17-byte messages (132 bits):

    >>> s = comm_summary([[340, 680, 60], [340, 680, 60]], offsets=np.array([0, 3, 6]),
    ...                  rounds=10, bits_per_message=132, bytes_per_message=17,
    ...                  messages_per_round=12)
    >>> s["bytes_total"], s["expected_bytes_total"], s["bytes_match_accounting"]
    (2040, 2040, True)
    """
    per = np.array(per_rank, dtype=np.int64).reshape(-1, 3)
    rounds = int(rounds)
    fixed = expected_bytes is None
    expected = -(-int(bits_per_message) // 8) * int(messages_per_round) * rounds if fixed else (
        int(expected_bytes))
    total = int(per[:, 0].sum() + per[:, 1].sum())
    return {
        "ranks": int(per.shape[0]),
        "agent_blocks": [[int(a), int(b)] for a, b in zip(offsets[:-1], offsets[1:],
                                                         strict=True)],
        "rounds": rounds,
        "bits_per_message": int(bits_per_message),
        "bytes_per_message": int(bytes_per_message),
        "messages_per_round": int(messages_per_round),
        "bytes_sent_per_rank": [int(a + b) for a, b in per[:, :2]],
        "bytes_mpi_per_rank": [int(a) for a in per[:, 0]],
        "bytes_same_rank_per_rank": [int(b) for b in per[:, 1]],
        "bytes_total": total,
        "bytes_mpi_total": int(per[:, 0].sum()),
        "expected_bytes_total": expected,
        "bytes_match_accounting": bool(
            total == expected
            and (not fixed or int(bytes_per_message) == -(-int(bits_per_message) // 8))
            and int(per[:, 2].sum()) == int(messages_per_round) * rounds
        ),
    }


class BlockExchange:
    """One rank's exchange for :class:`stflow.engines.driver.RoundDriver`: ``start(out, t)``
    encodes the messages of the agents with an off-rank neighbour as whole arrays (one call
    per channel, the channels packed into one bit stream) and posts them; own agents'
    messages are applied directly (the compressor, no encode or decode); ``finish()``
    decodes what arrived into each channel's ``(n_cols, d)`` columns. Event-triggered
    methods send a flag bit first (:func:`flag_rows`)."""

    def __init__(self, ex: NeighbourExchange, method, dim: int):
        self.ex, self.method, self.d = ex, method, int(dim)
        self.codecs = method.codecs()
        self.bits = [channel_bits(c, dim) for c in self.codecs]
        self.bytes = [channel_bytes(c, dim) for c in self.codecs]
        self.own_degree = None  # set by the runner (event-triggered byte count)
        self._flag_checked = False

    def start(self, out, t: float) -> None:
        ex, method = self.ex, self.method
        self._t = t
        if method.triggered:
            return self._start_flagged(out, t)
        remote = ex.send_agents
        if remote.size:
            parts = [encode_rows(c, z[remote], t) for z, c in zip(out, self.codecs,
                                                                   strict=True)]
            ex.start(join_channels(parts, self.bits))
        else:
            ex.start(np.empty((0, ex.nbytes), dtype=np.uint8))
        self._own = [z if c is None else c(z, t) for z, c in zip(out, self.codecs,
                                                                  strict=True)]

    def finish(self) -> list:
        if self.method.triggered:
            return self._finish_flagged()
        ex, block, t = self.ex, self.method.block, self._t
        recv = ex.finish()
        chans = split_channels(recv, self.bits, self.bytes)
        msgs = []
        for z, c, got in zip(self._own, self.codecs, chans, strict=True):
            M = np.empty((block.n_cols, self.d))
            M[block.own] = z
            if recv.shape[0]:
                M[ex.plan.recv_pos] = decode_rows(c, got, t, self.d)
            msgs.append(M)
        self._own = None
        return msgs

    def _start_flagged(self, out, t) -> None:
        ex, method = self.ex, self.method
        ((z,), (c,)) = out, self.codecs
        nbits = int(c.bits_per_message())
        rb = method.round_bits()
        ex.expected_bytes += int(np.dot(self.own_degree, -(-rb.astype(np.int64) // 8)))
        remote = ex.send_agents
        inner = encode_rows(c, z[remote], t) if remote.size else np.zeros((0, ex.nbytes),
                                                                            dtype=np.uint8)
        if remote.size and not self._flag_checked:
            if not np.array_equal(unflag_rows(flag_rows(inner, nbits, np.ones(remote.size,
                                                                               bool)), nbits),
                                  inner):
                raise RuntimeError(
                    f"compressor {c.spec!r} does not keep its message in its first {nbits} "
                    "bits, so event-triggered messages cannot carry it exactly")
            self._flag_checked = True
        ex.start_flagged(flag_rows(inner, nbits, method.active[remote]), method.active)
        self._own = [c(z, t)]

    def _finish_flagged(self) -> list:
        ex, block, t = self.ex, self.method.block, self._t
        (c,) = self.codecs
        nbits = int(c.bits_per_message())
        sent, rows = ex.finish_flagged(ex.nbytes)
        M = np.zeros((block.n_cols, self.d))
        M[block.own] = self._own[0]
        if sent.any():
            M[ex.plan.recv_pos[sent]] = decode_rows(c, unflag_rows(rows[sent], nbits), t,
                                                    self.d)
        self._own = None
        return [M]
