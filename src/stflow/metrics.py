"""Metrics of SPEC section 6: errors against the centralized optimum, consensus, bits.

Everything here is a pure function of the stacked state ``X: (N, d)`` (plus the problem for
the optimality gap), and a :class:`Recorder` that keeps one row per recorded step.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "METRIC_COLUMNS",
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

    def __init__(self, problem, *, bits_per_message: int, mean_degree: float):
        self.problem = problem
        self.bits_per_message = int(bits_per_message)
        self.mean_degree = float(mean_degree)
        self.rows: list[tuple] = []

    def record(self, step: int, t: float, X: np.ndarray) -> None:
        """Append the metrics of state ``X: (N, d)`` after ``step`` rounds (time ``t``)."""
        bits = float(step * self.bits_per_message)
        self.rows.append(
            (
                int(step),
                float(t),
                relative_error(X, self.problem.x_star),
                consensus_error(X),
                optimality_gap(self.problem, X),
                bits,
                bits * self.mean_degree,
            )
        )

    @property
    def last_step(self) -> int:
        """Step of the last recorded row (-1 when empty)."""
        return self.rows[-1][0] if self.rows else -1

    def columns(self) -> dict[str, np.ndarray]:
        """The recorded rows as one array per column name."""
        if not self.rows:
            return {c: np.zeros(0) for c in METRIC_COLUMNS}
        data = np.array(self.rows, dtype=float)
        out = {c: data[:, i] for i, c in enumerate(METRIC_COLUMNS)}
        out["step"] = out["step"].astype(np.int64)
        return out
