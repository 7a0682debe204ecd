r"""What every method is: a block protocol that both engines run, and declared parameters.

A *method* says what one block of agents computes each round, from its own state and the
messages it received, and nothing about who holds the other blocks:

1. :meth:`Method.send` -> one ``(n, d)`` array per channel: what the block's agents send
   (before compression); it may compute what the message needs (a gradient, a prediction);
2. :meth:`Method.local` -> work that does not need this round's messages (the engine runs it
   while the messages travel);
3. :meth:`Method.receive` -> the new state, given every channel's decoded messages of the
   block's *columns* (its own agents and their neighbours on other blocks).

State arrays are ``(n, d)`` for the block's own agents, except the keys in
:attr:`Method.copies`: public copies of every column agent's state (the observer's
``Xhat``, CHOCO's ``Xhat``, LEAD's ``H``), ``(n_cols, d)``, kept identically by the sender and
its neighbours because all of them integrate the same messages.

A :class:`Block` holds the agents ``start:stop`` and restricts the graph's matrices to them.
The simulator (:mod:`stflow.engines.simulate`) is the engine with one block holding every
agent; the MPI engine (:mod:`stflow.engines.mpi`) gives each rank one block. Neither engine
knows any method by name.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from ..params import Param

__all__ = ["Param", "Block", "Method", "initial_array", "keyed_normal"]


class Block:
    r"""The agents ``start:stop`` one engine process owns, and their columns.

    ``cols`` are the global ids whose messages the block needs: its own agents and every
    neighbour of them (sorted), so own agents sit at the contiguous positions ``own`` of
    ``cols``. :meth:`restrict` gives rows ``start:stop`` of an (N, N) matrix on those columns.

    Examples
    --------
    >>> from stflow.graphs import make_graph
    >>> g = make_graph("ring", 6)
    >>> b = Block.for_graph(g, 2, 4)
    >>> b.cols.tolist(), b.own, b.restrict(g.laplacian).toarray().tolist()
    ([1, 2, 3, 4], slice(1, 3, None), [[-1.0, 2.0, -1.0, 0.0], [0.0, -1.0, 2.0, -1.0]])
    >>> Block.everything(6).restrict(g.laplacian) is g.laplacian
    True
    """

    def __init__(self, start: int, stop: int, cols: np.ndarray, n_total: int):
        self.start, self.stop, self.n_total = int(start), int(stop), int(n_total)
        self.cols = np.asarray(cols, dtype=np.int64)
        first = int(np.searchsorted(self.cols, self.start))
        self.own = slice(first, first + self.stop - self.start)
        self.n_own = self.stop - self.start
        self.n_cols = int(self.cols.size)
        self.whole = self.n_own == self.n_total

    @property
    def ids(self) -> np.ndarray:
        """Global ids of the block's own agents, ``(n_own,)``: key per-agent randomness on
        these (:func:`keyed_normal`), never on a row's position in an array."""
        return np.arange(self.start, self.stop, dtype=np.int64)

    @classmethod
    def everything(cls, n: int) -> Block:
        """The simulator's block: all ``n`` agents, no halo."""
        return cls(0, n, np.arange(n), n)

    @classmethod
    def for_graph(cls, graph, start: int, stop: int) -> Block:
        """Agents ``start:stop`` of ``graph`` and the neighbours they need messages from."""
        lap = graph.laplacian.tocsr()
        nbr = lap.indices[lap.indptr[start] : lap.indptr[stop]]
        cols = np.union1d(np.arange(start, stop), nbr)
        return cls(start, stop, cols, graph.n)

    def restrict(self, matrix):
        """Rows ``start:stop`` of ``matrix`` (N, N) on columns ``cols`` (CSR, entries in order)."""
        if self.whole:
            return matrix
        m = matrix.tocsr()[self.start : self.stop]
        m.sort_indices()
        pos = np.searchsorted(self.cols, m.indices)
        out = sp.csr_matrix((m.data.copy(), pos, m.indptr.copy()), shape=(self.n_own, self.n_cols))
        return out


