"""Compatibility name: the primal-dual flows now live in :mod:`stflow.methods.primal_dual`.

``from stflow.flows import PrimalDualFlow, Gains, auto_gains`` keeps working.
"""

from .methods.base import initial_array as _initial_array  # noqa: F401
from .methods.primal_dual import (
    FLOW_KINDS,
    SCHEMES,
    Gains,
    PrimalDualFlow,
    auto_gains,
    primal_dual_update,
)

__all__ = ["FLOW_KINDS", "SCHEMES", "Gains", "PrimalDualFlow", "auto_gains",
           "primal_dual_update"]
