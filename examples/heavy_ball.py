r"""DGD with heavy-ball momentum, written outside stflow against its public method contract.

Run it:  ``stflow run examples/heavy_ball.toml --out results/heavy_ball`` (``[method] kind =
"py:heavy_ball.py:HeavyBall"``); the contract it follows is ``docs/methods.md``.

With Metropolis weights :math:`W`, step :math:`\eta` (``lr``) and momentum :math:`\mu`
(``momentum``), starting from :math:`X^{-1} = X^0`:

.. math:: X^{k+1} = W X^k - \eta \nabla F(X^k) + \mu (X^k - X^{k-1})

(DGD, Nedic & Ozdaglar 2009, plus Polyak's heavy ball, 1964). Like DGD it stalls at an
:math:`O(\eta)` distance from the optimum with a constant step. Each agent sends
:math:`x_i` once per round (one raw channel, 64 d bits).
"""

import numpy as np

from stflow.methods import Method, Param, metropolis_weights


class HeavyBall(Method):
    """DGD with heavy-ball momentum (module docstring)."""

    kind = "heavy_ball"
    title = "DGD + heavy ball"
    params = (
        Param("lr", 0.05, "step size eta (> 0)"),
        Param("momentum", 0.5, "heavy-ball weight mu in (0, 1)", high=0.999, log=False),
    )
    #: X: the agents' iterates; Xprev: last round's (own rows only, never sent).
    state_keys = ("X", "Xprev")
    #: one message per agent and round: x_i, uncompressed (64 d bits)
    channels = ("raw",)

    def bind_block(self, block):
        # a constant of the block: W's rows of the own agents on the block's columns
        self.W = block.restrict(metropolis_weights(self.graph))

    def init_block(self, X, V):
        return {"X": X, "Xprev": X.copy()}

    def send(self, state, t, h):
        return [state["X"]]

    def receive(self, state, messages, t, h):
        X = state["X"]
        G = self.grad(X)  # the block's own gradients, counted by the engine
        new = self.W @ messages[0] - self.lr * G + self.momentum * (X - state["Xprev"])
        return {"X": new, "Xprev": X}
