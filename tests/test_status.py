"""Run statuses from the trend of the error (stflow.status) and clean interrupts."""

import math
import os
import re
import signal
import threading

import numpy as np
import pytest

from stflow.interrupts import catch_interrupts
from stflow.status import EXIT_CODES, STATUSES, classify, tail_trend

T = np.linspace(0.0, 30.0, 61)


def _status(err, tol=1e-8, t=T):
    return classify({"t": t, "relative_error": np.asarray(err, dtype=float)}, tol)


def test_smooth_decay_is_not_converged_with_a_horizon_estimate():
    # issue 10: 1 -> 0.32 over the run (N = 2) was called "stalled"
    rate = -math.log(0.32) / 30.0
    status, message = _status(np.exp(-rate * T))
    assert status == "not_converged"
    need = 30.0 + math.log(0.32 / 1e-8) / rate  # = 30 * log(1e-8) / log(0.32) = 485
    assert f"raise [solver] horizon to about {need:.3g} (from 30)" in message
    assert f"rate {rate:.3g}" in message and "still decreasing" in message


def test_growing_error_is_diverging_not_run_longer():
    # issue 10: an error that grew from 1 to 114 was told "still decreasing: raise horizon"
    status, message = _status(114.0 ** (T / 30.0))
    assert status == "diverging" and EXIT_CODES[status] == 3
    assert "growing (x" in message and "horizon" not in message
    factor = 114.0 ** (10.0 / 30.0)  # fitted over t = 20..30
    assert f"x{factor:.3g}" in message


@pytest.mark.parametrize(
    "err",
    [
        np.full(T.size, 1e-3),  # flat
        np.maximum(np.exp(-T), 1e-5),  # decays, then a floor for the last two thirds
        1e-3 * (1 + 0.02 * np.sin(7.0 * T)),  # small oscillation around a level
        1e-3 * np.exp(0.01 * np.random.default_rng(0).standard_normal(T.size)),  # noise
    ],
)
def test_flat_tail_is_stalled(err):
    status, message = _status(err)
    assert status == "stalled" and EXIT_CODES[status] == 1
    assert "stopped decreasing" in message and "a longer run will not help" in message


def test_fast_early_decay_then_floor_is_stalled_even_if_half_ratio_says_decreasing():
    # the last third is flat although the error dropped 1e5-fold overall
    status, _ = _status(np.maximum(np.exp(-0.6 * T), 1e-5))
    assert status == "stalled"


def test_decreasing_tail_after_a_plateau_is_not_converged():
    err = np.where(T < 20, 1e-2, 1e-2 * np.exp(-0.3 * (T - 20)))
    assert _status(err)[0] == "not_converged"


def test_thresholds():
    # window t = 20..30: a 4% decrease is stalled, 6% not_converged; 9% growth stalled,
    # 11% diverging
    for factor, expected in ((0.96, "stalled"), (0.94, "not_converged"),
                             (1.09, "stalled"), (1.11, "diverging")):
        err = factor ** (T / 10.0)
        assert _status(err, tol=1e-12)[0] == expected, factor


def test_converged_short_and_empty_records():
    assert _status(np.exp(-T))[0] == "converged"
    status, message = _status([0.5], t=np.array([1.0]))
    assert status == "not_converged" and "too few to judge" in message
    status, message = _status([1.0, 0.5], t=np.array([0.0, 1.0]))  # two rows: exact slope
    assert status == "not_converged" and "rate 0.693" in message
    assert _status([1.0, 0.99], t=np.array([0.0, 1.0]))[0] == "stalled"
    assert _status([], t=np.zeros(0))[0] == "not_converged"
    assert _status([1.0, 2.0, math.nan], t=np.array([0.0, 1.0, 2.0]))[0] == "diverging"


def test_tail_trend_exact_rate():
    rate, factor, t0, t1 = tail_trend(T, 3.0 * np.exp(-0.25 * T))
    assert rate == pytest.approx(0.25, rel=1e-12)
    assert factor == pytest.approx(math.exp(-2.5), rel=1e-12)
    assert (t0, t1) == (20.0, 30.0)


