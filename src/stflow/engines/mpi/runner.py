r"""The rounds of the MPI engine on one rank: set-up, the block loop, checkpoints, outputs.

:class:`Runner` is what :func:`stflow.engines.mpi.run_mpi` drives on every rank. The rank
owns one :class:`~stflow.methods.base.Block` (its agents and their off-rank neighbours) and
runs the method's block protocol through the one round driver
(:class:`stflow.engines.driver.RoundDriver`, with
:class:`~stflow.engines.mpi.exchange.BlockExchange`; channel faults live there); it knows
no method by name. Each round:

1. ``method.send`` gives each channel's vectors of the own agents; the messages of agents
   with a neighbour on another rank are encoded as whole arrays (one call per channel) and
   posted with one non-blocking ``Ineighbor_alltoallv``;
2. own agents' messages are applied directly (the compressor, no encode or decode);
3. ``method.local`` (e.g. the gradient) runs while the messages travel;
4. the received messages are decoded as whole arrays and ``method.receive`` updates the
   own rows and the copies of the neighbours' public state.

Set-up errors that every rank can see are raised as :class:`Agreed` on all ranks at once
(so they unwind without ``MPI_Abort``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ...errors import InputError
from ._collective import Agreed, agree
from .checkpoint import load_checkpoint, save_checkpoint

__all__ = ["Agreed", "MPIRunResult", "Runner", "agree", "config_hash"]

#: Test hooks: ``RANK:STEP`` (or ``RANK:setup``) raises on that rank; ``K`` stops after step K.
FAULT_ENV, STOP_ENV = "STFLOW_MPI_FAULT", "STFLOW_MPI_STOP_AFTER"
EXIT_STOPPED = 75


@dataclass
class MPIRunResult:
    """What :func:`run_mpi` returns on every rank.

    ``run`` offers ``config``, ``problem.n_agents``, ``problem.dim``, ``graph`` and
    ``compressor`` (like :class:`stflow.config.Run`); ``solution`` is a
    :class:`stflow.engines.simulate.Solution`, with records on rank 0 only; ``comm`` is the
    content of ``comm.json`` (rank 0).
    """

    rank: int
    size: int
    run: object
    solution: object
    comm: dict = field(default_factory=dict)

    @property
    def is_root(self) -> bool:
        return self.rank == 0


def config_hash(config: dict, **options) -> str:
    """SHA-256 of the resolved config (and options), to compare configs across ranks.

    Examples
    --------
    >>> config_hash({"a": 1}) == config_hash({"a": 1}), config_hash({"a": 1}) == config_hash({"a": 2})
    (True, False)
    """
    text = json.dumps([config, options, file_digests(config)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_digests(config) -> dict:
    """SHA-256 of every file a config names (data files, ``[init]`` files, ``py:`` modules
    given as paths), keyed by path: ``--resume`` refuses a checkpoint whose data changed
    under the same name, and ranks that read different files disagree.

    Examples
    --------
    >>> file_digests({"problem": {"kind": "quadratic"}})
    {}
    """
    from ...user_code import py_files

    found: dict = {}

    def visit(value):
        if isinstance(value, dict):
            for v in value.values():
                visit(v)
        elif isinstance(value, list | tuple):
            for v in value:
                visit(v)
        elif isinstance(value, str) and value:
            # a py: reference (a cost, model, method, each py: stage of a compressor spec):
            # its files; any other string: a path if it names a file
            for path in py_files(value) if "py:" in value else [value]:
                if path not in found and os.path.isfile(path):
                    with open(path, "rb") as f:
                        found[path] = hashlib.file_digest(f, "sha256").hexdigest()

    visit(config)
    return found


def _fault_hook(rank: int, where) -> None:
    spec = os.environ.get(FAULT_ENV)
    if spec and spec.split(":")[0] == str(rank) and spec.split(":", 1)[1] == str(where):
        if where == "setup":
            raise InputError(f"injected bad data on rank {rank} ({FAULT_ENV}={spec})")
        raise RuntimeError(f"injected fault at step {where} ({FAULT_ENV}={spec})")


def _strong_convexity(sums, local, x_star) -> float:
    """Strong convexity of :math:`\\sum_i f_i` from rank-local sums (collective), as the
    whole problem's ``strong_convexity`` defines it."""
    return float(type(local).distributed_strong_convexity(sums, x_star))


