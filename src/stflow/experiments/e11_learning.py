r"""E11: a learning workload (issue 13): digits softmax with minibatches and local steps.

scikit-learn's digits (8 x 8 images, 10 classes), multinomial logistic regression with
r = 1e-2 per agent, N = 8 agents on a ring, batch 16, IID and by-label splits (SPEC
section 7). Methods: the primal-dual flow (``predict`` scheme; observer with ``topk:k=20``
and with ``quantize:bits=4,scale=pow2``, and the uncompressed flow), CHOCO-SGD with the same
two compressors, DGD (D-PSGD) and gradient tracking (both send raw float64 vectors: they
define no compressor), with local steps K in {1, 4} (gradient tracking defines none, so
K = 1 only), all with ``[solver] step_decay = 200``.

The experiment is two study files shipped with the package (:data:`STUDIES`:
``studies/e11_iid.toml`` and ``studies/e11_by_label.toml``, one per split because each split
has its own target, :data:`TARGETS`): each setting is a ``[[method]]`` entry labelled
``"VARIANT K=k"`` with its method, scheme, step, compressor, rounds and local steps, and as
fixed settings the winners of ``stflow tune --budget 12 --seed 0 --target-accuracy A`` (the
same budget and rules for every method): ``studies/e11_SPLIT_tuning.toml`` holds the same
settings at the tuner's centre (:func:`base_config`) with ``tune = { budget = 12 }`` and
re-tunes them with ``stflow study``. :func:`run` loads the files (:func:`load_split`) and runs their
cells with the study runner (:func:`stflow.study.run_cell`), so an edited file changes what
E11 runs, and ``stflow study`` on a copy gives the same runs.

Reported per setting: rounds, bits per agent and modeled seconds on a slow and a fast network
(:data:`NETWORKS`, SPEC section 8) until the mean agent test accuracy reaches A and stays
there (the rule of ``stflow tune``), and the final mean and worst agent test accuracy. The
two networks change no iterate, only the clock: ``modeled_seconds`` of a run on the slow
network is recorded by the run (the study files' ``[base.network]``), the fast network's is
:func:`network_seconds` of the same records. Two more runs (DGD, IID, K = 1, with and
without ``[solver] step_decay``) measure the constant-step noise floor that the decay
removes; they are not study cells (they change the problem's regularization).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import pathlib

import numpy as np

from ..config import resolve_config, run_config
from ..output import write_json, write_metrics_csv
from ._common import fmt, md_table, pick

__all__ = ["NAME", "TITLE", "TARGETS", "NETWORKS", "STUDIES", "SIZES", "STEP_DECAY",
           "study_path", "load_split", "settings", "setting_config", "base_config", "FLOW_GAINS",
           "network_seconds", "reach", "run", "planned_runs"]

NAME = "E11"
TITLE = "Learning workload: digits softmax, accuracy against bits, rounds and modeled seconds"
#: Mean agent test accuracy each run must reach and keep (449 held-out rows); the study
#: files' ``target_accuracy`` (checked when loaded).
TARGETS = {"iid": 0.95, "by_label": 0.90}
#: Link models (SPEC section 8): bandwidth in bits/s, latency in s per round, s per sample.
#: The study files hold the slow one.
NETWORKS = {
    "slow": {"bandwidth": 1e6, "latency": 1e-3, "seconds_per_sample": 1e-5},
    "fast": {"bandwidth": 1e9, "latency": 1e-5, "seconds_per_sample": 1e-5},
}
#: The study file of each split (in ``stflow/experiments/studies/``).
STUDIES = {"iid": "e11_iid.toml", "by_label": "e11_by_label.toml"}
#: ``[solver] step_decay`` k0 of every setting (h_k = h / (1 + k / k0), the peers' lr alike):
#: without it the minibatch noise makes the mean agent accuracy dip below the target after
#: first reaching it, so that the reach-and-stay rule fails for most DGD step sizes.
STEP_DECAY = 200.0
#: The tuner's centre: the flows' clock step and gains, the peers' lr. The gains are the
#: flows' fixed defaults of the time the stored winners were tuned (alpha = beta = 2, eta = 1,
#: gamma = 50; the defaults are "auto" since issue 20), kept so that the tuning studies and
#: the noise-floor runs stay what they measured.
FLOW_STEP = 0.01
FLOW_GAINS = {"alpha": 2.0, "beta": 2.0, "eta": 1.0, "gamma": 50.0}
PEER_LR = 0.01
#: ``variants``: method labels of the study files (without `` K=k``) run at this size;
#: ``rounds``: the cap on every cell's rounds (None: the files' own, 1000 at K = 1 and 500
#: at K = 4).
SIZES = {
    "full": {"splits": ("iid", "by_label"), "local_steps": (1, 4), "variants": None,
             "rounds": None, "floor_rounds": 3000},
    "quick": {"splits": ("iid",), "local_steps": (1,),
              "variants": ("flow top-20", "choco top-20", "dgd"), "rounds": 300,
              "floor_rounds": 0},
    "tiny": {"splits": ("iid",), "local_steps": (1,), "variants": ("flow top-20", "dgd"),
             "rounds": 100, "floor_rounds": 0},
}
#: Noise-floor runs (IID, K = 1): regularization per agent, DGD's constant lr.
FLOOR_REGULARIZATION = 1.0
FLOOR_LR = 0.01


def study_path(split: str) -> pathlib.Path:
    """The shipped study file of ``split`` (a key of :data:`STUDIES`)."""
    return pathlib.Path(__file__).parent / "studies" / STUDIES[split]


def _variant(cell) -> str:
    return cell.method.rsplit(" K=", 1)[0]


def _k(cell) -> int:
    return int(cell.config["solver"]["local_steps"])


def load_split(split: str, size: dict | None = None, *, path=None):
    """The :class:`stflow.study.Study` of one split, its cells cut to ``size``.

    ``path`` (default :func:`study_path`) may be an edited copy. The cells kept are those of
    ``size["variants"]`` and ``size["local_steps"]`` (all for None), their rounds capped at
    ``size["rounds"]``. The file must keep the split's target and the labels
    ``"VARIANT K=k"``.

    Examples
    --------
    >>> s = load_split("by_label", SIZES["tiny"])
    >>> [(c.method, c.config["method"]["kind"], c.config["solver"]["local_steps"]) for c in s.cells]
    [('flow top-20 K=1', 'observer', 1), ('dgd K=1', 'dgd', 1)]
    """
    from ..errors import InputError
    from ..study import load_study

    size = size or SIZES["full"]
    path = study_path(split) if path is None else pathlib.Path(path)
    study = load_study(path, shrink={"rounds": size["rounds"]} if size.get("rounds") else None)
    if study.target != {"column": "mean_agent_test_accuracy", "value": TARGETS[split],
                        "at_least": True}:
        raise InputError(f"E11 study file {str(path)!r}: target_accuracy must stay "
                         f"{TARGETS[split]} (the {split} split's; got {study.target})")
    variants = size.get("variants")
    study.cells = [c for c in study.cells if _k(c) in size["local_steps"]
                   and (variants is None or _variant(c) in variants)]
    return study


def planned_runs(quick: bool) -> int:
    """One run per (variant, split, K) of this size, plus the six noise-floor runs."""
    size = pick(SIZES, quick)
    return len(settings(size)) + (6 if size["floor_rounds"] else 0)


def settings(size: dict) -> list[tuple[str, str, int]]:
    """The (variant, split, K) triples of one size, in the study files' order."""
    return [(_variant(c), split, _k(c)) for split in size["splits"]
            for c in load_split(split, size).cells]


