r"""The one round driver both engines run: send, exchange, channel, receive, count.

:class:`RoundDriver` is the loop body of a round, written once; an *exchange* moves the
messages of one block: :class:`LocalExchange` (the simulator's single block: every column
is an own agent, messages are ``C(z, t)``) or
:class:`stflow.engines.mpi.exchange.BlockExchange` (one MPI rank's block). An exchange has
two methods,

- ``start(out, t)``: post the round's messages (``out``: one ``(n_own, d)`` array per
  channel, from :meth:`stflow.methods.base.Method.send`);
- ``finish() -> list``: each channel's decoded messages of the block's columns,
  ``(n_cols, d)``;

and the driver runs ``method.local`` between them (the work that overlaps the transfer).
A batched engine plugs in the same way: give it an exchange and call :meth:`RoundDriver.round`
(or use :func:`message_bits` for the accounting).

Channel faults (:class:`stflow.network.Channel`) live here only, so both engines lose the
same messages (the masks are counter-keyed). The rules (``docs/network.md``):

- a method with public copies (``Method.copies``: observer, CHOCO, LEAD, BEER, MoTEF)
  commits a sender's round only when every neighbour received it (1-bit acknowledgements):
  otherwise every holder, the sender included, integrates zero for that sender, so all
  copies stay equal;
- a method without copies mixes over a link only when both directions arrived (the two
  acknowledgements): a missing link's weight moves to the diagonal (each end uses its own
  value in its place), so the mixing matrix stays symmetric with rows summing as before;
- an asleep agent keeps its own rows (it neither computes nor sends) and its links do not
  mix that round; its radio still integrates its neighbours' committed messages.

Byte accounting is :func:`message_bits` (one function of a round's masks), used by both
engines through :class:`BitCounter`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import InputError

__all__ = ["RoundDriver", "LocalExchange", "BitCounter", "message_bits", "RoundStopped"]


class RoundStopped(Exception):
    """A stop was requested during a round's local updates (``[solver] local_steps``): the
    round is abandoned, its state is the one before the round (:meth:`RoundDriver.round`)."""


class LocalExchange:
    """The simulator's exchange: one block holding every agent, messages ``C(z, t)``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from stflow.compressors import make_compressor
    >>> m = SimpleNamespace(codecs=lambda: [make_compressor("topk:k=1", 2), None])
    >>> ex = LocalExchange(m)
    >>> ex.start([np.array([[3.0, -4.0]]), np.array([[1.0, 2.0]])], 0.0)
    >>> [M.tolist() for M in ex.finish()]
    [[[0.0, -4.0]], [[1.0, 2.0]]]
    """

    def __init__(self, method):
        self.codecs = method.codecs()
        self._msgs = None

    def start(self, out, t: float) -> None:
        self._msgs = [z if c is None else c(z, t) for z, c in zip(out, self.codecs,
                                                                   strict=True)]

    def finish(self) -> list:
        msgs, self._msgs = self._msgs, None
        return msgs


def message_bits(method, masks, channel, degree_up, sent=None) -> tuple[np.ndarray,
                                                                         np.ndarray]:
    r"""Bits each agent sent in one round, ``(broadcast, point-to-point)``, each ``(N,)``.

    Without a channel (``masks=None``): ``bits_per_message`` per agent (or the event-triggered
    ``round_bits``), times the degree point to point. With one, agent i pays

    .. math::

        b_i = [\text{awake}_i,\ \deg^{up}_i > 0]\, (B_i + c) + \deg^{up}_i, \qquad
        p_i = [\text{awake}_i]\, (B_i + c) \deg^{up}_i + \deg^{up}_i

    with :math:`B_i` the message bits, :math:`c = 1` commit bit for methods with public
    copies (0 otherwise) and one acknowledgement bit per link that exists this round. A lost
    message is paid for (it was sent).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> m = SimpleNamespace(bits_per_message=100, triggered=False, copies=("Xhat",))
    >>> masks = SimpleNamespace(awake=np.array([True, False]))
    >>> message_bits(m, masks, object(), np.array([2, 2]))
    (array([103.,   2.]), array([204.,   2.]))
    """
    rb = sent
    if rb is None:
        rb = np.full(degree_up.shape, float(method.bits_per_message))
    if masks is None:
        return rb, rb * degree_up
    commit = 1.0 if method.copies else 0.0
    deg = np.asarray(degree_up, dtype=float)
    talks = masks.awake & (deg > 0)
    payload = np.where(talks, rb + commit, 0.0)
    return payload + deg, payload * deg + deg


class BitCounter:
    """Cumulative bits of a block's own agents (both engines).

    ``on`` is True when messages vary in size (event-triggered sending, a lossy channel or
    a schedule); then ``totals()`` is (broadcast bits, point-to-point bits) summed over the
    block's agents and :meth:`per_agent` gives :meth:`stflow.metrics.Recorder.record`'s
    ``bits``. With fixed sizes every agent pays ``bits_per_message`` a round and nothing is
    counted here. ``slowest(reduce)`` is the sum over the rounds of each round's largest
    message (the modeled time of SPEC section 8 waits for the slowest link): the block's
    per-round maxima since the last call, combined across blocks by ``reduce`` (an
    element-wise max over MPI ranks; identity on one block), are added to the running sum.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> m = SimpleNamespace(triggered=True, round_bits=lambda: np.array([105.0, 1.0]))
    >>> c = BitCounter(m, degree=np.array([2, 3]))
    >>> c.add(m); c.add(m); c.totals(), c.slowest()
    ((212.0, 426.0), 210.0)
    """

    def __init__(self, method, degree, channel=None):
        self.on = bool(getattr(method, "triggered", False)) or channel is not None
        self.degree = np.asarray(degree, dtype=float)
        self.sent = 0.0
        self.p2p = 0.0
        self.slowest_sum = 0.0
        self._maxima: list[float] = []

    def add(self, method, masks=None, channel=None, own=None, degree_up=None) -> None:
        """Count the round ``method`` just sent (``masks``: the channel's, for the agents
        ``own`` of the block; ``degree_up``: their links this round)."""
        if not self.on:
            return
        rb = method.round_bits() if getattr(method, "triggered", False) else None
        if masks is None:
            rb = rb if rb is not None else np.full(self.degree.shape,
                                                   float(method.bits_per_message))
            self.sent += float(rb.sum())
            self.p2p += float(rb @ self.degree)
            self._maxima.append(float(rb.max()) if rb.size else 0.0)
            return
        sub = _Sub(masks.awake[own])
        b, p = message_bits(method, sub, channel, degree_up, rb)
        self.sent += float(b.sum())
        self.p2p += float(p.sum())
        b = np.asarray(b, dtype=float)
        self._maxima.append(float(b.max()) if b.size else 0.0)

    def slowest(self, reduce=None) -> float | None:
        """Running sum of each round's largest message (None when sizes are fixed)."""
        if not self.on:
            return None
        maxima = np.asarray(self._maxima, dtype=float)
        if reduce is not None:
            maxima = np.asarray(reduce(maxima), dtype=float)
        self.slowest_sum += float(maxima.sum())
        self._maxima = []
        return self.slowest_sum

    def totals(self) -> tuple[float, float]:
        return self.sent, self.p2p

    def per_agent(self, n_agents: int, totals=None) -> tuple[float, float] | None:
        """``totals`` (default: this block's) over all ``n_agents`` agents, as
        :meth:`stflow.metrics.Recorder.record` takes them; None when sizes are fixed."""
        if not self.on:
            return None
        return tuple(float(b) / n_agents for b in (self.totals() if totals is None else totals))


