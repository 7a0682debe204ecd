"""Compatibility name: the peer methods now live in :mod:`stflow.methods` (one module each).

``from stflow.peers import DGD, GradientTracking, NIDS, CHOCO, LEAD, make_peer`` keeps
working; ``make_peer(kind, ...)`` is :func:`stflow.methods.make_method` for the peers.
"""

from .errors import InputError
from .methods import (
    AUTO_LR,
    CHOCO,
    DGD,
    LEAD,
    NIDS,
    PEER_KINDS,
    GradientTracking,
    PeerMethod,
    make_method,
    metropolis_weights,
)

__all__ = ["PEER_KINDS", "AUTO_LR", "metropolis_weights", "PeerMethod", "DGD",
           "GradientTracking", "NIDS", "CHOCO", "LEAD", "make_peer"]


def make_peer(kind: str, problem, graph, compressor=None, **params) -> PeerMethod:
    """Build the peer method ``kind`` (one of :data:`PEER_KINDS`) with its parameters.

    Examples
    --------
    >>> from stflow.graphs import make_graph
    >>> from stflow.problems import make_problem
    >>> make_peer("dgd", make_problem("quadratic", agents=3, dim=2), make_graph("ring", 3)).kind
    'dgd'
    """
    if kind not in PEER_KINDS:
        raise InputError(
            f"peer kind must be one of {', '.join(PEER_KINDS)} (got {kind!r}): pick one of those"
        )
    return make_method(kind, problem, graph, compressor, **params)
