"""The ``stflow`` command line: ``run``, ``certify`` (and the commands later issues add).

Exit codes: 0 success (``run``: converged), 1 ``run`` ended above tolerance, 2 bad input
(one line on stderr; ``--debug`` shows the traceback), 3 ``run`` diverged. ``reproduce``
exits 1 when an experiment failed (the report says which, the others still ran).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from . import __version__
from .errors import InputError

__all__ = ["main", "EXIT_OK", "EXIT_NOT_CONVERGED", "EXIT_INPUT", "EXIT_DIVERGED"]

EXIT_OK, EXIT_NOT_CONVERGED, EXIT_INPUT, EXIT_DIVERGED = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other bad input
        hint = f"see `{self.prog} -h`"
        self.exit(EXIT_INPUT, f"stflow: error: {message} ({hint})\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stflow", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"stflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run one config: metrics.csv, summary.json, convergence.png")
    run.add_argument("config", help="TOML config (see examples/quickstart.toml, docs/config.md)")
    run.add_argument("--out", required=True, help="output folder")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--debug", action="store_true", help="show tracebacks")
    run.add_argument(
        "--backend", choices=("sim", "mpi"), default="sim",
        help="sim: one process (default); mpi: one block of agents per rank, under mpiexec",
    )
    run.add_argument("--checkpoint-every", type=int, default=0, metavar="K",
                     help="mpi: write a restartable checkpoint every K rounds")
    run.add_argument("--resume", action="store_true",
                     help="mpi: continue from the last checkpoint in --out")

    cert = sub.add_parser("certify", help="numerical spatio-temporal certificate of a compressor")
    cert.add_argument("spec", help='compressor spec, e.g. "topk:k=2" or "topk:k=4|quantize:bits=4"')
    cert.add_argument("--dim", type=int, required=True, help="dimension d")
    cert.add_argument("--seed", type=int, default=0, help="seed of the test trajectories")
    cert.add_argument("--json", action="store_true", help="print one JSON object")
    cert.add_argument("--debug", action="store_true", help="show tracebacks")

    rep = sub.add_parser("reproduce", help="run the reproduction suite E1..E8: report.md/.html")
    rep.add_argument("--out", required=True, help="output folder (must be new or empty)")
    rep.add_argument("--quick", action="store_true", help="smaller sizes (under 90 s)")
    rep.add_argument("--only", default=None, metavar="E1,E3", help="comma-separated subset")
    rep.add_argument("--jobs", type=int, default=None, metavar="J",
                     help="experiments run in parallel (default: min(2, CPUs))")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    rep.add_argument("--force", action="store_true", help="write into a non-empty --out")
    rep.add_argument("--debug", action="store_true", help="show tracebacks")
    _tune_parser(sub)
    return parser


def _cmd_run(args) -> int:
    from .config import load_config, run_config

    if args.backend == "mpi":
        return _cmd_run_mpi(args)
    if args.checkpoint_every or args.resume:
        raise InputError(
            "--checkpoint-every and --resume need --backend mpi (got --backend sim): "
            "add --backend mpi and launch with mpiexec, or drop them"
        )
    config = load_config(args.config)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} exists and is not a folder: give a folder path")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _show_warning
        run, sol = run_config(config, progress=not args.quiet and sys.stderr.isatty())
    return _finish_run(Path(args.out), run, sol)


def _cmd_run_mpi(args) -> int:
    from .mpi import run_mpi

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning
            result = run_mpi(
                args.config, args.out, checkpoint_every=args.checkpoint_every, resume=args.resume
            )
    except InputError as exc:
        if getattr(exc, "quiet", False):  # rank 0 prints the one line
            return EXIT_INPUT
        raise
    if result.is_root:
        return _finish_run(Path(args.out), result.run, result.solution)
    return _exit_code(result.solution)


def _finish_run(out: Path, run, sol) -> int:
    """Write metrics.csv, summary.json and the figure, print the outcome (both backends)."""
    from .output import write_run_outputs

    summary = sol.summary()
    graph = run.graph
    summary.update(
        {
            "agents": run.problem.n_agents,
            "dim": run.problem.dim,
            "lambda_2": float(graph.lambda_2),
            "lambda_max": float(graph.lambda_max),
            "config": run.config,
        }
    )
    spec = run.config["compressor"]["spec"] if run.compressor is not None else "none"
    title = f"{run.config['flow']['kind']} flow, {spec}, {run.config['problem']['kind']}"
    write_run_outputs(out, sol.records, summary, title=title)
    print(
        f"{sol.status}: relative error {sol.final_relative_error:.3e}, consensus error "
        f"{sol.final_consensus_error:.3e} after {sol.steps} steps (t = {sol.t_final:g}); "
        f"{sol.bits_per_agent:.4g} bits per agent; wrote {out}/"
    )
    if sol.status == "diverged":
        print(f"stflow: diverged: {sol.message}", file=sys.stderr)
    elif not sol.converged:
        print(f"stflow: {sol.message}", file=sys.stderr)
    return _exit_code(sol)


def _exit_code(sol) -> int:
    if sol.status == "diverged":
        return EXIT_DIVERGED
    return EXIT_OK if sol.converged else EXIT_NOT_CONVERGED


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"stflow: warning: {message}", file=sys.stderr)


def _cmd_certify(args) -> int:
    from .certify import certify
    from .compressors import make_compressor

    if args.dim < 1:
        raise InputError(f"--dim must be >= 1 (got {args.dim})")
    cert = certify(make_compressor(args.spec, args.dim), seed=args.seed)
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
    import os

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
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} exists and is not a folder: give a folder path")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise InputError(
            f"--out {str(out)!r} exists and is not empty: give a new folder or add --force"
        )
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".stflow-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise InputError(
            f"--out {str(out)!r} is not writable ({exc.strerror or exc}): choose another folder"
        ) from None
    results = run_suite(out, names, quick=args.quick, jobs=jobs, quiet=args.quiet)
    failed = [r for r in results if not r["ok"]]
    for r in failed:
        print(f"stflow: {r['name']} failed: {r['error']}", file=sys.stderr)
    print(f"{len(results) - len(failed)} of {len(results)} experiments ok; open "
          f"{out / 'report.html'} (or {out / 'report.md'})")
    return EXIT_NOT_CONVERGED if failed else EXIT_OK


def _tune_parser(sub) -> None:
    tun = sub.add_parser(
        "tune", help="tune a config's method with a budget of runs: tuned.toml, tuning.json")
    tun.add_argument("config", help="TOML config whose [flow] method is tuned")
    tun.add_argument("--budget", type=int, required=True, metavar="B",
                     help="candidate settings tried (one run each, capped at the config's rounds)")
    tun.add_argument("--target", type=float, default=None, metavar="E",
                     help="relative error to reach and keep (e.g. 1e-6)")
    tun.add_argument("--target-accuracy", type=float, default=None, metavar="A",
                     help="instead of --target: mean_agent_test_accuracy to reach and keep")
    tun.add_argument("--out", required=True, help="output folder (must be new or empty)")
    tun.add_argument("--seed", type=int, default=0, help="seed of the sampler and perturbations")
    tun.add_argument("--json", action="store_true", help="print tuning.json's object")
    tun.add_argument("--force", action="store_true", help="write into a non-empty --out")
    tun.add_argument("--quiet", action="store_true", help="no progress bar")
    tun.add_argument("--debug", action="store_true", help="show tracebacks")


def _cmd_tune(args) -> int:
    """``stflow tune``: exit 0 when a robust setting was found, 1 when none, 2 bad input."""
    from .config import load_config
    from .tune import tune, write_outputs

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} exists and is not a folder: give a folder path")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise InputError(
            f"--out {str(out)!r} exists and is not empty: give a new folder or add --force"
        )
    config = load_config(args.config)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _show_warning
        result = tune(config, budget=args.budget, target=args.target,
                      target_accuracy=args.target_accuracy, seed=args.seed,
                      progress=not args.quiet and sys.stderr.isatty())
    write_outputs(result, out)
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
    else:
        print(f"stflow: no robust setting found: {result.reason}; wrote {out}/tuning.json",
              file=sys.stderr)
    return EXIT_OK if result.found else EXIT_NOT_CONVERGED


COMMANDS = {"run": _cmd_run, "certify": _cmd_certify, "reproduce": _cmd_reproduce}
COMMANDS["tune"] = _cmd_tune


def main(argv=None) -> int:
    """Entry point of the ``stflow`` command."""
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"stflow: error: {exc}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
