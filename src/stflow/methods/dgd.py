r"""Decentralized gradient descent (DGD, D-PSGD with minibatches): the uncompressed baseline."""

from __future__ import annotations

from ._peer import PeerMethod, lr_param

__all__ = ["DGD"]


class DGD(PeerMethod):
    r"""Decentralized gradient descent with a constant step (inexact).

    Source: Nedic & Ozdaglar, IEEE TAC 2009; constant-step analysis Yuan, Ling & Yin,
    SIAM J. Optim. 2016; with minibatches it is D-PSGD (Lian et al., NeurIPS 2017). Update
    (W Metropolis, :math:`\eta` = ``lr``):

    .. math:: X^{k+1} = W X^k - \eta \nabla F(X^k)

    A fixed point is not consensual: the error floor is :math:`O(\eta)` (halving the step
    roughly halves it). One d-vector per round: 64 d bits. Local steps (SPEC section 7):
    :math:`x_i \leftarrow x_i - \eta g_i(x_i)`.

    Examples
    --------
    >>> from stflow.graphs import make_graph
    >>> from stflow.problems import make_problem
    >>> from stflow import solve
    >>> p = make_problem("quadratic", agents=6, dim=3, seed=0)
    >>> m = DGD(p, make_graph("ring", 6), lr=0.05)
    >>> sol = solve(m, step=1.0, horizon=3000, tolerance=1e-8)
    >>> m.bits_per_message, sol.status, 1e-4 < sol.final_relative_error < 0.5
    (192, 'stalled', True)
    """

    kind = "dgd"
    title = "DGD"
    auto_lr = 0.5
    params = (lr_param(auto_lr),)
    local_steps_ok = True
    stall_hint = ("DGD is inexact, its error floor is O(lr): lower [method] lr, or use an "
                  "exact method (gradient_tracking, nids, extra)")

    def init_block(self, X, V):
        return {"X": X}

    def send(self, state, t, h):
        return [state["X"]]

    def local(self, state, t, h):
        self._G = self.grad(state["X"])

    def receive(self, state, messages, t, h):
        G, self._G = self._G, None
        return {"X": self.W @ messages[0] - self.lr * G}

    def local_update(self, state, t, h):
        return {"X": state["X"] - self.lr * self.grad(state["X"])}
