"""A user-defined compressor for stflow, loaded as ``py:examples/my_compressor.py:make``
from the repository root, or as ``py:my_compressor.py:make`` from a config next to it
(``examples/my_compressor.toml``: paths in a config start at the config's folder).

``make(dim, **kwargs)`` returns a callable ``C(Z, t)`` on (N, d) arrays. Here: keep every
other coordinate, alternating which half each ``tau`` (a spatio-temporal "half sparsifier").
Plain callables are sent as d float64 (64 d bits); subclass
``stflow.compressors.Compressor`` to give a compact wire format. The attributes tell stflow
what it cannot see from outside: ``linear`` (C(z, t) = C(t) z), ``period`` (both halves
are sent within two windows: the excitation period ``"auto"`` gains keep the flow slower
than, docs/gains.md) and ``time_scale`` (C changes every ``tau``: the certificate
integrates finer than that).

    stflow certify "py:examples/my_compressor.py:make:tau=0.01" --dim 10
"""

import numpy as np


def make(dim, tau=0.01):
    even = np.arange(dim) % 2 == 0

    def compress(Z, t):
        mask = even if int(np.floor(t / tau + 1e-9)) % 2 == 0 else ~even
        return np.where(mask, Z, 0.0)

    compress.linear = True
    compress.period = 2 * tau
    compress.time_scale = tau
    return compress
