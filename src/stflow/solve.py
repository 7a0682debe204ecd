"""Compatibility name: the simulator now lives in :mod:`stflow.engines.simulate`.

``from stflow.solve import solve, Solution`` keeps working.
"""

from .engines.simulate import GROWTH_LIMIT, SOLVER_METHODS, Solution, _classify, solve

__all__ = ["Solution", "solve", "SOLVER_METHODS", "GROWTH_LIMIT", "_classify"]
