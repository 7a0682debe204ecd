"""The simulator: the engine with one block holding every agent (and ``solve_ivp``).

A method (:mod:`stflow.methods`) says what a block of agents sends and how it updates; this
module steps it round after round on one block, decides when to stop, and
:class:`stflow.metrics.Recorder` keeps what is recorded. :func:`solve` returns a
:class:`Solution`. The MPI engine (:mod:`stflow.engines.mpi`) runs the same methods with one
block per rank.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..interrupts import catch_interrupts
from ..metrics import Recorder, fitted_rate
from .driver import BitCounter, LocalExchange, RoundDriver, RoundStopped

__all__ = ["Solution", "solve", "SOLVER_METHODS", "GROWTH_LIMIT", "BitCounter"]

#: ``[solver] scheme``: a scheme of the primal-dual flows (the peers have one update,
#: so every scheme runs their paper's iteration), or ``solve_ivp``.
SOLVER_METHODS = ("euler", "predict", "gauss_seidel", "continuous")
#: A run whose state norm exceeds this factor times its initial scale is declared diverged.
GROWTH_LIMIT = 1e6


@dataclass
class Solution:
    """Result of :func:`solve`.

    Attributes
    ----------
    status : str
        ``"converged"`` (final relative error <= tolerance, or the mean agent test accuracy
        reached ``target_accuracy``); above it, from the trend over the last third of the
        record (:func:`stflow.status.classify`): ``"not_converged"`` (still decreasing: run
        longer), ``"stalled"`` (stopped decreasing) or ``"diverging"`` (growing);
        ``"diverged"`` (non-finite or grown :data:`GROWTH_LIMIT`-fold) or ``"interrupted"``
        (SIGINT/SIGTERM).
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
            **self._learning_summary(clean),
            **self.extra,
        }

    def _learning_summary(self, clean) -> dict:
        r = self.records
        out = {}
        for key, col in (("samples_per_agent", "samples_per_agent"),
                         ("modeled_seconds", "modeled_seconds"),
                         ("final_train_loss", "train_loss"),
                         ("final_test_accuracy", "test_accuracy"),
                         ("mean_agent_test_accuracy", "mean_agent_test_accuracy"),
                         ("worst_agent_test_accuracy", "worst_agent_test_accuracy")):
            if col in r and len(r[col]):
                out[key] = clean(float(r[col][-1]))
        return out


