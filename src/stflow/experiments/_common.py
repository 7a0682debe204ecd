"""Helpers shared by the experiments: sizes, running one flow, writing a run, tables, plots.

Sizes: every experiment has three sizes, ``full`` (the report), ``quick`` (``--quick``) and
``tiny`` (tests only: set the environment variable ``STFLOW_TINY=1``); :func:`level` picks
one. Seeds are fixed, so the same size gives the same numbers (except wall-clock times).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import DirectFlowWarning

__all__ = [
    "level",
    "pick",
    "plt",
    "save_figure",
    "md_table",
    "curve_style",
    "fmt",
    "solve_flow",
    "write_run",
    "first_time_below",
    "E2_GAINS",
    "E2_STEP",
    "e2_problem",
    "st_specs",
]

#: Gains of the N = 20, d = 10 least-squares experiments (E2, E3, E4): measured to converge
#: for every ST compressor with one-round scalarizer/randk windows (tau = step).
E2_GAINS = {"alpha": 10.0, "beta": 10.0, "eta": 2.0, "gamma": 300.0}
E2_STEP = 1e-3


def level(quick: bool) -> str:
    """``"tiny"`` when ``STFLOW_TINY=1`` is set (tests), else ``"quick"`` or ``"full"``."""
    if os.environ.get("STFLOW_TINY", "") not in ("", "0"):
        return "tiny"
    return "quick" if quick else "full"


def pick(sizes: dict, quick: bool) -> dict:
    """The entry of ``sizes`` (keys full/quick/tiny) for this run."""
    return sizes[level(quick)]


def plt():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def save_figure(fig, out_dir: Path, name: str) -> str:
    """Save ``fig`` as ``out_dir/name`` (PNG, 110 dpi), close it, return ``name``."""
    pyplot = plt()
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    path = Path(out_dir) / name
    from ..output import atomic_output
    from ._figures import audit_figure, write_audit

    with atomic_output(path) as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
        write_audit(out_dir, name, audit_figure(fig))
    pyplot.close(fig)
    return name


def curve_style(i: int, reference: bool = False) -> dict:
    """Line style of curve ``i`` (:func:`stflow.experiments._figures.style`: ten separated
    colours, then dashed, dotted, dash-dotted); the reference curve (uncompressed) thick
    black."""
    from ._figures import style

    if reference:
        return {"color": "black", "lw": 2.4, "ls": "-"}
    return style(i)


def fmt(x, spec: str = ".3g") -> str:
    """Number for a table: ``-`` for None/NaN, else ``format(x, spec)``."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, str):
        return x
    return format(x, spec)


def md_table(headers, rows) -> str:
    """A markdown table; a ``|`` inside a cell (a composed spec) is escaped as ``\\|``.

    Examples
    --------
    >>> print(md_table(["a", "b"], [["`x|y`", 1]]))
    | a | b |
    |---|---|
    | `x\\|y` | 1 |
    """

    def cell(c):
        return str(c).replace("|", "\\|")

    lines = ["| " + " | ".join(map(cell, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def solve_flow(kind, problem, graph, spec, gains: dict, *, step, horizon, record_every=100,
               tolerance=1e-8, x0=None, scheme="euler"):
    """Build a :class:`~stflow.PrimalDualFlow` and :func:`~stflow.solve` it, by default with
    SPEC section 5's pinned ``euler`` scheme (E1-E8 measure it; the library's default scheme
    is ``predict``).

    The direct-flow warning for nonlinear compressors is silenced here: the experiments
    report the outcome instead.
    """
    from ..compressors import make_compressor
    from ..engines.simulate import solve
    from ..methods import Gains, PrimalDualFlow

    comp = None if spec is None else make_compressor(spec, problem.dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DirectFlowWarning)
        flow = PrimalDualFlow(kind, problem, graph, comp, gains=Gains(**gains), scheme=scheme)
    return solve(flow, step=step, horizon=horizon, record_every=record_every,
                 tolerance=tolerance, x0=x0)


def write_run(out_dir: Path, label: str, sol, extra: dict, *, title: str = "") -> None:
    """``out_dir/runs/<label>/`` with ``metrics.csv``, ``summary.json``, ``convergence.png``."""
    from ..output import write_run_outputs

    safe = "".join(c if c.isalnum() or c in "-_=." else "_" for c in label)
    summary = sol.summary()
    summary.update(extra)
    write_run_outputs(Path(out_dir) / "runs" / safe, sol.records, summary, title=title or label)


def first_time_below(records, threshold: float, key: str = "relative_error"):
    """``(t, bits_per_agent)`` at the first recorded point with ``key <= threshold``, or
    ``(None, None)``."""
    err = np.asarray(records[key])
    hit = np.flatnonzero(err <= threshold)
    if hit.size == 0:
        return None, None
    i = int(hit[0])
    return float(records["t"][i]), float(records["bits_per_agent"][i])


def e2_problem(size: dict):
    """The E2/E3/E4 problem and graph: least squares, ring with chords."""
    from ..graphs import make_graph
    from ..problems import make_problem

    n, d = size["agents"], size["dim"]
    problem = make_problem("least_squares", agents=n, dim=d, seed=0)
    graph = make_graph("ring", n, chords=size.get("chords", 3), seed=0)
    return problem, graph


def st_specs(step: float, which: str = "full") -> list[str]:
    """The ST compressors run by E2/E3 (time-varying ones hold each window one round)."""
    tau = f"{step:g}"
    full = [
        "identity",
        "topk:k=1",
        "topk:k=3",
        "quantize:bits=2",
        "quantize:bits=4",
        "quantize:bits=8",
        f"scalarize:basis=cyclic,tau={tau}",
        "scalarize:basis=sinusoid,freq=20",
        f"scalarize:basis=random,tau={tau}",
        "sign",
        f"randk:k=2,tau={tau}",
        "topk:k=2|quantize:bits=4",
        f"randk:k=2,tau={tau}|quantize:bits=3",
        "quantize:bits=3|topk:k=2",
    ]
    if which == "full":
        return full
    if which == "quick":
        return [full[i] for i in (1, 4, 6, 9, 11)]
    return [full[i] for i in (1, 6)]
