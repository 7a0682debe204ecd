r"""The rounds of the MPI backend on one rank: set-up, Euler loop, checkpoints, outputs.

:class:`Runner` is what :func:`stflow.mpi.run_mpi` drives on every rank. Set-up errors that
every rank can see are raised as :class:`Agreed` on all ranks at once (so they unwind
without ``MPI_Abort``); see :mod:`stflow.mpi` for the overview and the equations.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..errors import InputError
from .checkpoint import load_checkpoint, save_checkpoint

__all__ = ["Agreed", "MPIRunResult", "Runner", "agree", "config_hash"]

#: Test hooks: ``RANK:STEP`` (or ``RANK:setup``) raises on that rank; ``K`` stops after step K.
FAULT_ENV, STOP_ENV = "STFLOW_MPI_FAULT", "STFLOW_MPI_STOP_AFTER"
EXIT_STOPPED = 75

class Agreed(Exception):
    """Raised on every rank at once: safe to unwind without MPI_Abort."""


@dataclass
class MPIRunResult:
    """What :func:`run_mpi` returns on every rank.

    ``run`` offers ``config``, ``problem.n_agents``, ``problem.dim``, ``graph`` and
    ``compressor`` (like :class:`stflow.config.Run`); ``solution`` is a
    :class:`stflow.solve.Solution`, with records on rank 0 only; ``comm`` is the content of
    ``comm.json`` (rank 0).
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
    text = json.dumps([config, options], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def agree(comm, fn):
    """Run ``fn`` on every rank; if it raised InputError anywhere, raise Agreed everywhere."""
    try:
        value, err = fn(), None
    except InputError as exc:
        value, err = None, str(exc)
    errs = comm.allgather(err)
    bad = [r for r, e in enumerate(errs) if e is not None]
    if not bad:
        return value
    if len(bad) == len(errs) and len(set(errs)) == 1:
        raise Agreed(errs[0])
    more = f" (and {len(bad) - 1} more ranks)" if len(bad) > 1 else ""
    raise Agreed(f"rank {bad[0]} of {len(errs)}: {errs[bad[0]]}{more}")


def _fault_hook(rank: int, where) -> None:
    spec = os.environ.get(FAULT_ENV)
    if spec and spec.split(":")[0] == str(rank) and spec.split(":", 1)[1] == str(where):
        if where == "setup":
            raise InputError(f"injected bad data on rank {rank} ({FAULT_ENV}={spec})")
        raise RuntimeError(f"injected fault at step {where} ({FAULT_ENV}={spec})")


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


class Runner:
    """One rank's run: set-up (data block, graph, gains, optimum), rounds and outputs.

    Built and driven by :func:`stflow.mpi.run_mpi`; ``run()`` is collective.
    """

    def __init__(self, comm, config_path: Path, out: Path, checkpoint_every: int, resume: bool):
        self.comm, self.rank, self.size = comm, comm.Get_rank(), comm.Get_size()
        self.config_path, self.out = config_path, out
        self.checkpoint_every, self.resume = checkpoint_every, resume

    # -- set-up --------------------------------------------------------------------------
    def _setup(self):
        from ..config import load_config
        from .data import (
            DistributedSums,
            block_offsets,
            distributed_optimum,
            load_block,
            problem_shape,
        )

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
        if config["solver"]["method"] != "euler":
            raise Agreed(
                f"[solver] method = {config['solver']['method']!r} has no MPI backend (it "
                "sends no messages): use method = \"euler\" or drop --backend mpi"
            )
        from ..flows import FLOW_KINDS

        if config["flow"]["kind"] not in FLOW_KINDS:
            raise Agreed(
                f"[flow] kind = {config['flow']['kind']!r} has no MPI backend (it runs "
                f"{', '.join(FLOW_KINDS)}): use one of those or drop --backend mpi"
            )
        n, d = agree(comm, lambda: problem_shape(config["problem"]))
        self.offsets = agree(comm, lambda: block_offsets(n, self.size))
        start, stop = int(self.offsets[self.rank]), int(self.offsets[self.rank + 1])

        def load():
            _fault_hook(self.rank, "setup")
            return load_block(config["problem"], start, stop)

        local = agree(comm, load)
        self.sums = DistributedSums(local, comm, self.offsets)
        smoothness = self.sums.max(local.smoothness)
        self.config, self.graph, self.compressor, self.flow = agree(
            comm, lambda: self._build_shared(config, n, d, smoothness)
        )
        try:
            x_star, f_star = distributed_optimum(self.sums)
        except InputError as exc:  # computed from the same reduced data on every rank
            raise Agreed(str(exc)) from None
        self.flow.problem.x_star = x_star
        self.local = local._from_arrays(local.arrays(), x_star=x_star, f_star=f_star)
        self.costs = _GatheredCosts(x_star, f_star)
        self.n, self.d, self.start, self.stop = n, d, start, stop

    def _check_out(self):
        if self.out.exists() and not self.out.is_dir():
            raise InputError(
                f"--out {str(self.out)!r} exists and is not a folder: give a folder path"
            )
        self.out.mkdir(parents=True, exist_ok=True)

    def _build_shared(self, config, n, d, smoothness):
        """Graph, compressor, gains and flow exactly as :func:`stflow.config.build_run`."""
        import copy

        from ..compressors import make_compressor
        from ..config import GAIN_KEYS, resolve_auto_gains
        from ..flows import Gains, PrimalDualFlow
        from ..graphs import make_graph

        cfg = copy.deepcopy(config)
        g = cfg["graph"]
        graph_kw = {k: g[k] for k in ("edges", "weights", "p", "radius") if g[k] is not None}
        graph = make_graph(g["kind"], n, seed=g["seed"], chords=g["chords"], **graph_kw)
        if graph.n != n:
            raise InputError(
                f"[graph] has {graph.n} agents but the problem has {n}: "
                "make the edge list cover agents 0..N-1"
            )
        f = cfg["flow"]
        compressor = None
        if f["kind"] != "uncompressed":
            compressor = make_compressor(cfg["compressor"]["spec"], d)
        if self.rank == 0:
            resolve_auto_gains(
                f, graph=graph, smoothness=smoothness, compressor=compressor,
                step=cfg["solver"]["step"],
            )
        cfg["flow"] = f = self.comm.bcast(f, root=0)  # one set of gains on every rank
        gains = Gains(**{k: f[k] for k in GAIN_KEYS})
        problem = SimpleNamespace(n_agents=n, dim=d, smoothness=smoothness, x_star=None)
        with warnings.catch_warnings():
            if self.rank != 0:
                warnings.simplefilter("ignore")
            flow = PrimalDualFlow(f["kind"], problem, graph, compressor, gains=gains)
        return cfg, graph, compressor, flow

    def _initial_state(self):
        from ..config import _load_init

        def build():
            x0 = _load_init(self.config["init"]["x0"], "x0")
            v0 = _load_init(self.config["init"]["v0"], "v0")
            return self.flow.initial_state(x0=x0, v0=v0)

        full = agree(self.comm, build)
        from ..solve import GROWTH_LIMIT

        scale = max(
            float(np.linalg.norm(full["X"])),
            math.sqrt(self.n) * float(np.linalg.norm(self.costs.x_star)),
            1.0,
        )
        self.limit = GROWTH_LIMIT * scale
        s = slice(self.start, self.stop)
        state = {"X": full["X"][s].copy(), "V": full["V"][s].copy()}
        if self.flow.kind == "observer":
            state["Xhat"] = full["Xhat"][self.plan.cols].copy()
        return state

    # -- rounds --------------------------------------------------------------------------
    def run(self, after_rounds=None) -> MPIRunResult:
        from ..metrics import Recorder
        from .exchange import CompressorRows, ExchangePlan, NeighbourExchange, RawRows

        self._setup()
        self.plan = ExchangePlan(self.graph, self.offsets, self.rank)
        codec = RawRows(self.d) if self.compressor is None else CompressorRows(self.compressor)
        state = self._initial_state()
        rec = None
        if self.rank == 0:
            rec = Recorder(
                self.costs,
                bits_per_message=self.flow.bits_per_message,
                mean_degree=float(np.mean(self.graph.degree)),
            )
        s = self.config["solver"]
        h, record_every = float(s["step"]), int(s["record_every"])
        n_steps = max(1, int(round(s["horizon"] / h)))
        with NeighbourExchange(self.comm, self.plan, codec.bytes_per_message) as ex:
            first = 0
            if self.resume:
                first = load_checkpoint(self, state, rec, ex)
            else:
                self._record(rec, 0, 0.0, state["X"])
            wall = time.perf_counter()
            done, diverged_at = self._loop(state, rec, ex, codec, h, first, n_steps, record_every)
            wall = time.perf_counter() - wall
            if after_rounds is not None:
                after_rounds(ex)
            comm_info = self._comm_stats(ex, codec, done)
        return self._finish(rec, state, n_steps, diverged_at, h, wall, comm_info)

    def _loop(self, state, rec, ex, codec, h, first, n_steps, record_every):
        from ..flows import primal_dual_update

        plan, flow, gains, local = self.plan, self.flow, self.flow.gains, self.local
        lap, own_pos, recv_pos = plan.laplacian, plan.own_pos, plan.recv_pos
        n_r, kind = self.stop - self.start, flow.kind
        check_every = min(record_every, 50)
        stop_after = int(os.environ.get(STOP_ENV, "0") or 0)
        prev_ckpt = first if self.resume else None
        fault = os.environ.get(FAULT_ENV)
        done = first
        for k in range(first, n_steps):
            if fault:
                _fault_hook(self.rank, k)
            t = k * h
            X, V = state["X"], state["V"]
            Z = X - state["Xhat"][own_pos] if kind == "observer" else X
            own = codec.encode_rows(Z, t)
            recv = ex.exchange(own)
            rows = codec.decode_rows(np.concatenate([own, recv]), t)
            C = np.empty((plan.cols.size, self.d))
            C[own_pos], C[recv_pos] = rows[:n_r], rows[n_r:]
            Xc = state["Xhat"] if kind == "observer" else C
            LXc = lap @ Xc
            G = local.grad(X)
            Xn, Vn = primal_dual_update(X, V, LXc, G, h, gains)
            new = {"X": Xn, "V": Vn}
            if kind == "observer":
                new["Xhat"] = state["Xhat"] + h * (gains.gamma * C)
            done = k + 1
            if (done % check_every == 0 or done == n_steps) and self._blown_up(new):
                return done, done
            state.update(new)
            if done % record_every == 0 or done == n_steps:
                self._record(rec, done, done * h, state["X"])
            if self.checkpoint_every and done % self.checkpoint_every == 0 and done < n_steps:
                prev_ckpt = save_checkpoint(self, done, state, rec, ex, prev_ckpt)
            if stop_after and done == stop_after:
                self.comm.Barrier()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(EXIT_STOPPED)  # test hook: a run killed after `done` rounds
        return done, None

    def _blown_up(self, new) -> bool:
        from mpi4py import MPI

        parts = [new["X"], new["V"]]
        if "Xhat" in new:
            parts.append(new["Xhat"][self.plan.own_pos])
        local = np.array([float(np.sum(p * p)) for p in parts])
        total = np.empty_like(local)
        self.comm.Allreduce(local, total, op=MPI.SUM)
        norms = np.sqrt(total)
        return bool(np.any(~np.isfinite(norms)) or np.any(norms > self.limit))

    def _gather_X(self, X):
        counts = np.diff(self.offsets) * self.d
        full = np.empty((self.n, self.d)) if self.rank == 0 else None
        recv = [full, (counts, self.offsets[:-1] * self.d)] if self.rank == 0 else None
        self.comm.Gatherv(np.ascontiguousarray(X), recv, root=0)
        return full

    def _record(self, rec, step, t, X) -> None:
        full = self._gather_X(X)
        xbar = full.mean(axis=0) if self.rank == 0 else np.empty(self.d)
        self.comm.Bcast(xbar, root=0)
        value = self.sums.total_value(xbar)
        if rec is not None:
            self.costs.set_value(xbar, value)
            rec.record(step, t, full)
            self.X_full = full

    def _comm_stats(self, ex, codec, rounds) -> dict:
        from .exchange import comm_summary

        per = self.comm.gather([ex.bytes_mpi, ex.bytes_same_rank, ex.messages], root=0)
        if self.rank != 0:
            return {}
        return comm_summary(
            per,
            offsets=self.offsets,
            rounds=rounds,
            bits_per_message=self.flow.bits_per_message,
            bytes_per_message=codec.bytes_per_message,
            messages_per_round=int(np.sum(self.graph.degree)),
        )

    def _finish(self, rec, state, n_steps, diverged_at, h, wall, comm_info) -> MPIRunResult:
        from ..solve import GROWTH_LIMIT, Solution, _classify

        records, status, message, steps_done = {}, "", "", 0
        if rec is not None:
            records = rec.columns()
            steps_done = rec.last_step
            if diverged_at is not None:
                status = "diverged"
                message = (
                    f"state became non-finite or grew {GROWTH_LIMIT:.0e}-fold by step "
                    f"{diverged_at} (t = {diverged_at * h:.4g}); likely cause: "
                    f"{self.flow.divergence_cause(h)}"
                )
            else:
                status, message = _classify(records, self.config["solver"]["tolerance"])
            from ..output import write_json

            write_json(self.out / "comm.json", comm_info)
        status, message, steps_done = self.comm.bcast((status, message, steps_done), root=0)
        bpm = self.flow.bits_per_message
        sol = Solution(
            status=status,
            message=message,
            steps=int(steps_done),
            t_final=float(steps_done * h),
            grad_evals=int((diverged_at or n_steps) * self.n),
            bits_per_message=bpm,
            bits_per_agent=float(steps_done * bpm),
            records=records,
            state={"X": getattr(self, "X_full", None)} if rec is not None else {},
            tolerance=self.config["solver"]["tolerance"],
            wall_seconds=wall,
        )
        run = SimpleNamespace(
            config=self.config,
            problem=SimpleNamespace(n_agents=self.n, dim=self.d),
            graph=self.graph,
            compressor=self.compressor,
        )
        return MPIRunResult(self.rank, self.size, run, sol, comm_info)