def solve(
    flow,
    *,
    step: float,
    horizon: float,
    method: str | None = None,
    record_every: int = 100,
    tolerance: float = 1e-8,
    x0=None,
    v0=None,
    progress: bool = False,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    local_steps: int = 1,
    stop=None,
    step_decay: float | None = None,
    target_accuracy: float | None = None,
    time_model=None,
    channel=None,
) -> Solution:
    r"""Run method ``flow`` from ``X(0) = x0, V(0) = v0`` over ``[0, horizon]`` on one block.

    ``steps = round(horizon / step)`` rounds, one communication round each (for the
    primal-dual flows ``method`` picks the scheme: ``euler``, SPEC section 5's pinned one,
    ``predict`` or ``gauss_seidel``; ``None`` keeps the flow's own), recording metrics at step
    0, every ``record_every`` steps and at the last step. ``method="continuous"`` uses
    ``scipy.integrate.solve_ivp`` (RK45, ``rtol``/``atol``) and records at the same times; it
    reports no bits. A state that turns non-finite or grows :data:`GROWTH_LIMIT`-fold stops the
    run with status ``"diverged"``, keeping the rows recorded so far. ``local_steps = K``
    makes K - 1 local updates without messages before each round (SPEC section 7). Ctrl-C
    (``KeyboardInterrupt``) or ``stop.requested`` becoming true ends the run after the current
    step with status ``"interrupted"`` and a last row at the step reached. ``step_decay = k0``
    scales step k by :math:`1 / (1 + k / k_0)` (the flows' h, the peers' lr; the clock
    advances by the scaled step). ``target_accuracy`` judges classification runs by the mean
    agent test accuracy; ``time_model`` (:class:`stflow.metrics.TimeModel`) fills
    ``modeled_seconds``. ``channel`` (:class:`stflow.network.Channel`) loses messages, puts
    agents to sleep and schedules links; every round goes through
    :class:`stflow.engines.driver.RoundDriver` (``docs/network.md``).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> import scipy.sparse as sp
    >>> from stflow import Gains, PrimalDualFlow
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
    if method is not None and method not in SOLVER_METHODS:
        raise InputError(
            f"[solver] scheme must be one of {', '.join(SOLVER_METHODS)} (got {method!r}): "
            "pick one of those"
        )
    if not (isinstance(step, int | float) and math.isfinite(step) and step > 0):
        raise InputError(f"[solver] step must be a positive number (got {step!r}): e.g. 1e-3")
    if not (isinstance(horizon, int | float) and math.isfinite(horizon) and horizon > 0):
        raise InputError(
            f"[solver] horizon must be a positive number (got {horizon!r}): e.g. horizon = 30"
        )
    if step > horizon * (1 + 1e-12):
        raise InputError(
            f"[solver] step must not exceed horizon (got step={step:g} > horizon={horizon:g}): "
            "lower step or raise horizon"
        )
    if int(record_every) < 1:
        raise InputError(f"[solver] record_every must be >= 1 (got {record_every!r})")
    if not tolerance > 0:
        raise InputError(f"[solver] tolerance must be positive (got {tolerance!r}): e.g. 1e-8")
    if isinstance(local_steps, bool) or not isinstance(local_steps, int) or local_steps < 1:
        raise InputError(
            f"[solver] local_steps must be an integer >= 1 (got {local_steps!r}): e.g. 1"
        )
    if local_steps > 1 and not flow.local_steps_ok:
        flow.local_update(None, 0.0, step)  # raises the method's clear error
    n_steps = max(1, int(round(horizon / step)))
    if method == "continuous":
        if not flow.continuous_ok:
            flow.vector_field(0.0, None)  # raises the method's clear error
        _check_continuous(flow)
        state = flow.initial_state(x0=x0, v0=v0)
        return _solve_continuous(flow, state, step, n_steps, int(record_every), tolerance,
                                 rtol, atol)
    if method is not None and hasattr(flow, "scheme"):
        flow.scheme = method
    state = flow.initial_state(x0=x0, v0=v0)
    return _solve_rounds(flow, state, step, n_steps, int(record_every), tolerance, progress,
                         int(local_steps), stop, step_decay, target_accuracy, time_model,
                         channel)


def rows_per_eval(problem) -> np.ndarray:
    """Rows one gradient evaluation of each agent reads, ``(n,)``: the minibatch B, or all
    m_i rows for full gradients; 1 for costs without rows (quadratic)."""
    for name in ("samples_per_eval", "rows_per_agent"):
        value = getattr(problem, name, None)
        if value is not None:
            return np.asarray(value, dtype=float).reshape(-1)
    A = getattr(problem, "A", None)
    if isinstance(A, np.ndarray) and A.ndim == 3:
        return np.full(A.shape[0], float(A.shape[1]))
    return np.ones(int(problem.n_agents))


def samples_per_eval(problem) -> tuple[float, float]:
    """(mean, max) over agents of :func:`rows_per_eval`."""
    arr = rows_per_eval(problem)
    return float(arr.mean()), float(arr.max())


def make_recorder(flow, problem, *, local_steps: int = 1, time_model=None,
                  samples=None) -> Recorder:
    """The :class:`Recorder` of a run (shared by both engines)."""
    mean_spe, max_spe = samples_per_eval(problem) if samples is None else samples
    rs = fixed = 0.0
    bandwidth = math.inf
    if time_model is not None:
        rs = time_model.round_seconds(bits_per_message=flow.bits_per_message,
                                      samples_per_eval=max_spe, local_steps=local_steps)
        fixed = time_model.fixed_seconds(samples_per_eval=max_spe, local_steps=local_steps)
        bandwidth = time_model.bandwidth
    return Recorder(problem, bits_per_message=flow.bits_per_message,
                    mean_degree=float(np.mean(flow.graph.degree)),
                    samples_per_eval=mean_spe, round_seconds=rs, fixed_seconds=fixed,
                    bandwidth=bandwidth)


def _check_continuous(flow) -> None:
    comp = getattr(flow, "compressor", None)
    if comp is not None and not comp.linear:
        raise InputError(
            f"[solver] scheme = \"continuous\" needs a compressor continuous in z (got "
            f"{comp.spec!r}, which switches discontinuously, so solve_ivp's step control "
            "chatters at its switching surfaces): use method = \"euler\" with a small step, "
            "or a linear compressor (scalarize, randk)"
        )


def _scale(flow, state) -> float:
    n = flow.n_agents
    x_star = getattr(flow.problem, "x_star", None)
    x_norm = 0.0 if x_star is None else float(np.linalg.norm(x_star))
    return max(float(np.linalg.norm(state["X"])), math.sqrt(n) * x_norm, 1.0)


def _blown_up(state, limit: float) -> bool:
    for arr in state.values():
        norm = float(np.linalg.norm(arr))
        if not math.isfinite(norm) or norm > limit:
            return True
    return False


def _solve_rounds(flow, state, h, n_steps, record_every, tolerance, progress, local_steps,
                  stop, step_decay=None, target_accuracy=None, time_model=None,
                  channel=None) -> Solution:
    rec = make_recorder(flow, flow.problem, local_steps=local_steps, time_model=time_model)
    driver = RoundDriver(flow, LocalExchange(flow), channel)
    counter = driver.counter
    limit = GROWTH_LIMIT * _scale(flow, state)
    check_every = min(record_every, 50)
    start = time.perf_counter()
    rec.record(0, 0.0, state["X"], draws=flow.draws)
    bar = None
    if progress:  # a tqdm bar in a terminal, plain lines at intervals elsewhere
        from ..progress import progress_bar

        bar = progress_bar(total=n_steps, desc="stflow run", unit="round")
    diverged_at = interrupted_at = None
    done = 0
    t_next = 0.0
    hk = h
    signal_name = "SIGINT"
    # overflow on the way to a blow-up is reported once, as status "diverged" (the batched
    # engine does the same), not as numpy warnings
    with catch_interrupts() as flag, np.errstate(over="ignore", invalid="ignore"):
        stop_flags = [flag] if stop is None else [flag, stop]

        def stop_now() -> bool:  # asked between local updates (huge local_steps)
            return any(f.requested for f in stop_flags)

        try:
            for k in range(n_steps):
                if step_decay is None:
                    t = k * h
                else:
                    scale = 1.0 / (1.0 + k / step_decay)
                    flow.set_step_scale(scale)
                    t, hk = t_next, h * scale
                    t_next = t + hk
                new = driver.round(state, k, t, hk, local_steps, stop=stop_now)
                done = k + 1
                if done % check_every == 0 or done == n_steps:
                    if _blown_up(new, limit):
                        diverged_at = done
                        break
                state = new
                if done % record_every == 0 or done == n_steps:
                    rec.record(done, done * h if step_decay is None else t_next, state["X"],
                               draws=flow.draws, bits=counter.per_agent(flow.n_agents),
                               slowest_bits=counter.slowest())
                    if bar is not None:
                        bar.update(done - bar.n)
                if done < n_steps and any(f.requested for f in stop_flags):
                    interrupted_at = done
                    signal_name = getattr(flag, "signal", None) or "a stop request"
                    break
        except RoundStopped:  # asked during the local updates: the round is abandoned
            interrupted_at = done
            signal_name = (f"{getattr(flag, 'signal', None) or 'a stop request'} during the "
                           f"local updates of round {done + 1} (abandoned)")
        except KeyboardInterrupt:  # a second Ctrl-C, or one raised outside the handler
            interrupted_at = done
        except BaseException:
            if bar is not None:  # no progress lines after a failed run
                bar.close()
            raise
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - start
    t_of = (lambda n: n * h) if step_decay is None else (lambda n: t_next)
    if interrupted_at is not None and rec.last_step != interrupted_at:
        rec.record(interrupted_at, t_of(interrupted_at), state["X"], draws=flow.draws,
                   bits=counter.per_agent(flow.n_agents), slowest_bits=counter.slowest())
    records = rec.columns()
    steps_run = diverged_at if diverged_at is not None else rec.last_step
    if diverged_at is not None:
        status = "diverged"
        message = _diverged_message(flow, channel, h, diverged_at, t_of(diverged_at))
    elif interrupted_at is not None:
        status = "interrupted"
        message = _interrupted_message(signal_name, interrupted_at, n_steps,
                                       t_of(interrupted_at))
    else:
        status, message = _classify(records, tolerance, target_accuracy,
                                    getattr(flow, "stall_hint", None))
    return Solution(
        status=status,
        message=message,
        steps=int(steps_run),
        t_final=float(t_of(steps_run)),
        grad_evals=int(flow.draws * flow.n_agents),
        bits_per_message=flow.bits_per_message,
        bits_per_agent=float(steps_run * flow.bits_per_message) if not counter.on
        else counter.per_agent(flow.n_agents)[0],
        records=records,
        state=state,
        tolerance=tolerance,
        wall_seconds=wall,
    )


def _diverged_message(method, channel, step, at: int, t: float) -> str:
    """The ``diverged`` status line of every engine: where, and the likely cause (the
    method's, then the lossy channel's when there is one)."""
    return (f"state became non-finite or grew {GROWTH_LIMIT:.0e}-fold by step {at} "
            f"(t = {t:.4g}); likely cause: {method.divergence_cause(step)}"
            + ("" if channel is None else channel.divergence_hint()))


def _interrupted_message(by: str, at: int, n_steps: int, t: float) -> str:
    """The ``interrupted`` status line of every engine."""
    return (f"interrupted by {by} at step {at} of {n_steps} (t = {t:.4g}); the rows recorded "
            "up to it are kept")


def _classify(records, tolerance, target_accuracy=None, hint=None) -> tuple[str, str]:
    acc = records.get("mean_agent_test_accuracy")
    if target_accuracy is not None:
        if acc is None:
            raise InputError(
                "[solver] target_accuracy needs a classification problem with held-out test "
                "rows (softmax, logistic or mlp on a data set with test_fraction > 0, or a "
                "cost of your own with a test_accuracy(X) method): remove it or set "
                "test_fraction"
            )
        final = float(acc[-1])
        if final >= target_accuracy:
            return "converged", (f"mean agent test accuracy {final:.4f} >= target "
                                 f"{target_accuracy:.4f}")
        return "not_converged", (f"mean agent test accuracy {final:.4f} < target "
                                 f"{target_accuracy:.4f}: raise [solver] horizon or tune")
    if not np.any(np.isfinite(records["relative_error"])):
        return "not_converged", ("no optimum x* for this problem, so no relative error: set "
                                 "[solver] target_accuracy to judge the run (a cost of your "
                                 "own needs a test_accuracy(X) method for it)")
    from ..status import classify

    return classify(records, tolerance) if hint is None else classify(records, tolerance, hint)


def _solve_continuous(flow, state, h, n_steps, record_every, tolerance, rtol, atol) -> Solution:
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
    rec = Recorder(flow.problem, bits_per_message=0, mean_degree=0.0)
    start = time.perf_counter()
    with catch_interrupts() as flag:
        out = _integrate(rhs, y0, t_eval, rtol, atol, stop=lambda: flag.requested, h=h,
                         record=lambda k, t, y: rec.record(k, t, unpack(y)["X"]))
    wall = time.perf_counter() - start
    records = rec.columns()
    final_state = unpack(out["y"])
    if out["interrupted"]:
        status = "interrupted"
        message = (f"interrupted by {flag.signal or 'a stop request'} at t = "
                   f"{out['t_reached']:.4g} of {t_eval[-1]:g} (the integration reached step "
                   f"{rec.last_step} of {n_steps}); the rows recorded up to it are kept")
    elif not out["success"] or _blown_up(final_state, GROWTH_LIMIT * _scale(flow, state)):
        status, message = "diverged", f"solve_ivp stopped: {out['message']}"
    else:
        status, message = _classify(records, tolerance)
    return Solution(
        status=status,
        message=message,
        steps=int(rec.last_step),
        t_final=float(records["t"][-1]) if len(records["t"]) else 0.0,
        grad_evals=int(out["nfev"] * flow.n_agents),
        bits_per_message=0,
        bits_per_agent=0.0,
        records=records,
        state=final_state,
        tolerance=tolerance,
        wall_seconds=wall,
        extra={"rhs_evaluations": int(out["nfev"])},
    )


def _integrate(rhs, y0, t_eval, rtol, atol, *, stop, h, record) -> dict:
    """``scipy.integrate.solve_ivp(rhs, (0, t_eval[-1]), y0, t_eval=t_eval)`` (RK45), step by
    step as ``solve_ivp`` does it (the same numbers), calling ``record(step, t, y)`` at each
    point of ``t_eval`` as it is passed and asking ``stop()`` between steps: a stop ends
    the integration with a last record at the last whole step ``k`` (``t = k h``) reached.

    Examples
    --------
    >>> from scipy.integrate import solve_ivp
    >>> rows = []
    >>> t_eval = np.array([0.0, 0.5, 1.0])
    >>> out = _integrate(lambda t, y: -y, np.array([1.0]), t_eval, 1e-10, 1e-12,
    ...                  stop=lambda: False, h=0.5, record=lambda k, t, y: rows.append(y[0]))
    >>> ref = solve_ivp(lambda t, y: -y, (0.0, 1.0), [1.0], t_eval=t_eval, rtol=1e-10,
    ...                 atol=1e-12)
    >>> rows == list(ref.y[0]), out["nfev"] == ref.nfev, out["success"]
    (True, True, True)
    """
    from scipy.integrate import RK45

    solver = RK45(rhs, 0.0, y0, float(t_eval[-1]), rtol=rtol, atol=atol)
    steps = np.rint(t_eval / h).astype(int)
    # t_eval[0] = 0: solve_ivp takes it from the first step's interpolant, which is y0 itself
    # at t_old = 0; recorded now, so a stop before the first step still has its row
    record(int(steps[0]), t_eval[0], y0)
    i, message, y_last = 1, None, y0
    crossed = (0, None)  # the last whole step k passed and the interpolant of its RK step
    while True:
        if stop():
            k, dense = crossed
            if i and k > steps[i - 1]:
                y_last = dense(k * h)
                record(k, k * h, y_last)
            return {"interrupted": True, "success": True, "message": "interrupted",
                    "y": y_last, "nfev": solver.nfev, "t_reached": solver.t}
        message = solver.step()
        if solver.status == "failed":
            break
        k = int(np.floor(solver.t / h + 1e-9))
        if k > crossed[0] and k * h <= solver.t:
            crossed = (k, solver.dense_output())
        j = int(np.searchsorted(t_eval, solver.t, side="right"))
        if j > i:
            ys = solver.dense_output()(t_eval[i:j])
            for c in range(j - i):
                record(int(steps[i + c]), t_eval[i + c], ys[:, c])
            y_last, i = ys[:, -1], j
        if solver.status == "finished":
            break
    return {"interrupted": False, "success": solver.status != "failed", "message": message,
            "y": y_last, "nfev": solver.nfev, "t_reached": solver.t}
