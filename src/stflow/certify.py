r"""Numerical spatio-temporal certificate of a compressor (SPEC section 3).

:func:`certify` integrates the compressor flow :math:`\dot z = -C(z, t)` from many initial
conditions and start times at once (all trials are rows of one ``(M, d)`` array), fits the
decay rate :math:`\lambda` and overshoot :math:`\kappa` of

.. math:: \|z(t)\| \le \kappa\, e^{-\lambda (t - t_0)} \|z(t_0)\|,

estimates :math:`L_c = \max \|C(z, t)\| / \|z\|` over the samples, and returns a
:class:`Certificate` with the verdict and a one-sentence reason.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .compressors import Compressor, make_compressor
from .errors import InputError

__all__ = ["Certificate", "certify", "initial_conditions"]

_DONE = 1e-10  # a trial is finished once ||z|| <= _DONE * ||z(t0)||
_MIN_TAIL_DECAY = 1e-4  # log-decrease a live trial must show over the second half of its run
_MAX_ROWS_X_STEPS_X_DIM = 6e8  # work budget of one certificate (row-steps times d)
_H_MAX = 0.02  # largest Euler step of a time-varying C (also capped by time_scale, 0.5 / L_c)
_H_INVARIANT = 0.1  # largest Euler step of a time-invariant C (the rate is Euler-corrected)
_MAX_WORK = 2e10  # refuse a certificate above this many row-steps times d (minutes of work)
_MAX_BYTES = 2e9  # ... or whose working arrays pass 2 GB
_ARRAYS_PER_ROW = 6  # Z, C and the compressor's temporaries, d float64 each per row
_WORK_PER_SECOND = 1.5e8  # measured order of magnitude (row-steps times d per second)
_FAR_START = 1e3  # the latest start time is at least this (SPEC section 3, uniformity)
_UNIFORM_WINDOW = 10.0  # time units integrated from each far start, at least ...
_WINDOW_PERIODS = 50.0  # ... this many periods (randomly drawn sets need many to average)
_UNIFORM_RATIO = 0.5  # the rate from a far start must be at least this times the one from 0


@dataclass(frozen=True)
class Certificate:
    r"""Outcome of :func:`certify`.

    Attributes
    ----------
    spec : str
        Canonical compressor spec.
    dim : int
        d.
    spatio_temporal : bool
        Verdict: linearly bounded and :math:`\dot z = -C(z, t)` exponentially stable.
    rate : float
        Fitted :math:`\lambda` (worst trial), 0 when some trial stops decaying.
    kappa : float
        :math:`\max_{i,t} \|z_i(t)\| e^{\lambda (t - t_0)} / \|z_i(t_0)\|`.
    linear_bound : float
        Estimated :math:`L_c = \max \|C(z, t)\| / \|z\|` over the samples.
    linear : bool
        The compressor's own ``linear`` flag.
    bits_per_message : int
        Bits of one message at d (SPEC section 6).
    reason : str
        One sentence: why it was accepted or rejected.
    start_times, start_rates : tuple of float
        Uniformity check: the start times :math:`t_0` (0 first, the latest last) and the
        smallest average decay rate of :math:`\|z\|` over a window from each.

    Examples
    --------
    >>> c = Certificate("identity", 2, True, 1.0, 1.0, 1.0, True, 128, "decays")
    >>> c.to_dict()["bits_per_message"]
    128
    """

    spec: str
    dim: int
    spatio_temporal: bool
    rate: float
    kappa: float
    linear_bound: float
    linear: bool
    bits_per_message: int
    reason: str
    start_times: tuple[float, ...] = ()
    start_rates: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        """Plain dict with keys spec, dim, spatio_temporal, rate, kappa, linear_bound, linear,
        bits_per_message, reason, start_times, start_rates (JSON-ready: lists, not tuples)."""
        out = asdict(self)
        out["start_times"] = list(self.start_times)
        out["start_rates"] = list(self.start_rates)
        return out


def initial_conditions(
    dim: int, rng: np.random.Generator, n_random: int = 6
) -> tuple[np.ndarray, list[str]]:
    """Unit-norm test directions for the certificate, shape (n, d), and their labels.

    ``n_random`` Gaussian directions, two sparse ones (support ``max(1, d // 4)``), up to four
    basis vectors (always :math:`e_0` and :math:`e_{d-1}`), the constant vector and the
    alternating vector :math:`(1, -1, 1, \\dots)`.

    Examples
    --------
    >>> Z, labels = initial_conditions(4, np.random.default_rng(0), n_random=1)
    >>> Z.shape, labels[-2:]
    ((9, 4), ['constant', 'alternating'])
    """
    d = int(dim)
    rows, labels = [], []
    for _ in range(n_random):
        rows.append(rng.standard_normal(d))
        labels.append("gaussian")
    for _ in range(2):
        z = np.zeros(d)
        support = rng.choice(d, max(1, d // 4), replace=False)
        z[support] = rng.standard_normal(support.size)
        rows.append(z)
        labels.append("sparse")
    extra = rng.permutation(np.arange(1, d - 1))[:2] if d > 2 else np.array([], dtype=int)
    for j in dict.fromkeys([0, d - 1, *extra.tolist()]):
        rows.append(np.zeros(d))
        rows[-1][j] = 1.0
        labels.append(f"basis e_{j}")
    rows.append(np.ones(d))
    labels.append("constant")
    rows.append(np.where(np.arange(d) % 2 == 0, 1.0, -1.0))
    labels.append("alternating")
    Z = np.array(rows)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    return Z, labels


def certify(
    compressor: Compressor | str,
    dim: int | None = None,
    *,
    seed: int = 0,
    horizon: float | None = None,
    start_horizon: float | None = None,
    n_trials: int = 6,
    max_steps: int | None = None,
    progress: bool = False,
) -> Certificate:
    r"""Numerically certify that a compressor is spatio-temporal (SPEC section 3).

    The flow :math:`\dot z = -C(z, t)` is stepped by explicit Euler,
    :math:`z_{n+1} = z_n - h\, C(z_n, t_0 + n h)`, with
    :math:`h = \min(0.02,\ 0.5 / L_c,\ \text{time\_scale})` (so Euler cannot make a
    stable flow look unstable, and every window of a time-varying C is sampled), from the
    directions of :func:`initial_conditions` at scales :math:`10^{-6}, 10^{-3}, 1, 10^3,
    10^6` (three scales when d > 100).

    **Main run.** Start times 0, inside the first window, and past the first excitation
    period (only 0 for a time-invariant C, whose other starts give the same trajectories);
    one compressor call per start time and step acts on all the trials of that start time.
    Horizon :math:`T = \max(30, 20 P, 5 d)` with P the excitation period. Past
    ``max_steps`` steps a time-invariant C gets a coarser h (at most :math:`0.5/L_c`), then T
    is cut (but kept at 20 P if that takes at most 6 ``max_steps``). A trial is finished
    once :math:`\|z\| \le 10^{-10}\|z(t_0)\|`. Per trial, :math:`\lambda_i` is minus the
    least-squares slope of :math:`\log \|z(t)\|/\|z(t_0)\|` over the second half of its
    run; :math:`\lambda = \min_i \lambda_i \cdot h / (-\log(1 - h))` (Euler shrinks a
    projected component by :math:`1 - h` per step where the flow shrinks it by
    :math:`e^{-h}`: exact for identity, topk, randk and cyclic, conservative otherwise).

    **Uniformity.** Condition (ii) must hold for all :math:`t_0` with the same
    :math:`\lambda`: the same starts are integrated over a window
    :math:`W = \max(10, 50P)` (at most ``max_steps`` steps) from
    :math:`t_0 \in \{0,\ t_f/100,\ t_f/10,\ t_f\}` (shifted by 0.37 of a window of C),
    :math:`t_f = \max(10^3, 100 P, 10 W)` (or ``start_horizon`` when larger): only W time
    units each, never the whole way from 0. **The certificate sees no further than**
    :math:`t_f + W`: a compressor that is the identity until t = 1500 and zero afterwards is
    certified by default and refused with ``start_horizon=3000``. (50 periods: a randomly drawn coordinate set hits each coordinate about 50
    times, so the slowest coordinate's rate is not luck.) The window rate :math:`\mu(t_0)` is the smallest
    average decay rate :math:`-\log(\|z(t_0 + W)\|/\|z(t_0)\|) / W` over the trials (up to
    the time a trial finished). Required: :math:`\mu(t_0) \ge \mu(0)/2` for every far
    :math:`t_0`; so :math:`z/(1+t)` and :math:`z/\sqrt{1+t}` are rejected (rate fades).

    :math:`\kappa = \max_{i,t} \|z_i(t)\| e^{\lambda(t-t_0)} / \|z_i(t_0)\|` over all runs.
    Accepted when every main trial either finished or lost at least 1e-4 of
    :math:`\log\|z\|` over the second half of its run, :math:`\lambda > 0`, the rate does
    not fade, and the estimated :math:`L_c` is finite. Scale matters: a dead zone (fixed
    quantizer) shows as a trial that stops moving.

    Parameters
    ----------
    compressor
        A :class:`~stflow.compressors.Compressor` or a spec string (then ``dim`` is needed).
    dim
        d, when ``compressor`` is a spec.
    seed
        Seed of the random initial conditions, an integer >= 0.
    horizon
        Integration time of the main run (default above).
    start_horizon
        The latest start time :math:`t_f` of the uniformity run is at least this (default
        :math:`10^3`); the work does not grow with it (each start integrates W time units).
    n_trials
        Number of random Gaussian directions (the other directions are fixed).
    max_steps
        Cap on Euler steps per run (default: a budget of 6e8 row-steps times d, clipped to
        2000..200000).
    progress
        Show a progress bar (tqdm, on stderr) counting Euler steps.

    Raises
    ------
    InputError
        On bad arguments; when the work (rows times steps times d) would exceed 1e10 or the
        arrays 2 GB (the message gives the estimate); when the compressor raises or returns
        NaN, inf or the wrong shape.

    Examples
    --------
    >>> cert = certify("identity", 3)
    >>> cert.spatio_temporal, round(cert.rate, 3)
    (True, 1.0)
    >>> certify("fixedquant:step=0.1", 3).spatio_temporal
    False
    >>> from stflow.compressors import CallableCompressor
    >>> fading = CallableCompressor(lambda Z, t: Z / (1 + t), 3, spec="py:fading")
    >>> cert = certify(fading)
    >>> cert.spatio_temporal, cert.reason.startswith("rate fades with t")
    (False, True)
    """
    comp = _resolve(compressor, dim)
    d = comp.dim
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 0:
        raise InputError(f"`n_trials` must be an integer >= 0 (got {n_trials!r}): e.g. 6")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"`seed` must be an integer >= 0 (got seed={seed!r}): e.g. seed=0")
    rng = np.random.default_rng(seed)
    scales = (1e-6, 1e-3, 1.0, 1e3, 1e6) if d <= 100 else (1e-6, 1.0, 1e6)
    n_dirs = n_trials + 2 + min(d, 4) + 2
    n_base = n_dirs * len(scales)

    period = float(comp.period) if math.isfinite(comp.period) else 0.0
    tscale = float(comp.time_scale)
    window = tscale if math.isfinite(tscale) else 1.0
    time_invariant = not math.isfinite(tscale) and period == 0.0
    t0s = (0.0,) if time_invariant else (0.0, 0.37 * window, 7.61 * window + 1.3 * period)
    M = n_base * len(t0s)

    T = float(horizon) if horizon is not None else max(30.0, 20.0 * period, 5.0 * d)
    if not (math.isfinite(T) and T > 0):
        raise InputError(f"`horizon` must be a finite number > 0 (got {horizon!r}): e.g. 50")
    far = _FAR_START
    if start_horizon is not None:
        if (isinstance(start_horizon, bool) or not isinstance(start_horizon, int | float)
                or not math.isfinite(start_horizon) or start_horizon <= 0):
            raise InputError(f"`start_horizon` must be a finite number > 0 (got "
                             f"{start_horizon!r}): e.g. 3000")
        far = float(start_horizon)
    if max_steps is None:
        max_steps = int(np.clip(_MAX_ROWS_X_STEPS_X_DIM / (M * d), 2000, 200_000))
    elif isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise InputError(f"`max_steps` must be an integer >= 1 (got {max_steps!r}): e.g. 10000")
    # uniformity plan: far start times, each integrated over a short window only
    W = max(_UNIFORM_WINDOW, _WINDOW_PERIODS * period)
    t_far = max(far, 100.0 * period, 10.0 * W)
    shift = 0.37 * window
    u_t0s = (0.0, t_far / 100 + shift, t_far / 10 + shift, t_far + shift)
    h_max = min(_H_INVARIANT if time_invariant else _H_MAX, tscale)
    _check_size(comp, M, n_base * len(u_t0s), max_steps, T, W, h_max)

    dirs, labels = initial_conditions(d, rng, n_trials)
    base = np.concatenate([s * dirs for s in scales])
    row_label = [
        f"{labels[i % len(labels)]} start of scale {scales[i // len(labels)]:g}"
        for i in range(n_base)
    ]
    L_theory = float(comp.linear_bound)
    if not math.isfinite(L_theory):
        L_theory = max(1.0, _probe_bound(comp, rng))
    h = min(_H_INVARIANT if time_invariant else _H_MAX, 0.5 / L_theory, tscale)
    cut = ""
    if T / h > max_steps:
        if not math.isfinite(tscale):  # time-invariant C: a coarser step is still safe
            h = min(0.5 / L_theory, T / max_steps)
        if T / h > max_steps:  # keep 20 excitation periods if 6 times the budget allows
            T = max(max_steps * h, min(T, 20.0 * period, 6 * max_steps * h))
            cut = f", horizon cut to {T:.3g} by max_steps"
    n_steps = max(1, math.ceil(T / h - 1e-9))
    if W / h > max_steps:
        W = max_steps * h
    n_window = max(1, math.ceil(W / h - 1e-9))

    bar = _progress_bar(progress, n_steps + n_window, comp.spec)
    try:
        t, R, Z, active, L_est, finite = _integrate(
            comp, np.tile(base, (len(t0s), 1)), t0s, h, n_steps, stop_done=True, bar=bar
        )
        tu, Ru, _, _, L_u, finite_u = _integrate(
            comp, np.tile(base, (len(u_t0s), 1)), u_t0s, h, n_window, stop_done=False, bar=bar
        )
    finally:
        if bar is not None:
            bar.close()
    if not active.any():
        cut = ""  # every trial finished before the cut mattered
    L_est = max(L_est, L_u, _probe_bound(comp, rng))

    common = {
        "spec": comp.spec,
        "dim": d,
        "linear": bool(comp.linear),
        "bits_per_message": int(comp.bits_per_message()),
    }
    if not (finite and finite_u) or not math.isfinite(L_est):
        return Certificate(
            spatio_temporal=False,
            rate=0.0,
            kappa=math.inf,
            linear_bound=L_est,
            reason="||z|| blows up: C(z, t) is not linearly bounded or the flow diverges",
            **common,
        )

    euler = h / -math.log1p(-h)  # Euler shrinks by 1 - h, not e^-h
    mu = _window_rates(tu, Ru, len(u_t0s), n_base) * euler
    starts = {"start_times": tuple(float(x) for x in u_t0s),
              "start_rates": tuple(float(x) for x in mu)}
    lam_i, decay_i, done_i = _tail_rates(t, R, ~active)
    lam = float(np.min(lam_i)) * euler
    ok_i = done_i | ((decay_i >= _MIN_TAIL_DECAY) & (lam_i > 0))
    kappa = float(
        max(
            np.nanmax(np.exp(R + max(lam, 0.0) * t[:, None])),
            np.nanmax(np.exp(Ru + max(lam, 0.0) * tu[:, None])),
        )
    )
    # the rate from every far start: positive and at least half the one from t0 = 0
    fades = bool(np.any(mu[1:] < _UNIFORM_RATIO * mu[0]) or np.any(mu[1:] <= 0))
    if ok_i.all() and lam > 0 and not fades:
        reason = (
            f"every one of {M} trials decays, ||z(t)|| <= kappa exp(-rate (t - t0)) "
            f"||z(t0)|| (Euler h = {h:.3g}, t - t0 <= {t[-1]:.3g}{cut}); uniform in t0: the "
            f"rate over {W:.3g} time units is {mu[-1]:.3g} from t0 = {u_t0s[-1]:.4g} and "
            f"{mu[0]:.3g} from t0 = 0"
        )
        return Certificate(
            spatio_temporal=True, rate=lam, kappa=kappa, linear_bound=L_est, reason=reason,
            **common, **starts,
        )
    if ok_i.all() and lam > 0:  # decays near t0 = 0, but slower and slower
        j = int(np.argmin(mu[1:])) + 1
        reason = (
            f"rate fades with t: ||z|| decays at rate {mu[j]:.3g} over {W:.3g} time units "
            f"from t0 = {u_t0s[j]:.4g} against {mu[0]:.3g} from t0 = 0 (less than half), so "
            "dz/dt = -C(z, t) is not uniformly exponentially stable"
        )
        return Certificate(
            spatio_temporal=False, rate=0.0, kappa=kappa, linear_bound=L_est, reason=reason,
            **common, **starts,
        )
    worst = int(np.argmin(lam_i) if ok_i.all() else np.argmin(np.where(ok_i, np.inf, decay_i)))
    g = worst // n_base
    last = R[np.isfinite(R[:, worst]), worst][-1]
    cause = _cause(comp, Z[worst], t0s[g] + t[-1])
    reason = (
        f"rate 0: {cause}; ||z|| {'grows' if last > 0 else 'stops decaying'} from a "
        f"{row_label[worst % n_base]} "
        f"at t0 = {t0s[g]:.3g} (still {math.exp(last):.3g} of ||z(t0)|| at t - t0 = "
        f"{t[-1]:.3g}{cut})"
    )
    return Certificate(
        spatio_temporal=False,
        rate=0.0,
        kappa=kappa,
        linear_bound=L_est,
        reason=reason,
        **common,
        **starts,
    )


def _integrate(comp, Z, t0s, h, n_steps, *, stop_done, bar):
    """Euler-step the rows of Z (len(t0s) equal groups, group g starting at t0s[g]).

    Returns the record times (t - t0), the log-norm records (n_records, M) (nan once a trial
    finished), the final Z, the still-active rows, the largest ||C(z)|| / ||z|| seen, and
    whether every norm stayed finite. ``stop_done`` zeroes and drops finished trials.
    """
    M = Z.shape[0]
    groups = [slice(g * (M // len(t0s)), (g + 1) * (M // len(t0s))) for g in range(len(t0s))]
    stride = max(1, n_steps // 400)
    norm0 = np.linalg.norm(Z, axis=1)
    active = np.ones(M, dtype=bool)
    times, logs = [0.0], [np.zeros(M)]
    L_est = 0.0
    finite = True
    C = np.empty_like(Z)
    done_steps = 0
    for n in range(n_steps):
        for gi, sl in enumerate(groups):
            C[sl] = _call(comp, Z[sl], t0s[gi] + n * h)
        record = (n + 1) % stride == 0 or n == n_steps - 1
        if record or n == 0:
            nz = np.linalg.norm(Z, axis=1)
            live = active & (nz > 0)
            if live.any():
                L_est = max(L_est, float(np.max(np.linalg.norm(C[live], axis=1) / nz[live])))
        C *= h
        Z -= C
        if record:
            nz = np.linalg.norm(Z, axis=1)
            if not np.all(np.isfinite(nz[active])):
                finite = False
                break
            r = np.full(M, np.nan)
            ok = active & (nz > 0)
            r[ok] = np.log(nz[ok] / norm0[ok])
            times.append((n + 1) * h)
            logs.append(r)
            finished = active & (nz <= _DONE * norm0)
            if finished.any():
                active &= ~finished
                if stop_done:
                    Z[finished] = 0.0
            if bar is not None:
                bar.update(n + 1 - done_steps)
                done_steps = n + 1
            if not active.any():
                break
    if bar is not None:
        bar.update(n_steps - done_steps)
    return np.array(times), np.array(logs), Z, active, L_est, finite


def _window_rates(t, R, n_groups, n_base):
    """Per start time: the smallest average decay rate -log(||z(t_end)||/||z(t0)||)/t_end
    over its trials, t_end the last record before the trial finished (or the window end)."""
    valid = np.isfinite(R)
    last = R.shape[0] - 1 - np.argmax(valid[::-1], axis=0)  # last valid record per trial
    cols = np.arange(R.shape[1])
    t_end = t[last]
    rate = np.where(t_end > 0, -R[last, cols] / np.where(t_end > 0, t_end, 1.0), np.inf)
    return rate.reshape(n_groups, n_base).min(axis=1) + 0.0  # no -0.0


def _call(comp: Compressor, Z: np.ndarray, t: float) -> np.ndarray:
    """C(Z, t), turning a failing or ill-formed compressor into one InputError line."""
    try:
        out = comp(Z, t)
    except InputError:
        raise
    except Exception as exc:  # a user compressor: report any failure as input
        raise InputError(
            f"compressor `{comp.spec}` raised {type(exc).__name__}: {exc} (at t = {t:.6g}, "
            f"input shape {Z.shape}): fix the compressor"
        ) from exc
    out = np.asarray(out)
    if out.shape != Z.shape:
        raise InputError(
            f"compressor `{comp.spec}` returned shape {out.shape} for input {Z.shape} at "
            f"t = {t:.6g}: return one row of d values per input row"
        )
    if not np.isfinite(out).all() and np.isfinite(Z).all() and np.abs(Z).max() < 1e150:
        raise InputError(
            f"compressor `{comp.spec}` returned NaN or inf for a finite input at t = {t:.6g}: "
            "make C(z, t) finite for every finite z"
        )
    return out


def _check_size(comp, rows_main, rows_window, max_steps, T, W, h):
    """Refuse, with the estimate, a certificate too big to finish in minutes or to fit."""
    d = comp.dim
    steps_main = min(max_steps, math.ceil(T / h))
    steps_window = min(max_steps, math.ceil(W / h))
    work = (rows_main * steps_main + rows_window * steps_window) * float(d)
    nbytes = _ARRAYS_PER_ROW * max(rows_main, rows_window) * float(d) * 8
    if work > _MAX_WORK or nbytes > _MAX_BYTES:
        raise InputError(
            f"certifying {comp.spec!r} at d={d} needs about {work:.2g} row-steps x d of work "
            f"(~{work / _WORK_PER_SECOND / 60:.2g} min) and {nbytes / 1e9:.2g} GB, above the "
            f"limits {_MAX_WORK:.0e} and {_MAX_BYTES / 1e9:.0f} GB: certify at a smaller "
            "--dim (the same compressor family; rates of topk/randk/scalarize scale as k/d), "
            "or from Python with smaller max_steps and n_trials"
        )


def _progress_bar(progress: bool, total: int, spec: str):
    if not progress:
        return None
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=f"certify {spec}", unit="step", file=sys.stderr,
                leave=False, mininterval=0.5)


def _resolve(compressor, dim) -> Compressor:
    if isinstance(compressor, str):
        if dim is None:
            raise InputError(
                f"`dim` is needed to certify the spec {compressor!r} (got dim=None): pass dim=d"
            )
        return make_compressor(compressor, dim)
    if not isinstance(compressor, Compressor):
        raise InputError(
            f"`compressor` must be a Compressor or a spec string (got "
            f"{type(compressor).__name__}): build it with make_compressor(spec, dim)"
        )
    if dim is not None and dim != compressor.dim:
        raise InputError(
            f"`dim` must match the compressor's d (got dim={dim}, compressor d="
            f"{compressor.dim}): drop dim or rebuild the compressor"
        )
    return compressor


def _tail_rates(t, R, finished):
    """Per trial: minus the LS slope of log||z|| over the second half of its run, the
    log-decrease over that half, and whether it finished (decayed by 1e-10)."""
    valid = np.isfinite(R)
    t_end = np.max(np.where(valid, t[:, None], -np.inf), axis=0)
    tail = valid & (t[:, None] >= 0.5 * t_end)
    w = tail.astype(float)
    cnt = np.maximum(w.sum(axis=0), 1.0)
    Rz = np.where(tail, R, 0.0)
    tm = (w * t[:, None]).sum(axis=0) / cnt
    rm = Rz.sum(axis=0) / cnt
    dt = np.where(tail, t[:, None] - tm, 0.0)
    var = (dt**2).sum(axis=0)
    slope = np.where(var > 0, (dt * (Rz - rm)).sum(axis=0) / np.where(var > 0, var, 1.0), 0.0)
    first = np.argmax(tail, axis=0)
    lastidx = len(t) - 1 - np.argmax(tail[::-1], axis=0)
    cols = np.arange(R.shape[1])
    decay = R[first, cols] - R[lastidx, cols]
    return -slope, decay, finished


def _probe_bound(comp: Compressor, rng: np.random.Generator) -> float:
    """max ||C(z, t)|| / ||z|| over random Gaussian, sparse and basis probes at random t."""
    d = comp.dim
    Z = rng.standard_normal((64, d)) * 10.0 ** rng.uniform(-3, 3, (64, 1))
    Z[:16] *= rng.random((16, d)) < 0.25
    Z[16:24] = 0.0
    Z[np.arange(16, 24), rng.integers(0, d, 8)] = 1.0
    Z = Z[np.linalg.norm(Z, axis=1) > 0]
    best = 0.0
    for t in rng.uniform(0.0, 10.0, 4):
        C = _call(comp, Z, float(t))
        best = max(best, float(np.max(np.linalg.norm(C, axis=1) / np.linalg.norm(Z, axis=1))))
    return best


def _cause(comp: Compressor, z: np.ndarray, t: float) -> str:
    """Best guess, in words, why a trial stopped decaying."""
    if "fixedquant" in comp.spec:
        return "dead zone below step/2 (fixed quantizer)"
    if "basis=constant" in comp.spec:
        return "phi(t) constant, not persistently exciting"
    if np.linalg.norm(_call(comp, z[None, :], t)) <= 1e-8 * np.linalg.norm(z):
        return "C(z, t) = 0 at a nonzero z (a dead zone or a direction never excited)"
    return "C(z, t) does not drive z to 0"