def _cell(variant: str, split: str, local_steps: int):
    for c in load_split(split).cells:
        if _variant(c) == variant and _k(c) == local_steps:
            return c
    raise KeyError(f"E11 has no setting {variant!r}, {split}, K = {local_steps}: see "
                   f"{study_path(split)}")


def setting_config(variant: str, split: str, local_steps: int, *,
                   rounds: int | None = None) -> dict:
    """The resolved config of one setting as its study file gives it (the stored tuned
    winners), with ``rounds`` rounds when given.

    Examples
    --------
    >>> c = setting_config("flow q4", "by_label", 4)
    >>> c["method"]["kind"], c["solver"]["scheme"], c["solver"]["local_steps"], c["problem"]["split"]
    ('observer', 'predict', 4, 'by_label')
    """
    cfg = copy.deepcopy(_cell(variant, split, local_steps).config)
    if rounds is not None:
        cfg["solver"]["horizon"] = int(rounds) * cfg["solver"]["step"]
    return cfg


def base_config(variant: str, split: str, local_steps: int, *,
                rounds: int | None = None) -> dict:
    """:func:`setting_config` at the tuner's centre instead of the winners: the flows with
    the gains :data:`FLOW_GAINS` and h = :data:`FLOW_STEP`, the peers with lr =
    :data:`PEER_LR`."""
    cfg = setting_config(variant, split, local_steps, rounds=rounds)
    rounds = round(cfg["solver"]["horizon"] / cfg["solver"]["step"])
    kind = cfg["method"]["kind"]
    is_flow = kind in ("observer", "uncompressed")
    from ..methods import method_class

    raw = {k: v for k, v in cfg.items()}
    if "compressed" not in method_class(kind).channels:
        raw.pop("compressor", None)  # resolved in, unused: resolving it again would warn
    if is_flow:
        names = [p.name for p in method_class(kind).params if p.name in FLOW_GAINS]
        raw["method"] = {"kind": kind, **{n: FLOW_GAINS[n] for n in names}}
    else:
        raw["method"] = {"kind": kind, "lr": PEER_LR}
    raw["solver"] = dict(cfg["solver"], step=FLOW_STEP if is_flow else 1.0)
    raw["solver"]["horizon"] = rounds * raw["solver"]["step"]
    return resolve_config(raw)


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