class _Sub:
    __slots__ = ("awake",)

    def __init__(self, awake):
        self.awake = awake


class _Mixing:
    """A method's full mixing matrix on one block, and how to drop links from it (module
    rules): the block's matrix is one CSR whose ``data`` is rewritten in place each round
    (its structure holds every diagonal entry, so no sparse matrix is built per round)."""

    def __init__(self, matrix, graph, block):
        m = sp.csr_matrix(matrix)
        n = m.shape[0]
        coo = m.tocoo()
        rows = np.concatenate([coo.row, np.arange(n)])
        cols = np.concatenate([coo.col, np.arange(n)])
        data = np.concatenate([coo.data, np.zeros(n)])
        full = sp.csr_matrix((data, (rows, cols)), shape=(n, n))  # duplicates summed
        full.sort_indices()
        self.data = full.data.copy()
        self.rows = np.repeat(np.arange(n), np.diff(full.indptr))
        cols = full.indices.astype(np.int64)
        e = np.asarray(graph.edges, dtype=np.int64)
        keys = e[:, 0] * n + e[:, 1]
        lo, hi = np.minimum(self.rows, cols), np.maximum(self.rows, cols)
        ekey = lo * n + hi
        pos = np.minimum(np.searchsorted(keys, ekey), max(len(keys) - 1, 0))
        self.off = self.rows != cols
        if self.off.any() and not np.all(keys[pos[self.off]] == ekey[self.off]):
            raise InputError("a method's mixing matrix has an entry outside the graph's edges")
        self.edge = np.where(self.off, pos, 0)
        self.diag = np.nonzero(~self.off)[0]  # one per row, in row order
        # the block's entries as positions into the full data (restrict keeps every entry)
        index = sp.csr_matrix((np.arange(1.0, full.nnz + 1), full.indices, full.indptr),
                              shape=(n, n))
        picked = block.restrict(index)
        self.pick = None if picked is index else (picked.data - 1).astype(np.int64)
        self.block_matrix = sp.csr_matrix(
            ((self.data if self.pick is None else self.data[self.pick]).copy(),
             picked.indices.copy(), picked.indptr.copy()), shape=picked.shape)

    def without(self, used: np.ndarray):
        """The block's matrix with the links not ``used`` removed, their weight moved to
        the diagonal (rewritten in place and returned)."""
        drop = self.off & ~used[self.edge]
        data = self.data.copy()
        if drop.any():
            moved = np.bincount(self.rows[drop], weights=data[drop],
                                minlength=self.diag.size)
            data[drop] = 0.0
            data[self.diag] += moved
        self.block_matrix.data[:] = data if self.pick is None else data[self.pick]
        return self.block_matrix


