r"""E7: where it breaks. Final error over (gamma, step) and over (scalarizer period, alpha).

Small problem (least squares, N = 10, d = 5, ring), observer flow, horizon T fixed. Map 1:
top-1 sparsifier, alpha = beta = 2, eta = 1, over the observer gain gamma and the Euler step
h. Map 2: cyclic scalarizer, h = 2e-3, gamma = 0.5 / h, eta = 1, over its excitation period
P = d tau and alpha = beta. A cell is marked x when the run diverged (`Solution.status`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..output import write_json
from ._common import md_table, pick, plt, save_figure, solve_flow
from ._figures import legend_outside

__all__ = ["NAME", "TITLE", "run", "planned_runs"]

NAME = "E7"
TITLE = "Where it breaks: safe regions of the gains"

#: Measured boundary of map 2 (P alpha lambda_max): stable below in every run of the grid.
PERIOD_RULE = 2.0

_SIZES = {
    "full": {"gammas": [2, 5, 10, 20, 50, 100, 200, 500, 1000],
             "steps": [2e-3, 5e-3, 1e-2, 2e-2, 5e-2], "taus": [2e-3, 6e-3, 2e-2, 6e-2, 2e-1],
             "alphas": [0.25, 0.5, 1, 2, 4, 8, 16], "horizon": 6.0},
    "quick": {"gammas": [2, 10, 50, 200, 1000], "steps": [2e-3, 1e-2, 5e-2],
              "taus": [2e-3, 2e-2, 2e-1], "alphas": [0.5, 2, 8, 16], "horizon": 4.0},
    "tiny": {"gammas": [5, 200], "steps": [5e-3, 5e-2], "taus": [2e-3, 2e-1],
             "alphas": [1, 16], "horizon": 2.0},
}


def planned_runs(quick: bool) -> int:
    """One run per cell of the two maps."""
    size = pick(_SIZES, quick)
    return (len(size["gammas"]) * len(size["steps"])
            + len(size["taus"]) * len(size["alphas"]))


def _log_range(*pairs) -> tuple[float, float]:
    """Colour range of the log10 errors of the cells that did not diverge: the data's own
    range (widened to at least one decade), so the colours separate the cells shown."""
    vals = np.concatenate([np.log10(np.clip(v[~d], 1e-16, None)).ravel() for v, d in pairs])
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return -1.0, 0.0
    lo, hi = float(np.floor(vals.min() * 2) / 2), float(np.ceil(vals.max() * 2) / 2)
    return (lo, max(hi, lo + 1.0))


def _heatmap(ax, values, diverged, xlabels, ylabels, xname, yname, title, vrange):
    import matplotlib.colors as mcolors

    shown = np.log10(np.clip(values, 1e-16, None))
    shown = np.where(diverged, np.nan, shown)
    cmap = plt().get_cmap("viridis").with_extremes(bad="lightgrey")
    norm = mcolors.Normalize(vmin=vrange[0], vmax=vrange[1])
    im = ax.imshow(shown, origin="lower", cmap=cmap, aspect="auto", norm=norm)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if diverged[i, j]:
                ax.text(j, i, "x", ha="center", va="center", color="red", fontsize=11)
            else:
                light = norm(shown[i, j]) > 0.6  # viridis turns yellow: dark text there
                ax.text(j, i, f"{shown[i, j]:.1f}", ha="center", va="center",
                        color="black" if light else "white", fontsize=7)
    ax.set_xticks(range(len(xlabels)), [f"{v:g}" for v in xlabels], fontsize=8)
    ax.set_yticks(range(len(ylabels)), [f"{v:g}" for v in ylabels], fontsize=8)
    ax.set_xlabel(xname)
    ax.set_ylabel(yname)
    ax.set_title(title, fontsize=9)
    return im


def run(out_dir: Path, *, quick: bool, progress=None) -> dict:
    """Run E7 into ``out_dir``; see the module docstring."""
    from ..graphs import make_graph
    from ..problems import make_problem

    size = pick(_SIZES, quick)
    out_dir = Path(out_dir)
    problem = make_problem("least_squares", agents=10, dim=5, seed=0)
    graph = make_graph("ring", 10, seed=0)
    lam = float(graph.lambda_max)
    T = size["horizon"]
    # map 1: gamma x step, topk:k=1
    G, H = size["gammas"], size["steps"]
    err1 = np.zeros((len(H), len(G)))
    div1 = np.zeros_like(err1, dtype=bool)
    cells = []
    for i, h in enumerate(H):
        for j, gamma in enumerate(G):
            gains = {"alpha": 2.0, "beta": 2.0, "eta": 1.0, "gamma": float(gamma)}
            sol = solve_flow("observer", problem, graph, "topk:k=1", gains, step=h, horizon=T,
                             record_every=max(1, int(round(T / h / 20))))
            err1[i, j] = sol.final_relative_error
            div1[i, j] = sol.status in ("diverged", "diverging")
            cells.append({"map": "gamma_step", "gamma": gamma, "step": h,
                          "status": sol.status, "final_relative_error": err1[i, j],
                          "message": sol.message})
            if progress is not None:
                progress(f"map 1 h={h:g} gamma={gamma:g}: {sol.status}")
    # map 2: tau x alpha, cyclic scalarizer
    h2 = 2e-3
    A, TAU = size["alphas"], size["taus"]
    d = problem.dim
    err2 = np.zeros((len(A), len(TAU)))
    div2 = np.zeros_like(err2, dtype=bool)
    for i, alpha in enumerate(A):
        for j, tau in enumerate(TAU):
            gains = {"alpha": float(alpha), "beta": float(alpha), "eta": 1.0, "gamma": 0.5 / h2}
            sol = solve_flow("observer", problem, graph, f"scalarize:basis=cyclic,tau={tau:g}",
                             gains, step=h2, horizon=T, record_every=int(round(T / h2 / 20)))
            err2[i, j] = sol.final_relative_error
            div2[i, j] = sol.status in ("diverged", "diverging")
            cells.append({"map": "period_alpha", "alpha": alpha, "tau": tau,
                          "period": d * tau, "status": sol.status,
                          "final_relative_error": err2[i, j], "message": sol.message})
            if progress is not None:
                progress(f"map 2 alpha={alpha:g} tau={tau:g}: {sol.status}")
    write_json(out_dir / "grid.json", cells)
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(12, 5.4), layout="constrained")
    vrange = _log_range((err1, div1), (err2, div2))
    _heatmap(axes[0], err1, div1, G, H, "observer gain gamma", "Euler step h",
             f"top-1, alpha=beta=2, eta=1: log10 final rel. error at T={T:g}", vrange)
    # the two rule boundaries, in cell coordinates (interpolated on the log grid)
    xs = np.log(np.asarray(G, float))
    for level_, style, lbl in ((2.0, "r--", "h gamma L_c = 2"),):
        gx = level_ / np.asarray(H, float)
        axes[0].plot(np.interp(np.log(gx), xs, np.arange(len(G)), left=np.nan,
                               right=np.nan), np.arange(len(H)), style, lw=1.5, label=lbl)
    g_min = 2.0 * 2.0 * lam
    axes[0].axvline(np.interp(np.log(g_min), xs, np.arange(len(G))), color="orange", ls="--",
                    lw=1.5, label="gamma = 2 alpha lambda_max")
    legend_outside(axes[0], below=True, ncol=2)
    periods = [d * t for t in TAU]
    im = _heatmap(axes[1], err2, div2, periods, A, "scalarizer period P = d tau",
                  "alpha = beta", f"cyclic scalarizer, h={h2:g}, gamma={0.5 / h2:g}: log10 error, "
                  f"T={T:g}", vrange)
    px = np.log(np.asarray(periods, float))
    ay = np.log(np.asarray(A, float))
    a_line = np.array(A, float)
    p_line = PERIOD_RULE / (a_line * lam)
    axes[1].plot(np.interp(np.log(p_line), px, np.arange(len(periods)), left=np.nan,
                           right=np.nan), np.interp(np.log(a_line), ay, np.arange(len(A))),
                 "r--", lw=1.5, label=f"P alpha lambda_max = {PERIOD_RULE:g}")
    legend_outside(axes[1], below=True)
    fig.colorbar(im, ax=axes, shrink=0.8, label="log10 final relative error (x = diverged)")
    figure = save_figure(fig, out_dir, "safe_regions.png")

    def table(err, div, cols, rows_, cname, rname):
        head = [f"{rname} \\ {cname}"] + [f"{c:g}" for c in cols]
        body = [[f"{r:g}"] + ["diverged" if div[i, j] else f"{err[i, j]:.1e}"
                              for j in range(len(cols))] for i, r in enumerate(rows_)]
        return md_table(head, body)

    n_div = int(div1.sum() + div2.sum())
    measured = (
        f"lambda_max(L) = {lam:.3g}. Map 1 (rows: step h, columns: gamma):\n\n"
        + table(err1, div1, G, H, "gamma", "h")
        + "\n\nMap 2 (rows: alpha = beta, columns: period P = d tau):\n\n"
        + table(err2, div2, periods, A, "P", "alpha")
        + f"\n\n{n_div} of {div1.size + div2.size} runs diverged."
    )
    return {
        "title": TITLE,
        "setting": (
            f"Least squares N = 10, d = 5 (seed 0), ring (lambda_max = {lam:.3g}), observer "
            f"flow, horizon T = {T:g}, X(0) = 0. Map 1: `topk:k=1`, alpha = beta = 2, eta = 1, "
            f"gamma in {G}, h in {H}. Map 2: `scalarize:basis=cyclic,tau=...`, h = {h2:g}, "
            f"gamma = {0.5 / h2:g}, eta = 1, tau in {TAU} (period P = d tau), alpha = beta in {A}. "
            "Colour: log10 of the final relative error; red x: diverged."
        ),
        "prediction": (
            "**Rule.** (1) Euler: the observer update xhat += h gamma C(.) overshoots when "
            "h gamma L_c > 2, and the primal update when h (alpha lambda_max + eta L_f) "
            "exceeds ~1-2, so large steps diverge; (2) the observer must be faster than the "
            "flow it tracks: gamma well above alpha lambda_max (below, the error stalls or "
            "grows); (3) a scalarizer sends one direction at a time, so its excitation "
            "period must be short against the flow: P alpha lambda_max << 1 (SPEC section 3, "
            "practical rule; `PrimalDualFlow.divergence_cause` flags P alpha lambda_max > "
            "0.5 as a conservative warning). Safe region: small h, gamma between ~2 alpha "
            "lambda_max and 2/(h L_c), and P alpha lambda_max below ~2 (the red line of "
            "map 2, read off the full-size grid: every run below it converged or decayed, "
            "every diverged run or growing error lies above it)."
        ),
        "measured": measured,
        "figures": [figure],
        "captions": {figure: (
            "Grey cells with a red x diverged; the number in a cell is log10 of the final "
            "error, one decimal (more negative is better; the colour scale spans the range "
            "of the cells shown). Left: the safe region lies left of the red "
            "line h gamma L_c = 2 (Euler overshoot); gamma near or below the orange line "
            "(2 alpha lambda_max) converges slowly. Right: the scalarizer is safe below the "
            "red line P alpha lambda_max = 2 (short excitation period, moderate alpha)."
        )},
        "data": {"cells": cells},
    }
