r"""The distributed primal-dual flows (SPEC sections 2, 4, 5) and their discretizations.

.. math::

    \dot X = -\alpha L X_c - \beta V - \eta \nabla F(X), \qquad \dot V = \beta L X_c

with :math:`X_c = X` (``uncompressed``), :math:`X_c = C(X, t)` (``direct``) or
:math:`X_c = \hat X,\ \dot{\hat X} = \gamma C(X - \hat X, t)` (``observer``). Three schemes
discretize the same flow, one communication round per step (``[solver] scheme``):

- ``euler`` (pinned, SPEC section 5): every right-hand side at step k;
- ``predict``: the local part first, :math:`Y = X + h(-\beta V - \eta \nabla F(X))`, then
  the round's message (of :math:`Y`), then the consensus part with what it delivered;
- ``gauss_seidel`` (observer; the others equal ``euler``): the observer copies integrate the
  round's messages first, and the consensus part uses :math:`\hat X^{k+1}`.

The direct flow takes ``error_feedback = true``: agent i keeps a memory :math:`m_i` (own rows
only, never sent, :math:`m_i(0) = 0`), sends :math:`c_i = C(z_i + m_i, t)` where :math:`z_i` is
what the direct flow would compress (:math:`x_i`, or :math:`y_i` under ``predict``) and keeps
:math:`m_i \leftarrow z_i + m_i - c_i`; receivers use :math:`X_c = c` as before.

Written once in the block form of :mod:`stflow.methods.base`, so the simulator and the MPI
engine run the same code.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .. import kernels
from ..errors import DirectFlowWarning, InputError
from .base import Method, Param

__all__ = [
    "FLOW_CLASSES",
    "FLOW_KINDS",
    "FLOW_PARAMS",
    "SCHEMES",
    "Gains",
    "PrimalDualFlow",
    "UncompressedFlow",
    "DirectFlow",
    "ObserverFlow",
    "auto_gains",
    "primal_dual_update",
]

#: Discretizations of the flows (``[solver] scheme``), one round per step.
SCHEMES = ("euler", "predict", "gauss_seidel")

_GAIN_PARAMS = (
    Param("alpha", "auto", 'consensus gain (> 0, or "auto")', auto=True),
    Param("beta", "auto", 'dual gain (> 0, or "auto")', auto=True),
    Param("eta", "auto", 'gradient gain (> 0, or "auto")', auto=True),
)
_GAMMA = Param("gamma", "auto", 'observer gain (> 0, or "auto")', auto=True)
_TRIGGER = (
    Param("trigger", 0.0, "event-triggered sending: agent i sends only while "
          "||x_i - xhat_i|| > trigger * exp(-trigger_decay * t), else a 1-bit flag "
          "(0: every agent sends every round, no flag)", zero=True),
    Param("trigger_decay", 1.0, "decay rate of the trigger threshold per unit time",
          requires="trigger"),
)
_ERROR_FEEDBACK = Param(
    "error_feedback", False,
    "true: agent i sends C(x_i + m_i, t) and keeps the error m_i <- x_i + m_i - C(...) "
    "(docs/schemes.md)", choices=(True, False), tunable=False)


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
    stflow.errors.InputError: `alpha` must be a positive finite number (got 0.0): set [method] alpha > 0 or "auto"
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
                    f'set [method] {name} > 0 or "auto"'
                )
            object.__setattr__(self, name, float(value))


#: Safety factors of :func:`auto_gains` (measured, see ``docs/gains.md``).
#: The optimization counts as the bottleneck when its rate eta*mu is below consensus's
#: alpha*lambda_2 by this factor; then ``predict`` raises eta (up to its gradient-step cap).
AUTO_RATE_SEPARATION = 10.0
#: Per scheme: (step budget b, observer ratio r, eta cap over s / L), measured on E2 and
#: P4 (docs/gains.md). ``predict``: (1, 1/4), within 1.1-1.6x of the tuned bits on E2, P3
#: and P4; its local part is a gradient step on each agent, stable for h eta L < 2, so an
#: ill-conditioned problem (E6) may raise eta to 2 s / L. ``euler``: (0.2, 1/2)
#: (``h (alpha lambda_max + eta L) = 3 s h <= 0.6``): 0.3, the largest budget of {0.1, 0.2,
#: 0.3, 0.5, 1} that did not diverge on E2 and P4, diverged in 8 of 90 loss-free settings
#: on rings (``benchmarks/gains_euler_matrix.py``), 0.2 in none; ``gauss_seidel``: (1, 1/2), no
#: divergence on E2 and P4 up to b = 1. Both within 1.2x of their tuned bits (budget 30)
#: on E2 and P4 with the quantizer (``euler`` 1.32x on E2 at budget 50); the earlier
#: (0.1, 5) took 4.7x and 6.9x on E2 and reached nothing on P4. Their cap is 1.
AUTO_SCHEME = {"euler": (0.2, 0.5, 1.0),
               "gauss_seidel": (1.0, 0.5, 1.0),
               "predict": (1.0, 0.25, 2.0)}
#: Step budget b of the flows without an observer (``uncompressed``, ``direct``): their
#: consensus part acts on the sent state itself, so ``predict``'s b = 1 puts
#: h alpha lambda_max at 2, the edge of stability (the uncompressed flow diverged by round
#: 40 at every step h), and ``gauss_seidel`` is ``euler`` without an observer
#: (``docs/gains.md``).
AUTO_BUDGET_WITHOUT_OBSERVER = {"euler": 0.3, "gauss_seidel": 0.3, "predict": 0.5}
#: Periods T_C the flow's time constant 1/s spans at least when the compressor's directions
#: are drawn at random (``random_support``: ``randk``, the random scalarizer), so T_C is a
#: mean wait: with s = 1/T_C, as for a cyclic scalarizer, ``randk:k=1`` diverged on rings
#: of 4 and 10 agents, a star of 6 and a complete graph of 8 under some scheme (8 of 12
#: runs, docs/gains.md); with s = 1/(2 T_C) every one of them converged.
AUTO_RANDOM_PERIODS = 2.0


def auto_gains(
    *,
    lambda_max: float,
    smoothness: float | None,
    step: float,
    compressor_rate: float | None = None,
    compressor_period: float = 0.0,
    random_support: bool = False,
    observer: bool = True,
    scheme: str = "predict",
    lambda_2: float | None = None,
    strong_convexity: float | None = None,
    delivery: float = 1.0,
) -> Gains:
    r"""Gains derived from the graph, the cost's curvature, the compressor and the step.

    All gains are proportional to one speed :math:`s` (the flow is then a time-rescaling of a
    normalized one, so a larger :math:`s` is faster per unit time), capped three ways:

    .. math::

        s = \min\Big(\frac{b}{h},\ \frac{\gamma \lambda_C}{r},\ \frac{1}{p\,T_C}\Big),
        \quad \gamma = \frac{0.5}{h}, \quad \eta = \frac{s}{L},
        \quad \alpha = \beta = \frac{2 s}{\lambda_{max}(L)}

    - the step budget :math:`b` and observer ratio :math:`r` per scheme
      (:data:`AUTO_SCHEME`): ``euler`` :math:`b = 0.2, r = 1/2`, i.e.
      :math:`h(\alpha\lambda_{max} + \eta L) = 3 s h \le 0.6` and a flow up to twice as fast
      as the observer's certified rate :math:`\gamma\lambda_C`; ``gauss_seidel``
      :math:`b = 1, r = 1/2`; ``predict`` :math:`b = 1, r = 1/4`, stable for a far larger
      step and measured best with a flow up to four times faster than the observer's
      certified rate; :math:`\gamma = 0.5/h` is the largest gain
      for which the Euler observer update stays contractive for every compressor with
      :math:`L_c \le 2` (:math:`h\gamma L_c \le 1`);
    - excitation period :math:`T_C` (``d * tau`` for a cyclic scalarizer, ``1/freq`` for the
      sinusoid, 0 for time-invariant compressors): the flow must not move much within one
      period, or the observer lags (SPEC section 3, practical rule). With
      ``random_support`` (directions drawn at random, so :math:`T_C` is a mean wait)
      :math:`p = 2` (:data:`AUTO_RANDOM_PERIODS`), else :math:`p = 1`.

    ``smoothness`` is the curvature :math:`L` that limits the gradient step; the library
    passes :func:`stflow.problems.curvature_estimate` (the number the peers' ``lr = "auto"``
    uses too), :math:`\max_i \lambda_{max}(\nabla^2 f_i(x^\star))`, which is :math:`L_f`
    for quadratic costs and 10x below it for E6's logistic regression.

    On a lossy channel (``delivery`` :math:`q < 1`, the probability that a message of the
    worst-connected agent commits in a round, :func:`stflow.network.commit_rate`) the
    observer flow's speed is :math:`q s`: an aborted message holds every copy of
    :math:`\hat x_i` for the round, so the copies move at about :math:`q` times their
    loss-free speed, and a flow faster than its copies diverges (measured: without the
    factor, ``predict`` diverged at 20 % loss on E2 and at 10 % on smaller problems;
    docs/network.md, "Auto gains on a lossy channel").

    With ``lambda_2`` (algebraic connectivity) and ``strong_convexity`` :math:`\mu` (of the
    mean cost :math:`\frac1N\sum_i f_i`) given, ``predict`` raises :math:`\eta` when the
    optimization is the bottleneck, i.e. its slowest rate :math:`\eta\mu` is far below
    consensus's :math:`\alpha\lambda_2`:

    .. math::

        \eta = \min\Big(c\,\frac{s}{L},\ \max\Big(\frac{s}{L},\
        \frac{\alpha\lambda_2}{10\,\mu}\Big)\Big),

    with cap :math:`c = 2` (its local part is a gradient step, stable for
    :math:`h\eta L < 2`); :math:`c = 1` for the Euler schemes. Measured (``docs/gains.md``):
    on E6 (:math:`\alpha\lambda_2 / (\eta\mu) = 384`) it doubles :math:`\eta`, on E2, P3
    and P4 (ratios 0.41, 1.61, 0.12) it changes nothing.

    The direct and uncompressed flows skip the observer cap and use the step budget
    :data:`AUTO_BUDGET_WITHOUT_OBSERVER` (``predict`` 0.5, ``euler`` and ``gauss_seidel``
    0.3). :math:`\alpha = \beta` with
    :math:`\alpha\lambda_{max} = \eta L`-scale stiffness was the fastest pair in a scan of
    :math:`\alpha\lambda_{max}/s \in \{0.5, 1, 2\}` and :math:`\beta/\alpha \in
    \{0.5, 1, 2, 4\}` on rings and stars (``docs/gains.md``).

    Examples
    --------
    ``euler`` at h = 1e-3: s = min(0.2 / h, gamma lambda_C / r) = min(200, 500 * 0.2 / 0.5)
    = 200:

    >>> g = auto_gains(lambda_max=4.0, smoothness=2.0, step=1e-3, compressor_rate=0.2,
    ...                scheme="euler")
    >>> g.alpha, g.beta, g.eta, g.gamma
    (100.0, 100.0, 100.0, 500.0)

    An ill-conditioned problem under ``predict``: s = 100, s / L = 10, and alpha lambda_2 /
    (10 mu) = 50 is above the cap 2 s / L = 20:

    >>> g = auto_gains(lambda_max=4.0, smoothness=10.0, step=0.01, scheme="predict",
    ...                lambda_2=1.0, strong_convexity=0.1)
    >>> g.alpha, g.eta
    (50.0, 20.0)
    """
    if scheme not in AUTO_SCHEME:
        raise InputError(f"`scheme` must be one of {', '.join(AUTO_SCHEME)} (got {scheme!r})")
    budget, ratio, cap = AUTO_SCHEME[scheme]
    if not observer:
        budget = AUTO_BUDGET_WITHOUT_OBSERVER[scheme]
    lf = smoothness if smoothness and smoothness > 0 else 1.0
    speed = budget / step
    gamma = 0.5 / step
    if observer:
        rate = compressor_rate if compressor_rate and compressor_rate > 0 else 1.0
        speed = min(speed, gamma * rate / ratio)
    if compressor_period and math.isfinite(compressor_period) and compressor_period > 0:
        periods = AUTO_RANDOM_PERIODS if random_support else 1.0
        speed = min(speed, 1.0 / (periods * compressor_period))
    if observer and 0.0 < delivery < 1.0:
        speed *= delivery
    alpha = 2.0 * speed / lambda_max
    eta = speed / lf
    if cap > 1.0 and lambda_2 and lambda_2 > 0 and strong_convexity and strong_convexity > 0:
        wanted = alpha * lambda_2 / (AUTO_RATE_SEPARATION * strong_convexity)
        eta = min(cap * eta, max(eta, wanted))
    return Gains(alpha=alpha, beta=alpha, eta=eta, gamma=gamma)


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
    # Same IEEE operations in the same order as the formula above (one compiled pass, or
    # its numpy twin: stflow.kernels); the inputs are not modified.
    return kernels.primal_dual_update(X, V, LXc, G, h, gains.alpha, gains.beta, gains.eta)


def _exp(x):
    """``math.exp`` of a number, or of each entry of a per-row column (a batch of runs,
    :mod:`stflow.engines.batch`): the same libm value a single run computes."""
    if np.ndim(x) == 0:
        return math.exp(x)
    values, inverse = np.unique(x, return_inverse=True)
    return np.array([math.exp(v) for v in values])[inverse].reshape(np.shape(x))


class PrimalDualFlow(Method):
    r"""One of the three primal-dual flows of SPEC sections 2 and 4, with one scheme.

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
    scheme : {"euler", "predict", "gauss_seidel"}
        The discretization (module docstring), default ``predict`` as in a config's
        ``[solver] scheme``; ``euler`` is SPEC section 5's pinned one.
    error_feedback : bool
        Direct flow only: compress the state plus the memory ``M`` of past compression
        errors (module docstring); ``M`` is a state array of the agent's own rows.

    Examples
    --------
    Two agents, d = 1, uncompressed, one Euler step of size 0.1 from X = [[1], [3]]:

    >>> from types import SimpleNamespace
    >>> import scipy.sparse as sp
    >>> graph = SimpleNamespace(laplacian=sp.csr_matrix([[1.0, -1.0], [-1.0, 1.0]]),
    ...                         degree=np.array([1, 1]), n=2)
    >>> problem = SimpleNamespace(n_agents=2, dim=1, grad=lambda X: X - 1.0)
    >>> flow = PrimalDualFlow("uncompressed", problem, graph, scheme="euler",
    ...                       gains=Gains(alpha=1.0, beta=1.0, eta=1.0, gamma=1.0))
    >>> state = flow.initial_state(x0=np.array([[1.0], [3.0]]))
    >>> flow.step(state, 0.0, 0.1)["X"].ravel().tolist()
    [1.2, 2.6]
    """

    title = "primal-dual flow"
    takes_v0 = True
    local_steps_ok = True
    continuous_ok = True
    flow_gains = True

    def __new__(cls, kind=None, *args, **kwargs):
        """``PrimalDualFlow(kind, ...)`` is the subclass declaring ``kind``."""
        if cls is PrimalDualFlow:
            by_kind = {c.kind: c for c in PrimalDualFlow.__subclasses__()}
            if kind not in by_kind:
                raise InputError(
                    f"[method] kind must be one of {', '.join(by_kind)} (got {kind!r}): "
                    "pick one of those"
                )
            cls = by_kind[kind]
        return super().__new__(cls)

    @classmethod
    def build(cls, problem, graph, compressor=None, *, scheme: str = "predict", **params):
        """The flow from its resolved ``[method]`` gains (no ``"auto"`` left: see
        :func:`stflow.config.resolve_auto_gains`) and options."""
        names = [p.name for p in cls.params if p.auto]
        unresolved = [n for n in names if params.get(n, "auto") == "auto"]
        if unresolved:  # "auto" (the default) depends on the step h, which is not known here
            raise InputError(
                f"the {cls.kind} flow needs numeric gains here (got {unresolved[0]} = \"auto\", "
                "the default, which depends on the step h): pass "
                f"{', '.join(f'{n}=' for n in names)} e.g. from stflow.auto_gains(..., step=h), "
                "or run a config (stflow.run_config resolves \"auto\")"
            )
        gains = Gains(alpha=params.pop("alpha"), beta=params.pop("beta"),
                      eta=params.pop("eta"), gamma=params.pop("gamma", 1.0))
        return cls(cls.kind, problem, graph, compressor, gains=gains, scheme=scheme, **params)

    def __init__(self, kind: str, problem, graph, compressor=None, *, gains: Gains,
                 scheme: str = "predict", trigger: float = 0.0, trigger_decay: float = 1.0,
                 error_feedback: bool = False):
        if kind != type(self).kind:
            raise InputError(
                f"{type(self).__name__} is kind = {type(self).kind!r} (got {kind!r}): use "
                f"PrimalDualFlow({kind!r}, ...)"
            )
        if scheme not in SCHEMES:
            raise InputError(
                f"[solver] scheme must be one of {', '.join(SCHEMES)} for the primal-dual "
                f"flows (got {scheme!r}): pick one of those"
            )
        if error_feedback and kind != "direct":
            raise InputError(
                f'[method] error_feedback is only for kind = "direct" (got kind = "{kind}"): '
                "remove error_feedback"
            )
        self.scheme = scheme
        if kind == "observer":
            self.trigger = _TRIGGER[0].check(trigger, kind)
            self.trigger_decay = _TRIGGER[1].check(trigger_decay, kind)
            self.triggered = self.trigger > 0
        elif trigger:
            raise InputError(
                f"[method] trigger (event-triggered sending) is defined for the observer flow "
                f'only (got kind = "{kind}"): use kind = "observer" or drop trigger')
        self.channels = ("raw",) if kind == "uncompressed" else ("compressed",)
        self.state_keys = ("X", "V", "Xhat") if kind == "observer" else ("X", "V")
        self.error_feedback = bool(error_feedback)
        if self.error_feedback:
            self.state_keys = ("X", "V", "M")
            self.continuous_ok = False  # the memory is a per-round quantity
        self.copies = ("Xhat",) if kind == "observer" else ()
        if kind != "uncompressed" and compressor is None:
            raise InputError(f"the {kind} flow needs a compressor: add [compressor] spec")
        self.gains = gains
        self.alpha, self.beta, self.eta = gains.alpha, gains.beta, gains.eta
        if kind == "observer":
            self.gamma = gains.gamma
        super().__init__(problem, graph, compressor if kind != "uncompressed" else None)
        if kind == "direct" and not compressor.linear:
            what = ("and consensus can stall" if not self.error_feedback else
                    "(error feedback is measured, not proven: docs/schemes.md)")
            warnings.warn(
                f"direct flow with the nonlinear compressor {compressor.spec!r}: SPEC section 4 "
                f"gives no convergence guarantee {what}; use the observer flow",
                DirectFlowWarning,
                stacklevel=2,
            )

    @property
    def laplacian(self):
        """The full graph Laplacian (N, N), CSR."""
        return self.graph.laplacian.tocsr()

    def bind_block(self, block) -> None:
        self.lap = block.restrict(self.graph.laplacian.tocsr())

    def mixing_matrices(self) -> dict:
        """``{"lap": L}``: the flows mix through the Laplacian."""
        return {"lap": self.graph.laplacian.tocsr()}

    def init_block(self, X, V):
        state = {"X": X, "V": V}
        if self.kind == "observer":
            state["Xhat"] = np.zeros((self.block.n_cols, self.dim))
        if "M" in self.state_keys:
            state["M"] = np.zeros_like(X, dtype=float)
        return state

    # -- one round ---------------------------------------------------------------------
    def send(self, state, t, h):
        X = state["X"]
        if self.scheme == "predict":
            g = self.gains
            Y = kernels.predict_point(X, state["V"], self.grad(X), h, g.beta, g.eta)
            self._Y = Y
            X = Y
        if self.kind == "observer":
            E = X - state["Xhat"][self.block.own]
            if self.triggered:  # silent agents: q_i = 0, so every copy of xhat_i stays
                threshold = self.trigger * _exp(-self.trigger_decay * t)
                self.active = np.einsum("ij,ij->i", E, E) > np.ravel(threshold * threshold)
                E[~self.active] = 0.0
            return [E]
        if "M" in state:  # error feedback: compress the state plus the memory
            X = X + state["M"]
            self._Z = X
        return [X]

    def local(self, state, t, h):
        if self.scheme != "predict":
            self._G = self.grad(state["X"])

    def receive(self, state, messages, t, h):
        (M,) = messages
        g = self.gains
        if self.kind == "observer":
            xhat = kernels.observer_copy(state["Xhat"], M, g.gamma, h)  # Xhat + h (gamma Q)
            Xc = state["Xhat"] if self.scheme == "euler" else xhat
        else:
            Xc = M
        LXc = kernels.csr_matmul(self.lap, Xc)
        if self.scheme == "predict":
            X, V = kernels.predict_update(self._Y, state["V"], LXc, h, g.alpha, g.beta)
            self._Y = None
        else:
            X, V = primal_dual_update(state["X"], state["V"], LXc, self._G, h, g)
            self._G = None
        new = {"X": X, "V": V}
        if self.kind == "observer":
            new["Xhat"] = xhat
        if "M" in state:  # m <- (x + m) - C(x + m, t), own rows of what was sent
            new["M"] = self._Z - M[self.block.own]
            self._Z = None
        return new

    def local_update(self, state, t, h):
        r"""SPEC section 7: :math:`x_i \leftarrow x_i + h(-\beta v_i - \eta g_i(x_i))`."""
        g = self.gains
        G = self.grad(state["X"])
        X = (-g.beta) * state["V"]
        X -= g.eta * G
        X *= h
        X += state["X"]
        return {**state, "X": X}

    # -- continuous time -----------------------------------------------------------------
    def vector_field(self, t: float, state) -> dict[str, np.ndarray]:
        """Right-hand side of the flow at ``(t, state)`` (same keys as the state)."""
        if "M" in self.state_keys:
            raise InputError(
                '[method] error_feedback = true has no continuous-time flow (its memory is a '
                'per-round quantity; got [solver] scheme = "continuous"): use method = '
                '"euler" or "predict", or error_feedback = false'
            )
        X = state["X"]
        if self.triggered:
            raise InputError(
                '[solver] scheme = "continuous" has no rounds to skip, so event-triggered '
                'sending is undefined there: set [method] trigger = 0 or [solver] scheme = "predict"')
        if self.kind == "uncompressed":
            Xc, Q = X, None
        elif self.kind == "direct":
            Xc, Q = self.compressor(X, t), None
        else:
            Xc, Q = state["Xhat"], self.compressor(X - state["Xhat"], t)
        LXc = self.laplacian @ Xc
        G = self.problem.grad(X)
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
        # the largest h*(alpha*lambda_max + eta*L_f) of "auto" gains: 0.6 under euler, 3
        # under predict and gauss_seidel (AUTO_SCHEME budgets), with room
        limit = 1.0 if getattr(self, "scheme", "euler") == "euler" else 3.3
        if step * stiffness > limit:
            causes.append(
                f"step too large: h*(alpha*lambda_max + eta*L_f) = {step * stiffness:.3g} > "
                f"{limit:g}; lower [solver] step below {limit / stiffness:.3g} (with gains "
                "set by hand: \"auto\" gains scale with h)"
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
                    f"{2.0 * g.alpha * lam_max:.3g}; raise [method] gamma"
                )
        if self.kind == "direct" and not self.compressor.linear:
            ef = " with error feedback" if self.error_feedback else ""
            causes.append(f"nonlinear compressor on the direct flow{ef} (no guarantee, SPEC 4)")
        return "; ".join(causes) if causes else "unknown (gains and step look admissible)"


class UncompressedFlow(PrimalDualFlow):
    """The primal-dual flow sending its states uncompressed (:math:`X_c = X`, 64 d bits)."""

    kind = "uncompressed"
    title = "primal-dual flow, uncompressed"
    params = _GAIN_PARAMS
    channels = ("raw",)


class DirectFlow(PrimalDualFlow):
    """The primal-dual flow sending compressed states (:math:`X_c = C(X, t)`)."""

    kind = "direct"
    title = "primal-dual flow, compressed states"
    params = _GAIN_PARAMS + (_ERROR_FEEDBACK,)
    channels = ("compressed",)


class ObserverFlow(PrimalDualFlow):
    """The primal-dual flow sending compressed errors to the observer copies (SPEC 4)."""

    kind = "observer"
    title = "primal-dual flow, compressed error states"
    params = _GAIN_PARAMS + (_GAMMA, *_TRIGGER)
    channels = ("compressed",)


#: The primal-dual flows, one class per ``[method] kind``.
FLOW_CLASSES = (UncompressedFlow, DirectFlow, ObserverFlow)
FLOW_KINDS = tuple(c.kind for c in FLOW_CLASSES)
#: The ``[method]`` parameters of each primal-dual flow (read from the classes).
FLOW_PARAMS = {c.kind: c.params for c in FLOW_CLASSES}
