r"""Distributed primal-dual flows: uncompressed, direct and observer (SPEC sections 2, 4, 5).

A flow is a vector field over the stacked state ``X, V: (N, d)`` (and ``Xhat: (N, d)`` for
the observer flow). It knows how to take one pinned explicit Euler step (one communication
round) and how to evaluate its right-hand side for ``scipy.integrate.solve_ivp``; stepping
loops, recording and stopping live in :mod:`stflow.solve`.

.. math::

    \dot X = -\alpha L X_c - \beta V - \eta \nabla F(X), \qquad \dot V = \beta L X_c

with :math:`X_c = X` (uncompressed), :math:`X_c = C(X, t)` (direct) or
:math:`X_c = \hat X,\ \dot{\hat X} = \gamma C(X - \hat X, t)` (observer).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .errors import DirectFlowWarning, InputError

__all__ = [
    "FLOW_KINDS",
    "Gains",
    "PrimalDualFlow",
    "auto_gains",
    "primal_dual_update",
]

FLOW_KINDS = ("uncompressed", "direct", "observer")


@dataclass(frozen=True)
class Gains:
    r"""Gains of the primal-dual flow: :math:`\alpha` (consensus), :math:`\beta` (dual),
    :math:`\eta` (gradient), :math:`\gamma` (observer); all must be positive.

    Examples
    --------
    >>> Gains(alpha=2.0, beta=2.0, eta=1.0, gamma=50.0).gamma
    50.0
    >>> Gains(alpha=0.0, beta=1.0, eta=1.0, gamma=1.0)
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: `alpha` must be a positive finite number (got 0.0): set [flow] alpha > 0 or "auto"
    """

    alpha: float
    beta: float
    eta: float
    gamma: float

    def __post_init__(self):
        for name in ("alpha", "beta", "eta", "gamma"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InputError(
                    f"`{name}` must be a positive finite number (got {value!r}): "
                    f'set [flow] {name} > 0 or "auto"'
                )
            object.__setattr__(self, name, float(value))


#: Safety factors of :func:`auto_gains` (measured, see ``docs/gains.md``).
AUTO_EULER_BUDGET = 0.1  # h * (fastest rate of the flow / 3) <= this
AUTO_OBSERVER_RATIO = 5.0  # the observer's certified rate gamma*lambda_C over the flow's speed


def auto_gains(
    *,
    lambda_max: float,
    smoothness: float | None,
    step: float,
    compressor_rate: float | None = None,
    compressor_period: float = 0.0,
    observer: bool = True,
) -> Gains:
    r"""Gains derived from the graph, the cost's smoothness, the compressor and the step.

    All gains are proportional to one speed :math:`s` (the flow is then a time-rescaling of a
    normalized one, so a larger :math:`s` is faster per unit time), capped three ways:

    .. math::

        s = \min\Big(\frac{0.1}{h},\ \frac{\gamma \lambda_C}{5},\ \frac{1}{T_C}\Big),
        \quad \gamma = \frac{0.5}{h}, \quad \eta = \frac{s}{L_f},
        \quad \alpha = \beta = \frac{2 s}{\lambda_{max}(L)}

    - explicit Euler: :math:`h(\alpha\lambda_{max} + \eta L_f) = 3 s h \le 0.3`;
    - observer: its error dynamics, certified rate :math:`\gamma\lambda_C`, must be five
      times faster than the flow's fastest mode; :math:`\gamma = 0.5/h` is the largest gain
      for which the Euler observer update stays contractive for every compressor with
      :math:`L_c \le 2` (:math:`h\gamma L_c \le 1`);
    - excitation period :math:`T_C` (``d * tau`` for a cyclic scalarizer, ``1/freq`` for the
      sinusoid, 0 for time-invariant compressors): the flow must not move much within one
      period, or the observer lags (SPEC section 3, practical rule).

    The direct and uncompressed flows skip the observer cap. ``lambda_2`` does not enter:
    it sets the resulting rate, not the admissible gains. :math:`\alpha = \beta` with
    :math:`\alpha\lambda_{max} = \eta L_f`-scale stiffness was the fastest pair in a scan of
    :math:`\alpha\lambda_{max}/s \in \{0.5, 1, 2\}` and :math:`\beta/\alpha \in
    \{0.5, 1, 2, 4\}` on rings and stars (``docs/gains.md``).

    Examples
    --------
    >>> g = auto_gains(lambda_max=4.0, smoothness=2.0, step=1e-3, compressor_rate=0.2)
    >>> g.alpha, g.beta, g.eta, g.gamma
    (10.0, 10.0, 10.0, 500.0)
    """
    lf = smoothness if smoothness and smoothness > 0 else 1.0
    speed = AUTO_EULER_BUDGET / step
    gamma = 0.5 / step
    if observer:
        rate = compressor_rate if compressor_rate and compressor_rate > 0 else 1.0
        speed = min(speed, gamma * rate / AUTO_OBSERVER_RATIO)
    if compressor_period and math.isfinite(compressor_period) and compressor_period > 0:
        speed = min(speed, 1.0 / compressor_period)
    alpha = 2.0 * speed / lambda_max
    return Gains(alpha=alpha, beta=alpha, eta=speed / lf, gamma=gamma)


def primal_dual_update(X, V, LXc, G, h, gains: Gains):
    r"""The pinned Euler update of SPEC section 5 for the primal and dual states.

    .. math::

        X^{k+1} = X^k + h\,(-\alpha L X_c^k - \beta V^k - \eta \nabla F(X^k)), \qquad
        V^{k+1} = V^k + h\,\beta L X_c^k

    evaluated in exactly this order: ``((-alpha * LXc) - beta * V) - eta * G``. All arrays
    are ``(n, d)`` (the rows a caller owns: all agents, or one MPI rank's block).

    Examples
    --------
    >>> g = Gains(alpha=1.0, beta=1.0, eta=1.0, gamma=1.0)
    >>> X, V = primal_dual_update(np.ones((1, 1)), np.zeros((1, 1)), np.ones((1, 1)),
    ...                           np.ones((1, 1)), 0.5, g)
    >>> X.item(), V.item()
    (0.0, 0.5)
    """
    # Same IEEE operations in the same order as the formula above, written in place on two
    # fresh buffers (a * b == b * a and a + b == b + a exactly), which saves the
    # allocation of eight temporaries per step; the inputs are not modified.
    acc = np.multiply(LXc, -gains.alpha)
    tmp = np.multiply(V, gains.beta)
    acc -= tmp
    np.multiply(G, gains.eta, out=tmp)
    acc -= tmp
    acc *= h
    acc += X
    np.multiply(LXc, gains.beta, out=tmp)
    tmp *= h
    tmp += V
    return acc, tmp


class PrimalDualFlow:
    r"""One of the three primal-dual flows of SPEC sections 2 and 4.

    Parameters
    ----------
    kind : {"uncompressed", "direct", "observer"}
        What crosses the network: ``X`` itself, ``C(X, t)``, or ``C(X - Xhat, t)``.
    problem
        Batched local costs (``grad(X: (N, d)) -> (N, d)``, ``x_star``).
    graph
        Supplies the sparse ``laplacian`` (N, N), ``degree`` and spectral facts.
    compressor
        A :class:`stflow.compressors.Compressor` (ignored by ``uncompressed``).
    gains : Gains

    Examples
    --------
    Two agents, d = 1, uncompressed, one Euler step of size 0.1 from X = [[1], [3]]:

    >>> from types import SimpleNamespace
    >>> import scipy.sparse as sp
    >>> graph = SimpleNamespace(laplacian=sp.csr_matrix([[1.0, -1.0], [-1.0, 1.0]]),
    ...                         degree=np.array([1, 1]), n=2)
    >>> problem = SimpleNamespace(n_agents=2, dim=1, grad=lambda X: X - 1.0)
    >>> flow = PrimalDualFlow("uncompressed", problem, graph,
    ...                       gains=Gains(alpha=1.0, beta=1.0, eta=1.0, gamma=1.0))
    >>> state = flow.initial_state(x0=np.array([[1.0], [3.0]]))
    >>> flow.step(state, 0.0, 0.1)["X"].ravel().tolist()
    [1.2, 2.6]
    """

    def __init__(self, kind: str, problem, graph, compressor=None, *, gains: Gains):
        if kind not in FLOW_KINDS:
            raise InputError(
                f"[flow] kind must be one of {', '.join(FLOW_KINDS)} (got {kind!r}): "
                "pick one of those"
            )
        if kind != "uncompressed" and compressor is None:
            raise InputError(f"the {kind} flow needs a compressor: add [compressor] spec")
        self.kind = kind
        self.problem = problem
        self.graph = graph
        self.compressor = compressor if kind != "uncompressed" else None
        self.gains = gains
        self.laplacian = graph.laplacian.tocsr()
        self.n_agents = problem.n_agents
        self.dim = problem.dim
        if kind == "direct" and not compressor.linear:
            warnings.warn(
                f"direct flow with the nonlinear compressor {compressor.spec!r}: SPEC section 4 "
                "gives no convergence guarantee and consensus can stall; use the observer flow",
                DirectFlowWarning,
                stacklevel=2,
            )

    # -- what is sent ------------------------------------------------------------------
    @property
    def bits_per_message(self) -> int:
        """Bits one agent broadcasts per round (uncompressed: d float64)."""
        if self.compressor is None:
            return 64 * self.dim
        return int(self.compressor.bits_per_message())

    @property
    def state_keys(self) -> tuple[str, ...]:
        """Names of the state arrays (each (N, d))."""
        return ("X", "V", "Xhat") if self.kind == "observer" else ("X", "V")

    def initial_state(self, x0=None, v0=None) -> dict[str, np.ndarray]:
        """``X(0) = x0`` (default 0), ``V(0) = v0`` (default 0), ``Xhat(0) = 0``.

        ``v0`` must have zero column sums (SPEC section 2), else :class:`InputError`.
        """
        shape = (self.n_agents, self.dim)
        X = _initial_array("x0", x0, shape)
        V = _initial_array("v0", v0, shape)
        sums = V.sum(axis=0)
        if np.max(np.abs(sums)) > 1e-9 * max(1.0, float(np.abs(V).max(initial=0.0))):
            raise InputError(
                f"[init] v0 must have zero column sums (got max |column sum| = "
                f"{np.max(np.abs(sums)):.3g}): subtract the column means from v0"
            )
        state = {"X": X, "V": V}
        if self.kind == "observer":
            state["Xhat"] = np.zeros(shape)
        return state

    def communicated(self, state, t: float):
        """``(X_c, Q)``: what the Laplacian acts on, and the observer message (or None)."""
        if self.kind == "uncompressed":
            return state["X"], None
        if self.kind == "direct":
            return self.compressor(state["X"], t), None
        Q = self.compressor(state["X"] - state["Xhat"], t)
        return state["Xhat"], Q

    # -- Euler (SPEC section 5) ------------------------------------------------------
    def step(self, state, t: float, h: float) -> dict[str, np.ndarray]:
        """One pinned explicit Euler step (one communication round) from time ``t``."""
        Xc, Q = self.communicated(state, t)
        LXc = self.laplacian @ Xc
        G = self.problem.grad(state["X"])
        X, V = primal_dual_update(state["X"], state["V"], LXc, G, h, self.gains)
        new = {"X": X, "V": V}
        if Q is not None:  # Xhat + h * (gamma * Q), in place on one fresh buffer
            xhat = np.multiply(Q, self.gains.gamma)
            xhat *= h
            xhat += state["Xhat"]
            new["Xhat"] = xhat
        return new

    # -- continuous time -----------------------------------------------------------------
    def vector_field(self, t: float, state) -> dict[str, np.ndarray]:
        """Right-hand side of the flow at ``(t, state)`` (same keys as the state)."""
        Xc, Q = self.communicated(state, t)
        LXc = self.laplacian @ Xc
        G = self.problem.grad(state["X"])
        g = self.gains
        out = {"X": (-g.alpha * LXc) - g.beta * state["V"] - g.eta * G, "V": g.beta * LXc}
        if Q is not None:
            out["Xhat"] = g.gamma * Q
        return out

    # -- diagnosis -------------------------------------------------------------------------
    def divergence_cause(self, step: float) -> str:
        """The most likely reason a run of this flow with Euler step ``step`` blew up."""
        g = self.gains
        lam_max = float(self.graph.lambda_max)
        lf = getattr(self.problem, "smoothness", None) or 0.0
        stiffness = g.alpha * lam_max + g.eta * lf
        causes = []
        if step * stiffness > 1.0:
            causes.append(
                f"step too large: h*(alpha*lambda_max + eta*L_f) = {step * stiffness:.3g} > 1; "
                f"lower [solver] step below {1.0 / stiffness:.3g}"
            )
        if self.kind == "observer":
            lc = float(getattr(self.compressor, "linear_bound", 1.0))
            if step * g.gamma * lc > 2.0:
                causes.append(
                    f"step too large for the observer: h*gamma*L_c = {step * g.gamma * lc:.3g} "
                    f"> 2; lower [solver] step or gamma"
                )
            period = getattr(self.compressor, "period", None)
            if period is not None and math.isfinite(period) and period * g.alpha * lam_max > 1.0:
                causes.append(
                    f"scalarizer period too long: period*alpha*lambda_max = "
                    f"{period * g.alpha * lam_max:.3g} (stable below about 1-2, measured in "
                    f"E7); shorten tau or lower alpha"
                )
            if g.gamma < 2.0 * g.alpha * lam_max:
                causes.append(
                    f"gamma too small: gamma = {g.gamma:.3g} < 2*alpha*lambda_max = "
                    f"{2.0 * g.alpha * lam_max:.3g}; raise [flow] gamma"
                )
        if self.kind == "direct" and not self.compressor.linear:
            causes.append("nonlinear compressor on the direct flow (no guarantee, SPEC 4)")
        return "; ".join(causes) if causes else "unknown (gains and step look admissible)"


def _initial_array(name: str, value, shape) -> np.ndarray:
    if value is None:
        return np.zeros(shape)
    arr = np.array(value, dtype=float)
    if arr.ndim == 1 and arr.shape[0] == shape[1]:
        arr = np.tile(arr, (shape[0], 1))
    if arr.shape != shape:
        raise InputError(
            f"[init] {name} must have shape (N, d) = {shape} (got {arr.shape}): "
            "give one row per agent"
        )
    if not np.all(np.isfinite(arr)):
        raise InputError(f"[init] {name} contains NaN or inf: give finite values")
    return arr
