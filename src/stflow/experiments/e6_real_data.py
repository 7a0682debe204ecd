"""E6: real data. Distributed logistic regression (breast cancer) and least squares (diabetes).

Both data sets ship inside the package (:mod:`stflow.datasets`). Rows are shuffled (seed 0),
20% held out for testing, features standardized with the training statistics plus an
intercept column, and the training rows dealt over N = 10 agents in contiguous blocks. The
consensus model (mean of the agents' final x_i) is compared with the centralized solution of
scikit-learn (``LogisticRegression``) and ``scipy.linalg.lstsq``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import fmt, md_table, pick, plt, save_figure, solve_flow, write_run
from ._figures import legend_outside

__all__ = ["NAME", "TITLE", "run", "centralized_logistic", "centralized_least_squares",
           "CASES", "planned_runs"]

NAME = "E6"
TITLE = "Real data: breast cancer and diabetes"

AGENTS = 10
REGULARIZATION = 1e-2
TEST_FRACTION = 0.2
#: data set -> (problem kind, Euler step, gains, horizon); picked so that h * eta * (local
#: curvature) stays well inside the Euler stability region (diabetes has L_f ~ 220).
CASES = {
    "breast_cancer": ("logistic", 2e-2, {"alpha": 3.0, "beta": 3.0, "eta": 2.0, "gamma": 25.0},
                      1000.0),
    "diabetes": ("least_squares", 1e-2, {"alpha": 2.0, "beta": 2.0, "eta": 0.2, "gamma": 50.0},
                 450.0),
}
_SIZES = {
    "full": {"specs": [None, "quantize:bits=4", "topk:k=4"], "horizon_factor": 1.0},
    "quick": {"specs": ["quantize:bits=4"], "horizon_factor": 0.8},
    "tiny": {"specs": [None], "horizon_factor": 0.75},
}


def planned_runs(quick: bool) -> int:
    """One run per data set and flow."""
    return len(CASES) * len(pick(_SIZES, quick)["specs"])


def centralized_logistic(X, y, *, agents: int, regularization: float) -> np.ndarray:
    r"""scikit-learn's L2 logistic regression on the same objective as the agents' sum.

    The agents minimize :math:`\sum_j \log(1 + e^{-y_j a_j^T x}) + N \tfrac{r}{2}\|x\|^2`
    (each of the N local costs carries :math:`\tfrac r2 \|x\|^2`); scikit-learn minimizes
    :math:`C \sum_j \log(1 + e^{-y_j a_j^T x}) + \tfrac12 \|x\|^2`, the same up to a factor
    with :math:`C = 1 / (N r)`. ``fit_intercept=False``: the intercept is a column of X.
    """
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1.0 / (agents * regularization), fit_intercept=False,
                             solver="newton-cg", tol=1e-12, max_iter=10_000)
    clf.fit(X, y)
    return np.asarray(clf.coef_, dtype=float).ravel()


def centralized_least_squares(X, b) -> np.ndarray:
    """``scipy.linalg.lstsq`` on the stacked training rows."""
    from scipy.linalg import lstsq

    return lstsq(X, b)[0]


def _score(kind, X, y, w):
    from ..datasets import accuracy, r2_score

    return accuracy(X, y, w) if kind == "logistic" else r2_score(X, y, w)


def run(out_dir: Path, *, quick: bool, progress=None) -> dict:
    """Run E6 into ``out_dir``; see the module docstring."""
    from ..datasets import dataset_problem
    from ..graphs import make_graph

    size = pick(_SIZES, quick)
    out_dir = Path(out_dir)
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(11, 4.4))
    rows, agreement = [], {}
    for ax, (name, (kind, step, gains, horizon)) in zip(axes, CASES.items(), strict=True):
        reg = REGULARIZATION if kind == "logistic" else 0.0
        problem, split = dataset_problem(name, kind, agents=AGENTS, regularization=reg,
                                         test_fraction=TEST_FRACTION, seed=0)
        if kind == "logistic":
            w_central = centralized_logistic(split.X_train, split.y_train, agents=AGENTS,
                                             regularization=reg)
            metric = "test accuracy"
        else:
            w_central = centralized_least_squares(split.X_train, split.y_train)
            metric = "test R^2"
        graph = make_graph("ring", AGENTS, chords=2, seed=0)
        central_score = _score(kind, split.X_test, split.y_test, w_central)
        for spec in size["specs"]:
            flow_kind = "uncompressed" if spec is None else "observer"
            sol = solve_flow(flow_kind, problem, graph, spec, gains, step=step,
                             horizon=horizon * size["horizon_factor"],
                             record_every=500, tolerance=1e-8)
            label = f"{name}-{spec or 'uncompressed'}"
            w = sol.state["X"].mean(axis=0)
            rel = float(np.linalg.norm(w - w_central) / np.linalg.norm(w_central))
            score = _score(kind, split.X_test, split.y_test, w)
            agreement[label] = {"relative_error_vs_centralized": rel, "score": score,
                                "centralized_score": central_score, "metric": metric,
                                "status": sol.status}
            write_run(out_dir, label, sol, {"flow": flow_kind, "compressor": spec,
                                            "gains": gains, "step": step, "dataset": name,
                                            "relative_error_vs_centralized": rel,
                                            metric.replace(" ", "_"): score})
            rec = sol.records
            ax.semilogy(rec["t"], rec["relative_error"], lw=1.2, label=spec or "uncompressed")
            rows.append([name, f"`{spec or 'uncompressed'}`", sol.status, fmt(rel, ".2e"),
                         "yes" if rel <= 1e-6 else "**no**", metric, fmt(score, ".4f"),
                         fmt(central_score, ".4f")])
            if progress is not None:
                progress(f"{label}: {rel:.1e}")
        ax.set_title(f"{name}: {kind}, N = {AGENTS}, d = {problem.dim}", fontsize=10)
        ax.set_xlabel("time t")
        ax.set_ylabel("relative error to x*")
        ax.grid(True, which="both", alpha=0.3)
        legend_outside(ax, below=True, ncol=2)
    figure = save_figure(fig, out_dir, "real_data.png")
    ok = all(v["relative_error_vs_centralized"] <= 1e-6 for v in agreement.values())
    measured = md_table(
        ["data set", "flow / compressor", "status", "rel. error vs centralized", "<= 1e-6",
         "metric", "consensus model", "centralized"], rows)
    measured += ("\n\nEvery consensus model equals the centralized one to 1e-6." if ok else
                 "\n\n**Some consensus model is farther than 1e-6 from the centralized one.**")
    return {
        "title": TITLE,
        "setting": (
            f"Breast cancer (569 x 30, binary) with L2-regularized logistic regression, "
            f"regularization {REGULARIZATION:g} per agent, and diabetes (442 x 10) with least "
            f"squares; shuffled with seed 0, {TEST_FRACTION:.0%} test rows, standardized with "
            f"training statistics, intercept column, N = {AGENTS} agents in contiguous blocks "
            "(shorter blocks zero-padded, which changes nothing: see `stflow.datasets`), ring "
            "+ 2 chords. Centralized: scikit-learn `LogisticRegression(C = 1/(N reg), "
            "fit_intercept=False, solver=\"newton-cg\", tol=1e-12)` on the same objective, and "
            "`scipy.linalg.lstsq`. Flows: uncompressed and observer; "
            + "; ".join(f"{n}: step {c[1]:g}, gains {c[2]}, horizon {c[3] * size['horizon_factor']:g}"
                        for n, c in CASES.items())
            + ". The consensus model is the mean of the agents' final x_i."
        ),
        "prediction": (
            "The equilibrium of every flow is x_i = x* for all i, so the consensus model must "
            "equal the centralized solution (here to relative error 1e-6), and its test "
            "accuracy (R^2 for diabetes) must be the centralized one."
        ),
        "measured": measured,
        "figures": [figure],
        "captions": {figure: (
            "Each panel is one data set; the curves of its flows lie on top of each other "
            "and fall steadily on this log scale to below 1e-6, where the consensus model "
            "equals the centralized scikit-learn / scipy solution (table above)."
        )},
        "data": {"agreement": agreement},
    }