class Method:
    """Base class of every method (see the module docstring for the block protocol).

    Subclasses set :attr:`kind`, :attr:`params`, :attr:`state_keys`, :attr:`copies`,
    :attr:`channels` (``"compressed"`` or ``"raw"`` per message channel) and implement
    :meth:`bind_block`, :meth:`init_block`, :meth:`send` and :meth:`receive`.
    """

    kind: ClassVar[str] = ""
    title: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    state_keys: ClassVar[tuple[str, ...]] = ("X",)
    copies: ClassVar[tuple[str, ...]] = ()
    channels: tuple[str, ...] = ("raw",)
    #: "dual": the method takes V(0) (the primal-dual flows); others refuse v0.
    takes_v0: ClassVar[bool] = False
    #: True when ``[solver] local_steps > 1`` is defined for the method (SPEC section 7).
    local_steps_ok: ClassVar[bool] = False
    #: True when ``[solver] scheme = "continuous"`` is defined (a vector field exists).
    continuous_ok: ClassVar[bool] = False

    #: True for the primal-dual flows: the step ``h`` multiplies the gains (so the tuner
    #: may tune ``h``), and ``"auto"`` gains come from :func:`~stflow.methods.auto_gains`.
    flow_gains: ClassVar[bool] = False
    #: What a ``stalled`` run's message advises (the knobs this method has).
    stall_hint: ClassVar[str] = ("change the gains, the compressor or the flow "
                                 "(docs/gains.md)")

    def __init__(self, problem, graph, compressor=None, **values):
        self.problem = problem
        self.graph = graph
        self.compressor = compressor
        self.n_agents = int(problem.n_agents)
        self.dim = int(problem.dim)
        self._set_params(values)
        if graph.n != self.n_agents:
            raise InputError(
                f"`graph` has {graph.n} agents but the problem has {self.n_agents}: "
                "build both with the same N"
            )
        if "compressed" in self.channels and compressor is None:
            raise InputError(
                f"[method] kind = {self.kind!r} needs a compressor: add [compressor] spec"
            )
        self.draws = 0  # gradient evaluations made by each agent so far (SPEC section 7)
        self.bind(Block.everything(self.n_agents), problem)

    # -- declared parameters -----------------------------------------------------------------
    def _set_params(self, values: dict) -> None:
        """Each declared parameter as an attribute: ``values[name]``, else its default (a
        value already set by a subclass's ``__init__`` is kept); ``"auto"`` becomes
        :meth:`auto_value`."""
        names = [p.name for p in self.params]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise InputError(
                f'unknown key [method] {unknown[0]} for kind = "{self.kind}": its keys are '
                f"{', '.join(['kind', *names])} (docs/config.md lists every method's keys)"
            )
        for p in self.params:
            if p.name not in values and p.name in vars(self):
                continue
            value = values.get(p.name)
            value = p.check(p.default if value is None else value, self.kind)
            if value == "auto":
                value = self.auto_value(p.name)
            setattr(self, p.name, value)

    def auto_value(self, name: str) -> float:
        """The value of parameter ``name`` given as ``"auto"`` (its auto rule); a method
        that declares ``Param(..., auto=True)`` overrides this."""
        raise InputError(
            f'[method] {name} = "auto" has no rule for kind = "{self.kind}": give a number'
        )

    @classmethod
    def build(cls, problem, graph, compressor=None, *, scheme: str = "predict",
              **params) -> Method:
        """The method from its resolved ``[method]`` parameters (the registry calls this;
        ``scheme`` is ``[solver] scheme``, used by the primal-dual flows only)."""
        return cls(problem, graph, compressor if "compressed" in cls.channels else None,
                   **params)

    # -- engines ---------------------------------------------------------------------------
    def bind(self, block: Block, problem=None) -> None:
        """Work on ``block`` with the block's local costs ``problem`` (default: all of them)."""
        self.block = block
        if problem is not None:
            self.local_problem = problem
        self.bind_block(block)

    def bind_block(self, block: Block) -> None:
        """Precompute the constants of ``block`` (e.g. ``W = block.restrict(W_full)``); the
        engine calls it (through :meth:`bind`) before :meth:`init_block`. Constants only:
        never anything that changes from round to round."""

    def grad(self, X: np.ndarray) -> np.ndarray:
        r"""The block's gradients :math:`\nabla f_i(x_i)` (or SPEC 7 minibatch estimates)."""
        p = self.local_problem
        self.draws += 1
        if getattr(p, "batch", None) is None:
            return p.grad(X)
        return p.stochastic_grad(X, self.draws - 1)

    #: Event-triggered sending: ``send`` sets ``active`` to a bool mask of the block's own
    #: agents that send this round; a silent agent sends a 1-bit flag only (its rows of
    #: ``send``'s arrays are zero). ``triggered`` is True when messages carry that flag.
    triggered: bool = False
    active: np.ndarray | None = None

    @property
    def bits_per_message(self) -> int:
        """Bits one agent broadcasts per round (SPEC section 6): all channels together, plus
        the 1-bit flag of event-triggered sending (the most a round can cost)."""
        total = 1 if self.triggered else 0
        for ch in self.channels:
            total += int(self.compressor.bits_per_message()) if ch == "compressed" else (
                64 * self.dim)
        return total

    def round_bits(self) -> np.ndarray | None:
        """Bits each own agent broadcast in the last round, when they vary (event-triggered
        sending: ``bits_per_message`` if it sent, 1 if it was silent); None when every
        message has ``bits_per_message`` bits."""
        if not self.triggered or self.active is None:
            return None
        return np.where(self.active, float(self.bits_per_message), 1.0)

    def codecs(self) -> list:
        """Per channel: the compressor, or None for raw float64 rows."""
        return [self.compressor if ch == "compressed" else None for ch in self.channels]

    def initial_state(self, x0=None, v0=None) -> dict[str, np.ndarray]:
        """The simulator's state: ``X^0 = x0`` (default 0) and the method's other arrays."""
        X, V = initial_arrays(self, x0, v0)
        return self.init_block(X, V)

    def init_block(self, X: np.ndarray, V: np.ndarray | None) -> dict[str, np.ndarray]:
        """State of the bound block from its rows ``X`` (and ``V``) of the initial point."""
        raise NotImplementedError

    def send(self, state, t: float, h: float) -> list[np.ndarray]:
        """What the block's agents send this round, one ``(n, d)`` array per channel."""
        raise NotImplementedError

    def local(self, state, t: float, h: float) -> None:
        """Work that does not need this round's messages (overlaps the exchange)."""

    def mixing_matrices(self) -> dict:
        """The full ``(N, N)`` matrices through which :meth:`receive` mixes messages, by the
        attribute that holds their block restriction (``{"W": W}`` for the peers, ``{"lap":
        L}`` for the flows). On a lossy network the round driver
        (:mod:`stflow.engines.driver`) swaps in, for one round, the matrix without the
        links that did not carry both messages (their weight moved to the diagonal); a
        method with :attr:`copies` is handled by committing whole messages instead."""
        return {}

    def receive(self, state, messages: list[np.ndarray], t: float, h: float) -> dict:
        """The new state from every channel's messages of the block's columns."""
        raise NotImplementedError

    def set_step_scale(self, scale: float) -> None:
        """``[solver] step_decay``: the engine scales the flows' h itself; peers scale lr."""

    def local_update(self, state, t: float, h: float) -> dict:
        """One local step without messages (``[solver] local_steps > 1``)."""
        raise InputError(
            f'[solver] local_steps > 1 is not defined for [method] kind = "{self.kind}" (its '
            "paper defines no local steps): use local_steps = 1"
        )

    def step(self, state, t: float, h: float) -> dict[str, np.ndarray]:
        """One round on the simulator's single block (send, compress, receive)."""
        out = self.send(state, t, h)
        msgs = [z if c is None else c(z, t) for z, c in zip(out, self.codecs(), strict=True)]
        self.local(state, t, h)
        return self.receive(state, msgs, t, h)

    def vector_field(self, t, state):
        """Only the primal-dual flows have one: an :class:`InputError` otherwise."""
        raise InputError(
            f"[method] kind = {self.kind!r} is a discrete-time method (got [solver] scheme = "
            '"continuous"): use [solver] scheme = "euler"'
        )

    def divergence_cause(self, step: float) -> str:  # pragma: no cover - overridden
        return "unknown"

    def own_norms_sq(self, state) -> np.ndarray:
        """Squared norms of the block's own rows of every state array (divergence checks)."""
        own = self.block.own
        return np.array([
            float(np.vdot(a[own], a[own])) if k in self.copies else float(np.vdot(a, a))
            for k, a in state.items()
        ])

    def describe_params(self) -> dict:
        """The values of the declared parameters (after ``"auto"`` was resolved)."""
        return {p.name: getattr(self, p.name) for p in self.params}

    def __repr__(self) -> str:
        spec = getattr(self.compressor, "spec", None)
        extra = f", compressor={spec!r}" if spec else ""
        vals = ", ".join(f"{k}={v:.4g}" for k, v in self.describe_params().items()
                         if isinstance(v, float))
        return f"{type(self).__name__}({vals}{extra})"


