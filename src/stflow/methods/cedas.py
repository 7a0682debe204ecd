r"""CEDAS: compressed exact diffusion (with adaptive stepsizes), one compressed vector a round."""

from __future__ import annotations

import numpy as np

from ._peer import PeerMethod, lr_param
from .base import Param

__all__ = ["CEDAS"]


class CEDAS(PeerMethod):
    r"""CEDAS: exact diffusion whose combine step gossips compressed copies.

    Source: Huang & Pu, "CEDAS: A compressed decentralized stochastic gradient method with
    improved convergence", IEEE TAC 2024 (arXiv 2301.05872), Algorithm 1: exact diffusion
    (Yuan, Ying, Zhao & Sayed 2019; adapt, correct, combine) whose combine step mixes
    public copies :math:`H` kept up to date by the compressed communication procedure of
    LEAD (Liu et al., ICLR 2021; CHOCO-style copies with tracking weight :math:`\alpha`).
    With step :math:`\eta` = ``lr``, consensus step :math:`\gamma` = ``gamma``, tracking
    weight :math:`\alpha` = ``alpha``, :math:`\Psi^0 = X^0` and :math:`H^0 = 0`:

    .. math::

        \Psi^{k+1} = X^k - \eta \nabla F(X^k), \qquad
        \Phi^{k+1} = \Psi^{k+1} + X^k - \Psi^k, \qquad
        Q^k = C(\Phi^{k+1} - H^k, t_k),

        \hat\Phi^{k+1} = H^k + Q^k, \qquad
        X^{k+1} = \Phi^{k+1} - \tfrac{\gamma}{2} (I - W) \hat\Phi^{k+1}, \qquad
        H^{k+1} = (1 - \alpha) H^k + \alpha \hat\Phi^{k+1}.

    The paper's :math:`\hat\Phi_w = H_w + W Q` with :math:`H_w = W H` is computed as
    :math:`W \hat\Phi` (equal in exact arithmetic; a separately updated :math:`H_w` drifts
    by rounding, as LEAD's does). With the identity compressor :math:`\hat\Phi = \Phi` and
    CEDAS is exact diffusion / NIDS with :math:`c = \gamma / 2`. The fixed point is exact
    (:math:`\mathbf 1^T (X^k - \Psi^k) = 0` for all k). The paper's "adaptive stepsizes" are
    a decaying :math:`\eta_k = \theta / (\mu (k + m))` for stochastic gradients; here the
    step is constant unless ``[solver] step_decay`` scales it. Only :math:`q_i` is sent.

    Transcription caveat: the paper's text was not available to check against while this
    was written (the equations above are CEDAS as its abstract describes it, compressed
    exact diffusion with LEAD's procedure; ``docs/peers.md``).

    Examples
    --------
    >>> from stflow.compressors import make_compressor
    >>> from stflow.graphs import make_graph
    >>> from stflow.problems import make_problem
    >>> from stflow import solve
    >>> p = make_problem("quadratic", agents=6, dim=4, seed=0)
    >>> m = CEDAS(p, make_graph("ring", 6), make_compressor("quantize:bits=4", 4))
    >>> sol = solve(m, step=1.0, horizon=2000, tolerance=1e-8)
    >>> m.bits_per_message, sol.status
    (80, 'converged')
    """

    kind = "cedas"
    title = "CEDAS"
    #: measured: lr = 1 / L_f reaches 1e-8 fastest, or within 2.1x of the fastest of the
    #: steps tried (0.1 to 1.5 / L_f), on three problems with top-k and quantize
    #: (docs/peers.md);
    #: uncompressed, CEDAS is NIDS / exact diffusion, whose steps go up to 2 / L (Li, Shi &
    #: Yan 2019) and whose auto lr is 1 / L_f too.
    auto_lr = 1.0
    params = (
        lr_param(auto_lr),
        Param("gamma", 1.0, "consensus step gamma in (0, 2]: X+ = Phi - gamma/2 (I - W) "
              "Phi^; 1 with C = identity is exact diffusion", high=2.0),
        Param("alpha", 0.1, "weight alpha in (0, 1] of the compressed-copy tracking H",
              high=1.0),
    )
    state_keys = ("X", "Psi", "H")
    copies = ("H",)
    channels = ("compressed",)

    def init_block(self, X, V):
        return {"X": X, "Psi": X.copy(), "H": np.zeros((self.block.n_cols, self.dim))}

    def send(self, state, t, h):
        X = state["X"]
        self._psi = X - self.lr * self.grad(X)
        self._phi = self._psi + X - state["Psi"]
        return [self._phi - state["H"][self.block.own]]

    def receive(self, state, messages, t, h):
        a, own = self.alpha, self.block.own
        phat = state["H"] + messages[0]
        X = self._phi - (0.5 * self.gamma) * (phat[own] - self.W @ phat)
        psi, self._psi, self._phi = self._psi, None, None
        return {"X": X, "Psi": psi, "H": (1.0 - a) * state["H"] + a * phat}