def test_statuses_and_exit_codes_cover_each_other():
    assert set(STATUSES) == set(EXIT_CODES)
    assert EXIT_CODES["interrupted"] == 130 and EXIT_CODES["converged"] == 0


def test_solve_uses_the_trend():
    """A real two-agent run with a slow smooth decay is not_converged (was: stalled)."""
    from stflow.config import resolve_config, run_config

    cfg = resolve_config({
        "problem": {"kind": "quadratic", "agents": 2, "dim": 2},
        "method": {"kind": "uncompressed", "alpha": 1.0, "beta": 1.0, "eta": 0.2},
        "solver": {"step": 0.01, "horizon": 10.0, "record_every": 20},
    })
    _, sol = run_config(cfg)
    err = sol.records["relative_error"]
    assert 0.5 < err[-1] / err[0] < 0.8  # decays smoothly, far from the tolerance
    assert err[-1] > 0.5 * err[err.size // 2]  # the old one-ratio rule called this stalled
    assert sol.status == "not_converged"
    need = float(re.search(r"horizon to about ([0-9.e+]+)", sol.message).group(1))
    rate, _, _, _ = tail_trend(sol.records["t"], err)
    assert need == pytest.approx(10.0 + math.log(err[-1] / 1e-8) / rate, rel=1e-2)


# -- interrupts ---------------------------------------------------------------------------
def _wait(flag):
    for _ in range(10000):
        if flag.requested:
            return True
    return flag.requested


def test_catch_interrupts_sets_flag_and_restores_handlers():
    before_int, before_term = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with catch_interrupts() as flag:
        assert not flag.requested and flag.signal is None
        os.kill(os.getpid(), signal.SIGINT)
        assert _wait(flag) and flag.signal == "SIGINT"
        with pytest.raises(KeyboardInterrupt):  # asked twice: stop at once
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10000):
                pass
    assert signal.getsignal(signal.SIGINT) is before_int
    assert signal.getsignal(signal.SIGTERM) is before_term


def test_catch_interrupts_outside_the_main_thread_installs_nothing():
    seen = {}

    def work():
        with catch_interrupts() as flag:
            seen["handler"] = signal.getsignal(signal.SIGTERM)
            seen["requested"] = flag.requested

    th = threading.Thread(target=work)
    th.start()
    th.join()
    assert seen == {"handler": signal.getsignal(signal.SIGTERM), "requested": False}


def test_solve_stops_at_the_end_of_the_step_on_a_signal():
    from types import SimpleNamespace

    import scipy.sparse as sp

    from stflow import Gains, PrimalDualFlow, solve

    graph = SimpleNamespace(laplacian=sp.csr_matrix([[1.0, -1.0], [-1.0, 1.0]]),
                            degree=np.array([1, 1]), n=2, lambda_max=2.0)
    calls = []

    def grad(X):
        calls.append(1)
        if len(calls) == 123:
            os.kill(os.getpid(), signal.SIGTERM)
        return X - [[1.0], [3.0]]

    problem = SimpleNamespace(n_agents=2, dim=1, grad=grad, x_star=np.array([2.0]),
                              f_star=1.0, smoothness=1.0,
                              total_value=lambda x: float((x[0] - 1) ** 2 + (x[0] - 3) ** 2) / 2)
    flow = PrimalDualFlow("uncompressed", problem, graph,
                          gains=Gains(alpha=1.0, beta=1.0, eta=1.0, gamma=1.0))
    sol = solve(flow, step=0.01, horizon=40.0, record_every=50)
    assert sol.status == "interrupted" and sol.steps == 123 and sol.t_final == pytest.approx(1.23)
    assert sol.records["step"].tolist() == [0, 50, 100, 123]
    assert sol.grad_evals == 123 * 2
    assert "interrupted by SIGTERM at step 123 of 4000" in sol.message