def _one(cell, study_dir: pathlib.Path, target: dict):
    """Run one cell with the study runner into ``study_dir/cells/<id>/``; E11's row and curve."""
    from ..output import read_metrics_csv
    from ..study import run_cell

    c = dataclasses.asdict(cell)
    result = run_cell(c, str(study_dir), target)
    if result["status"] == "failed":
        raise RuntimeError(f"E11 cell {cell.id} failed: {result['reason']}")
    folder = study_dir / result["run_dir"]
    rec = read_metrics_csv(folder / "metrics.csv")

    summary = json.loads((folder / "summary.json").read_text())
    split = cell.config["problem"]["split"]
    row = {"variant": _variant(cell), "split": split, "K": _k(cell), "note": cell.note,
           "cell": cell.id, "status": result["status"],
           "params": {k_: v for k_, v in summary["config"]["method"].items() if k_ != "kind"},
           "step": summary["config"]["solver"]["step"], "rounds_run": int(rec["step"][-1]),
           "final_mean_agent": float(rec["mean_agent_test_accuracy"][-1]),
           "final_worst_agent": float(rec["worst_agent_test_accuracy"][-1]),
           "final_train_loss": float(rec["train_loss"][-1]),
           "bits_per_message": float(summary["bits_per_message"]),
           "reach": reach(rec, target["value"])}
    curve = {k_: np.asarray(rec[k_], float).tolist()
             for k_ in ("step", "bits_per_agent", "modeled_seconds", "mean_agent_test_accuracy")}
    return result, row, curve


