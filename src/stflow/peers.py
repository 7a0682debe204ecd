r"""Peer algorithms: the established decentralized methods in the same harness as the flows.

Each peer is a discrete-time method with the interface :func:`stflow.solve.solve` uses for
:class:`stflow.flows.PrimalDualFlow` (``kind``, ``problem``, ``graph``, ``compressor``,
``n_agents``, ``dim``, ``bits_per_message``, ``state_keys``, ``initial_state``, ``step``,
``divergence_cause``). One ``step`` is one iteration = one communication round; the solver's
``step`` h only sets the clock ``t_k = k h`` handed to time-varying compressors and, with
``horizon``, the number of rounds ``round(horizon / h)``. The method's own step sizes are
constructor arguments (``[flow] lr``, ``choco_gamma``, ``lead_alpha``, ``lead_gamma``,
``nids_c``).

All peers mix with the Metropolis-Hastings matrix :func:`metropolis_weights` (sparse, doubly
stochastic). Bits per round follow SPEC section 6 (what one agent broadcasts):

=====================  ==========================================  ========================
kind                   source                                      bits per round
=====================  ==========================================  ========================
``dgd``                Nedic & Ozdaglar 2009; Yuan et al. 2016     64 d
``gradient_tracking``  DIGing, Nedic, Olshevsky & Shi 2017         128 d (x and y)
``nids``               Li, Shi & Yan 2019 (c = 1/2: exact          64 d
                       diffusion, Yuan et al. 2019)
``choco``              CHOCO-SGD, Koloskova, Stich & Jaggi 2019    the compressor's message
                       (Algorithm 2)
``lead``               LEAD, Liu et al. ICLR 2021 (Algorithm 1)    the compressor's message
=====================  ==========================================  ========================

The compressed peers (``choco``, ``lead``) live in :mod:`stflow.peers_compressed`; this
module re-exports them. None of the peers runs on the MPI backend yet.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .peers_base import AUTO_LR, PeerMethod, _positive, metropolis_weights
from .peers_compressed import CHOCO, LEAD

__all__ = [
    "PEER_KINDS",
    "AUTO_LR",
    "metropolis_weights",
    "PeerMethod",
    "DGD",
    "GradientTracking",
    "NIDS",
    "CHOCO",
    "LEAD",
    "make_peer",
]

#: Peer kinds selectable as ``[flow] kind``.
PEER_KINDS = ("dgd", "gradient_tracking", "nids", "choco", "lead")

class DGD(PeerMethod):
    r"""Decentralized gradient descent with a constant step (inexact).

    Source: Nedic & Ozdaglar, IEEE TAC 2009; constant-step analysis Yuan, Ling & Yin,
    SIAM J. Optim. 2016. Update (W Metropolis, :math:`\eta` = ``lr``):

    .. math:: X^{k+1} = W X^k - \eta \nabla F(X^k)

    A fixed point is not consensual: the error floor is :math:`O(\eta)` (halving the step
    roughly halves it). One d-vector per round: 64 d bits.

    Examples
    --------
    >>> from stflow.graphs import make_graph
    >>> from stflow.problems import make_problem
    >>> from stflow.solve import solve
    >>> p = make_problem("quadratic", agents=6, dim=3, seed=0)
    >>> m = DGD(p, make_graph("ring", 6), lr=0.05)
    >>> sol = solve(m, step=1.0, horizon=3000, tolerance=1e-8)
    >>> m.bits_per_message, sol.status, 1e-4 < sol.final_relative_error < 0.5
    (192, 'stalled', True)
    """

    kind = "dgd"

    def _init(self, X):
        return {"X": X}

    def step(self, state, t: float, h: float) -> dict[str, np.ndarray]:
        """One round: mix, then a local gradient step."""
        X = state["X"]
        return {"X": self.mixing @ X - self.lr * self.problem.grad(X)}


class GradientTracking(PeerMethod):
    r"""DIGing / gradient tracking, uncompressed (exact, linear rate).

    Source: Nedic, Olshevsky & Shi, "Achieving geometric convergence for distributed
    optimization over time-varying graphs", SIAM J. Optim. 2017 (DIGing). Update:

    .. math:: X^{k+1} = W X^k - \eta Y^k, \qquad
              Y^{k+1} = W Y^k + \nabla F(X^{k+1}) - \nabla F(X^k), \qquad
              Y^0 = \nabla F(X^0)

    Each agent broadcasts x_i and y_i every round: 128 d bits. One gradient per round
    (kept in the state as ``G``).

    Examples
    --------
    >>> from stflow.graphs import make_graph
    >>> from stflow.problems import make_problem
    >>> from stflow.solve import solve
    >>> p = make_problem("quadratic", agents=6, dim=3, seed=0)
    >>> m = GradientTracking(p, make_graph("ring", 6))
    >>> sol = solve(m, step=1.0, horizon=2000, tolerance=1e-8)
    >>> m.bits_per_message, sol.status
    (384, 'converged')
    """

    kind = "gradient_tracking"
    _keys = ("X", "Y", "G")
    _message_vectors = 2

    def _init(self, X):
        G = self.problem.grad(X)
        return {"X": X, "Y": G.copy(), "G": G}

    def step(self, state, t: float, h: float) -> dict[str, np.ndarray]:
        """One round: mix x and y, track the average gradient."""
        W = self.mixing
        X = W @ state["X"] - self.lr * state["Y"]
        G = self.problem.grad(X)
        Y = W @ state["Y"] + (G - state["G"])
        return {"X": X, "Y": Y, "G": G}


class NIDS(PeerMethod):
    r"""NIDS, uncompressed (exact, linear rate); ``c = 1/2`` is exact diffusion.

    Source: Li, Shi & Yan, "A decentralized proximal-gradient method with network
    independent step-sizes and separated convergence rates", IEEE TSP 2019; with
    :math:`c = 1/2` it is exact diffusion (Yuan, Ying, Zhao & Sayed, IEEE TSP 2019):

    .. math:: X^{k+1} = \tilde W \big(2X^k - X^{k-1} - \eta(\nabla F(X^k) - \nabla F(X^{k-1}))\big),
              \qquad \tilde W = I - c (I - W), \qquad X^1 = \tilde W (X^0 - \eta \nabla F(X^0)).

    Computed in the equivalent primal-dual form (LEAD's uncompressed case, Liu et al. 2021,
    with :math:`D^0 = 0`), whose invariant :math:`\mathbf 1^T D = 0` does not drift in
    floating point (the two-step form above loses about 1e-16 relative per round):

    .. math:: Y^k = X^k - \eta \nabla F(X^k) - \eta D^k, \quad
              D^{k+1} = D^k + \tfrac{c}{\eta} (I - W) Y^k, \quad
              X^{k+1} = X^k - \eta \nabla F(X^k) - \eta D^{k+1} = \tilde W Y^k.

    Agents broadcast :math:`y_i`: 64 d bits per round.

    Examples
    --------
    >>> from stflow.graphs import make_graph
    >>> from stflow.problems import make_problem
    >>> from stflow.solve import solve
    >>> p = make_problem("quadratic", agents=6, dim=3, seed=0)
    >>> sol = solve(NIDS(p, make_graph("ring", 6)), step=1.0, horizon=1000, tolerance=1e-8)
    >>> sol.status
    'converged'
    """

    kind = "nids"
    _keys = ("X", "D")

    def __init__(self, problem, graph, compressor=None, *, lr="auto", c: float = 0.5):
        super().__init__(problem, graph, None, lr=lr)
        self.c = _positive("nids_c", c, upper=1.0, fix="use c = 0.5 (exact diffusion)")

    def _init(self, X):
        return {"X": X, "D": np.zeros_like(X)}

    def step(self, state, t: float, h: float) -> dict[str, np.ndarray]:
        """One round: predict Y, send it, dual update, primal update."""
        lr = self.lr
        base = state["X"] - lr * self.problem.grad(state["X"])
        Y = base - lr * state["D"]
        D = state["D"] + (self.c / lr) * (Y - self.mixing @ Y)
        return {"X": base - lr * D, "D": D}


_CLASSES = {"dgd": DGD, "gradient_tracking": GradientTracking, "nids": NIDS,
            "choco": CHOCO, "lead": LEAD}


def make_peer(kind: str, problem, graph, compressor=None, **params) -> PeerMethod:
    """Build the peer method ``kind`` (one of :data:`PEER_KINDS`).

    ``params`` are the method's step sizes (``lr``, and ``gamma`` for choco, ``alpha``,
    ``gamma`` for lead, ``c`` for nids). ``choco`` and ``lead`` need a compressor; the
    others ignore it (they are uncompressed).

    Examples
    --------
    >>> from stflow.compressors import make_compressor
    >>> from stflow.graphs import make_graph
    >>> from stflow.problems import make_problem
    >>> p = make_problem("quadratic", agents=4, dim=8, seed=0)
    >>> m = make_peer("lead", p, make_graph("ring", 4), make_compressor("topk:k=2", 8))
    >>> m.kind, m.bits_per_message  # 2 * (3 + 64)
    ('lead', 134)
    """
    if kind not in _CLASSES:
        raise InputError(
            f"peer kind must be one of {', '.join(PEER_KINDS)} (got {kind!r}): pick one of those"
        )
    cls = _CLASSES[kind]
    if kind in ("choco", "lead"):
        if compressor is None:
            raise InputError(f"the {kind} method needs a compressor: add [compressor] spec")
        return cls(problem, graph, compressor, **params)
    return cls(problem, graph, **params)
