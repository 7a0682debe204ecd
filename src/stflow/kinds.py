"""Finding the built-in kinds: every class a package's modules define that declares a kind.

A built-in problem, compressor or method is one new module: its class declares itself
(``kind`` or ``name``, ``params``, ...) and :func:`discover` finds it, so no list of kinds is
kept by hand anywhere (docs/extending.md).
"""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["discover"]


def discover(package: str, base: type, attr: str) -> list[type]:
    """The classes of ``package``'s public modules (not starting with ``_``), in module
    then definition order, that subclass ``base`` and set ``attr`` (non-empty) in their own
    body.

    Examples
    --------
    >>> from stflow.compressors import Compressor
    >>> [c.name for c in discover("stflow.compressors", Compressor, "summary")][:3]
    ['identity', 'topk', 'quantize']
    """
    pkg = importlib.import_module(package)
    found: list[type] = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, base)
                    and obj.__module__ == module.__name__ and vars(obj).get(attr)):
                found.append(obj)
    return found