class _GatheredCosts:
    """The problem as rank 0's Recorder sees it: x*, f* and the value gathered for xbar."""

    def __init__(self, x_star, f_star):
        self.x_star, self.f_star = x_star, f_star
        self._point, self._value = None, None

    def set_value(self, x: np.ndarray, value: float) -> None:
        self._point, self._value = x.tobytes(), value

    def total_value(self, x: np.ndarray) -> float:
        if np.asarray(x, dtype=np.float64).tobytes() != self._point:
            raise RuntimeError("total_value asked at a point that was not gathered")
        return self._value


class _StopFlag:
    """SIGINT/SIGTERM set a flag (checked by all ranks together) instead of raising;
    ``signal`` names the first one caught (``"SIGINT"``, ``"SIGTERM"``)."""

    def __init__(self):
        self.requested = False
        self.signal = None
        self._old = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if not self.requested:
            self.signal = signal.Signals(signum).name
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


class Runner:
    """One rank's run: set-up (data block, graph, method, optimum), rounds and outputs.

    Built and driven by :func:`stflow.engines.mpi.run_mpi`; ``run()`` is collective.
    """

    def __init__(self, comm, config_path: Path, out: Path, checkpoint_every: int, resume: bool,
                 progress: bool = False, built=None):
        self.comm, self.rank, self.size = comm, comm.Get_rank(), comm.Get_size()
        self.built = built
        self.config_path, self.out = config_path, out
        self.checkpoint_every, self.resume = checkpoint_every, resume
        self.progress = progress

    # -- set-up --------------------------------------------------------------------------
    def _setup(self):
        from ...config import load_config

        comm = self.comm
        if self.checkpoint_every < 0:
            raise Agreed(
                f"--checkpoint-every must be >= 0 (got {self.checkpoint_every}): give a number "
                "of rounds, or 0 for no checkpoints"
            )
        config = agree(comm, lambda: load_config(self.config_path))
        mine = config_hash(config, checkpoint_every=self.checkpoint_every, resume=self.resume)
        hashes = comm.allgather((mine, str(self.config_path)))
        if len({h for h, _ in hashes}) > 1:
            r = next(r for r, (h, _) in enumerate(hashes) if h != hashes[0][0])
            raise Agreed(
                f"config differs across ranks (rank {r}: {hashes[r][1]!r} and options, hash "
                f"{hashes[r][0][:12]}; rank 0: {hashes[0][1]!r}, hash {hashes[0][0][:12]}): "
                "give every rank the same CONFIG.toml, data paths and options"
            )
        self.hash = config_hash(config)
        agree(comm, self._check_out)
        if config["solver"]["scheme"] == "continuous":
            raise Agreed(
                '[solver] scheme = "continuous" has no MPI engine (it sends no messages): use '
                'a scheme (euler, predict, gauss_seidel) or drop --backend mpi'
            )
        n, d, local, costs, x_star, f_star, smoothness = self._problem(config)
        self.offsets = self._offsets
        start, stop = int(self.offsets[self.rank]), int(self.offsets[self.rank + 1])
        self.local, self.costs = local, costs
        self.config, self.graph, self.compressor, self.method = agree(
            comm, lambda: self._build_shared(config, n, d, smoothness, x_star)
        )
        self.x_star, self.f_star = x_star, f_star
        self.n, self.d, self.start, self.stop = n, d, start, stop
        from ...config.build import check_channel

        self.channel = agree(comm, lambda: check_channel(self.config, self.method, self.graph))

    def _problem(self, config):
        """``(N, d, local problem, costs for the recorder, x*, f*, smoothness)``."""
        from .data import (
            DistributedSums,
            block_offsets,
            distributed_optimum,
            load_block,
            problem_shape,
            supports_blocks,
        )

        comm, p = self.comm, config["problem"]
        if supports_blocks(p):  # each rank reads or generates only its own agents' data
            n, d = agree(comm, lambda: problem_shape(p))
            self._offsets = agree(comm, lambda: block_offsets(n, self.size))
            start, stop = int(self._offsets[self.rank]), int(self._offsets[self.rank + 1])

            def load():
                _fault_hook(self.rank, "setup")
                return load_block(p, start, stop)

            local = agree(comm, load)
            self.sums = DistributedSums(local, comm, self._offsets)
            smoothness = self.sums.max(local.smoothness)
            try:
                x_star, f_star = distributed_optimum(self.sums)
            except InputError as exc:  # computed from the same reduced data on every rank
                raise Agreed(str(exc)) from None
            local = local._from_arrays(local.arrays(), x_star=x_star, f_star=f_star)
            self._curvature = lambda: (self.sums.max(local.solution_curvature),
                                       _strong_convexity(self.sums, local, x_star))
            return n, d, local, _GatheredCosts(x_star, f_star), x_star, f_star, smoothness
        # data tables and learning problems: small enough for every rank to hold them
        from ...config import build_problem

        def build():
            _fault_hook(self.rank, "setup")
            return build_problem(p)

        full = agree(comm, build)
        n, d = full.n_agents, full.dim
        self._offsets = agree(comm, lambda: block_offsets(n, self.size))
        start, stop = int(self._offsets[self.rank]), int(self._offsets[self.rank + 1])
        x_star = agree(comm, lambda: full.x_star)
        f_star = None if x_star is None else full.f_star
        local = full.subset(slice(start, stop), x_star=x_star, f_star=f_star)
        self.sums = None
        self._curvature = lambda: (float(full.solution_curvature),
                                   float(full.strong_convexity))
        return n, d, local, full, x_star, f_star, float(full.smoothness)

    def _check_out(self):
        if self.out.exists() and not self.out.is_dir():
            raise InputError(
                f"--out {str(self.out)!r} exists and is not a folder: give a folder path"
            )
        self.out.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:  # one lock per run (the ranks may share a host)
            from ...output import lock_folder

            lock_folder(self.out)

    def _build_shared(self, config, n, d, smoothness, x_star):
        """Graph, compressor and method exactly as :func:`stflow.config.build_run`."""
        from ...config import build_method
        from ...config.build import check_target
        from ...graphs import make_graph

        cfg = copy.deepcopy(config)
        check_target(cfg, self.local)  # the same answer on every rank
        g = cfg["graph"]
        graph_kw = {k: g[k] for k in ("edges", "weights", "p", "radius") if g[k] is not None}
        graph = make_graph(g["kind"], n, seed=g["seed"], chords=g["chords"], **graph_kw)
        if graph.n != n:
            raise InputError(
                f"[graph] has {graph.n} agents but the problem has {n}: "
                "make the edge list cover agents 0..N-1"
            )
        shape = SimpleNamespace(n_agents=n, dim=d, smoothness=smoothness, x_star=x_star,
                                param_shapes=getattr(self.local, "param_shapes", None))
        # the curvature estimate of every "auto" value (flow gains and a peer's lr alike,
        # stflow.problems.curvature_estimate); collective: all ranks
        if any(v == "auto" for v in config["method"].values()):
            shape.solution_curvature, shape.strong_convexity = self._curvature()
        failure = None
        if self.rank == 0:  # "auto" values (a certificate for auto gains) resolved once
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    build_method(cfg, shape, graph, smoothness=smoothness)
            except InputError as exc:  # every rank must learn of it (they wait in bcast)
                failure = str(exc)
        # every rank: rank 0's values, or rank 0's set-up error (raised together, exit 2)
        failure, cfg["method"] = self.comm.bcast((failure, cfg["method"]), root=0)
        if failure is not None:
            raise InputError(failure)
        with warnings.catch_warnings():
            if self.rank != 0:
                warnings.simplefilter("ignore")
            compressor, method = build_method(cfg, shape, graph, smoothness=smoothness)
        return cfg, graph, compressor, method

    def _initial_state(self, block):
        from ...config import _load_init
        from ...engines.simulate import GROWTH_LIMIT
        from ...methods.base import initial_arrays

        def build():
            x0 = _load_init(self.config["init"]["x0"], "x0")
            if x0 is None and self.sums is None:
                from ...config import default_x0

                x0 = default_x0(self.costs)
            v0 = _load_init(self.config["init"]["v0"], "v0")
            return initial_arrays(self.method, x0, v0)

        X, V = agree(self.comm, build)
        x_norm = 0.0 if self.x_star is None else float(np.linalg.norm(self.x_star))
        scale = max(float(np.linalg.norm(X)), math.sqrt(self.n) * x_norm, 1.0)
        self.limit = GROWTH_LIMIT * scale
        s = slice(self.start, self.stop)
        self.method.bind(block, self.local)
        return self.method.init_block(X[s].copy(), None if V is None else V[s].copy())

    # -- rounds --------------------------------------------------------------------------
    def run(self, after_rounds=None) -> MPIRunResult:
        from ...engines.driver import RoundDriver
        from ...engines.simulate import make_recorder
        from ...methods.base import Block
        from .exchange import (
            BlockExchange,
            ExchangePlan,
            NeighbourExchange,
            channel_bits,
            channel_bytes,
        )

        self._setup()
        if self.built is not None:  # e.g. --force clears the earlier results, set-up passed
            if self.rank == 0:
                self.built()
            self.comm.Barrier()
        self.plan = ExchangePlan(self.graph, self.offsets, self.rank)
        block = Block(self.start, self.stop, self.plan.cols, self.n)
        state = self._initial_state(block)
        codecs = self.method.codecs()
        self.channel_bytes = [channel_bytes(c, self.d) for c in codecs]
        self.channel_bits = [channel_bits(c, self.d) for c in codecs]
        s = self.config["solver"]
        samples = self._samples_per_eval()
        rec = None
        if self.rank == 0:
            from ...config import time_model

            rec = make_recorder(self.method, self.costs, local_steps=s["local_steps"],
                                time_model=time_model(self.config), samples=samples)
        h, record_every = float(s["step"]), int(s["record_every"])
        n_steps = max(1, int(round(s["horizon"] / h)))
        self.own_degree = np.asarray(self.graph.degree)[self.start:self.stop]
        nbytes = -(-sum(self.channel_bits) // 8)  # the channels' bits, packed once
        if len(codecs) == 1 or all(b % 8 == 0 for b in self.channel_bits):
            nbytes = sum(self.channel_bytes)
        if self.method.triggered:  # the flag bit and the payload: one message
            nbytes = -(-int(self.method.bits_per_message) // 8)
        with NeighbourExchange(self.comm, self.plan, nbytes) as ex:
            bex = BlockExchange(ex, self.method, self.d)
            bex.own_degree = self.own_degree
            self.driver = RoundDriver(self.method, bex, self.channel)
            self.counter = self.driver.counter
            first = 0
            if self.resume:
                first = load_checkpoint(self, state, rec, ex)
            else:
                self._record(rec, 0, 0.0, state["X"])
            wall = time.perf_counter()
            self.bar = None
            if self.progress and self.rank == 0:  # the simulator's progress lines
                from ...progress import progress_bar  # (stderr and OUT/progress.log)

                self.bar = progress_bar(total=n_steps, desc="stflow run", unit="round")
                self.bar.update(first)
            try:
                with _StopFlag() as flag, np.errstate(over="ignore", invalid="ignore"):
                    self.stop_flag = flag
                    done, diverged_at, interrupted_at = self._loop(
                        state, rec, ex, codecs, h, first, n_steps, record_every,
                        s["local_steps"], flag)
            finally:
                if self.bar is not None:
                    self.bar.close()
            wall = time.perf_counter() - wall
            if after_rounds is not None:
                after_rounds(ex)
            comm_info = self._comm_stats(ex, done)
        return self._finish(rec, state, n_steps, diverged_at, interrupted_at, h, wall,
                            comm_info)

    def _samples_per_eval(self) -> tuple[float, float]:
        """(mean, max) over all agents of the rows a gradient evaluation reads."""
        from mpi4py import MPI

        from ...engines.simulate import rows_per_eval

        arr = rows_per_eval(self.local)
        total = self.comm.allreduce(float(arr.sum()), op=MPI.SUM)
        return total / self.n, self.comm.allreduce(float(arr.max()), op=MPI.MAX)

    def _loop(self, state, rec, ex, codecs, h, first, n_steps, record_every, local_steps,
              flag):
        method = self.method
        check_every = min(record_every, 50)
        stop_after = int(os.environ.get(STOP_ENV, "0") or 0)
        prev_ckpt = first if self.resume else None
        fault = os.environ.get(FAULT_ENV)
        done = first
        decay = self.config["solver"]["step_decay"]
        self.clock = self._clock_at(first, h, decay)
        for k in range(first, n_steps):
            if fault:
                _fault_hook(self.rank, k)
            t, hk = k * h, h
            if decay is not None:
                scale = 1.0 / (1.0 + k / decay)
                method.set_step_scale(scale)
                t, hk = self.clock, h * scale
            self.clock = t + hk
            # a rank asked to stop skips its remaining local updates (its neighbours wait for
            # its messages); every rank stops at the next agreed check
            new = self.driver.round(state, k, t, hk, local_steps,
                                    stop=lambda: flag.requested, abandon=False)
            done = k + 1
            if self.bar is not None:
                self.bar.update(1)
            if done % check_every == 0 or done == n_steps:
                blown, stop = self._check(new, flag)
                if blown:
                    return done, done, None
                if stop and done < n_steps:
                    state.update(new)
                    self._record(rec, done, self._t(done, h, decay), state["X"])
                    return done, None, done
            state.update(new)
            if done % record_every == 0 or done == n_steps:
                self._record(rec, done, self._t(done, h, decay), state["X"])
            if self.checkpoint_every and done % self.checkpoint_every == 0 and done < n_steps:
                prev_ckpt = save_checkpoint(self, done, state, rec, ex, prev_ckpt)
            if stop_after and done == stop_after:
                self.comm.Barrier()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(EXIT_STOPPED)  # test hook: a run killed after `done` rounds
        return done, None, None

    def _t(self, done, h, decay) -> float:
        return done * h if decay is None else self.clock

    @staticmethod
    def _clock_at(k: int, h: float, decay) -> float:
        """Time after k rounds (the sum of the decayed steps, in the simulator's order)."""
        t = 0.0
        if decay is None:
            return k * h
        for j in range(k):
            t = t + h * (1.0 / (1.0 + j / decay))
        return t

    def _check(self, new, flag) -> tuple[bool, bool]:
        """(blown up anywhere, stop requested anywhere): one Allreduce for both."""
        from mpi4py import MPI

        local = np.append(self.method.own_norms_sq(new), 1.0 if flag.requested else 0.0)
        total = np.empty_like(local)
        self.comm.Allreduce(local, total, op=MPI.SUM)
        norms = np.sqrt(total[:-1])
        blown = bool(np.any(~np.isfinite(norms)) or np.any(norms > self.limit))
        return blown, bool(total[-1] > 0)

    def _gather_X(self, X):
        counts = np.diff(self.offsets) * self.d
        full = np.empty((self.n, self.d)) if self.rank == 0 else None
        recv = [full, (counts, self.offsets[:-1] * self.d)] if self.rank == 0 else None
        self.comm.Gatherv(np.ascontiguousarray(X), recv, root=0)
        return full

    def _max_over_ranks(self, maxima: np.ndarray) -> np.ndarray:
        """Element-wise max over the ranks of per-round message sizes (same rounds on all)."""
        from mpi4py import MPI

        out = np.empty_like(maxima)
        self.comm.Allreduce(np.ascontiguousarray(maxima), out, op=MPI.MAX)
        return out

    def _record(self, rec, step, t, X) -> None:
        full = self._gather_X(X)
        if self.sums is not None:
            xbar = full.mean(axis=0) if self.rank == 0 else np.empty(self.d)
            self.comm.Bcast(xbar, root=0)
            value = self.sums.total_value(xbar)
            if rec is not None:
                self.costs.set_value(xbar, value)
        bits = slowest = None
        if self.counter.on:  # messages vary in size: the mean over all agents so far
            bits = self.counter.per_agent(self.n, self.comm.allreduce(
                np.array(self.counter.totals())))
            slowest = self.counter.slowest(self._max_over_ranks)  # each round's largest
        if rec is not None:
            rec.record(step, t, full, draws=self.method.draws, bits=bits,
                       slowest_bits=slowest)
            self.X_full = full

    def _comm_stats(self, ex, rounds) -> dict:
        from .exchange import comm_summary

        per = self.comm.gather([ex.bytes_mpi, ex.bytes_same_rank, ex.messages], root=0)
        expected = self.comm.reduce(ex.expected_bytes, root=0)
        if self.rank != 0:
            return {}
        return comm_summary(
            per,
            offsets=self.offsets,
            rounds=rounds,
            bits_per_message=self.method.bits_per_message,
            bytes_per_message=ex.nbytes,
            messages_per_round=int(np.sum(self.graph.degree)),
            expected_bytes=expected if self.method.triggered else None,
        )

    def _finish(self, rec, state, n_steps, diverged_at, interrupted_at, h, wall,
                comm_info) -> MPIRunResult:
        from ...engines.simulate import Solution, _classify, _diverged_message, _interrupted_message

        records, status, message, steps_done = {}, "", "", 0
        if rec is not None:
            records = rec.columns()
            steps_done = rec.last_step
            if diverged_at is not None:
                steps_done = diverged_at
                status = "diverged"
                message = _diverged_message(self.method, self.channel, h, diverged_at,
                                            diverged_at * h)
            elif interrupted_at is not None:  # the simulator's message
                by = self.stop_flag.signal or "a stop request (on another rank)"
                t = float(records["t"][-1]) if len(records["t"]) else interrupted_at * h
                status = "interrupted"
                message = _interrupted_message(by, interrupted_at, n_steps, t)
            else:
                status, message = _classify(records, self.config["solver"]["tolerance"],
                                            self.config["solver"]["target_accuracy"],
                                            getattr(self.method, "stall_hint", None))
            from ...output import write_json

            write_json(self.out / "comm.json", comm_info)
        status, message, steps_done = self.comm.bcast((status, message, steps_done), root=0)
        bpm = self.method.bits_per_message
        bits_per_agent = float(steps_done * bpm)
        if self.counter.on:  # sizes vary (a lossy channel, sleep, schedules, triggers): the
            # bits counted up to `steps_done`, as metrics.csv and the simulator count them
            totals = self.comm.allreduce(np.array(self.counter.totals()))  # collective
            bits_per_agent = float(self.counter.per_agent(self.n, totals)[0])
        sol = Solution(
            status=status,
            message=message,
            steps=int(steps_done),
            t_final=float(steps_done * h),
            grad_evals=int(self.method.draws * self.n),
            bits_per_message=bpm,
            bits_per_agent=bits_per_agent,
            records=records,
            state={"X": getattr(self, "X_full", None)} if rec is not None else {},
            tolerance=self.config["solver"]["tolerance"],
            wall_seconds=wall,
        )
        run = SimpleNamespace(
            config=self.config,
            problem=SimpleNamespace(n_agents=self.n, dim=self.d,
                                    data_split=getattr(self.costs, "data_split", None)),
            graph=self.graph,
            compressor=self.compressor,
        )
        return MPIRunResult(self.rank, self.size, run, sol, comm_info)
