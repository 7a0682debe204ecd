"""stflow: distributed primal-dual flows with spatio-temporal compressed communication.

The names a user needs for a run, imported lazily (``import stflow`` loads neither SciPy's
optimizers, the MPI engine nor PyTorch until a name that needs them is used):

=========================  ===============================================================
run from a config          :func:`load_config`, :func:`resolve_config`, :func:`build_run`,
                           :func:`run_config` (the simulator), :func:`run_batch` (many
                           configs of one shape as one program), :func:`run_mpi`
the pieces                 :func:`make_problem`, :func:`make_graph`, :func:`make_compressor`,
                           :func:`make_method`, :func:`solve` (returns a :class:`Solution`)
tools                      :func:`certify` (is a compressor spatio-temporal?), :func:`tune`
your own kinds             :class:`Problem`, :class:`Method`, :class:`Compressor`,
                           :class:`Param` (docs/extending.md, docs/methods.md,
                           docs/problems.md); :func:`stflow.testing.check_method`
the flows                  :class:`PrimalDualFlow`, :class:`Gains`, :func:`auto_gains`
errors                     :class:`InputError` (bad input: one line, exit code 2)
=========================  ===============================================================

Examples
--------
>>> import stflow
>>> auto = dict.fromkeys(("alpha", "beta", "eta", "gamma"), "auto")
>>> cfg = stflow.resolve_config({"problem": {"agents": 4, "dim": 3},
...                              "method": {"kind": "observer", **auto},
...                              "solver": {"step": 0.01, "horizon": 20.0}})
>>> run, sol = stflow.run_config(cfg)
>>> sol.status, sol.final_relative_error < 1e-8
('converged', True)
"""

from __future__ import annotations

import importlib
import os as _os
import sys as _sys

__version__ = "0.1.0"


def _cli_start_interrupts() -> None:
    """The ``stflow`` command (the console script, ``python -m stflow[.cli]``): until its
    ``main`` takes over the signals, Ctrl-C or SIGTERM while the package is still being
    imported (numpy, half a second) exits 130 with one line (nothing was written yet),
    not a traceback or the bare 143 of SIGTERM. A program importing stflow is left alone."""
    argv0 = _sys.argv[0] if _sys.argv else ""
    if argv0 != "-m" and _os.path.basename(argv0) != "stflow":
        return
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def early(signum, frame):
        name = signal.Signals(signum).name
        by = "" if name == "SIGINT" else f" by {name}"
        _os.write(2, f"stflow: interrupted{by} before any result was written\n".encode())
        _os._exit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, early)


_cli_start_interrupts()

#: Public name -> the module that defines it.
_API = {
    "load_config": "stflow.config",
    "resolve_config": "stflow.config",
    "build_run": "stflow.config",
    "run_config": "stflow.config",
    "run_batch": "stflow.engines.batch",
    "run_mpi": "stflow.engines.mpi",
    "make_problem": "stflow.problems",
    "make_graph": "stflow.graphs",
    "make_compressor": "stflow.compressors",
    "make_method": "stflow.methods",
    "solve": "stflow.engines.simulate",
    "Solution": "stflow.engines.simulate",
    "certify": "stflow.certify",
    "tune": "stflow.tune",
    "Problem": "stflow.problems",
    "Method": "stflow.methods",
    "Compressor": "stflow.compressors",
    "Param": "stflow.params",
    "PrimalDualFlow": "stflow.methods",
    "Gains": "stflow.methods",
    "auto_gains": "stflow.methods",
    "InputError": "stflow.errors",
}

__all__ = ["__version__", *_API]


# ``certify`` and ``tune`` are also the names of their modules: importing the module
# ``stflow.certify`` would bind the package attribute to the module, so these two are bound
# to their functions now (after which a module import no longer rebinds them).
from .certify import certify  # noqa: E402, F401
from .tune import tune  # noqa: E402, F401


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'stflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
