"""Agreement across ranks: input errors every rank raises together, without MPI_Abort."""

from __future__ import annotations

from ...errors import InputError

__all__ = ["Agreed", "agree"]


class Agreed(Exception):
    """Raised on every rank at once: safe to unwind without MPI_Abort."""


def agree(comm, fn):
    """Run ``fn`` on every rank; if it raised InputError anywhere, raise Agreed everywhere."""
    try:
        value, err = fn(), None
    except InputError as exc:
        value, err = None, str(exc)
    errs = comm.allgather(err)
    bad = [r for r, e in enumerate(errs) if e is not None]
    if not bad:
        return value
    if len(bad) == len(errs) and len(set(errs)) == 1:
        raise Agreed(errs[0])
    more = f" (and {len(bad) - 1} more ranks)" if len(bad) > 1 else ""
    raise Agreed(f"rank {bad[0]} of {len(errs)}: {errs[bad[0]]}{more}")
