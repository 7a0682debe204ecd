"""Metrics of SPEC sections 6-8: errors, consensus, bits, samples, modeled time, accuracy.

Everything here is a pure function of the stacked state ``X: (N, d)`` (plus the problem for
the optimality gap and the accuracies), a :class:`TimeModel` for a round's duration on a
network (SPEC section 8), and a :class:`Recorder` that keeps one row per recorded step.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "METRIC_COLUMNS",
    "LEARNING_COLUMNS",
    "TimeModel",
    "relative_error",
    "consensus_error",
    "optimality_gap",
    "fitted_rate",
    "Recorder",
]

#: Column order of ``metrics.csv``.
METRIC_COLUMNS = (
    "step",
    "t",
    "relative_error",
    "consensus_error",
    "optimality_gap",
    "bits_per_agent",
    "bits_per_agent_p2p",
    "samples_per_agent",
    "modeled_seconds",
)
#: Extra columns of classification problems (held-out test rows; SPEC section 7).
LEARNING_COLUMNS = (
    "train_loss",
    "test_accuracy",
    "mean_agent_test_accuracy",
    "worst_agent_test_accuracy",
)


def relative_error(X: np.ndarray, x_star: np.ndarray) -> float:
    r"""Distance of every agent to the optimum, relative to the optimum's size.

    .. math:: \frac{\|X - \mathbf 1 x^{*T}\|_F}{\sqrt N \max(\|x^*\|, 10^{-12})}

    Examples
    --------
    >>> relative_error(np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([2.0, 0.0]))
    0.5
    """
    n = X.shape[0]
    return float(
        np.linalg.norm(X - x_star[None, :]) / (math.sqrt(n) * max(np.linalg.norm(x_star), 1e-12))
    )


def consensus_error(X: np.ndarray) -> float:
    r"""Spread of the agents around their mean.

    .. math:: \frac{\|X - \mathbf 1 \bar x^T\|_F}{\sqrt N}, \qquad \bar x = \tfrac1N \sum_i x_i

    Examples
    --------
    >>> consensus_error(np.array([[1.0, 0.0], [3.0, 0.0]]))
    1.0
    """
    n = X.shape[0]
    return float(np.linalg.norm(X - X.mean(axis=0)) / math.sqrt(n))


def optimality_gap(problem, X: np.ndarray) -> float:
    r"""Suboptimality of the agents' mean on the global cost.

    .. math:: \sum_i f_i(\bar x) - \sum_i f_i(x^*)

    ``problem`` must offer ``total_value(x)`` and ``f_star``.
    """
    return float(problem.total_value(X.mean(axis=0)) - problem.f_star)


def fitted_rate(t: np.ndarray, error: np.ndarray, *, floor: float = 1e-13) -> float:
    r"""Exponential rate :math:`\lambda` fitted to ``error ~ c exp(-lambda t)``.

    Least squares on :math:`\log` of the error over the recorded points that lie between
    ``floor`` (rounding) and the first tenth of the initial error (past the transient). When
    fewer than three such points exist, all points above ``floor`` are used. Returns ``nan``
    when fewer than two usable points remain.

    Examples
    --------
    >>> t = np.linspace(0, 5, 51)
    >>> round(fitted_rate(t, 3.0 * np.exp(-2.0 * t)), 6)
    2.0
    """
    t = np.asarray(t, dtype=float)
    e = np.asarray(error, dtype=float)
    ok = np.isfinite(e) & (e > floor)
    if ok.sum() < 2:
        return float("nan")
    start = e[ok][0]
    tail = ok & (e <= 0.1 * start)
    sel = tail if tail.sum() >= 3 else ok
    slope = np.polyfit(t[sel], np.log(e[sel]), 1)[0]
    return float(-slope)


def _accuracy_at(problem, x: np.ndarray) -> float:
    """Test accuracy of one model ``x: (d,)`` (the average model xbar)."""
    at = getattr(problem, "accuracy_at", None)
    if at is not None:
        return float(at(x))
    return float(np.asarray(problem.test_accuracy(x[None, :]), dtype=float)[0])


class TimeModel:
    r"""Duration of one synchronous round on a network (SPEC section 8).

    .. math:: T_{round} = K \max_i B_i \, s_{sample} + \ell + b / \beta

    with K local steps, :math:`B_i` rows per gradient evaluation of agent i (the slowest
    agent counts), :math:`s_{sample}` seconds per sample, latency :math:`\ell`, b bits of
    one message and bandwidth :math:`\beta` bits per second (``inf``: free).

    Examples
    --------
    >>> TimeModel(bandwidth=1e6, latency=1e-3, seconds_per_sample=1e-5).round_seconds(
    ...     bits_per_message=2000, samples_per_eval=16, local_steps=4)
    0.00364
    """

    def __init__(self, *, bandwidth: float = math.inf, latency: float = 0.0,
                 seconds_per_sample: float = 0.0):
        self.bandwidth = float(bandwidth)
        self.latency = float(latency)
        self.seconds_per_sample = float(seconds_per_sample)

    @property
    def given(self) -> bool:
        """True when any part of the model is set (the run's figure then uses it)."""
        return (math.isfinite(self.bandwidth) or self.latency > 0
                or self.seconds_per_sample > 0)

    def round_seconds(self, *, bits_per_message: float, samples_per_eval: float,
                      local_steps: int = 1) -> float:
        """Seconds of one round (see the class docstring)."""
        return (self.fixed_seconds(samples_per_eval=samples_per_eval, local_steps=local_steps)
                + self.comm_seconds(bits_per_message))

    def fixed_seconds(self, *, samples_per_eval: float, local_steps: int = 1) -> float:
        r"""The part of a round that does not depend on the message:
        :math:`K \max_i B_i s_{sample} + \ell`."""
        return local_steps * samples_per_eval * self.seconds_per_sample + self.latency

    def comm_seconds(self, bits: float) -> float:
        r"""Seconds to move ``bits`` over one link, :math:`b / \beta` (0 on a free network).

        Event-triggered rounds (messages of 1 or 1 + b bits) pass the largest message of the
        round, summed over the rounds: a synchronous round waits for its slowest link, so a
        round in which every agent is silent costs its 1-bit flag only.

        Examples
        --------
        >>> TimeModel(bandwidth=1000.0).comm_seconds(3.0)
        0.003
        """
        return 0.0 if math.isinf(self.bandwidth) else float(bits) / self.bandwidth


class Recorder:
    """Keeps one row of :data:`METRIC_COLUMNS` per recorded step.

    Parameters
    ----------
    problem
        Supplies ``x_star``, ``f_star`` and ``total_value``.
    bits_per_message : int
        Bits one agent broadcasts per round (0 for a solver that reports no bits).
    mean_degree : float
        Average number of neighbours: point-to-point bits = broadcast bits x degree.
    round_seconds : float
        Modeled seconds of one round with fixed-size messages (SPEC section 8).
    fixed_seconds, bandwidth : float
        For event-triggered rounds (``slowest_bits`` given to :meth:`record`): the
        message-independent seconds of a round and the link's bits per second, so
        ``modeled_seconds = step * fixed_seconds + slowest_bits / bandwidth``.
    metrics : collection of str, optional
        Compute only these of the state's metrics (``relative_error``, ``consensus_error``,
        ``optimality_gap`` and the learning columns); the others are recorded as NaN. The
        counters (step, t, bits, gradient evaluations, modeled seconds) are always kept.
        Default: every metric. The tuner's batches (:func:`stflow.engines.batch.
        evaluate_batch`) record only the column they score.

    Examples
    --------
    >>> class P:
    ...     x_star = np.array([1.0]); f_star = 0.0
    ...     def total_value(self, x): return float((x[0] - 1.0) ** 2)
    >>> rec = Recorder(P(), bits_per_message=64, mean_degree=2.0)
    >>> rec.record(3, 0.3, np.array([[1.0], [3.0]]))
    >>> rec.columns()["bits_per_agent_p2p"].tolist(), rec.columns()["optimality_gap"].tolist()
    ([384.0], [1.0])
    """

    def __init__(self, problem, *, bits_per_message: int, mean_degree: float,
                 samples_per_eval: float = 1.0, round_seconds: float = 0.0,
                 fixed_seconds: float | None = None, bandwidth: float = math.inf,
                 metrics=None):
        self.problem = problem
        self.metrics = None if metrics is None else frozenset(metrics)
        self.fixed_seconds = float(round_seconds if fixed_seconds is None else fixed_seconds)
        self.bandwidth = float(bandwidth)
        self.bits_per_message = int(bits_per_message)
        self.mean_degree = float(mean_degree)
        self.samples_per_eval = float(samples_per_eval)
        self.round_seconds = float(round_seconds)
        self.learning = bool(getattr(problem, "has_test", False))
        self.columns_ = METRIC_COLUMNS + (LEARNING_COLUMNS if self.learning else ())
        self.rows: list[tuple] = []

    def record(self, step: int, t: float, X: np.ndarray, *, draws: int = 0,
               bits: tuple[float, float] | None = None,
               slowest_bits: float | None = None) -> None:
        """Append the metrics of state ``X: (N, d)`` after ``step`` rounds (time ``t``) and
        ``draws`` gradient evaluations per agent.

        ``bits``: (broadcast, point-to-point) bits per agent so far, mean over the agents,
        when messages vary in size (event-triggered sending); by default ``step`` times
        ``bits_per_message`` (and times the mean degree). ``slowest_bits``: the sum over the
        rounds so far of each round's largest message (event-triggered sending); the modeled
        time then charges those bits, not ``step`` full messages."""
        p2p = None
        if bits is not None:
            bits, p2p = float(bits[0]), float(bits[1])
        else:
            bits = float(step * self.bits_per_message)
        p = self.problem
        x_star = getattr(p, "x_star", None)
        want = self.metrics
        nan = math.nan
        row = (
            int(step),
            float(t),
            nan if x_star is None or (want is not None and "relative_error" not in want)
            else relative_error(X, x_star),
            consensus_error(X) if want is None or "consensus_error" in want else nan,
            nan if getattr(p, "f_star", None) is None or (
                want is not None and "optimality_gap" not in want) else optimality_gap(p, X),
            bits,
            bits * self.mean_degree if p2p is None else p2p,
            float(draws) * self.samples_per_eval,
            float(step) * self.round_seconds if slowest_bits is None
            else float(step) * self.fixed_seconds + (
                0.0 if math.isinf(self.bandwidth) else float(slowest_bits) / self.bandwidth),
        )
        if self.learning and want is not None:
            xbar = X.mean(axis=0)
            agents = want & {"mean_agent_test_accuracy", "worst_agent_test_accuracy"}
            acc = np.asarray(p.test_accuracy(X), dtype=float) if agents else None
            row += (
                float(p.train_loss(xbar)) if "train_loss" in want else nan,
                _accuracy_at(p, xbar) if "test_accuracy" in want else nan,
                float(acc.mean()) if acc is not None else nan,
                float(acc.min()) if acc is not None else nan,
            )
        elif self.learning:
            xbar = X.mean(axis=0)
            acc = np.asarray(p.test_accuracy(X), dtype=float)
            row += (
                float(p.train_loss(xbar)),
                _accuracy_at(p, xbar),
                float(acc.mean()),
                float(acc.min()),
            )
        self.rows.append(row)

    @property
    def last_step(self) -> int:
        """Step of the last recorded row (-1 when empty)."""
        return self.rows[-1][0] if self.rows else -1

    def columns(self) -> dict[str, np.ndarray]:
        """The recorded rows as one array per column name."""
        if not self.rows:
            return {c: np.zeros(0) for c in self.columns_}
        data = np.array(self.rows, dtype=float)
        out = {c: data[:, i] for i, c in enumerate(self.columns_)}
        out["step"] = out["step"].astype(np.int64)
        return out
