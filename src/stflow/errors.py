"""Exceptions shared by every stflow module.

`InputError` is raised for bad user input (a config key, an argument out of range, a data
file of the wrong shape). The command line turns it into one line on stderr and exit code 2.
Its message names the argument, what was expected, what came, and the fix.
"""

from __future__ import annotations

__all__ = ["InputError", "DirectFlowWarning"]


class InputError(ValueError):
    """Bad user input: one clear line naming the argument, the expectation and the fix.

    Examples
    --------
    >>> str(InputError("`k` must satisfy 1 <= k <= d (got k=12, d=10): lower k or raise dim"))
    '`k` must satisfy 1 <= k <= d (got k=12, d=10): lower k or raise dim'
    """


class DirectFlowWarning(UserWarning):
    """The direct flow was asked to run with a compressor that is not linear in z.

    SPEC section 4 gives no convergence guarantee then: consensus can stall.
    """