def keyed_normal(seed: int, counter: int, ids, dim: int) -> np.ndarray:
    r"""Standard normal draws ``(len(ids), dim)``, row ``i`` from the generator keyed on
    ``(seed, counter, ids[i])``: the same numbers for agent ``ids[i]`` whichever block, rank
    or row holds it (the rule of ``docs/methods.md``).

    .. math:: Z_{i\cdot} = \text{normal}(\text{PCG64}(\text{SeedSequence}([s, k, a_i])))

    Examples
    --------
    >>> a = keyed_normal(0, 3, [0, 1, 2, 3], 2)
    >>> b = keyed_normal(0, 3, [2, 3], 2)  # agents 2 and 3 on another block
    >>> bool(np.array_equal(a[2:], b))
    True
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    out = np.empty((ids.size, int(dim)))
    for row, agent in enumerate(ids):
        out[row] = np.random.default_rng([int(seed), int(counter), int(agent)]).standard_normal(
            int(dim))
    return out


def initial_arrays(method: Method, x0, v0):
    """Validated full ``X^0`` and ``V^0`` (None unless the method takes one)."""
    shape = (method.n_agents, method.dim)
    X = initial_array("x0", x0, shape)
    if not method.takes_v0:
        if v0 is not None:
            raise InputError(
                f"[init] v0 is only for the primal-dual flows (got it with [method] kind = "
                f"{method.kind!r}): remove v0"
            )
        return X, None
    V = initial_array("v0", v0, shape)
    sums = V.sum(axis=0)
    if np.max(np.abs(sums)) > 1e-9 * max(1.0, float(np.abs(V).max(initial=0.0))):
        raise InputError(
            f"[init] v0 must have zero column sums (got max |column sum| = "
            f"{np.max(np.abs(sums)):.3g}): subtract the column means from v0"
        )
    return X, V


def initial_array(name: str, value, shape) -> np.ndarray:
    """``value`` as an (N, d) float array (None -> zeros; one row of d is copied to all)."""
    if value is None:
        return np.zeros(shape)
    arr = np.array(value, dtype=float)
    if arr.ndim == 1 and arr.shape[0] == shape[1]:
        arr = np.tile(arr, (shape[0], 1))
    if arr.shape != shape:
        raise InputError(
            f"[init] {name} must have shape (N, d) = {shape} (got {arr.shape}): "
            "give one row per agent"
        )
    if not np.all(np.isfinite(arr)):
        raise InputError(f"[init] {name} contains NaN or inf: give finite values")
    return arr
