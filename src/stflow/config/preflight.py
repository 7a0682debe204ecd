"""Refusing, before anything is built, a run this machine cannot hold or finish:
:func:`estimate_memory`, :func:`total_memory`, :func:`preflight`."""

from __future__ import annotations

import math

from ..errors import InputError
from .schema import resolve_config  # noqa: F401  (doctests)


def estimate_memory(config: dict) -> dict[str, int]:
    r"""Bytes a resolved config needs, estimated before anything is allocated.

    The problem's data as its class estimates it (``data_bytes``: a network's per-agent
    parameter copies, float64 entries of the generated data, quadratic :math:`5 N d^2 + N d` (the generation's temporaries), least squares and logistic
    :math:`N m d + N m` with :math:`m` = ``samples``, and the centralized solve
    :math:`3 d^2`), the state and its per-step work arrays (:math:`12 N d`, d from the
    class's ``dim_of``: a network's parameter count), the
    graph (:math:`N^2` pair draws for complete, erdos_renyi and geometric graphs, else
    about 64 bytes per agent and edge) and the recorded rows (400 bytes per row). With
    ``[problem] data`` or ``dataset`` the arrays come from a file and count 0 (the file's
    own size bounds them).

    Examples
    --------
    >>> est = estimate_memory(resolve_config({"problem": {"agents": 10**9}}))
    >>> est["problem"] == 8 * (5 * 10**9 * 64 + 10**9 * 8 + 3 * 64), est["state"] == 8 * 12 * 8 * 10**9
    (True, True)
    """
    from ..problems.registry import problem_class

    p, g, s = config["problem"], config["graph"], config["solver"]
    cls = problem_class(p["kind"])
    n, d = _int_or_zero(p.get("agents")), _int_or_zero(cls.dim_of(p))
    problem = int(cls.data_bytes(p))
    pairs = n * n if g["kind"] in ("complete", "erdos_renyi", "geometric") else 0
    graph = 8 * pairs + 64 * (3 * n + int(g["chords"] or 0))
    steps = _step_count(s)
    rows = steps // max(1, int(s["record_every"])) + 2
    return {"problem": problem, "state": 8 * 12 * n * d, "graph": graph, "records": 400 * rows}


def _int_or_zero(value) -> int:
    """A count of a user's cost may be anything (its own key): 0 when not an integer."""
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def total_memory() -> int:
    """Physical memory of this machine in bytes (0 when the OS does not say)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return 0


#: ``stflow run`` asks for ``--force`` above this many steps.
MAX_STEPS = 10**8


def _step_count(solver: dict) -> int:
    steps = solver["horizon"] / solver["step"]
    if not math.isfinite(steps):
        raise InputError(
            f"[solver] horizon / step = {solver['horizon']:g} / {solver['step']:g} is not a "
            "finite number of steps: lower horizon or raise step"
        )
    return max(1, int(round(steps)))


def preflight(config: dict, *, force: bool = False, memory: int | None = None) -> None:
    """Refuse, before anything is built, a run this machine cannot hold or finish.

    Raises :class:`~stflow.errors.InputError` when :func:`estimate_memory` exceeds
    ``memory`` (default: :func:`total_memory`), naming the estimate and the keys to lower;
    unless ``force``, when ``horizon / step`` exceeds :data:`MAX_STEPS` steps or
    ``local_steps * horizon / step`` (the gradient evaluations per agent) does; and when
    ``scheme = "continuous"`` meets a compressor that jumps with z (top-k, quantizers,
    sign): ``solve_ivp`` would never finish.

    Examples
    --------
    >>> preflight(resolve_config({"problem": {"dim": 10**10}}), memory=2**34)
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [problem] agents = 10, dim = 10000000000 need about 4.24e+13 GB of memory (problem data 4.24e+13 GB), more than this machine's 17.2 GB: lower agents, dim or samples
    >>> preflight(resolve_config({"solver": {"horizon": 1e6}}))
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [solver] horizon / step = 1e+06 / 0.001 = 1e+09 steps, more than 1e+08: lower horizon or raise step, or add --force to run that many
    >>> preflight(resolve_config({"method": {"kind": "dgd"},
    ...                           "solver": {"horizon": 2.0, "step": 0.01, "local_steps": 10**8}}))
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [solver] local_steps * horizon / step = 100000000 * 200 = 2e+10 gradient evaluations per agent, more than 1e+08: lower local_steps or horizon, or add --force to run that many
    """
    s = config["solver"]
    steps = _step_count(s)
    if steps > MAX_STEPS and not force:
        raise InputError(
            f"[solver] horizon / step = {s['horizon']:g} / {s['step']:g} = {steps:.3g} steps, "
            f"more than {MAX_STEPS:.0e}: lower horizon or raise step, or add --force to run "
            "that many"
        )
    local = s.get("local_steps", 1)
    local = local if isinstance(local, int) and not isinstance(local, bool) else 1
    if local > 1 and steps * local > MAX_STEPS and not force:  # each a gradient evaluation
        raise InputError(
            f"[solver] local_steps * horizon / step = {local} * {steps} = {steps * local:.3g} "
            f"gradient evaluations per agent, more than {MAX_STEPS:.0e}: lower local_steps "
            "or horizon, or add --force to run that many"
        )
    if s["scheme"] == "continuous" and config["method"]["kind"] in ("direct", "observer"):
        from ..compressors import _CLASSES

        spec = config["compressor"]["spec"]
        jumps = [n for n in (stage.split(":")[0].strip() for stage in spec.split("|"))
                 if n in _CLASSES and not _CLASSES[n].linear]
        if jumps:
            raise InputError(
                f'[solver] scheme = "continuous" cannot integrate the compressor `{spec}`: '
                f"{jumps[0]} jumps with z, so solve_ivp's step collapses at its switching "
                'surfaces and never finishes; use scheme = "euler" (one round per step), or '
                "a compressor linear in z (identity, scalarize, randk)"
            )
    est = estimate_memory(config)
    total = sum(est.values())
    memory = total_memory() if memory is None else memory
    gb = 1e9
    have = f"more than this machine's {memory / gb:.3g} GB"
    data = config["problem"].get("data")
    if memory and isinstance(data, str):  # its arrays count 0 above: the file bounds them
        import os

        size = os.path.getsize(data) if os.path.isfile(data) else 0
        if size + total > memory:
            raise InputError(
                f"[problem] data = {data!r} is a {size / gb:.3g} GB file, and a run on it needs "
                f"at least that much memory ({(size + total) / gb:.3g} GB with the state), "
                f"{have}: use a smaller file (fewer rows or columns)"
            )
    if not memory or total <= memory:
        return
    if est["records"] >= 0.5 * total:
        rows = est["records"] // 400
        raise InputError(
            f"[solver] horizon / step / record_every = {rows:.3g} recorded rows need about "
            f"{total / gb:.3g} GB of memory, {have}: raise record_every or lower horizon"
        )
    from ..problems.registry import problem_class

    what, fix = problem_class(config["problem"]["kind"]).size_text(config["problem"])
    parts = ", ".join(
        f"{name} {est[key] / gb:.3g} GB"
        for name, key in (("problem data", "problem"), ("state", "state"), ("graph", "graph"))
        if est[key] >= 0.1 * total
    )
    raise InputError(
        f"{what} need about {total / gb:.3g} GB of memory ({parts}), {have}: {fix}"
    )

