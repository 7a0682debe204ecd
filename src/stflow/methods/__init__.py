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
``extra``                     EXTRA (:mod:`.extra`)                        64 d
``beer``                      BEER (:mod:`.beer`)                          2 x the compressor's
``motef``                     MoTEF (:mod:`.motef`)                        2 x compressor's
============================  ===========================================  =================

Each method class declares itself once: its ``kind``, its ``[method]`` keys as
:class:`~stflow.methods.base.Param` (default, bounds, meaning), its auto rule
(:meth:`~stflow.methods.base.Method.auto_value`; the peers' ``auto_lr``) and how it is built
from them (:meth:`~stflow.methods.base.Method.build`). :data:`METHOD_CLASSES` holds the
built-in classes, one per kind, found in this package's modules (a new method is one new
module); :func:`method_class`, :func:`method_params` and
:func:`make_method` read them, and so do the config, ``docs/config.md`` and the tuner. A
user's method, ``[method] kind = "py:FILE:ATTR"``, is a :class:`Method` subclass loaded by
:func:`stflow.methods.user.user_method_class` (the contract: ``docs/methods.md``). The block
protocol both engines run is in :mod:`stflow.methods.base`.
"""

from __future__ import annotations

from ..errors import InputError
from ..kinds import discover
from ._peer import PeerMethod, metropolis_weights
from .base import Block, Method, Param, keyed_normal
from .choco import CHOCO
from .dgd import DGD
from .gradient_tracking import GradientTracking
from .lead import LEAD
from .nids import NIDS
from .primal_dual import (
    FLOW_KINDS,
    FLOW_PARAMS,
    SCHEMES,
    DirectFlow,
    Gains,
    ObserverFlow,
    PrimalDualFlow,
    UncompressedFlow,
    auto_gains,
    primal_dual_update,
)

__all__ = [
    "METHOD_CLASSES",
    "METHOD_KINDS",
    "FLOW_KINDS",
    "FLOW_PARAMS",
    "PEER_KINDS",
    "SCHEMES",
    "AUTO_LR",
    "Block",
    "Method",
    "Param",
    "keyed_normal",
    "PeerMethod",
    "PrimalDualFlow",
    "UncompressedFlow",
    "DirectFlow",
    "ObserverFlow",
    "Gains",
    "DGD",
    "GradientTracking",
    "NIDS",
    "CHOCO",
    "LEAD",
    "auto_gains",
    "primal_dual_update",
    "metropolis_weights",
    "method_class",
    "method_params",
    "make_method",
]

#: The built-in methods, one class per ``[method] kind``: every class of this package that
#: sets ``kind`` (:func:`stflow.kinds.discover`); the primal-dual flows first, then the
#: peers in module order.
METHOD_CLASSES: tuple[type[Method], ...] = tuple(sorted(
    discover("stflow.methods", Method, "kind"), key=lambda c: not c.flow_gains))
_BY_KIND = {c.kind: c for c in METHOD_CLASSES}
assert len(_BY_KIND) == len(METHOD_CLASSES), "two method classes declare the same kind"
#: Every built-in ``[method] kind``.
METHOD_KINDS = tuple(_BY_KIND)
#: Peer kinds (the established methods, :class:`PeerMethod`).
PEER_KINDS = tuple(c.kind for c in METHOD_CLASSES if issubclass(c, PeerMethod))
#: ``lr = "auto"`` of each peer: ``AUTO_LR[kind] / L`` (read from the classes' ``auto_lr``;
#: EXTRA's is ``AUTO_LR["extra"] * lambda_min((I + W)/2) / L``), ``L`` the curvature estimate
#: of every method's auto values (:func:`stflow.problems.curvature_estimate`).
AUTO_LR = {c.kind: c.auto_lr for c in METHOD_CLASSES if issubclass(c, PeerMethod)}


def method_class(kind: str, base_dir=None) -> type[Method]:
    """The class implementing ``kind``: a built-in name, or ``py:FILE:ATTR[:key=value,...]``
    (a user's :class:`Method` subclass, ``FILE`` relative to ``base_dir``).

    Examples
    --------
    >>> method_class("lead").__name__, method_class("observer").__name__
    ('LEAD', 'ObserverFlow')
    """
    from ..user_code import is_py

    if is_py(kind):
        from .user import user_method_class

        return user_method_class(kind, base_dir)
    if isinstance(kind, str) and kind in _BY_KIND:
        return _BY_KIND[kind]
    raise InputError(
        f"[method] kind must be one of {', '.join(METHOD_KINDS)} or py:FILE:ATTR (your own "
        f"method, docs/methods.md) (got {kind!r}): pick one of those"
    )


def method_params(kind: str, base_dir=None) -> tuple[Param, ...]:
    """The ``[method]`` parameters method ``kind`` declares (besides ``kind``).

    Examples
    --------
    >>> [p.name for p in method_params("lead")], [p.name for p in method_params("direct")]
    (['lr', 'alpha', 'gamma'], ['alpha', 'beta', 'eta', 'error_feedback'])
    """
    return tuple(method_class(kind, base_dir).params)


def make_method(kind: str, problem, graph, compressor=None, *, scheme: str = "predict",
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
    return method_class(kind).build(problem, graph, compressor, scheme=scheme, **params)
