"""A user-defined compressor for stflow, loaded as ``py:examples/my_compressor.py:make``
from the repository root, or as ``py:my_compressor.py:make`` from a config next to it
(``examples/my_compressor.toml``: paths in a config start at the config's folder).

``make(dim, **kwargs)`` returns a callable ``C(Z, t)`` on (N, d) arrays. Here: keep every
other coordinate, alternating which half each ``tau`` (a spatio-temporal "half sparsifier").
Plain callables are sent as d float64 (64 d bits); subclass
``stflow.compressors.Compressor`` to give a compact wire format.

    stflow certify "py:examples/my_compressor.py:make:tau=0.01" --dim 10
"""

import numpy as np


def make(dim, tau=0.01):
    even = np.arange(dim) % 2 == 0

    def compress(Z, t):
        mask = even if int(np.floor(t / tau + 1e-9)) % 2 == 0 else ~even
        return np.where(mask, Z, 0.0)

    compress.linear = True
    return compress