def _noise_floor(rounds: int, out_dir):
    """The uncompressed flow (:data:`FLOW_GAINS`, h = 0.01) and DGD (lr :data:`FLOOR_LR`) on
    digits with r = :data:`FLOOR_REGULARIZATION` (well conditioned, so ``rounds`` reach the floor),
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
    """Run E11 into ``out_dir``: each split's study cells (``study_SPLIT/cells/<id>/``,
    ``study_SPLIT/results.csv``), ``rows.json``, a table and a figure."""
    from ..study.summary import write_results

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = pick(SIZES, quick)
    rows, curves, variants, rounds = [], {}, [], {}
    with shared_minimizer():
        for split in size["splits"]:
            study = load_split(split, size)
            study_dir = out_dir / f"study_{split}"
            results = []
            for cell in study.cells:
                result, row, curve = _one(cell, study_dir, study.target)
                results.append(result)
                rows.append(row)
                curves[(row["variant"], split, row["K"])] = curve
                if row["variant"] not in variants:
                    variants.append(row["variant"])
                rounds[row["K"]] = max(rounds.get(row["K"], 0), row["rounds_run"])
                if progress is not None:
                    progress(f"{row['variant']} {split} K={row['K']}")
            write_results(study_dir, results)
        floor = []
        if size["floor_rounds"]:
            for row in _noise_floor(size["floor_rounds"], out_dir):
                floor.append(row)
                if progress is not None:
                    progress(f"noise floor batch={row['batch']} decay={row['step_decay']}")
    write_json(out_dir / "rows.json", {"rows": rows, "noise_floor": floor})
    figure = _plot(out_dir, curves, size["splits"], variants)
    checks = must_hold(rows)
    files = ", ".join(f"`studies/{STUDIES[s]}`" for s in size["splits"])
    return {
        "title": TITLE,
        "setting": (
            "digits softmax (r = 1e-2 per agent, 1348 training rows, 449 held out), N = 8, "
            "ring, batch 16, splits " + ", ".join(size["splits"]) + "; local steps K in "
            + str(list(size["local_steps"])) + f"; rounds per K {dict(sorted(rounds.items()))}"
            + ("" if size["rounds"] is None else f" (capped at {size['rounds']} at this size)")
            + f"; step_decay {STEP_DECAY:g} for every method; targets (mean agent test "
            f"accuracy) {TARGETS}; networks {NETWORKS}. The settings are the study files "
            f"{files} (shipped in `stflow/experiments/`; copy, edit and run one with `stflow "
            "study`), run here cell by cell with the study runner; their fixed method "
            "settings are the winners of `stflow tune --budget 12 --seed 0 --target-accuracy "
            "A` stored in the files (tuned offline: re-tuning all 26 settings costs many times "
            "this experiment; `studies/e11_SPLIT_tuning.toml` re-tunes them with `stflow "
            "study`)."
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
            got = {r["variant"]: r for r in rows if r["split"] == split and r["K"] == k}
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
        never = "never" if r["note"].startswith("tuned") else f"never ({r['note']})"
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
                  f"{FLOOR_REGULARIZATION} per agent; flow: gains "
                  f"{', '.join(f'{k} = {v:g}' for k, v in FLOW_GAINS.items() if k != 'gamma')}, "
                  f"h = {FLOW_STEP}; DGD: "
                  f"lr = {FLOOR_LR}; mean of the last tenth of the records):", "",
                  md_table(["method", "batch", "step_decay", "rounds", "status",
                            "relative error", "optimality gap"],
                           [[f["method"], "full" if f["batch"] is None else f["batch"],
                             "none" if f["step_decay"] is None else f"{f['step_decay']:g}",
                             f["rounds"], f["status"], fmt(f["tail_relative_error"]),
                             fmt(f["tail_optimality_gap"])] for f in floor])]
    return "\n".join(lines)


def _plot(out_dir, curves, splits, variants) -> str:
    """Accuracy against bits, rounds and modeled seconds; one colour per variant (K = 1
    solid, K = 4 dashed); the start record (0 bits, 0 s) is left out of the log axes; one
    legend beside the panels."""
    from matplotlib.lines import Line2D

    from ._common import plt, save_figure
    from ._figures import style

    pyplot = plt()
    fig, axes = pyplot.subplots(len(splits), 3, figsize=(11, 3.2 * len(splits)), squeeze=False)
    colours = {v: style(i)["color"] for i, v in enumerate(variants)}
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
