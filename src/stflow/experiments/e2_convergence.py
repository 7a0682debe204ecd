r"""E2: exponential convergence of the observer flow with every ST compressor.

Strongly convex least squares (``make_problem("least_squares", agents=20, dim=10, seed=0)``)
on a ring of 20 agents with 3 random chords (``make_graph("ring", 20, chords=3, seed=0)``),
observer flow with gains alpha = beta = 10, eta = 2, gamma = 300 and Euler step h = 1e-3
for every ST compressor and the uncompressed flow; relative error against time with the
fitted exponential rate in the legend.
"""

from __future__ import annotations

from pathlib import Path

from ._common import (
    E2_GAINS,
    E2_STEP,
    curve_style,
    e2_problem,
    first_time_below,
    fmt,
    md_table,
    pick,
    plt,
    save_figure,
    solve_flow,
    st_specs,
    write_run,
)
from ._figures import legend_outside

__all__ = ["NAME", "TITLE", "run", "observer_suite", "SIZES", "planned_runs"]

NAME = "E2"
TITLE = "Exponential convergence (observer flow)"

SIZES = {
    "full": {"agents": 20, "dim": 10, "horizon": 20.0, "specs": "full"},
    "quick": {"agents": 20, "dim": 10, "horizon": 14.0, "specs": "quick"},
    "tiny": {"agents": 10, "dim": 5, "horizon": 14.0, "specs": "tiny"},
}


def planned_runs(quick: bool) -> int:
    """The uncompressed run plus one observer run per ST compressor."""
    return 1 + len(st_specs(E2_STEP, pick(SIZES, quick)["specs"]))


def observer_suite(out_dir: Path, size: dict, *, progress=None) -> list[dict]:
    """Run the uncompressed flow and the observer flow with each ST compressor.

    Returns one dict per run: ``label``, ``spec``, ``solution`` and ``bits_per_message``.
    """
    problem, graph = e2_problem(size)
    runs = [("uncompressed", None)] + [("observer", s) for s in st_specs(E2_STEP, size["specs"])]
    out = []
    for kind, spec in runs:
        sol = solve_flow(kind, problem, graph, spec, E2_GAINS, step=E2_STEP,
                         horizon=size["horizon"], record_every=100, tolerance=1e-8)
        label = "uncompressed" if spec is None else spec
        write_run(out_dir, label, sol, {"flow": kind, "compressor": spec, "gains": E2_GAINS,
                                        "step": E2_STEP, "agents": problem.n_agents,
                                        "dim": problem.dim})
        out.append({"label": label, "kind": kind, "spec": spec, "solution": sol})
        if progress is not None:
            progress(f"{label}: {sol.status}")
    return out


def run(out_dir: Path, *, quick: bool, progress=None) -> dict:
    """Run E2 into ``out_dir``; see the module docstring."""
    size = pick(SIZES, quick)
    out_dir = Path(out_dir)
    runs = observer_suite(out_dir, size, progress=progress)
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(8.5, 5.2))
    rows = []
    for i, r in enumerate(runs):
        sol = r["solution"]
        rec = sol.records
        ax.semilogy(rec["t"], rec["relative_error"], **curve_style(i, r["spec"] is None),
                    label=f"{r['label']} (rate {sol.fitted_rate:.2f})")
        t6, _ = first_time_below(rec, 1e-6)
        rows.append([f"`{r['label']}`", sol.status, fmt(sol.fitted_rate, ".3f"),
                     fmt(t6, ".3g"), fmt(sol.final_relative_error, ".2e")])
    ax.set_xlabel("time t")
    ax.set_ylabel("relative error ||X - 1x*|| / (sqrt(N) ||x*||)")
    ax.set_title(f"observer flow, least squares N = {size['agents']}, d = {size['dim']}, "
                 "ring + 3 chords", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    legend_outside(ax)
    figure = save_figure(fig, out_dir, "relative_error_vs_time.png")
    rates = [r["solution"].fitted_rate for r in runs]
    conv = sum(r["solution"].converged for r in runs)
    measured = (
        md_table(["compressor", "status", "fitted rate", "t to 1e-6", "final error"], rows)
        + f"\n\n{conv} of {len(runs)} runs converged to 1e-8; fitted rates "
        f"{min(rates):.3f}..{max(rates):.3f} (uncompressed {rates[0]:.3f})."
    )
    g = E2_GAINS
    return {
        "title": TITLE,
        "setting": (
            f"Least squares `make_problem(\"least_squares\", agents={size['agents']}, "
            f"dim={size['dim']}, seed=0)`, ring with 3 chords (seed 0), observer flow, gains "
            f"alpha = {g['alpha']:g}, beta = {g['beta']:g}, eta = {g['eta']:g}, gamma = "
            f"{g['gamma']:g}, Euler step h = {E2_STEP:g}, horizon {size['horizon']:g}, X(0) = 0. "
            "Time-varying compressors (cyclic/random scalarizer, randk) hold each window for "
            "one round (tau = h); the sinusoid uses freq = 20. The default gains "
            "(2, 2, 1, 50) also converge for all of them but at rate ~0.45; these gains were "
            "picked from a small scan (rate ~1.3) and kept identical for every compressor. "
            "The rate is the least-squares slope of log error over the recorded points "
            "between 1e-13 and a tenth of the initial error."
        ),
        "prediction": (
            "Strongly convex costs: every trajectory converges exponentially to x* for every "
            "ST compressor once gamma is large enough (SPEC section 4); the observer only "
            "delays the flow, so the rates should be close to the uncompressed one."
        ),
        "measured": measured,
        "figures": [figure],
        "captions": {figure: (
            "Every curve is a straight line on this log scale (exponential convergence) "
            "with a slope close to the thick black uncompressed one: the fitted rates in the "
            "legend differ little, so compression costs few extra rounds here."
        )},
        "data": {"rates": {r["label"]: r["solution"].fitted_rate for r in runs},
                 "status": {r["label"]: r["solution"].status for r in runs}},
    }
