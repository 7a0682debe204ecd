r"""E11: a learning workload (issue 13): digits softmax with minibatches and local steps.

scikit-learn's digits (8 x 8 images, 10 classes), multinomial logistic regression with
r = 1e-2 per agent, N = 8 agents on a ring, batch 16, IID and by-label splits (SPEC
section 7). Methods: the primal-dual flow (``predict`` scheme; observer with ``topk:k=20``
and with ``quantize:bits=4,scale=pow2``, and the uncompressed flow), CHOCO-SGD with the same
two compressors, DGD (D-PSGD) and gradient tracking (both send raw float64 vectors: they
define no compressor), with local steps K in {1, 4} (gradient tracking defines none, so
K = 1 only), all with ``[solver] step_decay = 200`` (:data:`STEP_DECAY`). Every setting's ``[method]`` parameters (and the flows' step h) were tuned with
``stflow tune --budget 12 --target-accuracy A`` (the same budget and rules for every method;
A = :data:`TARGETS`); :data:`TUNED` holds the winners and the experiment re-runs them.
:func:`tune_all` (``python -m stflow.experiments.e11_learning tune OUT``) recomputes them.

Reported per setting: rounds, bits per agent and modeled seconds on a slow and a fast network
(:data:`NETWORKS`, SPEC section 8) until the mean agent test accuracy reaches A and stays
there (the rule of ``stflow tune``), and the final mean and worst agent test accuracy. The
two networks change no iterate, only the clock: ``modeled_seconds`` of a run on the slow
network is recorded by the run, the fast network's is :func:`network_seconds` of the same
records. Two more runs (DGD, IID, K = 1, with and without ``[solver] step_decay``) measure
the constant-step noise floor that the decay removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import pathlib
import sys

import numpy as np

from ..config import resolve_config, run_config
from ..output import write_json, write_metrics_csv
from ._common import fmt, md_table, pick

__all__ = ["NAME", "TITLE", "TARGETS", "NETWORKS", "VARIANTS", "TUNED", "SIZES", "STEP_DECAY", "base_config",
           "settings", "network_seconds", "reach", "tune_all", "run", "planned_runs"]

NAME = "E11"
TITLE = "Learning workload: digits softmax, accuracy against bits, rounds and modeled seconds"
#: Mean agent test accuracy each run must reach and keep (449 held-out rows).
TARGETS = {"iid": 0.95, "by_label": 0.90}
#: Link models (SPEC section 8): bandwidth in bits/s, latency in s per round, s per sample.
NETWORKS = {
    "slow": {"bandwidth": 1e6, "latency": 1e-3, "seconds_per_sample": 1e-5},
    "fast": {"bandwidth": 1e9, "latency": 1e-5, "seconds_per_sample": 1e-5},
}
TOPK = "topk:k=20"
QUANT = "quantize:bits=4,scale=pow2"
#: label -> ([method] kind, compressor spec or None); the flows run the ``predict`` scheme.
VARIANTS = {
    "flow top-20": ("observer", TOPK),
    "flow q4": ("observer", QUANT),
    "flow uncompressed": ("uncompressed", None),
    "choco top-20": ("choco", TOPK),
    "choco q4": ("choco", QUANT),
    "dgd": ("dgd", None),
    "gradient tracking": ("gradient_tracking", None),
}
#: Round cap per local-step count K (tuning and runs).
ROUNDS = {1: 1000, 4: 500}
#: ``[solver] step_decay`` k0 of every setting (h_k = h / (1 + k / k0), the peers' lr alike):
#: without it the minibatch noise makes the mean agent accuracy dip below the target after
#: first reaching it, so that the reach-and-stay rule fails for most DGD step sizes.
STEP_DECAY = 200.0
#: The flows' clock step before tuning (the gains start at "auto"); the peers' lr start.
FLOW_STEP = 0.01
PEER_LR = 0.01
SIZES = {
    "full": {"splits": ("iid", "by_label"), "local_steps": (1, 4), "variants": tuple(VARIANTS),
             "round_share": 1.0, "floor_rounds": 3000},
    "quick": {"splits": ("iid",), "local_steps": (1,),
              "variants": ("flow top-20", "choco top-20", "dgd"), "round_share": 0.3,
              "floor_rounds": 0},
    "tiny": {"splits": ("iid",), "local_steps": (1,), "variants": ("flow top-20", "dgd"),
             "round_share": 0.1, "floor_rounds": 0},
}
#: Noise-floor runs (IID, K = 1): regularization per agent, DGD's constant lr.
FLOOR_REGULARIZATION = 1.0
FLOOR_LR = 0.01

#: Winners of ``stflow tune --budget 12 --seed 0 --target-accuracy TARGETS[split]`` on
#: :func:`base_config` (recomputed by :func:`tune_all`): (variant, split, K) -> [method]
#: values (and ``step`` for the flows), or None when no candidate reached the target.
TUNED: dict = {
    ('flow top-20', 'iid', 1):
        {'alpha': 2.0, 'beta': 2.0, 'eta': 1.0, 'gamma': 50.0, 'step': 0.01},  # rounds 150, bits 222000.0
    ('flow q4', 'iid', 1):
        {'alpha': 2.787641517353005, 'beta': 8.644732703840372, 'eta': 2.011814500167499, 'gamma': 67.8524934062094, 'step': 0.00703573702872215},  # rounds 140, bits 365680.0
    ('flow uncompressed', 'iid', 1):
        {'alpha': 1.6248505215125755, 'beta': 6.911501376604741, 'eta': 1.2893229205061303, 'step': 0.01208221387980899},  # rounds 130, bits 5408000.0
    ('choco top-20', 'iid', 1):
        {'lr': 0.013938207586765037, 'gamma': 0.1970105692475103},  # rounds 130, bits 192400.0
    ('choco q4', 'iid', 1):
        {'lr': 0.010063792162675292, 'gamma': 0.2232889112222474},  # rounds 130, bits 339560.0
    ('dgd', 'iid', 1):
        {'lr': 0.01},  # rounds 140, bits 5824000.0
    ('gradient tracking', 'iid', 1):
        {'lr': 0.020118145001674994},  # rounds 210, bits 17472000.0
    ('flow top-20', 'iid', 4):
        {'alpha': 2.0, 'beta': 2.0, 'eta': 1.0, 'gamma': 50.0, 'step': 0.01},  # rounds 60, bits 88800.0
    ('flow q4', 'iid', 4):
        {'alpha': 2.787641517353005, 'beta': 8.644732703840372, 'eta': 2.011814500167499, 'gamma': 67.8524934062094, 'step': 0.00703573702872215},  # rounds 40, bits 104480.0
    ('flow uncompressed', 'iid', 4):
        {'alpha': 1.5428109910969605, 'beta': 4.872979754334811, 'eta': 1.1944895825480553, 'step': 0.00998957262092066},  # rounds 40, bits 1664000.0
    ('choco top-20', 'iid', 4):
        {'lr': 0.014219463305436155, 'gamma': 0.20888891070757487},  # rounds 40, bits 59200.0
    ('choco q4', 'iid', 4):
        {'lr': 0.013938207586765037, 'gamma': 0.1970105692475103},  # rounds 40, bits 104480.0
    ('dgd', 'iid', 4):
        {'lr': 0.01},  # rounds 40, bits 1664000.0
    ('flow top-20', 'by_label', 1):
        {'alpha': 4.872979754334811, 'beta': 2.3889791650961105, 'eta': 0.998957262092066, 'gamma': 14.928523136792668, 'step': 0.024052780299595265},  # rounds 220, bits 325600.0
    ('flow q4', 'by_label', 1):
        {'alpha': 6.792060338202183, 'beta': 10.326043158649806, 'eta': 2.0097167049244433, 'gamma': 20.25875035407338, 'step': 0.016922903699758105},  # rounds 110, bits 287320.0
    ('flow uncompressed', 'by_label', 1):
        {'alpha': 1.189837790559315, 'beta': 5.395560745377773, 'eta': 0.6540598439038171, 'step': 0.060749960734256966},  # rounds 80, bits 3328000.0
    ('choco top-20', 'by_label', 1):
        None,  # rounds None, bits None
    ('choco q4', 'by_label', 1):
        None,  # rounds None, bits None
    ('dgd', 'by_label', 1):
        {'lr': 0.04322366351920189},  # rounds 260, bits 10816000.0
    ('gradient tracking', 'by_label', 1):
        {'lr': 0.04322366351920189},  # rounds 250, bits 20800000.0
    ('flow top-20', 'by_label', 4):
        {'alpha': 6.187328592220606, 'beta': 0.20926671070076608, 'eta': 0.8914798494020781, 'gamma': 24.322659150255795, 'step': 0.054659354585255386},  # rounds 330, bits 488400.0
    ('flow q4', 'by_label', 4):
        {'alpha': 2.1761583451417676, 'beta': 5.283376904436982, 'eta': 1.9731276726653355, 'gamma': 89.82202556383277, 'step': 0.017564081234056627},  # rounds 70, bits 182840.0
    ('flow uncompressed', 'by_label', 4):
        {'alpha': 1.189837790559315, 'beta': 5.395560745377773, 'eta': 0.6540598439038171, 'step': 0.060749960734256966},  # rounds 40, bits 1664000.0
    ('choco top-20', 'by_label', 4):
        None,  # rounds None, bits None
    ('choco q4', 'by_label', 4):
        None,  # rounds None, bits None
    ('dgd', 'by_label', 4):
        {'lr': 0.0010797824288129028},  # rounds 250, bits 10400000.0
}


def planned_runs(quick: bool) -> int:
    """One run per (variant, split, K) of this size, plus the six noise-floor runs."""
    size = pick(SIZES, quick)
    return len(settings(size)) + (6 if size["floor_rounds"] else 0)


def settings(size: dict) -> list[tuple[str, str, int]]:
    """The (variant, split, K) triples of one size (gradient tracking only with K = 1)."""
    return [(v, s, k) for s in size["splits"] for k in size["local_steps"]
            for v in size["variants"] if k == 1 or VARIANTS[v][0] != "gradient_tracking"]


def base_config(variant: str, split: str, local_steps: int, *, rounds: int | None = None,
                network: str = "slow") -> dict:
    """The resolved config of one setting before tuning (the tuner's centre).

    ``variant`` is a key of :data:`VARIANTS`, ``split`` ``"iid"`` or ``"by_label"``,
    ``rounds`` defaults to :data:`ROUNDS` of K, ``network`` (a key of :data:`NETWORKS`)
    fills ``[network]`` and ``[compute]``.

    Examples
    --------
    >>> c = base_config("flow q4", "by_label", 4)
    >>> c["method"]["kind"], c["solver"]["scheme"], c["solver"]["local_steps"], c["problem"]["split"]
    ('observer', 'predict', 4, 'by_label')
    """
    kind, spec = VARIANTS[variant]
    rounds = ROUNDS[local_steps] if rounds is None else int(rounds)
    is_flow = kind in ("observer", "uncompressed")
    step = FLOW_STEP if is_flow else 1.0
    flow = {"kind": kind} if is_flow else {"kind": kind, "lr": PEER_LR}
    net = NETWORKS[network]
    raw = {
        "problem": {"kind": "softmax", "dataset": "digits", "agents": 8, "split": split,
                    "batch": 16, "test_fraction": 0.25, "regularization": 1e-2, "seed": 0},
        "graph": {"kind": "ring"},
        "method": flow,
        "solver": {"step": step, "horizon": rounds * step, "record_every": 10,
                   "scheme": "predict" if is_flow else "euler", "local_steps": local_steps,
                   "step_decay": STEP_DECAY},
        "network": {"bandwidth": net["bandwidth"], "latency": net["latency"]},
        "compute": {"seconds_per_sample": net["seconds_per_sample"]},
    }
    if spec is not None:
        raw["compressor"] = {"spec": spec}
    return resolve_config(raw)


def tuned_config(variant: str, split: str, local_steps: int, *, rounds: int | None = None):
    """:func:`base_config` with the :data:`TUNED` values (None when tuning found none)."""
    values = TUNED.get((variant, split, local_steps))
    if values is None:
        return None
    cfg = base_config(variant, split, local_steps, rounds=rounds)
    values = dict(values)
    rounds = round(cfg["solver"]["horizon"] / cfg["solver"]["step"])
    if "step" in values:
        cfg["solver"]["step"] = float(values.pop("step"))
        cfg["solver"]["horizon"] = rounds * cfg["solver"]["step"]
    cfg["method"].update(values)
    return cfg


def network_seconds(records: dict, network: str) -> np.ndarray:
    r"""Cumulative modeled seconds of recorded rows on another network (SPEC section 8).

    .. math:: T_k = s_{sample} \, S_k + \ell \, k + b_k / \mathrm{bandwidth}

    with :math:`S_k` the samples per agent (``samples_per_agent``, K B per round), k the
    rounds and :math:`b_k` the bits per agent (``bits_per_agent``, one message per round).
    All agents draw the same batch size here, so the slowest agent is any agent.

    Examples
    --------
    >>> rec = {"step": np.array([0, 10]), "samples_per_agent": np.array([0.0, 160.0]),
    ...        "bits_per_agent": np.array([0.0, 1.0e6])}
    >>> [round(float(t), 6) for t in network_seconds(rec, "slow")]
    [0.0, 1.0116]
    """
    net = NETWORKS[network]
    return (net["seconds_per_sample"] * np.asarray(records["samples_per_agent"], float)
            + net["latency"] * np.asarray(records["step"], float)
            + np.asarray(records["bits_per_agent"], float) / net["bandwidth"])


def reach(records: dict, target: float) -> dict | None:
    """Rounds, bits and modeled seconds (both networks) at the recorded row from which the
    mean agent test accuracy stays >= ``target`` to the end (``stflow.tune.first_hit``), or
    None when the last row is below it."""
    from ..tune import first_hit

    i, stays = first_hit(records, "mean_agent_test_accuracy", target, at_least=True)
    if i is None or not stays:
        return None
    out = {"rounds": int(records["step"][i]), "bits": float(records["bits_per_agent"][i])}
    for net in NETWORKS:
        out[f"seconds_{net}"] = float(network_seconds(records, net)[i])
    return out


@contextlib.contextmanager
def shared_minimizer():
    """Solve each problem's x* once per process (keyed by its data), not once per run.

    x* (3 s for digits) only enters ``relative_error``; the same arrays give the same x*, so
    runs are unchanged. Restores the original method on exit.
    """
    from ..problems.base import Problem

    original = Problem._minimize
    memo: dict = {}

    def _minimize(self):
        h = hashlib.sha256(type(self).__name__.encode())
        for key, value in sorted(self.arrays().items()):
            h.update(key.encode())
            h.update(np.ascontiguousarray(value).tobytes())
        key = h.hexdigest()
        if key not in memo:
            memo[key] = np.array(original(self))
        return memo[key].copy()

    Problem._minimize = _minimize
    try:
        yield
    finally:
        Problem._minimize = original


def _one(variant, split, k, rounds, out_dir):
    cfg = tuned_config(variant, split, k, rounds=rounds)
    tuned = cfg is not None
    if not tuned:  # tuning found no setting: run the tuner's centre to show how far it gets
        cfg = base_config(variant, split, k, rounds=rounds)
    run, sol = run_config(cfg)
    label = f"{variant.replace(' ', '_')}_{split}_K{k}"
    folder = out_dir / "runs" / label
    folder.mkdir(parents=True, exist_ok=True)
    write_metrics_csv(folder / "metrics.csv", sol.records)
    rec = sol.records
    row = {"variant": variant, "split": split, "K": k, "tuned": tuned, "status": sol.status,
           "params": {k_: v for k_, v in run.config["method"].items() if k_ != "kind"},
           "step": run.config["solver"]["step"], "rounds_run": int(rec["step"][-1]),
           "final_mean_agent": float(rec["mean_agent_test_accuracy"][-1]),
           "final_worst_agent": float(rec["worst_agent_test_accuracy"][-1]),
           "final_train_loss": float(rec["train_loss"][-1]),
           "bits_per_message": float(sol.bits_per_message),
           "reach": reach(rec, TARGETS[split])}
    write_json(folder / "summary.json", {**sol.summary(), **row})  # a run's keys, and E11's
    curve = {c: np.asarray(rec[c], float).tolist()
             for c in ("step", "bits_per_agent", "modeled_seconds", "mean_agent_test_accuracy")}
    return row, curve


def _noise_floor(rounds: int, out_dir):
    """The uncompressed flow (auto gains, h = 0.01) and DGD (lr :data:`FLOOR_LR`) on digits
    with r = :data:`FLOOR_REGULARIZATION` (well conditioned, so ``rounds`` reach the floor),
    IID, K = 1: full gradients with a constant step, batch 16 with a constant step, batch 16
    with ``step_decay`` :data:`STEP_DECAY`. Yields one row per run."""
    for variant in ("flow uncompressed", "dgd"):
        for batch, decay in ((None, None), (16, None), (16, STEP_DECAY)):
            cfg = base_config(variant, "iid", 1, rounds=rounds)
            cfg["problem"]["regularization"] = FLOOR_REGULARIZATION
            cfg["problem"]["batch"] = batch
            if variant == "dgd":
                cfg["method"]["lr"] = FLOOR_LR
            cfg["solver"]["step_decay"] = decay
            _, sol = run_config(cfg)
            rec = sol.records
            last = slice(-max(len(rec["step"]) // 10, 1), None)  # the last tenth of the rows
            name = variant.split()[0]
            write_metrics_csv(out_dir / f"floor_{name}_batch{batch}_decay{decay}.csv", rec)
            yield {"method": variant, "batch": batch, "step_decay": decay,
                   "rounds": int(rec["step"][-1]), "status": sol.status,
                   "final_relative_error": float(rec["relative_error"][-1]),
                   "tail_relative_error": float(np.mean(rec["relative_error"][last])),
                   "tail_optimality_gap": float(np.mean(rec["optimality_gap"][last]))}


def run(out_dir: pathlib.Path, *, quick: bool, progress=None) -> dict:
    """Run E11 into ``out_dir``: ``rows.json``, per-run metrics, a table and a figure."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = pick(SIZES, quick)
    rows, curves = [], {}
    with shared_minimizer():
        for variant, split, k in settings(size):
            rounds = max(int(ROUNDS[k] * size["round_share"]) // 10 * 10, 10)
            row, curve = _one(variant, split, k, rounds, out_dir)
            rows.append(row)
            curves[(variant, split, k)] = curve
            if progress is not None:
                progress(f"{variant} {split} K={k}")
        floor = []
        if size["floor_rounds"]:
            for row in _noise_floor(size["floor_rounds"], out_dir):
                floor.append(row)
                if progress is not None:
                    progress(f"noise floor batch={row['batch']} decay={row['step_decay']}")
    write_json(out_dir / "rows.json", {"rows": rows, "noise_floor": floor})
    figure = _plot(out_dir, curves, size)
    checks = must_hold(rows)
    return {
        "title": TITLE,
        "setting": (
            "digits softmax (r = 1e-2 per agent, 1348 training rows, 449 held out), N = 8, "
            "ring, batch 16, splits " + ", ".join(size["splits"]) + "; local steps K in "
            + str(list(size["local_steps"])) + f"; rounds {ROUNDS}"
            + (f" (here {size['round_share']:.0%} of them)" if size["round_share"] < 1 else "")
            + f"; step_decay {STEP_DECAY:g} for every method; targets (mean agent test accuracy) {TARGETS}; "
            f"networks {NETWORKS}. Every setting tuned offline with `stflow tune --budget 12 "
            "--seed 0 --target-accuracy A` (python -m stflow.experiments.e11_learning tune "
            "OUT); the runs re-use the winners (TUNED in the module)."
        ),
        "prediction": (
            "xbar follows averaged SGD under every method, so the methods differ in how close "
            "each agent's own model is to xbar. A compressed flow sends 20-30x fewer bits per "
            "round than DGD, so it should reach DGD's accuracy with >= 10x fewer bits; on the "
            "slow network bits dominate the clock, on the fast one samples and latency do."
        ),
        "measured": _table(rows, checks, floor),
        "figures": [figure],
        "captions": {figure: (
            "Mean agent test accuracy against bits per agent, rounds and modeled seconds on the "
            "slow network (K = 1 solid, K = 4 dashed); dotted line: the target.")},
        "data": {"rows": rows, "must_hold": checks, "noise_floor": floor},
    }


def must_hold(rows) -> list[dict]:
    """Per (split, K): DGD's bits to the target against the cheapest compressed flow's, and
    both final mean agent accuracies (the flow must be within 1 point of DGD's)."""
    out = []
    for split in dict.fromkeys(r["split"] for r in rows):
        for k in dict.fromkeys(r["K"] for r in rows):
            got = {r["variant"]: r for r in rows if r["split"] == split and r["K"] == k
                   and r.get("tuned")}
            dgd = got.get("dgd")
            flows = [r for v, r in got.items() if v.startswith("flow ") and "uncompressed" not in v
                     and r["reach"] is not None]
            if dgd is None or not flows:
                continue
            best = min(flows, key=lambda r: r["reach"]["bits"])
            ratio = (dgd["reach"]["bits"] / best["reach"]["bits"]
                     if dgd["reach"] is not None else None)
            gap = best["final_mean_agent"] - dgd["final_mean_agent"]
            out.append({"split": split, "K": k, "flow": best["variant"], "bits_ratio": ratio,
                        "accuracy_gap": gap,
                        "holds": ratio is not None and ratio >= 10 and gap >= -0.01})
    return out


def _table(rows, checks, floor) -> str:
    body = []
    for r in rows:
        rc = r["reach"]
        never = "never" if r["tuned"] else "never (tuning found no setting; its centre shown)"
        cells = ([never] + ["-"] * 3 if rc is None else
                 [str(rc["rounds"]), f"{rc['bits']:,.0f}", fmt(rc["seconds_slow"]),
                  fmt(rc["seconds_fast"])])
        body.append([r["variant"], r["split"], r["K"], *cells,
                     f"{r['final_mean_agent']:.4f}", f"{r['final_worst_agent']:.4f}"])
    lines = ["Rounds, bits per agent and modeled seconds until the mean agent test accuracy "
             "reaches the split's target and stays (rows every 10 rounds); final accuracies "
             "at the last round.", "",
             md_table(["method", "split", "K", "rounds", "bits", "s (slow)", "s (fast)",
                       "final mean agent", "final worst agent"], body), ""]
    for c in checks:
        ratio = "DGD never reached the target" if c["bits_ratio"] is None else \
            f"{c['bits_ratio']:.1f}x fewer bits"
        lines.append(f"- {c['split']}, K = {c['K']}: {c['flow']} against DGD: {ratio}; final "
                     f"mean agent accuracy {c['accuracy_gap'] * 100:+.2f} points; "
                     f"{'holds' if c['holds'] else 'MISSES'} (>= 10x and within 1 point).")
    if floor:
        lines += ["", f"Noise floor of the constant step (IID, K = 1, r = "
                  f"{FLOOR_REGULARIZATION} per agent; flow: auto gains, h = {FLOW_STEP}; DGD: "
                  f"lr = {FLOOR_LR}; mean of the last tenth of the records):", "",
                  md_table(["method", "batch", "step_decay", "rounds", "status",
                            "relative error", "optimality gap"],
                           [[f["method"], "full" if f["batch"] is None else f["batch"],
                             "none" if f["step_decay"] is None else f"{f['step_decay']:g}",
                             f["rounds"], f["status"], fmt(f["tail_relative_error"]),
                             fmt(f["tail_optimality_gap"])] for f in floor])]
    return "\n".join(lines)


def _plot(out_dir, curves, size) -> str:
    """Accuracy against bits, rounds and modeled seconds; one colour per variant (K = 1
    solid, K = 4 dashed); the start record (0 bits, 0 s) is left out of the log axes; one
    legend beside the panels."""
    from matplotlib.lines import Line2D

    from ._common import plt, save_figure
    from ._figures import style

    pyplot = plt()
    splits = size["splits"]
    fig, axes = pyplot.subplots(len(splits), 3, figsize=(11, 3.2 * len(splits)), squeeze=False)
    colours = {v: style(i)["color"] for i, v in enumerate(VARIANTS)}
    shown, ks = [], set()
    for row, split in zip(axes, splits, strict=True):
        for (variant, s, k), c in curves.items():
            if s != split:
                continue
            ks.add(k)
            if variant not in shown:
                shown.append(variant)
            st = {"color": colours[variant], "ls": "-" if k == 1 else "--", "lw": 1.1,
                  "label": "_"}
            acc = c["mean_agent_test_accuracy"]
            bits = np.asarray(c["bits_per_agent"], dtype=float)
            secs = np.asarray(c["modeled_seconds"], dtype=float)
            row[0].plot(np.where(bits > 0, bits, np.nan), acc, **st)
            row[1].plot(c["step"], acc, **st)
            row[2].plot(np.where(secs > 0, secs, np.nan), acc, **st)
        for ax, xl in zip(row, ("bits per agent", "rounds", "modeled seconds (slow network)"),
                          strict=True):
            ax.axhline(TARGETS[split], color="k", ls=":", lw=0.8)
            ax.set_ylim(0.5, 1.0)
            ax.set_xlabel(xl)
            ax.grid(True, which="both", alpha=0.3)
        row[0].set_xscale("log")
        row[2].set_xscale("log")
        row[0].set_ylabel(f"mean agent test accuracy ({split})")
    handles = [Line2D([], [], color=colours[v], lw=1.6, label=v) for v in shown]
    handles += [Line2D([], [], color="k", ls="-" if k == 1 else "--", label=f"K = {k}")
                for k in sorted(ks)]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7,
               frameon=False)
    return save_figure(fig, out_dir, "learning.png")


def tune_all(out_dir, *, budget: int = 12, seed: int = 0, only=None) -> dict:
    """Tune every full-size setting with ``stflow.tune.tune`` and return the :data:`TUNED`
    entries (also written to ``out_dir/tuned.json``, each setting's outputs in a folder)."""
    from ..tune import tune, write_outputs

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    found = {}
    with shared_minimizer():
        for variant, split, k in settings(SIZES["full"]):
            if only and variant not in only:
                continue
            cfg = base_config(variant, split, k)
            res = tune(cfg, budget=budget, target_accuracy=TARGETS[split], seed=seed)
            folder = out / f"{variant.replace(' ', '_')}_{split}_K{k}"
            write_outputs(res, folder)
            values = dict(res.params) if res.found else None
            found[(variant, split, k)] = values
            print(f"{(variant, split, k)!r}: {values!r},  # rounds {res.rounds_to_target}, "
                  f"bits {res.bits_to_target}", flush=True)
    write_json(out / "tuned.json", {json.dumps(list(key)): v for key, v in found.items()})
    return found


if __name__ == "__main__":  # python -m stflow.experiments.e11_learning tune OUT [BUDGET]
    if len(sys.argv) >= 3 and sys.argv[1] == "tune":
        tune_all(sys.argv[2], budget=int(sys.argv[3]) if len(sys.argv) > 3 else 12,
                 only=sys.argv[4].split(",") if len(sys.argv) > 4 else None)
    else:
        print("usage: python -m stflow.experiments.e11_learning tune OUT [BUDGET] [VARIANTS]")
        raise SystemExit(2)
