"""The ``stflow`` command line: ``run``, ``certify`` (and the commands later issues add).

Exit codes: 0 success (``run``: converged), 1 ``run`` ended above tolerance, 2 bad input
(one line on stderr; ``--debug`` shows the traceback), 3 ``run`` diverged.
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

    cert = sub.add_parser("certify", help="numerical spatio-temporal certificate of a compressor")
    cert.add_argument("spec", help='compressor spec, e.g. "topk:k=2" or "topk:k=4|quantize:bits=4"')
    cert.add_argument("--dim", type=int, required=True, help="dimension d")
    cert.add_argument("--seed", type=int, default=0, help="seed of the test trajectories")
    cert.add_argument("--json", action="store_true", help="print one JSON object")
    cert.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _cmd_run(args) -> int:
    from .config import load_config, run_config
    from .output import write_run_outputs

    config = load_config(args.config)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} exists and is not a folder: give a folder path")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _show_warning
        run, sol = run_config(config, progress=not args.quiet and sys.stderr.isatty())
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
        return EXIT_DIVERGED
    if not sol.converged:
        print(f"stflow: {sol.message}", file=sys.stderr)
        return EXIT_NOT_CONVERGED
    return EXIT_OK


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


COMMANDS = {"run": _cmd_run, "certify": _cmd_certify}


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
