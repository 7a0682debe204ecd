"""E5: convex, not strongly convex costs: optimality gap and consensus error against time.

Unregularized logistic regression on non-separable data (10% flipped labels) whose last
feature is a copy of the one before: sum_i f_i is convex, its minimizers form a line (any
weight can move between the two copies), so it is not strongly convex.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import first_time_below, fmt, md_table, pick, plt, save_figure, solve_flow, write_run
from ._figures import legend_outside

__all__ = ["NAME", "TITLE", "run", "convex_problem", "planned_runs"]

NAME = "E5"
TITLE = "Convex, not strongly convex"

_GAINS = {"alpha": 2.0, "beta": 2.0, "eta": 1.0, "gamma": 50.0}
_STEP = 1e-2
_SIZES = {
    "full": {"agents": 20, "dim": 5, "samples": 30, "horizon": 100.0},
    "quick": {"agents": 20, "dim": 5, "samples": 30, "horizon": 50.0},
    "tiny": {"agents": 8, "dim": 4, "samples": 30, "horizon": 30.0},
}


def _runs(step: float) -> list[tuple]:
    tau = f"{step:g}"
    return [("uncompressed", None), ("observer", "topk:k=2"), ("observer", "quantize:bits=4"),
            ("observer", f"scalarize:basis=cyclic,tau={tau}")]


def planned_runs(quick: bool) -> int:
    """The uncompressed flow and three observer flows."""
    return len(_runs(_STEP))


def convex_problem(agents: int, dim: int, samples: int, seed: int = 1):
    """Logistic, regularization 0, features (N, m, dim + 1) with the last column duplicated."""
    from ..problems import make_problem

    base = make_problem("logistic", agents=agents, dim=dim, samples=samples, seed=seed)
    A = np.concatenate([base.A, base.A[:, :, -1:]], axis=2)
    return make_problem("logistic", agents=agents, dim=dim + 1, data={"A": A, "y": base.y})


def _slope(t, y):
    """Log-log slope of y against t over the second half of the recorded points."""
    ok = (t > 0) & np.isfinite(y) & (y > 1e-13)
    t, y = t[ok], y[ok]
    if t.size < 4:
        return float("nan")
    h = t.size // 2
    return float(np.polyfit(np.log(t[h:]), np.log(y[h:]), 1)[0])


def run(out_dir: Path, *, quick: bool, progress=None) -> dict:
    """Run E5 into ``out_dir``; see the module docstring."""
    from ..graphs import make_graph

    size = pick(_SIZES, quick)
    out_dir = Path(out_dir)
    problem = convex_problem(size["agents"], size["dim"], size["samples"])
    graph = make_graph("ring", problem.n_agents, chords=3, seed=0)
    hess = np.linalg.eigvalsh(problem._hessian_sum(problem.x_star))
    runs = _runs(_STEP)
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(11, 4.4))
    rows = []
    for kind, spec in runs:
        sol = solve_flow(kind, problem, graph, spec, _GAINS, step=_STEP,
                         horizon=size["horizon"], record_every=50, tolerance=1e-8)
        label = spec or "uncompressed"
        write_run(out_dir, label, sol, {"flow": kind, "compressor": spec, "gains": _GAINS,
                                        "step": _STEP})
        rec = sol.records
        t = rec["t"]
        gap = np.where(rec["optimality_gap"] > 0, rec["optimality_gap"], np.nan)
        cons = np.where(rec["consensus_error"] > 0, rec["consensus_error"], np.nan)
        axes[0].loglog(t[1:], gap[1:], lw=1.2, label=label)
        axes[1].loglog(t[1:], cons[1:], lw=1.2, label=label)
        t9, _ = first_time_below(rec, 1e-9, key="optimality_gap")
        rows.append([f"`{label}`", fmt(float(rec["optimality_gap"][-1]), ".2e"),
                     fmt(sol.final_consensus_error, ".2e"), fmt(t9, ".3g"),
                     fmt(_slope(t, rec["optimality_gap"]), ".2f"),
                     fmt(sol.final_relative_error, ".2e")])
        if progress is not None:
            progress(f"{label}: {sol.status}")
    axes[0].set_ylabel("optimality gap sum f_i(xbar) - f*")
    axes[1].set_ylabel("consensus error ||X - 1 xbar|| / sqrt(N)")
    for ax in axes:
        ax.set_xlabel("time t")
        ax.grid(True, which="both", alpha=0.3)
        legend_outside(ax, below=True, ncol=2)
    fig.suptitle("logistic regression, regularization 0, duplicated feature (not strongly "
                 "convex)", fontsize=10)
    figure = save_figure(fig, out_dir, "gap_and_consensus.png")
    measured = md_table(
        ["run", "final gap", "final consensus error", "t to gap 1e-9",
         "log-log slope of gap (2nd half)", "final distance to x* (relative)"], rows)
    measured += (
        f"\n\nSmallest Hessian eigenvalue of sum f_i at x*: {hess[0]:.2e} (largest "
        f"{hess[-1]:.3g}): the cost is flat along the duplicated-feature direction. The "
        "last column is measured against the minimizer scipy found (one point of the optimal line); "
        "the flows may converge to another point of that line, so only the gap and the "
        "consensus error are meaningful here (`Solution.status`, which uses that distance, "
        "is not reported)."
    )
    return {
        "title": TITLE,
        "setting": (
            f"Logistic regression, regularization 0, N = {size['agents']} agents with "
            f"{size['samples']} samples each (`make_problem(\"logistic\", ..., seed=1)`, 10% "
            f"flipped labels, so not separable), d = {size['dim']} features plus a copy of the "
            f"last one; ring + 3 chords; gains {_GAINS}, step {_STEP:g}, horizon "
            f"{size['horizon']:g}."
        ),
        "prediction": (
            "Convex costs: every trajectory converges to the optimal set (SPEC section 4): the "
            "optimality gap and the consensus error go to 0. No exponential rate is promised; "
            "here the cost is strongly convex on the subspace the flow moves in, so a fast "
            "decay is still possible."
        ),
        "measured": measured,
        "figures": [figure],
        "captions": {figure: (
            "Left: the optimality gap at the agents' mean falls to 0 although the cost has "
            "no unique minimizer (the four curves coincide; they end where the gap is exactly "
            "0 in float64). Right: the agents agree (consensus error towards 0) with every "
            "compressor; the compressed runs only settle at a slightly higher floor."
        )},
    }
