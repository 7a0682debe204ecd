r"""Every method of stflow, each written once as what one block of agents computes.

============================  ===========================================  =================
``[method] kind``               method (module)                              bits per round
============================  ===========================================  =================
``observer``                  primal-dual flow, compressed error states    the compressor's
``direct``                    primal-dual flow, compressed states          the compressor's
``uncompressed``              primal-dual flow (:mod:`.primal_dual`)       64 d
``dgd``                       DGD / D-PSGD (:mod:`.dgd`)                    64 d
``gradient_tracking``         DIGing (:mod:`.gradient_tracking`)           128 d
``nids``                      NIDS / exact diffusion (:mod:`.nids`)        64 d
``choco``                     CHOCO-SGD (:mod:`.choco`)                    the compressor's
``lead``                      LEAD (:mod:`.lead`)                          the compressor's
============================  ===========================================  =================

Each method declares its ``[method]`` keys as :class:`~stflow.methods.base.Param` (default,
bounds, meaning); :func:`method_params` lists them, the config validates against them and
``docs/config.md`` is generated from them. The block protocol both engines run is in
:mod:`stflow.methods.base`.
"""

from __future__ import annotations

from ..errors import InputError
from ._peer import AUTO_LR, PeerMethod, metropolis_weights
from .base import Block, Method, Param
from .choco import CHOCO
from .dgd import DGD
from .gradient_tracking import GradientTracking
from .lead import LEAD
from .nids import NIDS
from .primal_dual import (
    FLOW_KINDS,
    FLOW_PARAMS,
    SCHEMES,
    Gains,
    PrimalDualFlow,
    auto_gains,
    primal_dual_update,
)

__all__ = [
    "METHOD_KINDS",
    "FLOW_KINDS",
    "PEER_KINDS",
    "SCHEMES",
    "AUTO_LR",
    "Block",
    "Method",
    "Param",
    "PeerMethod",
    "PrimalDualFlow",
    "Gains",
    "DGD",
    "GradientTracking",
    "NIDS",
    "CHOCO",
    "LEAD",
    "auto_gains",
    "primal_dual_update",
    "metropolis_weights",
    "method_params",
    "make_method",
]

_PEERS = {"dgd": DGD, "gradient_tracking": GradientTracking, "nids": NIDS, "choco": CHOCO,
          "lead": LEAD}
#: Peer kinds selectable as ``[method] kind``.
PEER_KINDS = tuple(_PEERS)
#: Every ``[method] kind``.
METHOD_KINDS = FLOW_KINDS + PEER_KINDS


def _unknown_kind(kind) -> InputError:
    return InputError(
        f"[method] kind must be one of {', '.join(METHOD_KINDS)} (got {kind!r}): pick one of those"
    )


def method_params(kind: str) -> tuple[Param, ...]:
    """The ``[method]`` parameters method ``kind`` declares (besides ``kind``).

    Examples
    --------
    >>> [p.name for p in method_params("lead")], [p.name for p in method_params("direct")]
    (['lr', 'alpha', 'gamma'], ['alpha', 'beta', 'eta', 'error_feedback'])
    """
    if kind in _PEERS:
        return _PEERS[kind].params
    if kind in FLOW_KINDS:
        return FLOW_PARAMS[kind]
    raise _unknown_kind(kind)


def method_class(kind: str) -> type[Method]:
    """The class implementing ``kind``."""
    if kind in _PEERS:
        return _PEERS[kind]
    if kind in FLOW_KINDS:
        return PrimalDualFlow
    raise _unknown_kind(kind)


def make_method(kind: str, problem, graph, compressor=None, *, scheme: str = "euler",
                **params) -> Method:
    """Build method ``kind`` with its declared parameters ``params`` (resolved, no "auto"
    gains for the flows: see :func:`stflow.config.resolve_auto_gains`).

    Examples
    --------
    >>> from stflow.compressors import make_compressor
    >>> from stflow.graphs import make_graph
    >>> from stflow.problems import make_problem
    >>> p = make_problem("quadratic", agents=4, dim=8, seed=0)
    >>> m = make_method("lead", p, make_graph("ring", 4), make_compressor("topk:k=2", 8))
    >>> m.kind, m.bits_per_message  # 2 * (3 + 64)
    ('lead', 134)
    """
    cls = method_class(kind)
    if cls is PrimalDualFlow:
        gains = Gains(alpha=params["alpha"], beta=params["beta"], eta=params["eta"],
                      gamma=params.get("gamma", 1.0))
        extra = {k: params[k] for k in ("trigger", "trigger_decay", "error_feedback")
                 if k in params}
        return PrimalDualFlow(kind, problem, graph, compressor, gains=gains, scheme=scheme,
                              **extra)
    return cls(problem, graph, compressor, **params)
