"""The ``stflow`` command line: ``run``, ``certify`` and ``reproduce``.

Exit codes, the same for every command (``docs/cli.md``):

- 0: converged (``run``) or success (the other commands);
- 1: ran but did not converge (``run``: status ``not_converged`` or ``stalled``;
  ``reproduce``: an experiment failed, the report says which);
- 2: bad input: a config, argument, data file, user compressor or output folder, or a size
  beyond this machine (one line on stderr naming the fix);
- 3: diverged (``run``: status ``diverged`` or ``diverging``);
- 4: internal error, a bug in stflow (one line asking to report it; ``--debug`` shows the
  traceback);
- 130: interrupted (Ctrl-C or SIGTERM; ``run`` keeps what was recorded, with status
  ``interrupted``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import warnings
from pathlib import Path

from . import __version__
from .errors import InputError
from .output import lock_folder, release_folders
from .progress import PROGRESS_LOG, log_to

__all__ = [
    "main",
    "EXIT_OK",
    "EXIT_NOT_CONVERGED",
    "EXIT_INPUT",
    "EXIT_DIVERGED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_CODES_HELP",
    "RUN_FILES",
]

EXIT_OK, EXIT_NOT_CONVERGED, EXIT_INPUT, EXIT_DIVERGED = 0, 1, 2, 3
EXIT_INTERNAL, EXIT_INTERRUPTED = 4, 130

#: The exit-code table shown at the end of every ``--help``.
EXIT_CODES_HELP = """\
exit codes (every command):
  0    converged (run) / success
  1    ran but did not converge: not_converged or stalled (run); no candidate reached
       the target robustly (tune); an experiment failed (reproduce); a cell failed (study)
  2    bad input: config, arguments, data files, output folder, sizes beyond this machine
  3    diverged or diverging (run)
  4    internal error: a bug in stflow, please report it (--debug shows the traceback)
  130  interrupted (Ctrl-C or SIGTERM); run keeps what was recorded, status "interrupted"
