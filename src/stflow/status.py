r"""How a finished run is classified: converged, not_converged, stalled or diverging.

:func:`classify` judges the *trend* of the relative error over the last part of the record
(a least-squares fit of :math:`\log e` against :math:`t` over the last third of the recorded
rows), not one ratio, so a smooth decay is never called stalled and a growing error is
never told to run longer. The engines add two statuses of their own: ``diverged`` (the
state turned non-finite or grew :data:`stflow.engines.simulate.GROWTH_LIMIT`-fold) and
``interrupted`` (Ctrl-C or SIGTERM, see :mod:`stflow.interrupts`).

Exit codes of ``stflow run`` (:data:`EXIT_CODES`): converged 0, not_converged and stalled 1,
diverging and diverged 3, interrupted 130.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "STATUSES",
    "EXIT_CODES",
    "TAIL_FRACTION",
    "DECREASING",
    "GROWING",
    "classify",
    "tail_trend",
]

#: Every status a run can end with.
STATUSES = ("converged", "not_converged", "stalled", "diverging", "diverged", "interrupted")
#: ``stflow run`` exit code of each status.
EXIT_CODES = {
    "converged": 0,
    "not_converged": 1,
    "stalled": 1,
    "diverging": 3,
    "diverged": 3,
    "interrupted": 130,
}
#: Share of the recorded rows (the last ones) over which the trend is fitted.
TAIL_FRACTION = 1 / 3
#: The error is still decreasing when the fitted tail shrank by at least 5% ...
DECREASING = 0.95
#: ... and growing when it grew by at least 10% (in between: stalled).
GROWING = 1.10

_FLOOR = 1e-300


def tail_trend(t, error, *, fraction: float = TAIL_FRACTION) -> tuple[float, float, float, float]:
    r"""Fit :math:`\log e(t) \approx a - r t` over the last ``fraction`` of the rows.

    Returns ``(rate, factor, t_start, t_end)``: the fitted decay rate :math:`r` (per unit
    time; negative when the error grows), the fitted change of the error over the window
    :math:`\exp(-r (t_{end} - t_{start}))` (below 1: decreasing), and the window. At least
    three rows are used (all of them when fewer exist; two rows give their exact slope);
    with fewer than two distinct times the rate is 0 and the factor 1.

    Examples
    --------
    >>> t = np.linspace(0.0, 30.0, 31)
    >>> rate, factor, t0, t1 = tail_trend(t, np.exp(-0.5 * t))
    >>> round(rate, 12), round(factor, 12) == round(math.exp(-5.0), 12), t0, t1
    (0.5, True, 20.0, 30.0)
    """
    t = np.asarray(t, dtype=float)
    e = np.asarray(error, dtype=float)
    keep = np.isfinite(t) & np.isfinite(e)
    t, e = t[keep], np.maximum(e[keep], _FLOOR)
    n = t.size
    if n == 0:
        return 0.0, 1.0, 0.0, 0.0
    m = min(n, max(3, math.ceil(fraction * (n - 1)) + 1))
    t, y = t[-m:], np.log(e[-m:])
    span = float(t[-1] - t[0])
    if m < 2 or span <= 0:
        return 0.0, 1.0, float(t[0]), float(t[-1])
    tc = t - t.mean()
    slope = float(np.dot(tc, y - y.mean()) / np.dot(tc, tc))
    return -slope, math.exp(min(slope * span, 700.0)), float(t[0]), float(t[-1])


def classify(records: dict, tolerance: float, hint: str = "change the gains, the compressor "
             "or the flow (docs/gains.md)") -> tuple[str, str]:
    r"""Status and one-sentence message of a run that ended without diverging.

    ``records`` holds arrays ``t`` and ``relative_error`` (the recorded rows). With the
    final error :math:`e_K` and the tail fit of :func:`tail_trend` (rate :math:`r`, window
    factor :math:`\rho`):

    - ``converged`` when :math:`e_K \le` ``tolerance``;
    - ``not_converged`` when :math:`\rho \le` :data:`DECREASING` (still decreasing); the
      message estimates the horizon that reaches the tolerance at the current rate,
      :math:`t_K + \log(e_K / \mathrm{tol}) / r`;
    - ``diverging`` when :math:`\rho \ge` :data:`GROWING` (or the final error is not finite);
    - ``stalled`` otherwise (the error stopped decreasing; a longer run will not help);
      ``hint`` ends its message (the method's ``stall_hint``: the knobs it has).

    Examples
    --------
    >>> t = np.linspace(0.0, 30.0, 61)
    >>> classify({"t": t, "relative_error": 0.32 ** (t / 30)}, 1e-8)[0]
    'not_converged'
    >>> classify({"t": t, "relative_error": 1e-3 + 0 * t}, 1e-8)[0]
    'stalled'
    >>> classify({"t": t, "relative_error": 114 ** (t / 30)}, 1e-8)[0]
    'diverging'
    >>> classify({"t": t, "relative_error": np.exp(-t)}, 1e-8)
    ('converged', 'relative error 9.36e-14 <= tolerance 1e-08')
    """
    err = np.asarray(records["relative_error"], dtype=float)
    t = np.asarray(records["t"] if "t" in records else records["step"], dtype=float)
    if err.size == 0:
        return "not_converged", "no rows were recorded: raise [solver] horizon"
    final = float(err[-1])
    if final <= tolerance:
        return "converged", f"relative error {final:.3g} <= tolerance {tolerance:.3g}"
    above = f"relative error {final:.3g} > tolerance {tolerance:.3g}"
    if not math.isfinite(final):
        return "diverging", f"{above}: the error is not finite; lower [solver] step"
    if err.size < 2:
        return "not_converged", (
            f"{above}, and only one row was recorded, too few to judge the trend: raise "
            "[solver] horizon or lower record_every"
        )
    rate, factor, t0, t1 = tail_trend(t, err)
    window = f"over the last third of the run, t = {t0:.4g}..{t1:.4g}"
    if factor <= DECREASING:
        need = t1 + math.log(final / tolerance) / rate
        return "not_converged", (
            f"{above} but still decreasing (x{factor:.3g} {window}, rate {rate:.3g}): raise "
            f"[solver] horizon to about {need:.3g} (from {t1:.4g}) at the current rate"
        )
    if factor >= GROWING:
        return "diverging", (
            f"{above} and growing (x{factor:.3g} {window}): lower [solver] step or change "
            "the gains (docs/gains.md)"
        )
    return "stalled", (
        f"{above} and stopped decreasing (x{factor:.3g} {window}): a longer run will not "
        f"help; {hint}"
    )
