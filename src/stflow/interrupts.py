"""Stopping a run cleanly on Ctrl-C (SIGINT) or SIGTERM.

:func:`catch_interrupts` installs handlers that only *set a flag*; a stepping loop polls
``flag.requested`` once per step, stops at the end of the current step, records the row
reached and returns status ``"interrupted"`` (``stflow run`` writes the outputs and exits
130). A second Ctrl-C while the loop has not yet stopped raises :class:`KeyboardInterrupt`
at once (the escape hatch for a step that never ends). The previous handlers are restored
on exit. Outside the main thread (where Python cannot install handlers) nothing is
installed and ``requested`` stays False.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["InterruptFlag", "catch_interrupts", "INTERRUPT_SIGNALS", "requested_signal",
           "clear_request"]

#: The last signal any :func:`catch_interrupts` block caught in this process (a suite of
#: runs, such as ``stflow reproduce``, stops after the run that was interrupted).
_SEEN: dict = {"signal": None}


def requested_signal() -> str | None:
    """Name of the signal a run of this process was stopped by (None if none was)."""
    return _SEEN["signal"]


def clear_request() -> None:
    """Forget :func:`requested_signal` (a new suite starts)."""
    _SEEN["signal"] = None

#: The signals :func:`catch_interrupts` turns into a stop request.
INTERRUPT_SIGNALS = ("SIGINT", "SIGTERM")


@dataclass
class InterruptFlag:
    """Set by the handlers of :func:`catch_interrupts`.

    Attributes
    ----------
    requested : bool
        True once a stop was requested.
    signal : str or None
        Name of the signal that requested it (``"SIGINT"``, ``"SIGTERM"``).
    """

    requested: bool = False
    signal: str | None = None


@contextmanager
def catch_interrupts(signals=INTERRUPT_SIGNALS) -> Iterator[InterruptFlag]:
    """Turn SIGINT/SIGTERM into ``flag.requested = True`` inside the ``with`` block.

    Examples
    --------
    >>> import os, signal
    >>> with catch_interrupts() as flag:
    ...     os.kill(os.getpid(), signal.SIGTERM)
    ...     for _ in range(1000):  # the handler runs between two bytecodes
    ...         if flag.requested:
    ...             break
    >>> flag.requested, flag.signal
    (True, 'SIGTERM')
    >>> signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
    True
    """
    flag = InterruptFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.requested:  # asked twice: stop now
            raise KeyboardInterrupt
        flag.requested = True
        flag.signal = signal.Signals(signum).name
        _SEEN["signal"] = flag.signal

    previous = {}
    try:
        for name in signals:
            sig = getattr(signal, name)
            previous[sig] = signal.signal(sig, handler)
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)
