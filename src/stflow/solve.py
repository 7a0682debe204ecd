"""Drivers: the pinned explicit Euler loop and ``solve_ivp``, returning a :class:`Solution`.

The flow says what moves (:mod:`stflow.flows`), this module steps it and decides when to stop,
and :class:`stflow.metrics.Recorder` keeps what is recorded.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .interrupts import catch_interrupts
from .metrics import Recorder, fitted_rate

__all__ = ["Solution", "solve", "SOLVER_METHODS", "GROWTH_LIMIT"]

SOLVER_METHODS = ("euler", "continuous")
#: A run whose state norm exceeds this factor times its initial scale is declared diverged.
GROWTH_LIMIT = 1e6


@dataclass
class Solution:
    """Result of :func:`solve`.

    Attributes
    ----------
    status : str
        ``"converged"`` (final relative error <= tolerance); above it, from the trend over
        the last third of the record (:func:`stflow.status.classify`): ``"not_converged"``
        (still decreasing: run longer), ``"stalled"`` (stopped decreasing) or
        ``"diverging"`` (growing); ``"diverged"`` (non-finite or grown
        :data:`GROWTH_LIMIT`-fold) or ``"interrupted"`` (SIGINT/SIGTERM).
    message : str
        One sentence explaining the status (for ``diverged``: the likely cause).
    records : dict of arrays
        One array per column of :data:`stflow.metrics.METRIC_COLUMNS`.
    state : dict of arrays
        Final (last finite) state.
    """

    status: str
    message: str
    steps: int
    t_final: float
    grad_evals: int
    bits_per_message: int
    bits_per_agent: float
    records: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    tolerance: float
    wall_seconds: float
    extra: dict = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        """True when the final relative error is within tolerance."""
        return self.status == "converged"

    @property
    def final_relative_error(self) -> float:
        return float(self.records["relative_error"][-1])

    @property
    def final_consensus_error(self) -> float:
        return float(self.records["consensus_error"][-1])

    @property
    def fitted_rate(self) -> float:
        """Exponential decay rate of the relative error (see :func:`metrics.fitted_rate`)."""
        return fitted_rate(self.records["t"], self.records["relative_error"])

    def summary(self) -> dict:
        """The JSON-ready summary (without the config)."""

        def clean(x):
            return None if isinstance(x, float) and not math.isfinite(x) else x

        return {
            "converged": self.converged,
            "status": self.status,
            "message": self.message,
            "final_relative_error": clean(self.final_relative_error),
            "final_consensus_error": clean(self.final_consensus_error),
            "final_optimality_gap": clean(float(self.records["optimality_gap"][-1])),
            "steps": self.steps,
            "t_final": self.t_final,
            "grad_evals": self.grad_evals,
            "bits_per_message": self.bits_per_message,
            "bits_per_agent": self.bits_per_agent,
            "fitted_rate": clean(self.fitted_rate),
            "tolerance": self.tolerance,
            "wall_seconds": self.wall_seconds,
            **self.extra,
        }


def solve(
    flow,
    *,
    step: float,
    horizon: float,
    method: str = "euler",
    record_every: int = 100,
    tolerance: float = 1e-8,
    x0=None,
    v0=None,
    progress: bool = False,
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> Solution:
    r"""Integrate ``flow`` from ``X(0) = x0, V(0) = v0`` over ``[0, horizon]``.

    ``method="euler"`` takes ``steps = round(horizon / step)`` pinned Euler steps (SPEC
    section 5), one communication round each, recording metrics at step 0, every
    ``record_every`` steps and at the last step. ``method="continuous"`` uses
    ``scipy.integrate.solve_ivp`` (RK45, ``rtol``/``atol``) and records at the same times; it
    reports no bits. A state that turns non-finite or grows :data:`GROWTH_LIMIT`-fold stops the
    run with status ``"diverged"``, keeping the rows recorded so far.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> import scipy.sparse as sp
    >>> from stflow.flows import Gains, PrimalDualFlow
    >>> graph = SimpleNamespace(laplacian=sp.csr_matrix([[1.0, -1.0], [-1.0, 1.0]]),
    ...                         degree=np.array([1, 1]), n=2, lambda_max=2.0)
    >>> problem = SimpleNamespace(n_agents=2, dim=1, grad=lambda X: X - [[1.0], [3.0]],
    ...     x_star=np.array([2.0]), f_star=1.0, smoothness=1.0,
    ...     total_value=lambda x: float((x[0] - 1) ** 2 / 2 + (x[0] - 3) ** 2 / 2))
    >>> flow = PrimalDualFlow("uncompressed", problem, graph,
    ...                       gains=Gains(alpha=1.0, beta=1.0, eta=1.0, gamma=1.0))
    >>> sol = solve(flow, step=0.01, horizon=40.0, tolerance=1e-8)
    >>> sol.status, sol.steps, sol.final_relative_error < 1e-8
    ('converged', 4000, True)
    """
    if method not in SOLVER_METHODS:
        raise InputError(
            f"[solver] method must be one of {', '.join(SOLVER_METHODS)} (got {method!r})"
        )
    if not (math.isfinite(step) and step > 0):
        raise InputError(f"[solver] step must be a positive number (got {step!r}): e.g. 1e-3")
    if not (math.isfinite(horizon) and horizon > 0):
        raise InputError(f"[solver] horizon must be a positive number (got {horizon!r})")
    if int(record_every) < 1:
        raise InputError(f"[solver] record_every must be >= 1 (got {record_every!r})")
    if not tolerance > 0:
        raise InputError(f"[solver] tolerance must be positive (got {tolerance!r})")
    n_steps = max(1, int(round(horizon / step)))
    state = flow.initial_state(x0=x0, v0=v0)
    if method == "euler":
        return _solve_euler(flow, state, step, n_steps, int(record_every), tolerance, progress)
    return _solve_continuous(flow, state, step, n_steps, int(record_every), tolerance, rtol, atol)


def _scale(flow, state) -> float:
    n = flow.n_agents
    x_star = getattr(flow.problem, "x_star", np.zeros(flow.dim))
    return max(
        float(np.linalg.norm(state["X"])), math.sqrt(n) * float(np.linalg.norm(x_star)), 1.0
    )


def _blown_up(state, limit: float) -> bool:
    for arr in state.values():
        norm = float(np.linalg.norm(arr))
        if not math.isfinite(norm) or norm > limit:
            return True
    return False


def _solve_euler(flow, state, h, n_steps, record_every, tolerance, progress) -> Solution:
    rec = Recorder(
        flow.problem,
        bits_per_message=flow.bits_per_message,
        mean_degree=float(np.mean(flow.graph.degree)),
    )
    limit = GROWTH_LIMIT * _scale(flow, state)
    check_every = min(record_every, 50)
    start = time.perf_counter()
    rec.record(0, 0.0, state["X"])
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_steps, unit="step", leave=False)
    diverged_at = interrupted = None
    with catch_interrupts() as flag:
        for k in range(n_steps):
            new = flow.step(state, k * h, h)
            done = k + 1
            if done % check_every == 0 or done == n_steps:
                if _blown_up(new, limit):
                    diverged_at = done
                    break
            state = new
            if done % record_every == 0 or done == n_steps:
                rec.record(done, done * h, state["X"])
                if bar is not None:
                    bar.update(done - bar.n)
            if flag.requested:
                if rec.last_step != done:
                    rec.record(done, done * h, state["X"])
                interrupted = flag.signal
                break
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - start
    steps_done = rec.last_step if diverged_at is None else diverged_at
    records = rec.columns()
    if diverged_at is not None:
        status = "diverged"
        message = (
            f"state became non-finite or grew {GROWTH_LIMIT:.0e}-fold by step {diverged_at} "
            f"(t = {diverged_at * h:.4g}); likely cause: {flow.divergence_cause(h)}"
        )
    elif interrupted is not None:
        status = "interrupted"
        message = (
            f"interrupted by {interrupted} at step {steps_done} of {n_steps} "
            f"(t = {steps_done * h:.4g}); the rows recorded up to it are kept"
        )
    else:
        status, message = _classify(records, tolerance)
    return Solution(
        status=status,
        message=message,
        steps=int(steps_done),
        t_final=float(steps_done * h),
        grad_evals=int(steps_done * flow.n_agents),
        bits_per_message=flow.bits_per_message,
        bits_per_agent=float(steps_done * flow.bits_per_message),
        records=records,
        state=state,
        tolerance=tolerance,
        wall_seconds=wall,
    )


def _classify(records, tolerance) -> tuple[str, str]:
    from .status import classify

    return classify(records, tolerance)


def _solve_continuous(flow, state, h, n_steps, record_every, tolerance, rtol, atol) -> Solution:
    from scipy.integrate import solve_ivp

    keys = flow.state_keys
    shape = (flow.n_agents, flow.dim)
    size = shape[0] * shape[1]

    def unpack(y):
        return {k: y[i * size : (i + 1) * size].reshape(shape) for i, k in enumerate(keys)}

    def rhs(t, y):
        field_ = flow.vector_field(t, unpack(y))
        return np.concatenate([field_[k].ravel() for k in keys])

    rec_steps = list(range(0, n_steps, record_every)) + [n_steps]
    t_eval = np.array(rec_steps, dtype=float) * h
    y0 = np.concatenate([state[k].ravel() for k in keys])
    start = time.perf_counter()
    out = solve_ivp(rhs, (0.0, t_eval[-1]), y0, t_eval=t_eval, rtol=rtol, atol=atol)
    wall = time.perf_counter() - start
    rec = Recorder(flow.problem, bits_per_message=0, mean_degree=0.0)
    for j in range(out.y.shape[1]):
        rec.record(rec_steps[j], out.t[j], unpack(out.y[:, j])["X"])
    records = rec.columns()
    final_state = unpack(out.y[:, -1])
    if not out.success or _blown_up(final_state, GROWTH_LIMIT * _scale(flow, state)):
        status, message = "diverged", f"solve_ivp stopped: {out.message}"
    else:
        status, message = _classify(records, tolerance)
    return Solution(
        status=status,
        message=message,
        steps=int(rec_steps[out.y.shape[1] - 1]) if out.y.shape[1] else 0,
        t_final=float(out.t[-1]) if out.t.size else 0.0,
        grad_evals=int(out.nfev * flow.n_agents),
        bits_per_message=0,
        bits_per_agent=0.0,
        records=records,
        state=final_state,
        tolerance=tolerance,
        wall_seconds=wall,
        extra={"rhs_evaluations": int(out.nfev)},
    )
