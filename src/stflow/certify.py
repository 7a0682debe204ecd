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

    def to_dict(self) -> dict:
        """Plain dict with keys spec, dim, spatio_temporal, rate, kappa, linear_bound, linear,
        bits_per_message, reason (JSON-ready)."""
        return asdict(self)


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
        rows.append(np.eye(d)[j])
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
    n_trials: int = 6,
    max_steps: int | None = None,
) -> Certificate:
    r"""Numerically certify that a compressor is spatio-temporal (SPEC section 3).

    The flow :math:`\dot z = -C(z, t)` is stepped by explicit Euler,
    :math:`z_{n+1} = z_n - h\, C(z_n, t_0 + n h)`, with
    :math:`h = \min(0.02,\ 0.5 / L_c,\ \text{time\_scale})` (so Euler cannot make a
    stable flow look unstable, and every window of a time-varying C is sampled), from the
    directions of :func:`initial_conditions` at scales :math:`10^{-6}, 10^{-3}, 1, 10^3,
    10^6` (three scales when d > 100) and three start times (0, inside the first window, and
    past the first excitation period); one compressor call per start time and step acts on
    all the trials of that start time. Horizon :math:`T = \max(30, 20 P, 5 d)` with P the
    excitation period. Past ``max_steps`` steps a time-invariant C gets a coarser h (at most
    :math:`0.5/L_c`), then T is cut (but kept at 20 P if that takes at most 6 ``max_steps``).
    A trial is finished once :math:`\|z\| \le 10^{-10}\|z(t_0)\|`.

    Per trial, :math:`\lambda_i` is minus the least-squares slope of
    :math:`\log \|z(t)\|/\|z(t_0)\|` over the second half of its run;
    :math:`\lambda = \min_i \lambda_i \cdot h / (-\log(1 - h))` (Euler shrinks a projected
    component by :math:`1 - h` per step where the flow shrinks it by :math:`e^{-h}`: exact
    for identity, topk, randk and cyclic, conservative otherwise) and
    :math:`\kappa = \max_{i,t} \|z_i(t)\| e^{\lambda(t-t_0)} / \|z_i(t_0)\|`. Accepted when
    every trial either finished or lost at least 1e-4 of :math:`\log\|z\|` over the second
    half of its run, :math:`\lambda > 0`, and the estimated :math:`L_c` is finite. Scale
    matters: a dead zone (fixed quantizer) shows as a trial that stops moving.

    Parameters
    ----------
    compressor
        A :class:`~stflow.compressors.Compressor` or a spec string (then ``dim`` is needed).
    dim
        d, when ``compressor`` is a spec.
    seed
        Seed of the random initial conditions.
    horizon
        Integration time per trial (default above).
    n_trials
        Number of random Gaussian directions (the other directions are fixed).
    max_steps
        Cap on Euler steps (default: a budget of 6e8 row-steps times d, clipped to 2000..200000).

    Examples
    --------
    >>> cert = certify("identity", 3)
    >>> cert.spatio_temporal, round(cert.rate, 3)
    (True, 1.0)
    >>> certify("fixedquant:step=0.1", 3).spatio_temporal
    False
    """
    comp = _resolve(compressor, dim)
    d = comp.dim
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 0:
        raise InputError(f"`n_trials` must be an integer >= 0 (got {n_trials!r}): e.g. 6")
    rng = np.random.default_rng(seed)
    dirs, labels = initial_conditions(d, rng, n_trials)
    scales = (1e-6, 1e-3, 1.0, 1e3, 1e6) if d <= 100 else (1e-6, 1.0, 1e6)

    period = float(comp.period) if math.isfinite(comp.period) else 0.0
    tscale = float(comp.time_scale)
    window = tscale if math.isfinite(tscale) else 1.0
    t0s = (0.0, 0.37 * window, 7.61 * window + 1.3 * period)
    base = np.concatenate([s * dirs for s in scales])
    n_base = base.shape[0]
    Z = np.tile(base, (len(t0s), 1))
    M = Z.shape[0]
    row_label = [
        f"{labels[i % len(labels)]} start of scale {scales[i // len(labels)]:g}"
        for i in range(n_base)
    ]

    L_theory = float(comp.linear_bound)
    if not math.isfinite(L_theory):
        L_theory = max(1.0, _probe_bound(comp, rng))
    h = min(0.02, 0.5 / L_theory, tscale)
    T = float(horizon) if horizon is not None else max(30.0, 20.0 * period, 5.0 * d)
    if not (math.isfinite(T) and T > 0):
        raise InputError(f"`horizon` must be a finite number > 0 (got {horizon!r}): e.g. 50")
    if max_steps is None:
        max_steps = int(np.clip(_MAX_ROWS_X_STEPS_X_DIM / (M * d), 2000, 200_000))
    elif isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise InputError(f"`max_steps` must be an integer >= 1 (got {max_steps!r}): e.g. 10000")
    cut = ""
    if T / h > max_steps:
        if not math.isfinite(tscale):  # time-invariant C: a coarser step is still safe
            h = min(0.5 / L_theory, T / max_steps)
        if T / h > max_steps:  # keep 20 excitation periods if 6 times the budget allows
            T = max(max_steps * h, min(T, 20.0 * period, 6 * max_steps * h))
            cut = f", horizon cut to {T:.3g} by max_steps"
    n_steps = max(1, math.ceil(T / h - 1e-9))
    stride = max(1, n_steps // 400)

    norm0 = np.linalg.norm(Z, axis=1)
    active = np.ones(M, dtype=bool)
    groups = [slice(g * n_base, (g + 1) * n_base) for g in range(len(t0s))]
    times, logs = [0.0], [np.zeros(M)]
    L_est = 0.0
    finite = True
    C = np.empty_like(Z)
    for n in range(n_steps):
        for gi, sl in enumerate(groups):
            C[sl] = comp(Z[sl], t0s[gi] + n * h)
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
                Z[finished] = 0.0
            if not active.any():
                break
    t = np.array(times)
    if not active.any():
        cut = ""  # every trial finished before the cut mattered
    R = np.array(logs)  # (n_records, M), nan once a trial finished
    L_est = max(L_est, _probe_bound(comp, rng))

    common = {
        "spec": comp.spec,
        "dim": d,
        "linear": bool(comp.linear),
        "bits_per_message": int(comp.bits_per_message()),
    }
    if not finite or not math.isfinite(L_est):
        return Certificate(
            spatio_temporal=False,
            rate=0.0,
            kappa=math.inf,
            linear_bound=L_est,
            reason="||z|| blows up: C(z, t) is not linearly bounded or the flow diverges",
            **common,
        )

    lam_i, decay_i, done_i = _tail_rates(t, R, ~active)
    lam = float(np.min(lam_i)) * h / -math.log1p(-h)  # Euler shrinks by 1 - h, not e^-h
    ok_i = done_i | ((decay_i >= _MIN_TAIL_DECAY) & (lam_i > 0))
    kappa = float(np.nanmax(np.exp(R + max(lam, 0.0) * t[:, None])))
    if ok_i.all() and lam > 0:
        reason = (
            f"every one of {M} trials decays, ||z(t)|| <= kappa exp(-rate (t - t0)) "
            f"||z(t0)|| (Euler h = {h:.3g}, t - t0 <= {t[-1]:.3g}{cut})"
        )
        return Certificate(
            spatio_temporal=True, rate=lam, kappa=kappa, linear_bound=L_est, reason=reason, **common
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
        rate=max(lam, 0.0),
        kappa=kappa,
        linear_bound=L_est,
        reason=reason,
        **common,
    )


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
    Z[16:24] = np.eye(d)[rng.integers(0, d, 8)]
    Z = Z[np.linalg.norm(Z, axis=1) > 0]
    best = 0.0
    for t in rng.uniform(0.0, 10.0, 4):
        C = comp(Z, float(t))
        best = max(best, float(np.max(np.linalg.norm(C, axis=1) / np.linalg.norm(Z, axis=1))))
    return best


def _cause(comp: Compressor, z: np.ndarray, t: float) -> str:
    """Best guess, in words, why a trial stopped decaying."""
    if "fixedquant" in comp.spec:
        return "dead zone below step/2 (fixed quantizer)"
    if "basis=constant" in comp.spec:
        return "phi(t) constant, not persistently exciting"
    if np.linalg.norm(comp(z, t)) <= 1e-8 * np.linalg.norm(z):
        return "C(z, t) = 0 at a nonzero z (a dead zone or a direction never excited)"
    return "C(z, t) does not drive z to 0"