class RoundDriver:
    """One round of the block protocol with channel faults, for any engine (module docstring).

    Parameters
    ----------
    method : stflow.methods.base.Method
        Bound to its block (``method.block``).
    exchange
        ``start(out, t)`` / ``finish()`` (module docstring).
    channel : stflow.network.Channel or None
        None: a perfect network (the round is exactly the block protocol).

    Examples
    --------
    >>> from stflow.graphs import make_graph
    >>> from stflow.problems import make_problem
    >>> from stflow.methods.dgd import DGD
    >>> from stflow.network import Channel
    >>> p = make_problem("quadratic", agents=4, dim=2, seed=0)
    >>> g = make_graph("ring", 4)
    >>> m = DGD(p, g, lr=0.1)
    >>> drv = RoundDriver(m, LocalExchange(m), Channel(g, drop=0.5, seed=0))
    >>> new = drv.round(m.initial_state(), 0, 0.0, 1.0)
    >>> new["X"].shape, drv.counter.on
    ((4, 2), True)
    """

    def __init__(self, method, exchange, channel=None):
        self.method, self.exchange, self.channel = method, exchange, channel
        block = method.block
        self.own = np.arange(block.start, block.stop)
        degree = np.asarray(method.graph.degree)[block.start:block.stop]
        self.counter = BitCounter(method, degree, channel)
        self.mixing = {}
        if channel is not None:
            self.check(method, channel)
            for attr, full in method.mixing_matrices().items():
                self.mixing[attr] = (_Mixing(full, method.graph, block), getattr(method, attr))
            e = channel.edges
            self._inc = sp.csr_matrix(  # (N, E): agent-edge incidence
                (np.ones(2 * len(e)), (np.concatenate([e[:, 0], e[:, 1]]),
                                       np.tile(np.arange(len(e)), 2))),
                shape=(channel.n, len(e)))
            self._cols = block.cols
            self._degree = np.asarray(self._inc.sum(axis=1), dtype=float).ravel()

    @staticmethod
    def check(method, channel) -> None:
        """Refuse a channel the method cannot run on (one line, :class:`InputError`)."""
        if method.copies and channel.schedule in ("matching", "one_peer_exp"):
            raise InputError(
                f'[graph] schedule = "{channel.schedule}" cannot apply to [method] kind = '
                f'"{method.kind}": its public copies ({", ".join(method.copies)}) need every '
                'neighbour to receive every message; use schedule = "failures" or a method '
                "without copies (docs/network.md)")
        if not method.copies and not method.mixing_matrices():
            raise InputError(
                f'[method] kind = "{method.kind}" does not say how it mixes (no copies and no '
                "mixing_matrices()), so lost messages are undefined for it: run it with "
                "[network] drop = 0, activation = 1 and no [graph] schedule (docs/network.md)")

    def round(self, state: dict, k: int, t: float, h: float, local_steps: int = 1,
              stop=None, abandon: bool = True) -> dict:
        """The state after round ``k`` (time ``t``, step ``h``), with ``local_steps - 1``
        local updates first (SPEC section 7).

        ``stop`` (a callable, e.g. "was Ctrl-C or SIGTERM caught?") is asked before each
        local update, so a huge ``local_steps`` cannot make an interrupt wait for minutes:
        when it answers True, ``abandon=True`` (the simulator) raises :class:`RoundStopped`
        (``state`` is untouched: local updates return new arrays), ``abandon=False`` (an MPI
        rank, whose neighbours wait for its messages) skips the remaining local updates and
        finishes the round with its exchange.
        """
        m = self.method
        before = state
        for _ in range(local_steps - 1):
            if stop is not None and stop():
                if abandon:
                    raise RoundStopped(k)
                break
            state = m.local_update(state, t, h)
        masks = None if self.channel is None else self.channel.masks(k)
        if masks is None:
            out = m.send(state, t, h)
            self.exchange.start(out, t)
            m.local(state, t, h)
            new = m.receive(state, self.exchange.finish(), t, h)
            self.counter.add(m)
            return new
        keep, degree_up = self._links(masks)
        try:
            out = m.send(state, t, h)
            self.exchange.start(out, t)
            m.local(state, t, h)
            msgs = self.exchange.finish()
            if keep is not None and not keep.all():
                for M in msgs:
                    M[~keep] = 0.0
            new = m.receive(state, msgs, t, h)
        finally:
            for attr, (_mix, original) in self.mixing.items():
                setattr(m, attr, original)
        asleep = ~masks.awake[self.own]
        if asleep.any():
            for key, arr in new.items():
                if key not in m.copies:
                    arr[asleep] = before[key][asleep]
        self.counter.add(m, masks, self.channel, self.own, degree_up[self.own])
        return new

    def _links(self, masks):
        """Set this round's mixing matrices; return (the columns whose messages count, or
        None; each agent's links this round)."""
        m, ch = self.method, self.channel
        E = ch.n_edges
        up, awake, got = masks.up, masks.awake, masks.delivered
        ends = awake[ch.edges[:, 0]] & awake[ch.edges[:, 1]]
        keep = None
        if m.copies:
            # sender j commits when every one of its links delivered its message
            missed = np.bincount(ch.src[~got], minlength=ch.n) > 0
            keep = (awake & ~missed)[self._cols]
            used = up & ends
        else:
            used = up & ends & got[:E] & got[E:]
        for attr, (mix, _original) in self.mixing.items():
            setattr(m, attr, mix.without(used))
        if up.all():
            return keep, self._degree
        return keep, np.asarray(self._inc @ up.astype(float)).ravel()
