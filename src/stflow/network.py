r"""The channel model: lost messages, sleeping agents and changing links, drawn on counters.

A :class:`Channel` says, for round ``k``, which agents work (``awake``), which links of the
graph exist (``up``: the ``[graph] schedule``) and which directed messages arrive
(``delivered``). Every draw is a pure function of counters, never of a generator's history:

.. math:: u(s, c, k, a, b) = \text{splitmix64}(\ldots\text{splitmix64}(s) \oplus c \ldots
          \oplus b) / 2^{64} \in [0, 1)

with ``s`` the ``[network] seed``, ``c`` the stream (drop, activation, ...), ``k`` the
round, ``(a, b)`` the directed edge or ``(i, i)`` for an agent. Every MPI rank computes the
same masks as the simulator without communicating, and a resumed run draws what the
uninterrupted run drew. The bursty Gilbert--Elliott model keeps one two-state Markov chain per
directed edge; its state at round ``k`` is replayed from round 0 when asked out of order
(a resumed run), so the channel's state survives ``--resume`` without being stored.

Keys (declared once here, read by the config's schema and ``docs/config.md``):
``[network] drop, burst_enter, burst_exit, burst_drop, activation, seed`` and
``[graph] schedule, fail, recovery``. What each method does with a missing message is in
``docs/network.md``; the round driver (:mod:`stflow.engines.driver`) applies the masks.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError
from .params import Param

__all__ = ["NETWORK_PARAMS", "SCHEDULE_PARAMS", "SCHEDULES", "Channel", "RoundMasks",
           "keyed_uniform", "check_network", "make_channel", "commit_rate"]

#: ``[graph] schedule`` values (``docs/network.md``).
SCHEDULES = ("none", "matching", "one_peer_exp", "failures")

NETWORK_PARAMS = (
    Param("drop", 0.0, "probability in [0, 1) that a directed message is lost in a round "
          "(in the good state of the bursty model); docs/network.md", zero=True, high=1.0,
          section="network", example=0.1, tunable=False),
    Param("burst_enter", 0.0, "Gilbert-Elliott: per round, probability that a link's "
          "channel goes from the good to the bad state (0: independent losses only)",
          zero=True, high=1.0, section="network", example=0.01, tunable=False),
    Param("burst_exit", 0.5, "Gilbert-Elliott: per round, probability that the bad state "
          "ends (mean burst = 1 / burst_exit rounds)", high=1.0, section="network",
          tunable=False),
    Param("burst_drop", 1.0, "Gilbert-Elliott: loss probability in the bad state",
          zero=True, high=1.0, section="network", tunable=False),
    Param("activation", 1.0, "probability in (0, 1] that an agent works in a round (an "
          "asleep agent neither computes nor sends; its radio still receives)", high=1.0,
          section="network", example=0.9, tunable=False),
    Param("seed", 0, "seed of every channel draw (losses, sleep, schedules)", type="int",
          section="network", tunable=False),
)

SCHEDULE_PARAMS = (
    Param("schedule", "none", "time-varying topology over the graph's edges: none | "
          "matching (a random maximal matching per round) | one_peer_exp (i <-> i XOR 2^(k "
          "mod log2 N): N a power of two, those edges in the graph) | failures (each link "
          "fails with probability fail per round and stays down recovery rounds)",
          choices=SCHEDULES, section="graph", tunable=False),
    Param("fail", 0.01, "schedule = \"failures\": per round, probability that a link fails",
          high=1.0, section="graph", tunable=False),
    Param("recovery", 10, "schedule = \"failures\": rounds a failed link stays down",
          type="int", low=1, section="graph", tunable=False),
)

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_STREAM = {"drop": 1, "activation": 2, "burst": 3, "matching": 4, "failures": 5}


def _mix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer on uint64 arrays (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def keyed_uniform(seed: int, stream: int, k, a, b) -> np.ndarray:
    r"""Uniform draws in [0, 1), one per pair ``(a[e], b[e])``, keyed on
    ``(seed, stream, k, a, b)`` only (module docstring). ``k`` may be an array of rounds
    ``(R,)``: then the result is ``(R, len(a))``, row r equal to the call with ``k[r]``.

    Examples
    --------
    >>> u = keyed_uniform(0, 1, 5, [0, 1, 2], [1, 2, 0])
    >>> v = keyed_uniform(0, 1, 5, [2], [0])  # the same edge asked alone
    >>> w = keyed_uniform(0, 1, np.array([4, 5]), [0, 1, 2], [1, 2, 0])  # two rounds at once
    >>> bool(u[2] == v[0]), bool(np.array_equal(w[1], u)), bool(np.all((u >= 0) & (u < 1)))
    (True, True, True)
    """
    a = np.asarray(a, dtype=np.uint64).reshape(-1)
    b = np.asarray(b, dtype=np.uint64).reshape(-1)
    ks = np.asarray(k, dtype=np.int64)
    many = ks.ndim > 0
    ks = ks.reshape(-1, 1).astype(np.uint64)
    x = _mix(np.full((1, 1), int(seed) & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64)
             + np.uint64(0x9E3779B97F4A7C15))
    x = _mix(x ^ np.uint64(int(stream) & 0xFFFFFFFFFFFFFFFF))
    x = _mix(x ^ ks)
    x = _mix(x ^ a[None, :])
    x = _mix(x ^ (b * np.uint64(0x9E3779B97F4A7C15))[None, :])
    out = (x >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
    return out if many else out[0]


class RoundMasks:
    """What the channel does in one round (``E`` undirected edges of the graph, in
    ``graph.edges`` order; directed edge ``e`` is ``edges[e, 0] -> edges[e, 1]`` and
    ``E + e`` the reverse).

    Attributes
    ----------
    awake : (N,) bool
    up : (E,) bool -- the link exists this round (schedule)
    delivered : (2E,) bool -- up, the sender awake, and the message not lost
    """

    __slots__ = ("awake", "up", "delivered")

    def __init__(self, awake, up, delivered):
        self.awake, self.up, self.delivered = awake, up, delivered


class Channel:
    r"""Counter-keyed losses, sleep and schedules of one run (module docstring).

    Parameters
    ----------
    graph : stflow.graphs.Graph
    drop, burst_enter, burst_exit, burst_drop, activation, seed
        ``[network]`` keys (:data:`NETWORK_PARAMS`).
    schedule, fail, recovery
        ``[graph]`` keys (:data:`SCHEDULE_PARAMS`).

    Examples
    --------
    >>> from stflow.graphs import make_graph
    >>> ch = Channel(make_graph("ring", 4), drop=0.5, seed=1)
    >>> m = ch.masks(0)
    >>> m.awake.tolist(), m.up.tolist(), m.delivered.shape
    ([True, True, True, True], [True, True, True, True], (8,))
    >>> bool(np.array_equal(m.delivered, ch.masks(0).delivered))   # same counters, same draws
    True
    """

    def __init__(self, graph, *, drop=0.0, burst_enter=0.0, burst_exit=0.5, burst_drop=1.0,
                 activation=1.0, seed=0, schedule="none", fail=0.01, recovery=10):
        vals = dict(drop=drop, burst_enter=burst_enter, burst_exit=burst_exit,
                    burst_drop=burst_drop, activation=activation, seed=seed)
        _check_drop(drop)
        for p in NETWORK_PARAMS:
            setattr(self, p.name, p.check(vals[p.name]))
        svals = dict(schedule=schedule, fail=fail, recovery=recovery)
        for p in SCHEDULE_PARAMS:
            setattr(self, p.name, p.check(svals[p.name]))
        self.graph = graph
        self.n = int(graph.n)
        e = np.asarray(graph.edges, dtype=np.int64)
        self.edges = e
        self.n_edges = int(e.shape[0])
        self.src = np.concatenate([e[:, 0], e[:, 1]])
        self.dst = np.concatenate([e[:, 1], e[:, 0]])
        self._check_schedule()
        self._burst_k = -1
        self._bad = np.zeros(2 * self.n_edges, dtype=bool)
        self._cache_k0 = -1
        self._cache = None

    @property
    def faulty(self) -> bool:
        """True when any message can be lost or any agent sleep (not a schedule alone)."""
        return self.drop > 0 or self.burst_enter > 0 or self.activation < 1.0

    def commit_rate(self) -> float:
        """:func:`commit_rate` of this channel."""
        return commit_rate({p.name: getattr(self, p.name) for p in NETWORK_PARAMS},
                           {p.name: getattr(self, p.name) for p in SCHEDULE_PARAMS},
                           self.graph)

    def divergence_hint(self) -> str:
        """What a divergence on this channel may owe to it ('' when nothing is lost)."""
        q = self.commit_rate()
        if q >= 1.0:
            return ""
        return (f"; also, the channel loses messages: the worst-connected agent's copies "
                f"move in {q:.2g} of the rounds (its commit rate, docs/network.md), so a "
                f"setting made without loss may need gains or lr about {q:.2g} times as "
                "large (the observer flow's \"auto\" gains include it)")

    def _check_schedule(self) -> None:
        n, e = self.n, self.edges
        if self.schedule == "one_peer_exp":
            bits = int(round(math.log2(n))) if n > 1 else 0
            if 2 ** bits != n:
                raise InputError(
                    f'[graph] schedule = "one_peer_exp" needs N a power of two (got N = {n}): '
                    'use schedule = "matching" or "failures", or 2^m agents')
            have = set(map(tuple, e.tolist()))
            for j in range(bits):
                for i in range(n):
                    a, b = sorted((i, i ^ (1 << j)))
                    if (a, b) not in have:
                        raise InputError(
                            f'[graph] schedule = "one_peer_exp" needs the edge ({a}, {b}) '
                            f'(i <-> i XOR 2^{j}), which [graph] kind = "{self.graph.kind}" '
                            'lacks: use kind = "complete" (or a hypercube as kind = "edges"), '
                            'or schedule = "matching" / "failures"')
            self._peer_edge = {}
            index = {pair: k for k, pair in enumerate(map(tuple, e.tolist()))}
            for j in range(bits):
                self._peer_edge[j] = np.array(sorted({index[tuple(sorted((i, i ^ (1 << j))))]
                                                      for i in range(n)}), dtype=np.int64)

    # -- one round ---------------------------------------------------------------------
    def up(self, k: int) -> np.ndarray:
        """``(E,)`` bool: the links that exist in round ``k`` (the schedule)."""
        E = self.n_edges
        if self.schedule == "none":
            return np.ones(E, dtype=bool)
        if self.schedule == "one_peer_exp":
            bits = int(round(math.log2(self.n)))
            out = np.zeros(E, dtype=bool)
            out[self._peer_edge[k % bits]] = True
            return out
        if self.schedule == "failures":
            # a failure drawn in round r takes the link down for rounds r .. r + recovery - 1
            k0 = k - k % self.BATCH
            if getattr(self, "_fail_k0", -1) != k0:
                R, ids = self.recovery, np.arange(E)
                ks = np.arange(k0 - R + 1, k0 + self.BATCH)
                fails = keyed_uniform(self.seed, _STREAM["failures"], np.maximum(ks, 0), ids,
                                      ids) < self.fail
                fails[ks < 0] = False
                self._fail_k0, self._fails = k0, fails
            r = k - k0
            return ~self._fails[r:r + self.recovery].any(axis=0)
        # matching: greedy over the edges in a keyed random order
        order = np.argsort(keyed_uniform(self.seed, _STREAM["matching"], k, np.arange(E),
                                         np.arange(E)), kind="stable")
        used = np.zeros(self.n, dtype=bool)
        out = np.zeros(E, dtype=bool)
        for idx in order.tolist():
            a, b = self.edges[idx]
            if not (used[a] or used[b]):
                used[a] = used[b] = True
                out[idx] = True
        return out

    def _burst_state(self, k: int) -> np.ndarray:
        """Gilbert--Elliott state of every directed edge in round ``k`` (replayed from round
        0 when ``k`` is not the next round)."""
        if k < self._burst_k or self._burst_k < 0:
            self._burst_k, self._bad = 0, np.zeros(2 * self.n_edges, dtype=bool)
        while self._burst_k < k:
            u = keyed_uniform(self.seed, _STREAM["burst"], self._burst_k, self.src, self.dst)
            self._bad = np.where(self._bad, u >= self.burst_exit, u < self.burst_enter)
            self._burst_k += 1
        return self._bad

    #: Rounds drawn at once (the draws of a round do not depend on how they are batched).
    BATCH = 256

    def _draws(self, k: int):
        """(awake ``(N,)``, independent losses ``(2E,)`` or None) of round ``k``, from a
        cache filled :attr:`BATCH` rounds at a time."""
        k0 = k - k % self.BATCH
        if self._cache_k0 != k0:
            ks = np.arange(k0, k0 + self.BATCH)
            awake = lost = None
            if self.activation < 1.0:
                ids = np.arange(self.n)
                awake = keyed_uniform(self.seed, _STREAM["activation"], ks, ids,
                                      ids) < self.activation
            if self.drop > 0 or self.burst_enter > 0:
                lost = keyed_uniform(self.seed, _STREAM["drop"], ks, self.src, self.dst)
            self._cache_k0, self._cache = k0, (awake, lost)
        awake, u = self._cache
        r = k - k0
        return (None if awake is None else awake[r]), (None if u is None else u[r])

    def masks(self, k: int) -> RoundMasks:
        """The :class:`RoundMasks` of round ``k``."""
        awake, u = self._draws(k)
        if awake is None:
            awake = np.ones(self.n, dtype=bool)
        up = self.up(k)
        up2 = np.concatenate([up, up])
        delivered = up2 & awake[self.src]
        if u is not None:
            if self.burst_enter > 0:
                lost = np.where(self._burst_state(k), u < self.burst_drop, u < self.drop)
            else:
                lost = u < self.drop
            delivered &= ~lost
        return RoundMasks(awake, up, delivered)


def commit_rate(network: dict, graph_section: dict, graph) -> float:
    r"""Probability that a message of the worst-connected agent commits in a round, from the
    channel's stationary statistics (docs/network.md): every one of its ``deg`` links must
    be up and deliver, so

    .. math:: q = \big((1 - p)\,u\big)^{deg_{max}}

    with ``p`` the stationary loss probability of a directed message (``drop``, and with
    bursts :math:`\pi_{bad}\,burst\_drop + (1 - \pi_{bad})\,drop`,
    :math:`\pi_{bad} = enter / (enter + exit)`), ``u`` the probability that a link is up
    (``schedule = "failures"``: :math:`(1 - fail)^{recovery}`, else 1) and ``deg_max`` the
    graph's largest degree (1 under ``matching`` and ``one_peer_exp``: one peer a round).
    Sleep (``activation``) is left out: an asleep agent pauses whole, it does not desync.
    1.0 for a loss-free channel. The flows' ``"auto"`` gains scale their speed by it.

    >>> from stflow.graphs import make_graph
    >>> round(commit_rate({"drop": 0.2}, {}, make_graph("ring", 6)), 4)   # 0.8 ** 2
    0.64
    """
    # the declared defaults for keys a section leaves out (or sets to None)
    net = {p.name: p.default for p in NETWORK_PARAMS}
    net.update({k: v for k, v in network.items() if k in net and v is not None})
    sched = {p.name: p.default for p in SCHEDULE_PARAMS}
    sched.update({k: v for k, v in graph_section.items() if k in sched and v is not None})
    p = float(net["drop"])
    if net["burst_enter"] > 0:
        bad = net["burst_enter"] / (net["burst_enter"] + net["burst_exit"])
        p = bad * float(net["burst_drop"]) + (1.0 - bad) * p
    up = (1.0 - float(sched["fail"])) ** int(sched["recovery"]) if (
        sched["schedule"] == "failures") else 1.0
    one_peer = sched["schedule"] in ("matching", "one_peer_exp")
    deg = 1 if one_peer else int(np.max(graph.degree, initial=0))
    return float(((1.0 - p) * up) ** deg)


def _check_drop(value) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and 0.0 <= value < 1.0):
        raise InputError(
            f"[network] drop must be a number in [0, 1) (got {value!r}): it is the "
            "probability that a message is lost, e.g. drop = 0.1 (1 would lose everything)")


def check_network(config: dict) -> None:
    """Validate ``[network]`` channel keys and ``[graph]`` schedule keys of a resolved config
    (before anything runs); raises :class:`InputError` with one line.

    Examples
    --------
    >>> check_network({"network": {"drop": 1.0}, "graph": {}})
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [network] drop must be a number in [0, 1) (got 1.0): it is the probability that a message is lost, e.g. drop = 0.1 (1 would lose everything)
    """
    net, g = config["network"], config["graph"]
    _check_drop(net.get("drop", 0.0))
    for p in NETWORK_PARAMS:
        net[p.name] = p.check(net.get(p.name, p.default))
    for p in SCHEDULE_PARAMS:
        g[p.name] = p.check(g.get(p.name, p.default))


def make_channel(config: dict, graph) -> Channel | None:
    """The run's :class:`Channel`, or None when the network is perfect (no loss, every agent
    awake, no schedule): then the round driver runs exactly as without this module.

    Examples
    --------
    >>> from stflow.config import resolve_config
    >>> from stflow.graphs import make_graph
    >>> g = make_graph("ring", 4)
    >>> make_channel(resolve_config({}), g) is None
    True
    >>> make_channel(resolve_config({"network": {"drop": 0.1}}), g).drop
    0.1
    """
    net, g = config["network"], config["graph"]
    keys = {p.name: net[p.name] for p in NETWORK_PARAMS}
    if (keys["drop"] == 0 and keys["burst_enter"] == 0 and keys["activation"] == 1.0
            and g["schedule"] == "none"):
        return None
    return Channel(graph, **keys, schedule=g["schedule"], fail=g["fail"],
                   recovery=g["recovery"])