"""

#: Files and folders ``stflow run`` writes into ``--out`` (``--force`` removes stale ones).
RUN_FILES = ("metrics.csv", "summary.json", "convergence.png", "comm.json", "checkpoint",
             "final_state.npz", "model.pt", "progress.log")

_MAX_LINE = 400


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("epilog", EXIT_CODES_HELP)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # one line, exit 2, like every other bad input
        hint = f"see `{self.prog} -h`"
        self.exit(EXIT_INPUT, f"stflow: error: {message} ({hint})\n")


def _compressor_names() -> list[str]:
    from .compressors.spec import COMPRESSOR_CLASSES

    return [c.name for c in COMPRESSOR_CLASSES]


def _kinds_text() -> str:
    """The kinds a config may name, read from their declarations."""
    from .config import SCHEMA
    from .methods import METHOD_CLASSES, METHOD_KINDS
    from .problems.registry import problem_kinds

    auto = ", ".join(dict.fromkeys(p.name for c in METHOD_CLASSES for p in c.params
                                   if p.default == "auto"))
    return (
        "Run one config on the simulator, or over MPI (--backend mpi under mpiexec).\n"
        f"[problem] kind: {', '.join(problem_kinds())}, or py:FILE:ATTR (your cost)\n"
        f"[method] kind: {', '.join(METHOD_KINDS)}, or py:FILE:ATTR (your method)\n"
        f"[compressor] spec: {', '.join(_compressor_names())}, composed as A|B, or py:FILE:ATTR\n"
        f"Defaults: [solver] scheme = \"{SCHEMA['solver']['scheme'][0]}\"; [method] {auto} = "
        '"auto" (from the graph, the curvature, the compressor and the step: docs/gains.md).\n'
        "Every key of every kind: docs/config.md."
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stflow")
    parser.add_argument("--version", action="version", version=f"stflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run one config: metrics.csv, summary.json, convergence.png",
                         description=_kinds_text())
    run.add_argument("config", help="TOML config (see examples/quickstart.toml, docs/config.md)")
    run.add_argument("--out", required=True,
                     help="output folder, created first; must be new or empty unless --force")
    run.add_argument("--force", action="store_true",
                     help="write into a non-empty --out (stflow's own files there are replaced, "
                     "stale ones removed), and allow more than 1e8 steps")
    run.add_argument("--no-figure", action="store_true", help="do not draw convergence.png")
    run.add_argument(
        "--backend", choices=("sim", "mpi"), default="sim",
        help="sim: one process (default); mpi: one block of agents per rank, under mpiexec",
    )
    run.add_argument("--checkpoint-every", type=int, default=0, metavar="K",
                     help="mpi: write a restartable checkpoint every K rounds")
    run.add_argument("--resume", action="store_true",
                     help="mpi: continue from the last checkpoint in --out")

    cert = sub.add_parser(
        "certify", help="numerical spatio-temporal certificate of a compressor",
        description="Numerical spatio-temporal certificate of a compressor (docs/compressors.md"
        "). It integrates dz/dt = -C(z, t) from start times t0 = 0 up to about t0 = 1000 (or "
        "100 periods; --horizon to look further), each over a window of max(10, 50 periods): "
        "behaviour of C after that is not seen. Exit 0 whenever the certificate was computed, "
        "whatever its verdict (read the verdict line, or spatio_temporal with --json); 2 on "
        "bad input.")
    cert.add_argument("spec", help='compressor spec, e.g. "topk:k=2" or "topk:k=4|quantize:bits=4"'
                      f" ({', '.join(_compressor_names())}, lowrank, or py:FILE:ATTR)")
    cert.add_argument("--dim", type=int, required=True, help="dimension d")
    cert.add_argument("--seed", type=int, default=0,
                      help="seed of the test trajectories (>= 0; default: 0)")
    cert.add_argument("--shapes", default=None, metavar="S",
                      help="block shapes of z for lowrank, comma-separated, axes joined by x: "
                      'e.g. "8x4,8,3x8,3" (a 4-8-3 MLP\'s weights and biases); their sizes '
                      "must add up to --dim")
    cert.add_argument("--horizon", type=float, default=None, metavar="T",
                      help="latest start time t0 checked for uniformity (default: 1000, or "
                      "100 periods of C; the work does not grow with T)")
    cert.add_argument("--json", action="store_true", help="print one JSON object")
    cert.add_argument("--quiet", action="store_true", help="no progress bar")
    cert.add_argument("--debug", action="store_true", help="show tracebacks")

    from .experiments import experiment_names  # the registry only: no experiment is imported

    names = experiment_names()
    rep = sub.add_parser(
        "reproduce", help=f"run the reproduction suite, experiments {names[0]}..{names[-1]}: "
        "report.md/.html",
        description=f"Run the experiments {', '.join(names)} (docs/reproduce.md) and write "
        "OUT/report.html and OUT/report.md.")
    rep.add_argument("--out", required=True, help="output folder (must be new or empty)")
    rep.add_argument("--quick", action="store_true",
                     help="smaller sizes (under a minute on 2 cores; measured times: "
                     "docs/reproduce.md)")
    rep.add_argument("--only", default=None, metavar="E1,E3", help="comma-separated subset")
    rep.add_argument("--jobs", type=int, default=None, metavar="J",
                     help="experiments run in parallel (default: min(2, CPUs))")
    rep.add_argument("--force", action="store_true", help="write into a non-empty --out")
    _tune_parser(sub)
    _study_parser(sub)
    _plot_parser(sub)

    for command in sub.choices.values():  # every command, present and future
        for flag, text in (("--quiet", "no progress output"),
                           ("--debug", "show the traceback of a failure")):
            try:
                command.add_argument(flag, action="store_true", help=text)
            except argparse.ArgumentError:  # the command declares it itself
                pass
    parser.description = (
        "Distributed optimization with spatio-temporal compressed communication. "
        f"Commands: {', '.join(sub.choices)}."
    )
    return parser


# -- the output folder -------------------------------------------------------------------
def _check_out(text: str, *, allow_nonempty: bool, resume_marker: str | None = None) -> Path:
    """Refuse a bad ``--out`` without writing anything (safe on every MPI rank)."""
    if not text.strip():
        raise InputError("--out must name a folder (got an empty string): e.g. --out results/run1")
    out = Path(text)
    where = f"--out {text!r}"
    if out.exists() and not out.is_dir():
        raise InputError(f"{where} exists and is not a folder: give a folder path")
    if out.is_symlink() and not out.exists():
        raise InputError(f"{where} is a symbolic link to {os.readlink(out)!r}, which does not "
                         "exist: create that folder first, or give another path")
    full = Path(os.path.abspath(out))
    anchor = next(p for p in (full, *full.parents) if os.path.lexists(p))
    if anchor.is_symlink() and not anchor.exists():
        raise InputError(f"{where} is under {str(anchor)!r}, a symbolic link to "
                         f"{os.readlink(anchor)!r}, which does not exist: create that folder "
                         "first, or give another path")
    if not anchor.is_dir():
        raise InputError(
            f"{where} is not writable: it is under {str(anchor)!r}, which is a file: give a "
            "folder path"
        )
    if out.is_dir() and not allow_nonempty and any(out.iterdir()):
        if resume_marker is not None and (out / resume_marker).exists():
            raise InputError(f"{where} holds an earlier study ({resume_marker}): add --resume to "
                             "finish its unfinished cells, --force to start over, or give a "
                             "new folder")
        raise InputError(f"{where} exists and is not empty: give a new folder or add --force")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise InputError(f"{where} is not writable ({str(anchor)!r} is read-only): choose another "
                         "folder")
    return out


def _make_out(out: Path) -> bool:
    """Create ``out`` (if needed) and prove it writable; returns True when it was created."""
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".stflow-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        _drop_if_empty(out, created)
        raise InputError(
            f"--out {str(out)!r} is not writable ({exc.strerror or exc}): choose another folder"
        ) from None
    return created


def _drop_if_empty(out: Path, created: bool, *, progress_only: bool = False) -> None:
    """Remove a folder this command created when nothing was written into it
    (``progress_only``: nothing but the progress lines of a run that then failed)."""
    try:
        if not (created and out.is_dir()):
            return
        left = list(out.iterdir())
        if progress_only and [p.name for p in left] == [PROGRESS_LOG]:
            left[0].unlink()
            left = []
        if not left:
            out.rmdir()
    except OSError:
        pass


def _clear_stale(out: Path) -> None:
    """Remove the files an earlier ``stflow run`` left in ``out`` (only stflow's own)."""
    for name in RUN_FILES:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()


# -- run -----------------------------------------------------------------------------------
def _cmd_run(args) -> int:
    if args.backend == "mpi":
        return _cmd_run_mpi(args)
    if args.checkpoint_every or args.resume:
        raise InputError(
            "--checkpoint-every and --resume need --backend mpi (got --backend sim): "
            "add --backend mpi and launch with mpiexec, or drop them"
        )
    launched = _mpi_launch_size()
    if launched > 1:
        raise InputError(
            f"stflow run was started by mpiexec on {launched} processes but --backend is sim: "
            "each would run the whole problem alone into the same --out; add --backend mpi "
            "(or run without mpiexec)"
        )
    out = _check_out(args.out, allow_nonempty=args.force)
    created = _make_out(out)
    try:
        lock_folder(out)
        return _run_sim(args, out)
    finally:
        _drop_if_empty(out, created)


def _mpi_launch_size() -> int:
    """Processes mpiexec started (MPICH/Hydra ``PMI_SIZE``, Open MPI ``OMPI_COMM_WORLD_SIZE``),
    read from the environment without initializing MPI; 1 when not under mpiexec."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS"):
        try:
            return max(1, int(os.environ[var]))
        except (KeyError, ValueError):
            continue
    return 1


def _run_sim(args, out: Path) -> int:
    from .config import load_config, preflight, run_config

    config = load_config(args.config)
    preflight(config, force=args.force)
    # --force removes the earlier results only once the config has been built and checked
    # (problem, data, graph, compressor, method, channel): a bad config leaves them as they were.
    built = (lambda _run: _clear_stale(out)) if args.force else None
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _show_warning
        with log_to(None if args.quiet else out / PROGRESS_LOG):  # lines start after `built`
            run, sol = run_config(config, progress=not args.quiet, built=built)
        return _finish_run(out, run, sol, figure=not args.no_figure)


def _cmd_run_mpi(args) -> int:
    from .config import load_config, preflight
    from .engines.mpi import require_launcher

    require_launcher()
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
    try:  # the same answer on every rank: nothing is written yet
        out = _check_out(args.out, allow_nonempty=args.force or args.resume)
        try:
            config = load_config(args.config)
        except InputError:
            config = None  # the runner reports it, agreed across ranks
        if config is not None:
            preflight(config, force=args.force)
    except InputError:
        if rank != 0:  # every rank found the same; rank 0 prints the one line
            return EXIT_INPUT
        raise
    clear = (lambda: _clear_stale(out)) if args.force and not args.resume else None
    # every rank got here (the checks above agree); the set-up creates --out on each rank, so
    # whether it existed is read before any rank can create it
    created = not os.path.lexists(out)
    MPI.COMM_WORLD.Barrier()
    try:
        return _run_mpi_ranks(args, rank, clear, lambda: _drop_if_empty(out, created),
                              lambda: _drop_if_empty(out, created, progress_only=True))
    finally:  # a failed set-up leaves no empty --out it created (rank 0 decides, once)
        if rank == 0:
            _drop_if_empty(out, created)


def _run_mpi_ranks(args, rank: int, clear, drop, drop_failed) -> int:
    from .engines.mpi import run_mpi

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning
            log = None if args.quiet or rank != 0 else Path(args.out) / PROGRESS_LOG
            with log_to(log):
                result = run_mpi(
                    args.config, args.out, checkpoint_every=args.checkpoint_every,
                    resume=args.resume, progress=not args.quiet, built=clear,
                    interrupted=drop, failed=drop_failed,
                )
            return _finish_mpi_ranks(args, result)
    except InputError as exc:
        if getattr(exc, "quiet", False):  # rank 0 prints the one line
            return EXIT_INPUT
        raise


def _finish_mpi_ranks(args, result) -> int:
    """Rank 0 writes the outputs and reports; the other ranks wait for it, then every rank
    returns rank 0's exit code.

    The other ranks must not exit first: an interrupted rank ends with ``os._exit(130)``
    (:func:`exit_with`), without ``MPI_Finalize``, and MPICH's launcher then kills the
    other ranks (SIGKILL), so rank 0 died while writing (an interrupted run had no
    summary.json, figure or line). They wait with a non-blocking broadcast polled every
    10 ms (no busy wait beside rank 0's writing), with Ctrl-C and SIGTERM ignored (the
    launcher's own second Ctrl-C still ends everything).
    """
    import time

    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    code = np.array([_exit_code(result.solution)], dtype=np.int64)
    if result.is_root:
        try:
            code[0] = _finish_run(Path(args.out), result.run, result.solution,
                                  figure=not args.no_figure)
        except BaseException as exc:  # main prints rank 0's failure line
            code[0] = _describe_failure(exc, "run")[0]
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            comm.Ibcast(code, root=0).Wait()
        return int(code[0])
    _ignore_interrupts()
    request = comm.Ibcast(code, root=0)
    while not request.Test():
        time.sleep(0.01)
    return int(code[0])


def _finish_run(out: Path, run, sol, *, figure: bool = True) -> int:
    """Write metrics.csv, the final state, the figure and summary.json, print the outcome
    (both backends).

    stdout, stderr and summary.json give the same counters: ``steps`` is the number of
    rounds computed (for a diverged run, the step at which the blow-up was detected),
    ``last_recorded_step`` the step of the last row of metrics.csv.

    ``summary.json`` is written last and says what the exit code says: a Ctrl-C or SIGTERM
    while the files are written (the figure can take seconds) skips the figure and makes
    the run ``interrupted`` (exit 130, the status the run had reached named in the
    message); a failed write (a full disk) leaves no ``summary.json`` claiming a result.
    """
    from .interrupts import catch_interrupts

    written = False
    try:
        with catch_interrupts() as flag:
            code = _write_run(out, run, sol, figure=figure, flag=flag)
            written = True
        _ignore_interrupts()  # the outcome is on disk: a late signal must not contradict it
        return _report_run(out, sol, code)
    except KeyboardInterrupt:  # a second Ctrl-C while writing: stop now
        if written:  # summary.json already says what the exit code says
            return code
        print(f"stflow: interrupted while writing the outputs into {out}: summary.json was "
              "not written", file=sys.stderr)
        return EXIT_INTERRUPTED


def _write_run(out: Path, run, sol, *, figure: bool, flag) -> int:
    from .output import (
        plot_convergence,
        to_target,
        write_final_state,
        write_json,
        write_metrics_csv,
    )

    write_metrics_csv(out / "metrics.csv", sol.records)
    write_final_state(out, sol.state, problem=run.problem)
    spec = run.config["compressor"]["spec"] if run.compressor is not None else "none"
    title = f"{run.config['method']['kind']} flow, {spec}, {run.config['problem']['kind']}"
    drawn = False
    if figure and not flag.requested:
        plot_convergence(out / "convergence.png", sol.records, title=title)
        drawn = True
    if flag.requested and sol.status != "interrupted":  # stopped while writing: say so
        skipped = "; convergence.png was not drawn" if figure and not drawn else ""
        sol.message = (f"interrupted by {flag.signal or 'a stop request'} while the outputs "
                       f"were written (the run had ended {sol.status}: {sol.message})"
                       f"{skipped}")
        sol.status = "interrupted"
    code = _exit_code(sol)
    summary = sol.summary()
    graph = run.graph
    steps_rec = sol.records["step"]
    summary.update(
        {
            "agents": run.problem.n_agents,
            "dim": run.problem.dim,
            "lambda_2": float(graph.lambda_2),
            "lambda_max": float(graph.lambda_max),
            "last_recorded_step": int(steps_rec[-1]) if len(steps_rec) else 0,
            "exit_code": code,
            "config": run.config,
        }
    )
    data_split = getattr(run.problem, "data_split", None)  # a data table's split
    if data_split is not None:
        summary["split"] = data_split
    s = run.config["solver"]
    summary.update(to_target(sol.records, tolerance=s.get("tolerance"),
                             target_accuracy=s.get("target_accuracy")))
    write_json(out / "summary.json", summary)
    return code


def _report_run(out: Path, sol, code: int) -> int:
    steps_rec = sol.records["step"]
    last_rec = int(steps_rec[-1]) if len(steps_rec) else 0
    errors = (f"relative error {sol.final_relative_error:.3e}, consensus error "
              f"{sol.final_consensus_error:.3e}")
    if "mean_agent_test_accuracy" in sol.records and len(sol.records["step"]):
        acc = (f"mean agent test accuracy {sol.records['mean_agent_test_accuracy'][-1]:.4f} "
               f"(worst agent {sol.records['worst_agent_test_accuracy'][-1]:.4f}), "
               f"consensus error {sol.final_consensus_error:.3e}")
        errors = acc if not math.isfinite(sol.final_relative_error) else (
            f"{acc}, relative error {sol.final_relative_error:.3e}")
    counts = (f"{sol.grad_evals} gradient evaluations; {sol.bits_per_agent:.4g} bits per agent; "
              f"wrote {out}/")
    if sol.status == "diverged":
        print(f"diverged at step {sol.steps} (t = {sol.t_final:g}); last finite record at step "
              f"{last_rec}: {errors}; {counts}")
        print(f"stflow: diverged: {_one_line(sol.message)}", file=sys.stderr)
    else:
        print(f"{sol.status}: {errors} after {sol.steps} steps (t = {sol.t_final:g}); {counts}")
        if not sol.converged:
            print(f"stflow: {sol.status}: {_one_line(sol.message)}", file=sys.stderr)
    return code


def _exit_code(sol) -> int:
    from .status import EXIT_CODES

    return EXIT_CODES.get(sol.status, EXIT_NOT_CONVERGED)


#: Warning lines already printed by this command (a warning raised every round is shown once).
_SHOWN: set = set()


def _show_warning(message, category, filename, lineno, file=None, line=None):
    if os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")) != "0":
        return  # under mpiexec every rank reads the config: rank 0 says it once
    text = f"stflow: warning: {_one_line(message)}"
    if text in _SHOWN:
        return
    _SHOWN.add(text)
    print(text, file=sys.stderr)


def parse_shapes(text: str) -> list[tuple[int, ...]]:
    """``certify --shapes``: ``"8x4,8"`` is ``[(8, 4), (8,)]``.

    >>> parse_shapes("8x4, 8,3x8")
    [(8, 4), (8,), (3, 8)]
    >>> parse_shapes("8x0")
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: --shapes must be comma-separated shapes of positive integers joined by x (got '8x0'): e.g. --shapes 8x4,8,3x8,3
    """
    try:
        shapes = [tuple(int(a) for a in block.strip().lower().split("x"))
                  for block in text.split(",")]
    except ValueError:
        shapes = []
    if not shapes or any(not s or min(s) < 1 for s in shapes):
        raise InputError(f"--shapes must be comma-separated shapes of positive integers joined "
                         f"by x (got {text!r}): e.g. --shapes 8x4,8,3x8,3")
    return shapes


def _cmd_certify(args) -> int:
    from .certify import certify
    from .compressors import make_compressor

    if args.dim < 1:
        raise InputError(f"--dim must be an integer >= 1 (got {args.dim}): e.g. --dim 10")
    if args.seed < 0:
        raise InputError(f"--seed must be an integer >= 0 (got {args.seed}): e.g. --seed 0")
    if args.horizon is not None and not (math.isfinite(args.horizon) and args.horizon > 0):
        raise InputError(f"--horizon must be a finite number > 0 (got {args.horizon:g}): "
                         "e.g. --horizon 3000")
    shapes = None if args.shapes is None else parse_shapes(args.shapes)
    if shapes is not None and sum(math.prod(s) for s in shapes) != args.dim:
        raise InputError(f"--shapes must cover --dim = {args.dim} entries (got "
                         f"{sum(math.prod(s) for s in shapes)} from {args.shapes!r}): fix either")
    if shapes is None and "lowrank" in args.spec:
        raise InputError(f"lowrank needs the block shapes of z (spec {args.spec!r}): add "
                         f"--shapes, e.g. --shapes 8x4,8,3x8,3 with --dim 67")
    progress = not args.quiet and sys.stderr.isatty()
    cert = certify(make_compressor(args.spec, args.dim, shapes=shapes), seed=args.seed,
                   progress=progress,
                   start_horizon=args.horizon)
    if args.json:
        print(json.dumps(cert.to_dict()))
    else:
        verdict = "spatio-temporal" if cert.spatio_temporal else "NOT spatio-temporal"
        print(
            f"{cert.spec} (d = {cert.dim}): {verdict}\n"
            f"  rate lambda = {cert.rate:.4g}, kappa = {cert.kappa:.4g}, "
            f"L_c = {cert.linear_bound:.4g}, linear = {cert.linear}, "
            f"bits/message = {cert.bits_per_message}\n  {cert.reason}"
        )
    return EXIT_OK


def _cmd_reproduce(args) -> int:
    from .experiments import experiment_names, run_suite

    known = experiment_names()
    names = known
    if args.only is not None:
        names = [n.strip().upper() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise InputError(
                f"--only must list experiments among {','.join(known)} (got "
                f"{args.only!r}): e.g. --only E1,E3"
            )
        names = [n for n in known if n in names]
    jobs = min(2, os.cpu_count() or 1) if args.jobs is None else args.jobs
    if jobs < 1:
        raise InputError(f"--jobs must be >= 1 (got {jobs}): e.g. --jobs 2")
    from .experiments import SuiteInterrupted

    out = _check_out(args.out, allow_nonempty=args.force)
    created = _make_out(out)

    def _term(signum, frame):  # SIGTERM stops the suite like Ctrl-C (workers included)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _term)
    try:
        lock_folder(out)
        with log_to(None if args.quiet else out / PROGRESS_LOG):
            results = run_suite(out, names, quick=args.quick, jobs=jobs, quiet=args.quiet)
    except SuiteInterrupted as exc:
        print(f"stflow: interrupted: {exc.finished} of {exc.total} experiments finished, kept "
              f"in {out} (report.html marks the others interrupted); rerun to finish",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
        _drop_if_empty(out, created)
    failed = [r for r in results if not r["ok"]]
    for r in failed:
        print(f"stflow: {r['name']} failed: {_one_line(r['error'])}", file=sys.stderr)
    print(f"{len(results) - len(failed)} of {len(results)} experiments ok; open "
          f"{out / 'report.html'} (or {out / 'report.md'})")
    return EXIT_NOT_CONVERGED if failed else EXIT_OK


# -- tune ----------------------------------------------------------------------------------
def _tune_parser(sub) -> None:
    tun = sub.add_parser(
        "tune", help="tune a config's method with a budget of runs: tuned.toml, tuning.json")
    tun.add_argument("config", help="TOML config whose [method] method is tuned")
    tun.add_argument("--budget", type=int, required=True, metavar="B",
                     help="candidate settings tried (one run each, capped at the config's rounds)")
    tun.add_argument("--target", type=float, default=None, metavar="E",
                     help="relative error to reach and keep (e.g. 1e-6)")
    tun.add_argument("--target-accuracy", type=float, default=None, metavar="A",
                     help="instead of --target: mean_agent_test_accuracy to reach and keep")
    tun.add_argument("--out", required=True, help="output folder (must be new or empty)")
    tun.add_argument("--seed", type=int, default=0,
                     help="seed of the sampler and perturbations (>= 0; default: 0)")
    tun.add_argument("--wave", type=int, default=1, metavar="W",
                     help="candidates asked at a time and run as one batch (>= 1; default: 1, "
                          "the sequential search; W > 1 draws other candidates per seed)")
    tun.add_argument("--json", action="store_true", help="print tuning.json's object")
    tun.add_argument("--force", action="store_true", help="write into a non-empty --out")


def _keep_lines() -> Path:
    """A temporary file for ``tune``'s progress lines (``--out`` is made after tuning)."""
    import tempfile

    fd, name = tempfile.mkstemp(prefix="stflow-tune-", suffix=".log")
    os.close(fd)
    os.unlink(name)
    return Path(name)


def _cmd_tune(args) -> int:
    """``stflow tune``: exit 0 when a robust setting was found, 1 when none, 2 bad input."""
    from .config import load_config
    from .tune import tune, write_outputs

    if args.seed < 0:
        raise InputError(f"--seed must be an integer >= 0 (got {args.seed}): e.g. --seed 0")
    if args.target is not None and not 0 < args.target < 1:
        raise InputError(f"--target must be a relative error in (0, 1) (got {args.target:g}): "
                         "e.g. --target 1e-6")
    out = _check_out(args.out, allow_nonempty=args.force)
    config = load_config(args.config)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _show_warning
        lines = _keep_lines()

        def _term(signum, frame):  # SIGTERM stops the search like Ctrl-C
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, _term)
        try:
            with log_to(None if args.quiet else lines):
                result = tune(config, budget=args.budget, target=args.target,
                              target_accuracy=args.target_accuracy, seed=args.seed,
                              progress=not args.quiet, wave=args.wave)
        except BaseException:
            lines.unlink(missing_ok=True)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
    _make_out(out)
    if lines.exists():  # the progress lines, kept until --out could be made
        shutil.move(str(lines), str(out / PROGRESS_LOG))
    write_outputs(result, out)
    if result.interrupted:  # never passed off as a finished tuning: no tuned.toml, exit 130
        best = (f"; best so far {result.bits_to_target:,.0f} bits per agent"
                if result.found else "")
        if args.json:
            print(json.dumps(result.to_dict()))
        print(f"stflow: interrupted: {result.reason}{best}; wrote {out}/tuning.json (no "
              "tuned.toml: rerun to finish)", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json:
        print(json.dumps(result.to_dict()))
    elif result.found:
        params = ", ".join(f"{k} = {v:.6g}" for k, v in result.params.items())
        print(
            f"{result.method} ({result.scheme}): {result.bits_to_target:,.0f} bits per agent "
            f"({result.rounds_to_target} rounds) to {result.target['column']} "
            f"{result.target['direction']} {result.target['value']:g}; robust median "
            f"{result.robust_bits_to_target:,.0f}; {params}; {result.evaluations} candidates, "
            f"{result.runs} runs; wrote {out}/tuned.toml and {out}/tuning.json"
        )
        for w in result.widened:  # a winner on an edge of its box: said, not hidden
            print(f"stflow: the winner sat on an edge ({', '.join(w['edges'])}): the box was "
                  f"re-centred on it and searched with {w['candidates']} more candidates",
                  file=sys.stderr)
    else:
        print(f"stflow: no robust setting found: {result.reason}; wrote {out}/tuning.json",
              file=sys.stderr)
    return EXIT_OK if result.found else EXIT_NOT_CONVERGED


COMMANDS = {"run": _cmd_run, "certify": _cmd_certify, "reproduce": _cmd_reproduce}
COMMANDS["tune"] = _cmd_tune


# -- study and plot ------------------------------------------------------------------------
def _study_parser(sub) -> None:
    stu = sub.add_parser(
        "study", help="many runs from one study file: results.csv, tables, figures, report.html",
        description="Run every cell (method x compressor x problem x graph x seed) of a study "
        "file (docs/study.md) and write OUT/results.csv, OUT/report.html and one run folder "
        "per cell.")
    stu.add_argument("study", help="study file (TOML), e.g. examples/study_compressors.toml")
    stu.add_argument("--out", required=True, help="output folder (must be new or empty)")
    stu.add_argument("--jobs", type=int, default=1, metavar="J",
                     help="cells run in parallel, one process each (default 1)")
    stu.add_argument("--resume", action="store_true",
                     help="keep the finished cells of --out and run only the others")
    stu.add_argument("--force", action="store_true",
                     help="start over in a non-empty --out (the study's own files are removed)")
    stu.add_argument("--quick", action="store_true",
                     help="a small size: tuning budget <= 3, rounds <= 400, the first 2 seeds")
    stu.add_argument("--no-batch", action="store_true",
                     help="run every cell alone (default: the untuned seeds of one method, "
                          "compressor, problem and graph run as one batch, same results)")


def _cmd_study(args) -> int:
    """``stflow study``: 0 every cell ran, 1 some cell failed, 2 bad input, 130 interrupted."""
    from .study import QUICK, clear_outputs, load_study, run_study

    if args.jobs < 1:
        raise InputError(f"--jobs must be an integer >= 1 (got {args.jobs}): e.g. --jobs 2")
    if args.resume and args.force:
        raise InputError("--resume and --force contradict each other: --resume keeps the "
                         "finished cells, --force removes them; give one")
    study = load_study(args.study, shrink=QUICK if args.quick else None)
    out = _check_out(args.out, allow_nonempty=args.force or args.resume,
                     resume_marker="study.json")
    if args.resume and out.is_dir() and any(out.iterdir()) and not (out / "study.json").exists():
        raise InputError(f"--out {args.out!r} holds no study to resume (no study.json): give "
                         "the --out of an earlier stflow study, or drop --resume")
    created = _make_out(out)
    try:
        lock_folder(out)  # before --force clears anything: another study may be writing
    except InputError:
        _drop_if_empty(out, created)
        raise
    if args.force:
        clear_outputs(out)

    def _term(signum, frame):  # SIGTERM stops the study like Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _term)
    try:
        res = run_study(study, out, jobs=args.jobs, resume=args.resume, quiet=args.quiet,
                        batch=not args.no_batch)
    except KeyboardInterrupt:
        done = sum(1 for c in study.cells if (out / "cells" / c.id / "result.json").exists())
        print(f"stflow: interrupted: {done} of {len(study.cells)} cells finished and kept in "
              f"{out}/cells; rerun with --resume to run the others", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
        _drop_if_empty(out, created)
    rows = res["rows"]
    reached = sum(bool(r["reached"]) for r in rows)
    print(f"{len(rows)} cells ({res['ran']} run, {res['kept']} kept from before), {reached} "
          f"reached the target, {res['failed']} failed; {res['seconds']:.1f} s; open "
          f"{out / 'report.html'} (rows: {out / 'results.csv'})")
    for r in rows:
        if r["status"] == "failed":
            print(f"stflow: cell {r['id']} failed: {_one_line(r['reason'])}", file=sys.stderr)
    return EXIT_NOT_CONVERGED if res["failed"] else EXIT_OK


def _plot_parser(sub) -> None:
    plo = sub.add_parser("plot", help="overlay the metrics of existing runs on one figure",
                         description="Overlay metrics.csv of run folders (stflow run, study, "
                         "reproduce; a folder above run folders draws every run under it).")
    plo.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders")
    plo.add_argument("--x", default="bits", choices=("bits", "rounds", "time", "samples"),
                     help="x axis (time = modeled seconds); default bits")
    plo.add_argument("--y", default="error", choices=("error", "accuracy", "consensus"),
                     help="y axis; default error")
    plo.add_argument("--out", required=True, metavar="FIG", help="figure file (.png, .pdf, .svg)")
    plo.add_argument("--title", default="", help="figure title")


def _cmd_plot(args) -> int:
    from .plot import plot_runs

    labels = plot_runs(args.runs, args.out, x=args.x, y=args.y, title=args.title)
    print(f"drew {len(labels)} run(s) into {args.out}")
    return EXIT_OK


COMMANDS["study"] = _cmd_study
COMMANDS["plot"] = _cmd_plot


# -- failures ------------------------------------------------------------------------------
def _one_line(text) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 3] + "..."


def _user_frame(exc: BaseException):
    """The deepest frame of user code (not stflow, not an installed library) below stflow."""
    import sysconfig

    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    libs = tuple(
        os.path.abspath(sysconfig.get_paths()[k]) + os.sep
        for k in ("stdlib", "platstdlib", "purelib", "platlib")
    )
    found, inside = None, False
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        name = os.path.abspath(code.co_filename)
        if name.startswith(package):
            inside = True
        elif inside and os.path.isabs(code.co_filename) and not name.startswith(libs):
            found = (code.co_filename, tb.tb_lineno, code.co_name)
        tb = tb.tb_next
    return found


def _describe_failure(exc: BaseException, command: str) -> tuple[int, str]:
    """Exit code and the one line printed for an exception that ended a command."""
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, InputError):
        return EXIT_INPUT, f"stflow: error: {_one_line(exc)}"
    if isinstance(exc, KeyboardInterrupt):
        where = " before any result was written" if command == "run" else ""
        return EXIT_INTERRUPTED, f"stflow: interrupted{_by(exc)}{where}"
    from .output import OutputWriteError

    if isinstance(exc, OutputWriteError):  # a full disk: the files before it are kept
        summary = " (no summary.json was written)" if command == "run" else ""
        return EXIT_INPUT, _one_line(
            f"stflow: error: {exc.strerror}{summary}: free space on that disk (or choose "
            "another --out) and run again"
        )
    user = _user_frame(exc)
    if isinstance(exc, SystemExit):  # sys.exit() in code a config names: its error, not a result
        where = ("your code {}:{} (in {})".format(*user) if user is not None
                 else "code your config names (a py: module or one it imports)")
        return EXIT_INPUT, _one_line(
            f"stflow: error: {where} raised SystemExit({exc.code!r}): user code must not exit "
            "the program (its exit status would read as stflow's); raise an exception instead"
        )
    if user is not None:
        file, line, func = user
        return EXIT_INPUT, _one_line(
            f"stflow: error: your code {file}:{line} (in {func}) raised {what}: fix it "
            "(--debug shows the traceback)"
        )
    if isinstance(exc, MemoryError):
        return EXIT_INPUT, _one_line(
            f"stflow: error: out of memory ({what}): lower [problem] agents, dim or samples, "
            "or raise [solver] record_every"
        )
    if isinstance(exc, UnicodeDecodeError):
        return EXIT_INPUT, _one_line(
            f"stflow: error: a text file is not UTF-8 ({what}): save it as UTF-8"
        )
    if isinstance(exc, OSError):
        name = f" {exc.filename!r}" if exc.filename else ""
        return EXIT_INPUT, _one_line(
            f"stflow: error: cannot use{name}: {exc.strerror or what}: check the path, its "
            "permissions and the free space"
        )
    return EXIT_INTERNAL, _one_line(
        f"stflow: internal error: {what}. This is a bug in stflow; please report it with the "
        f"command, the config and `stflow --version` ({__version__}); --debug shows the "
        "traceback"
    )


def main(argv=None) -> int:
    """Entry point of the ``stflow`` command; returns the exit code (see the module doc).

    ``--help``, ``--version`` and usage errors raise ``SystemExit`` (0, 0 and 2) from
    argparse, as usual.

    Examples
    --------
    >>> main(["certify", "topk:k=5", "--dim", "3"])
    2
    """
    previous = _sigterm_interrupts()
    _SHOWN.clear()
    try:
        try:
            args = _parser().parse_args(argv)
        except KeyboardInterrupt as exc:
            print(f"stflow: interrupted{_by(exc)}", file=sys.stderr)
            return EXIT_INTERRUPTED
        try:
            with warnings.catch_warnings():  # every command's warnings as one "stflow:" line
                warnings.simplefilter("default")
                warnings.showwarning = _show_warning
                return COMMANDS[args.command](args)
        except (Exception, SystemExit) as exc:  # stflow itself never exits from a command
            return _failed(exc, args)
        except KeyboardInterrupt as exc:
            return _failed(exc, args)
        finally:
            release_folders()  # the --out lock lasts as long as the command
    finally:
        if previous is not None:  # the handlers the caller had (a test, a program)
            for sig, handler in previous.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _ignore_interrupts() -> None:
    """Ignore Ctrl-C and SIGTERM for the rest of the command (``main`` restores them): once
    ``summary.json`` is written, the exit code is decided and must stay the one it says."""
    import threading

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def _sigterm_interrupts():
    """SIGTERM raises ``KeyboardInterrupt("SIGTERM")`` like Ctrl-C for the whole command (set-up,
    imports, writing), so it ends with exit 130 and one line, never the bare 143 of the
    default action; the stepping loops catch both into a flag (:mod:`stflow.interrupts`).
    Ctrl-C gets Python's own handler back (the package installs an early one for the start
    of the ``stflow`` command). Returns the previous handlers (None outside the main thread,
    where none is installed)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
            signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_interrupt)}


def _by(exc: BaseException) -> str:
    """`` by SIGTERM`` for an interrupt raised by :func:`_raise_interrupt`, else ``""``."""
    name = str(exc)
    return f" by {name}" if name.startswith("SIG") else ""


def _failed(exc: BaseException, args) -> int:
    code, line = _describe_failure(exc, args.command)
    if getattr(args, "debug", False):
        import traceback

        traceback.print_exception(exc)
    print(line, file=sys.stderr)
    return code


def exit_with(code: int):
    """End the process with ``code`` (``python -m stflow`` and ``python -m stflow.cli``).

    After a Ctrl-C that was caught and answered (exit 130), ``python -m`` may still end
    the process by SIGINT (status -2 instead of 130): CPython remembers a KeyboardInterrupt
    raised inside code that an extension module ran while being imported, even though stflow
    handled it. Exit 130 is therefore made with ``os._exit`` once the output is flushed."""
    # The result is decided and written: a signal arriving while the interpreter shuts
    # down (which can take a while after torch or MPI) must not turn it into status -2/-15.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def entry() -> None:  # pragma: no cover - the ``stflow`` console script
    """The ``stflow`` command: :func:`main`, ended by :func:`exit_with`."""
    exit_with(main())


if __name__ == "__main__":  # pragma: no cover
    exit_with(main())
