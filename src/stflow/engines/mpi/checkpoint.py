"""Restartable checkpoints of an MPI run: one file per rank, one manifest written by rank 0.

Every K rounds each rank writes ``OUT/checkpoint/rank{r}.step{k}.npz`` (its rows of ``X``,
``V``, its copies of public states, its byte and gradient counters; rank 0 also the recorded metrics) and, once
all ranks have written, rank 0 writes ``OUT/checkpoint/state.json`` (step, P, config hash).
A checkpoint is complete once the manifest names it, so a run killed while writing resumes
from the previous one. Resuming replays the same deterministic rounds, so the final metrics
are those of an uninterrupted run, bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import InputError

__all__ = ["checkpoint_dir", "save_checkpoint", "load_checkpoint"]


def checkpoint_dir(runner) -> Path:
    """``OUT/checkpoint``: where every rank keeps its checkpoint files."""
    return runner.out / "checkpoint"


def save_checkpoint(runner, step, state, rec, ex, prev):
    """Write this rank's state after ``step`` rounds, then (rank 0) the manifest (collective).

    Returns ``step`` (the new ``prev``); the file of step ``prev`` is removed afterwards.
    """
    folder = checkpoint_dir(runner)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"rank{runner.rank}.step{step}.npz"
    extra = {"rows": np.array(rec.rows, dtype=float)} if rec is not None else {}
    counters = np.array([ex.bytes_mpi, ex.bytes_same_rank, ex.messages, runner.method.draws,
                         ex.expected_bytes], dtype=np.int64)
    slowest = runner.counter.slowest(runner._max_over_ranks) or 0.0  # collective
    from ...output import atomic_output

    with atomic_output(path) as f:
        np.savez(f, step=step, counters=counters,
                 bits=np.array([*runner.counter.totals(), slowest]), **state, **extra)
    runner.comm.Barrier()
    if runner.rank == 0:
        from ...output import write_json

        write_json(folder / "state.json",
                   {"step": step, "ranks": runner.size, "config_hash": runner.hash})
    runner.comm.Barrier()
    if prev is not None:
        (folder / f"rank{runner.rank}.step{prev}.npz").unlink(missing_ok=True)
    return step


def load_checkpoint(runner, state, rec, ex):
    """Fill ``state``, the byte counters and (rank 0) the recorder from the last checkpoint.

    Collective; returns the step to continue from. A missing checkpoint, or one written for
    another config or P, is an input error on every rank.
    """
    from ._collective import agree

    def manifest():
        if runner.rank != 0:
            return None
        path = checkpoint_dir(runner) / "state.json"
        if not path.is_file():
            raise InputError(
                f"--resume: no checkpoint in {str(checkpoint_dir(runner))!r}: run first with "
                "--checkpoint-every K, or drop --resume"
            )
        try:
            info = json.loads(path.read_text())
            ok = (isinstance(info, dict) and isinstance(info.get("step"), int)
                  and isinstance(info.get("ranks"), int) and "config_hash" in info)
        except (OSError, ValueError) as exc:
            ok, info = False, str(exc)
        if not ok:
            raise InputError(
                f"--resume: the checkpoint is damaged ({str(path)!r} is not a complete "
                "state.json): drop --resume to start again"
            )
        if info["ranks"] != runner.size or info["config_hash"] != runner.hash:
            raise InputError(
                f"--resume: the checkpoint was written by {info['ranks']} ranks for another "
                f"config, data file contents or P (got P={runner.size}): resume with the same "
                f"config, data and -n {info['ranks']}, or drop --resume"
            )
        return info

    info = runner.comm.bcast(agree(runner.comm, manifest), root=0)
    step = int(info["step"])

    def load():
        path = checkpoint_dir(runner) / f"rank{runner.rank}.step{step}.npz"
        try:
            with np.load(path) as data:
                got = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise InputError(f"--resume: the checkpoint is damaged ({str(path)!r} is missing): "
                             "drop --resume to start again") from None
        except Exception as exc:  # truncated or garbage .npz: zipfile, pickle, value errors
            raise InputError(f"--resume: the checkpoint is damaged ({str(path)!r}: "
                             f"{type(exc).__name__}): drop --resume to start again") from None
        wrong = [k for k in (*state, "counters")
                 if k not in got or (k in state and got[k].shape != np.shape(state[k]))]
        if wrong:
            raise InputError(f"--resume: the checkpoint is damaged ({str(path)!r}: "
                             f"{wrong[0]!r} missing or of the wrong shape): drop --resume to "
                             "start again")
        return got

    data = agree(runner.comm, load)
    for key in state:
        state[key] = data[key]
    ex.bytes_mpi, ex.bytes_same_rank, ex.messages, draws, ex.expected_bytes = (
        int(v) for v in data["counters"])
    runner.method.draws = draws
    runner.counter.sent, runner.counter.p2p = (float(v) for v in data["bits"][:2])
    if len(data["bits"]) > 2:  # the modeled time's running sum of each round's largest message
        runner.counter.slowest_sum = float(data["bits"][2])
    if rec is not None:
        rec.rows = [(int(r[0]), *map(float, r[1:])) for r in data["rows"]]
    return step
