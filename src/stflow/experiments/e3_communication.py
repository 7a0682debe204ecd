"""E3: communication. The E2 runs against bits broadcast per agent, and the saving factor.

Same problem, graph, gains and compressors as E2 (the runs are recomputed, deterministically).
Bits per agent follow SPEC section 6: one message per round, float64 = 64 bits, an index
ceil(log2 d) bits, a scalarizer message 64 bits.
"""

from __future__ import annotations

from pathlib import Path

from ._common import curve_style, first_time_below, fmt, md_table, pick, plt, save_figure
from ._figures import legend_outside
from .e2_convergence import SIZES, observer_suite, planned_runs

__all__ = ["NAME", "TITLE", "run", "planned_runs"]

NAME = "E3"
TITLE = "Communication: bits to reach 1e-6"

TARGET = 1e-6


def run(out_dir: Path, *, quick: bool, progress=None) -> dict:
    """Run E3 into ``out_dir``; see the module docstring."""
    size = pick(SIZES, quick)
    out_dir = Path(out_dir)
    runs = observer_suite(out_dir, size, progress=progress)
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(8.5, 5.2))
    base_bits = None
    table = []
    for i, r in enumerate(runs):
        sol = r["solution"]
        rec = sol.records
        ax.loglog(rec["bits_per_agent"][1:], rec["relative_error"][1:],
                  **curve_style(i, r["spec"] is None),
                  label=f"{r['label']} ({sol.bits_per_message} bits/msg)")
        t, bits = first_time_below(rec, TARGET)
        if r["spec"] is None:
            base_bits = bits
        table.append((r, t, bits))
    ax.axhline(TARGET, color="grey", ls=":", lw=1)
    ax.set_xlabel("bits broadcast per agent")
    ax.set_ylabel("relative error")
    ax.set_title("relative error against communication (E2 runs)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    legend_outside(ax)
    figure = save_figure(fig, out_dir, "relative_error_vs_bits.png")
    rows, savings = [], {}
    for r, t, bits in table:
        saving = base_bits / bits if (bits and base_bits) else None
        savings[r["label"]] = saving
        rows.append([f"`{r['label']}`", str(r["solution"].bits_per_message), fmt(t, ".3g"),
                     fmt(bits, ".4g"), fmt(saving, ".2f")])
    best = max((v for v in savings.values() if v), default=None)
    measured = md_table(
        ["compressor", "bits/message", "t to 1e-6", "bits/agent to 1e-6", "saving vs uncompressed"],
        rows,
    ) + (f"\n\nLargest saving: {best:.1f}x." if best else "")
    return {
        "title": TITLE,
        "setting": (
            "The runs of E2 (same seeds, gains and step); bits per agent = rounds x bits per "
            "message, read at the first recorded point (every 100 rounds) with relative error "
            f"<= {TARGET:g}. Saving factor = uncompressed bits / compressed bits to reach it."
        ),
        "prediction": (
            "Since the rates are almost those of the uncompressed flow (E2), the bits to reach "
            "a target shrink roughly by the ratio of message sizes: 640 bits (10 float64) "
            "against 64 bits for a scalarizer (10x), 68 for top-1, 84 for a 2-bit quantizer."
        ),
        "measured": measured,
        "figures": [figure],
        "captions": {figure: (
            "Read it at the dotted line (relative error 1e-6): the further left a curve "
            "crosses it, the fewer bits an agent broadcast to get there; the thick black "
            "curve is the uncompressed flow (64 d bits per round)."
        )},
        "data": {"saving_factor": savings},
    }
