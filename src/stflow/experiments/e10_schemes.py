r"""E10: the three schemes of the observer flow side by side (SPEC section 5).

Same flow, same gains (alpha = beta = 10, eta = 2 as in E2, and the observer gain
gamma = 0.5 / h, so the observer's own update h gamma = 0.5 is the same at every step), same
messages: only the update order differs (``euler``, ``predict``, ``gauss_seidel``). For a log grid of steps h (the cyclic scalarizer's window follows h), each
scheme's rounds and bits per agent to relative error 1e-6 (counted only when the run stays
below it, as in ``stflow tune``) and its stability region: the steps at which it does not
diverge. A larger stable h at the same gains means larger per-round gains h alpha, h eta,
hence fewer rounds.
"""

from __future__ import annotations

import pathlib

import numpy as np

from ..config import resolve_config, run_config
from ..output import write_json
from ._common import md_table, pick

__all__ = ["NAME", "TITLE", "SIZES", "SCHEMES", "run", "planned_runs", "scheme_grid"]

NAME = "E10"
TITLE = "Schemes side by side: euler, predict, gauss_seidel"
TARGET = 1e-6
SCHEMES = ("euler", "predict", "gauss_seidel")
SPECS = {"quantize": "quantize:bits=4", "cyclic": "scalarize:basis=cyclic,tau={tau}"}
#: alpha, beta, eta of every run (gamma = OBSERVER_STEP / h).
GAINS = {"alpha": 10.0, "beta": 10.0, "eta": 2.0}
OBSERVER_STEP = 0.5
SIZES = {
    "full": {"steps": tuple(float(h) for h in np.geomspace(2e-3, 6.4e-2, 11)), "rounds": 3000},
    "quick": {"steps": (4e-3, 1.6e-2, 3.2e-2), "rounds": 1000},
    "tiny": {"steps": (3e-3,), "rounds": 200},
}


def planned_runs(quick: bool) -> int:
    """One run per scheme, compressor and step."""
    return len(SCHEMES) * len(SPECS) * len(pick(SIZES, quick)["steps"])


def scheme_grid(steps, rounds: int, *, progress=None) -> list[dict]:
    """One row per (compressor, scheme, h): status, rounds and bits to 1e-6."""
    from ..tune import first_hit

    rows = []
    for ckey, spec in SPECS.items():
        for scheme in SCHEMES:
            for h in steps:
                h = float(h)
                raw = {"problem": {"kind": "least_squares", "agents": 20, "dim": 10, "seed": 0},
                       "graph": {"kind": "ring", "chords": 3, "seed": 0},
                       "flow": {"kind": "observer", **GAINS, "gamma": OBSERVER_STEP / h},
                       "compressor": {"spec": spec.format(tau=repr(h))},
                       "solver": {"method": scheme, "step": h, "horizon": rounds * h,
                                  "record_every": 10, "tolerance": TARGET}}
                _, sol = run_config(resolve_config(raw))
                i, stays = first_hit(sol.records, "relative_error", TARGET)
                ok = i is not None and stays and sol.status != "diverged"
                rows.append({"compressor": ckey, "scheme": scheme, "step": h,
                             "status": sol.status,
                             "rounds_to_target": int(sol.records["step"][i]) if ok else None,
                             "bits_to_target": float(sol.records["bits_per_agent"][i])
                             if ok else None,
                             "final_relative_error": sol.final_relative_error})
                if progress is not None:
                    progress(f"{ckey} {scheme} h={h:.3g}: {sol.status}")
    return rows


def run(out_dir: pathlib.Path, *, quick: bool, progress=None) -> dict:
    """Run E10 into ``out_dir``: table, figure, ``rows.json``."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = pick(SIZES, quick)
    rows = scheme_grid(size["steps"], size["rounds"], progress=progress)
    write_json(out_dir / "rows.json", rows)
    figure = _plot(out_dir, rows)
    return {
        "title": TITLE,
        "setting": (
            "E2's least squares (N = 20, d = 10, ring with 3 chords), observer flow with "
            f"gains {GAINS}, gamma = {OBSERVER_STEP} / h, compressors `quantize:bits=4` and the cyclic scalarizer "
            f"(tau = h); steps h = {', '.join(f'{h:.3g}' for h in size['steps'])}; "
            f"{size['rounds']} rounds per run, records every 10."
        ),
        "prediction": (
            "All three tend to the same flow as h -> 0, so at small h they need the same "
            "number of rounds. `predict` and `gauss_seidel` use this round's messages, which "
            "should widen the stable range of h (larger per-round gains, fewer rounds)."
        ),
        "measured": _table(rows),
        "figures": [figure],
        "captions": {figure: (
            "Bits per agent to relative error 1e-6 against the step h at fixed gains, one "
            "panel per compressor; a missing point means the run diverged or did not reach "
            "1e-6 within the rounds. The rightmost point of each scheme bounds its stable "
            "region.")},
        "data": {"largest_stable_step": _stable(rows)},
    }


def _stable(rows) -> dict:
    out = {}
    for r in rows:
        key = f"{r['compressor']} {r['scheme']}"
        if r["status"] != "diverged":
            out[key] = max(out.get(key, 0.0), r["step"])
        else:
            out.setdefault(key, 0.0)
    return out


def _table(rows) -> str:
    steps = sorted({r["step"] for r in rows})
    lines = []
    for ckey in SPECS:
        body = []
        for scheme in SCHEMES:
            cells = []
            for h in steps:
                r = next(x for x in rows if x["compressor"] == ckey and x["scheme"] == scheme
                         and x["step"] == h)
                if r["status"] == "diverged":
                    cells.append("diverged")
                elif r["rounds_to_target"] is None:
                    fin = r["final_relative_error"]
                    cells.append(f"not settled ({fin:.1e})" if fin <= TARGET else f"{fin:.1e}")
                else:
                    cells.append(f"{r['rounds_to_target']} / {r['bits_to_target']:,.0f}")
            body.append([scheme, *cells])
        lines += [f"{ckey}: rounds / bits per agent to 1e-6 (else the final error; 'not "
                  "settled': below 1e-6 at the end but above it at a record after the first "
                  "hit)", "",
                  md_table(["scheme", *[f"h = {h:.3g}" for h in steps]], body), ""]
    stable = _stable(rows)
    lines.append("Largest stable step in the grid: " + "; ".join(
        f"{k}: {v:.3g}" for k, v in stable.items()) + ".")
    return "\n".join(lines)


def _plot(out_dir, rows) -> str:
    from ._common import plt, save_figure

    pyplot = plt()
    fig, axes = pyplot.subplots(1, len(SPECS), figsize=(9, 3.4), squeeze=False)
    for ax, ckey in zip(axes[0], SPECS, strict=True):
        for scheme in SCHEMES:
            rs = [r for r in rows if r["compressor"] == ckey and r["scheme"] == scheme]
            hs = [r["step"] for r in rs]
            bits = [np.nan if r["bits_to_target"] is None else r["bits_to_target"] for r in rs]
            ax.loglog(hs, bits, "o-", label=scheme, ms=3)
        ax.set_title(ckey, fontsize=9)
        ax.set_xlabel("step h")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("bits per agent to 1e-6")
    axes[0][-1].legend(fontsize=7)
    return save_figure(fig, out_dir, "schemes.png")
