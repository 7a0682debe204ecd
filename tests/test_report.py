"""Issue 20: honest results and claims (modeled time of silent rounds, E10's stable steps,
the certificate's horizon), the report's figures and HTML, progress lines, run outputs."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from stflow.compressors import make_compressor
from stflow.engines.simulate import solve
from stflow.methods import Gains, PrimalDualFlow
from stflow.metrics import TimeModel

ROOT = Path(__file__).resolve().parents[1]


def _two_agents(trigger):
    graph = SimpleNamespace(laplacian=sp.csr_matrix([[1.0, -1.0], [-1.0, 1.0]]),
                            degree=np.array([1, 1]), n=2, lambda_max=2.0)
    problem = SimpleNamespace(n_agents=2, dim=1, grad=lambda X: X.copy())
    return PrimalDualFlow("observer", problem, graph, make_compressor("identity", 1),
                          gains=Gains(alpha=1.0, beta=1.0, eta=1.0, gamma=10.0),
                          scheme="euler", trigger=trigger, trigger_decay=math.log(2) / 0.1)


@pytest.mark.parametrize("trigger, rounds, seconds", [
    # threshold 100 (halved every 0.1): |x_i - xhat_i| <= 3, every agent silent in all three
    # rounds: 3 x (latency 0.01 + 1 flag bit / 1000 bit/s) = 0.033 s, not 3 x 0.075
    (100.0, 3, 3 * (0.01 + 1 / 1000)),
    # test_trigger's hand-worked rounds: round 0 sends (1, 65) bits, round 1 (65, 1): the
    # slowest link carries 65 bits in each: 2 x (0.01 + 65 / 1000)
    (1.5, 2, 2 * (0.01 + 65 / 1000)),
])
def test_modeled_seconds_charge_only_the_bits_sent(trigger, rounds, seconds):
    flow = _two_agents(trigger)
    assert flow.bits_per_message == 65
    sol = solve(flow, step=0.1, horizon=0.1 * rounds, record_every=1,
                x0=np.array([[1.0], [3.0]]),
                time_model=TimeModel(bandwidth=1000.0, latency=0.01))
    secs = sol.records["modeled_seconds"]
    assert secs[-1] == pytest.approx(seconds, rel=1e-12)
    assert secs[0] == 0.0 and np.all(np.diff(secs) > 0)


def test_modeled_seconds_without_trigger_unchanged():
    flow = PrimalDualFlow("observer", _two_agents(100.0).problem, _two_agents(100.0).graph,
                          make_compressor("identity", 1),
                          gains=Gains(alpha=1.0, beta=1.0, eta=1.0, gamma=10.0))
    sol = solve(flow, step=0.1, horizon=0.3, record_every=1, x0=np.array([[1.0], [3.0]]),
                time_model=TimeModel(bandwidth=1000.0, latency=0.01))
    assert sol.records["modeled_seconds"][-1] == pytest.approx(3 * (0.01 + 64 / 1000))


# ---- E10: a diverging run is never "stable" -------------------------------------------------

def test_e10_largest_stable_step_skips_diverging_runs():
    from stflow.experiments import e10_schemes as e10

    # rows as the full run of issue 20 stored them (cyclic euler at 0.00566 and predict /
    # gauss_seidel at 0.008 ended "diverging" with final errors 2521, 2.92, 2887)
    rows = [
        {"compressor": "cyclic", "scheme": "euler", "step": 0.004, "status": "converged",
         "final_relative_error": 9e-7},
        {"compressor": "cyclic", "scheme": "euler", "step": 0.00566, "status": "diverging",
         "final_relative_error": 2521.1},
        {"compressor": "cyclic", "scheme": "predict", "step": 0.00566, "status": "stalled",
         "final_relative_error": 3e-4},
        {"compressor": "cyclic", "scheme": "predict", "step": 0.008, "status": "diverging",
         "final_relative_error": 2.92},
        {"compressor": "cyclic", "scheme": "gauss_seidel", "step": 0.008,
         "status": "diverging", "final_relative_error": 2886.6},
        {"compressor": "cyclic", "scheme": "gauss_seidel", "step": 0.016,
         "status": "not_converged", "final_relative_error": 1.5},  # grew, not flagged
    ]
    assert e10._stable(rows) == {"cyclic euler": 0.004, "cyclic predict": 0.00566,
                                 "cyclic gauss_seidel": None}


# ---- the certificate's horizon --------------------------------------------------------------

SWITCH_OFF = '''
import numpy as np


def late_off(dim):
    """The identity until t = 1500, zero afterwards."""
    return lambda Z, t: Z.copy() if t < 1500.0 else np.zeros_like(Z)
'''


@pytest.mark.parametrize("extra, verdict", [([], True), (["--horizon", "3000"], False)])
def test_certify_horizon_sees_a_late_switch_off(tmp_path, capsys, extra, verdict):
    import json

    from stflow.cli import main

    f = tmp_path / "late.py"
    f.write_text(SWITCH_OFF)
    code = main(["certify", f"py:{f}:late_off", "--dim", "3", "--json", "--quiet", *extra])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["spatio_temporal"] is verdict
    assert max(out["start_times"]) == pytest.approx(3000.0 if extra else 1000.0, abs=1.0)
    if not verdict:  # from t0 = 3000 nothing decays: the window rate there is 0
        assert out["start_rates"][-1] == pytest.approx(0.0, abs=1e-12)
        assert out["reason"].startswith("rate fades with t")


def test_certify_horizon_must_be_positive(capsys):
    from stflow.cli import main

    assert main(["certify", "identity", "--dim", "3", "--horizon", "-5"]) == 2
    err = capsys.readouterr().err
    assert "--horizon must be a finite number > 0 (got -5)" in err


# ---- stflow run: progress lines outside a terminal, final state, summary fields -------------

RUN = """
[problem]
kind = "quadratic"
agents = 6
dim = 4
[graph]
kind = "ring"
[method]
kind = "observer"
[compressor]
spec = "topk:k=2"
[solver]
step = 1e-3
horizon = 30.0
record_every = 500
[network]
bandwidth = 1000.0
latency = 0.01
"""


def test_run_outside_a_terminal_prints_lines_and_saves_the_final_state(tmp_path, capsys,
                                                                       monkeypatch):
    import json

    import stflow.progress

    monkeypatch.setattr(stflow.progress, "EVERY_SECONDS", 1e9)  # lines by 10 % only

    from stflow.cli import main
    from stflow.metrics import relative_error
    from stflow.output import read_metrics_csv
    from stflow.progress import PROGRESS_LOG

    cfg = tmp_path / "c.toml"
    cfg.write_text(RUN)
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--no-figure"]) == 0
    err = capsys.readouterr().err  # pytest's capture: not a terminal
    lines = [x for x in err.splitlines() if x.startswith("stflow run: ")]
    # 30000 rounds, recorded every 500: a line at the start and per 10 % (3000 rounds)
    assert lines[0].startswith("stflow run: 0 of 30000 rounds (0%)")
    assert lines[-1].startswith("stflow run: 30000 of 30000 rounds (100%)")
    assert len(lines) == 11 and "\r" not in err
    assert (out / PROGRESS_LOG).read_text().splitlines() == lines

    summary = json.loads((out / "summary.json").read_text())
    m = read_metrics_csv(out / "metrics.csv")
    i = int(np.flatnonzero(m["relative_error"] > 1e-8)[-1]) + 1  # reached and stays
    rounds = int(m["step"][i])
    assert summary["target"] == {"column": "relative_error", "direction": "<=", "value": 1e-8}
    assert summary["rounds_to_target"] == rounds and 0 < rounds < 30000
    # topk k=2, d=4: 2 * (2 + 64) = 132 bits per round; one round lasts 0.01 + 0.132 s
    assert summary["bits_to_target"] == rounds * 132
    assert summary["modeled_seconds_to_target"] == pytest.approx(rounds * 0.142, rel=1e-12)
    assert summary["samples_to_target"] == m["samples_per_agent"][i]

    state = np.load(out / "final_state.npz")
    assert state["X"].shape == (6, 4)
    np.testing.assert_array_equal(state["average"], state["X"].mean(axis=0))
    assert {"V", "Xhat"} <= set(state.files)
    from stflow.config import build_run, load_config
    x_star = build_run(load_config(cfg)).problem.x_star
    assert relative_error(state["X"], x_star) == pytest.approx(
        summary["final_relative_error"], rel=1e-12)


def test_quiet_run_prints_no_progress(tmp_path, capsys):
    from stflow.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text(RUN.replace("horizon = 30.0", "horizon = 1.0"))
    main(["run", str(cfg), "--out", str(tmp_path / "o"), "--no-figure", "--quiet"])
    assert "stflow run:" not in capsys.readouterr().err
    assert not (tmp_path / "o" / "progress.log").exists()


def test_line_progress_every_seconds(monkeypatch):
    import io

    from stflow import progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    f = io.StringIO()
    bar = progress.LineProgress(total=1000, desc="stflow tune", unit="candidate", file=f)
    for t in (3.0, 11.0, 15.0, 25.0):  # 1 of 1000 each: only the 10 s interval prints
        now[0] = t
        bar.update(1)
    now[0] = 26.0
    bar.close()
    assert f.getvalue().splitlines() == [
        "stflow tune: 0 of 1000 candidates (0%), 0s elapsed",
        "stflow tune: 2 of 1000 candidates (0%), 11s elapsed",
        "stflow tune: 4 of 1000 candidates (0%), 25s elapsed",
    ]


def test_run_saves_the_torch_state_dict(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from stflow.cli import main
    from stflow.config import build_run, load_config

    cfg = tmp_path / "mlp.toml"
    cfg.write_text((ROOT / "examples" / "mlp.toml").read_text().replace(
        "horizon = 6.0", "horizon = 0.075").replace("target_accuracy = 0.93",
                                                     "target_accuracy = 1.0"))
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--no-figure", "--quiet"]) == 1
    capsys.readouterr()
    avg = np.load(out / "final_state.npz")["average"]
    sd = torch.load(out / "model.pt")
    problem = build_run(load_config(cfg)).problem
    assert [k for k, _ in problem.param_shapes] == [k for k in sd if k in dict(
        problem.param_shapes)]
    flat = torch.cat([sd[k].reshape(-1) for k, _ in problem.param_shapes]).numpy()
    np.testing.assert_array_equal(flat, avg)  # the state_dict holds the average model
    assert avg.shape == (4874,) and np.ptp(avg) > 0
    # the saved model predicts as the problem does at the average
    p = sd["0.weight"].shape[1]  # the digits' 64 pixels (+ the table's extra column)
    model = torch.nn.Sequential(torch.nn.Linear(p, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10)).double()
    model.load_state_dict(sd)
    F, y = problem.test_set
    acc = float((model(torch.from_numpy(F)).argmax(1).numpy() == y).mean())
    assert acc == pytest.approx(float(problem.test_accuracy(avg[None, :])[0]), abs=1e-12)


# ---- the report, as a reader sees it ---------------------------------------------------------

@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The tiny suite (every experiment, test sizes), written once for this module."""
    from stflow.cli import main

    out = tmp_path_factory.mktemp("report") / "results"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STFLOW_TINY", "1")
        assert main(["reproduce", "--out", str(out), "--quick", "--quiet", "--jobs", "2"]) == 0
    return out


def test_every_figure_reads_well(report):
    """From each figure's audit (drawn by matplotlib, written when it was saved): no empty
    panel, no panel of one x value, a legend wherever two curves share a panel, no legend
    over data points, no overlapping tick labels, no two curves of a panel in one style."""
    import json

    from stflow.experiments._figures import AUDIT_FILE, problems

    figures = sorted(report.glob("E*/*.png"))
    assert len(figures) >= 12
    found = {}
    for folder in sorted(report.glob("E*")):
        audit = json.loads((folder / AUDIT_FILE).read_text())
        for name, a in audit.items():
            found[f"{folder.name}/{name}"] = problems(a)
            assert a["axes"], name
    assert sorted(found) == sorted(f"{p.parent.name}/{p.name}" for p in figures)
    assert {k: v for k, v in found.items() if v} == {}


def test_audit_catches_what_the_issue_saw(tmp_path):
    """The audit is not blind: a legend over curves, an empty panel, one point, two curves
    in one style and overlapping tick labels are each reported."""
    from stflow.experiments._common import plt
    from stflow.experiments._figures import audit_figure, problems

    pyplot = plt()
    fig, axes = pyplot.subplots(1, 4, figsize=(8, 3))
    x = np.linspace(1.0, 10.0, 50)
    for k in range(3):
        axes[0].plot(x, x * (k + 1), color="C0", label=f"c{k}")  # one colour, one dash
    axes[0].legend(loc="center")  # over the curves
    axes[2].plot([3.0], [1.0], "o", label="one")
    axes[3].plot(x, x)
    axes[3].set_xticks(np.linspace(1, 10, 40), [f"{v:.4f}" for v in np.linspace(1, 10, 40)])
    found = problems(audit_figure(fig))
    pyplot.close(fig)
    assert any("legend covers" in p for p in found)
    assert any("3 curves in 1 styles" in p for p in found)
    assert any(p.startswith("panel 2") and "empty" in p for p in found)
    assert any(p.startswith("panel 3") and "one x value" in p for p in found)
    assert any(p.startswith("panel 4") and "tick labels overlap" in p for p in found)


def _visible_text(page: str) -> str:
    import re

    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    page = re.sub(r'src="data:[^"]*"', " ", page)
    return re.sub(r"<[^>]+>", " ", page)


def test_report_prose_has_no_none_or_dicts(report):
    import html
    import re

    text = html.unescape(_visible_text((report / "report.html").read_text()))
    assert not re.findall(r".{30}\bNone\b.{10}", text)
    assert not re.findall(r"\{'[^}]{0,40}", text)
    assert "nan" not in re.findall(r"\b\w+\b", text)


def test_report_fits_1024_px(report, tmp_path):
    """Rendered by headless Chromium at 1024 px: the page is no wider than the window and
    no table, figure or paragraph sticks out. Without Chromium on the machine (it is a
    Debian package, not on PyPI) the page is checked statically instead: the style sheet
    bounds the body, tables, images and preformatted blocks, no element sets a width of its
    own, and every figure of the run is embedded once."""
    import json
    import re
    import shutil
    import subprocess

    page = (report / "report.html").read_text()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        style = re.search(r"<style>(.*?)</style>", page, flags=re.S).group(1)
        rules = dict(re.findall(r"([a-z,]+)\{([^}]*)\}", style))
        assert "max-width:1100px" in rules["body"]
        assert "max-width:100%" in rules["table"] and "max-width:100%" in rules["img"]
        assert "overflow-wrap:anywhere" in rules["th,td"]
        assert "overflow-x:auto" in rules["pre"]
        body = page.split("</style>", 1)[1]
        widths = [int(w) for w in re.findall(r'width[=:]\s*"?(\d+)', body)]
        assert all(w <= 1024 for w in widths), widths
        assert len(re.findall(r"<figure><img", body)) == len(list(report.glob("E*/*.png")))
        return
    probe = ('<script>window.addEventListener("load",()=>{const bad=[];'
             'document.querySelectorAll("table,figure,img,p,pre,ul").forEach(e=>{'
             'const r=e.getBoundingClientRect();if(r.right>window.innerWidth+0.5)'
             'bad.push(e.tagName+" "+Math.round(r.right));});const d=document.createElement('
             '"div");d.id="probe";d.textContent=JSON.stringify({width:document.documentElement'
             '.scrollWidth,inner:window.innerWidth,bad:bad,figures:document.querySelectorAll('
             '"figure img").length});document.body.appendChild(d);});</script>')
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", probe + "</body>"))
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1024,800",
         "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120)
    found = re.search(r'<div id="probe">([^<]*)</div>', proc.stdout)
    assert found, proc.stderr[-2000:]
    seen = json.loads(html_unescape(found.group(1)))
    assert seen["inner"] == 1024
    assert seen["width"] <= 1024 and seen["bad"] == []
    assert seen["figures"] == len(list(report.glob("E*/*.png")))


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


# ---- docs/img is drawn by the code the README describes --------------------------------------

def _make_figures():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_figures",
                                                  ROOT / "scripts" / "make_figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_docs_figures_are_current(tmp_path):
    """Every image in docs/img has an entry in docs/img/figures.json (written by
    scripts/make_figures.py); its curves are the ones the code draws today (same labels,
    same data over t <= prefix_t, recomputed here). When this fails, run the script."""
    import json

    from stflow.experiments import e2_convergence as e2

    mf = _make_figures()
    manifest = json.loads((ROOT / "docs" / "img" / "figures.json").read_text())
    assert sorted(manifest) == sorted(p.name for p in (ROOT / "docs" / "img").glob("*.png"))
    entry = manifest["e2_relative_error.png"]
    size = dict(e2.SIZES[entry["size"]])
    labels = ["uncompressed"] + e2.st_specs(e2.E2_STEP, size["specs"])
    assert sorted(entry["curves"]) == sorted(labels)
    size["horizon"] = entry["prefix_t"]
    curves = mf.e2_curves(size, tmp_path)
    stale = [label for label, (t, err) in curves.items()
             if mf.curve_hash(err) != entry["curves"][label]["prefix_sha256"]]
    assert stale == [], f"docs/img is stale for {stale}: run {mf.COMMAND}"


def test_curve_hash_sees_a_change():
    mf = _make_figures()
    a = np.array([1.0, 0.5, 0.25])
    assert mf.curve_hash(a) == mf.curve_hash(a * (1 + 1e-9))  # rounding noise
    assert mf.curve_hash(a) != mf.curve_hash(a * (1 + 1e-4))


# ---- torch threads -----------------------------------------------------------------------------

def test_torch_threads_one_per_process_unless_asked(monkeypatch):
    torch = pytest.importorskip("torch")
    from stflow.errors import InputError
    from stflow.problems.torch_model import _import_torch
    from stflow.threads import set_torch_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("STFLOW_TORCH_THREADS", raising=False)
        torch.set_num_threads(2)
        _import_torch("mlp")  # what every engine's problem build calls
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("STFLOW_TORCH_THREADS", "2")
        assert set_torch_threads(torch) == 2
        monkeypatch.setenv("STFLOW_TORCH_THREADS", "0")
        with pytest.raises(InputError, match=r"STFLOW_TORCH_THREADS must be an integer >= 1 "
                                             r"\(got '0'\)"):
            set_torch_threads(torch)
        monkeypatch.delenv("STFLOW_TORCH_THREADS")
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        torch.set_num_threads(2)
        assert set_torch_threads(torch) == 2  # the user's OMP_NUM_THREADS is left alone
    finally:
        torch.set_num_threads(before)


# ---- progress lines of tune and reproduce outside a terminal ---------------------------------

TUNE = """
[problem]
kind = "quadratic"
agents = 4
dim = 3
seed = 1
[graph]
kind = "ring"
[method]
kind = "observer"
[compressor]
spec = "topk:k=1"
[solver]
scheme = "predict"
step = 0.01
horizon = 5.0
"""


def test_tune_outside_a_terminal_prints_lines_and_keeps_them(tmp_path, capsys, monkeypatch):
    import stflow.progress
    from stflow.cli import main

    monkeypatch.setattr(stflow.progress, "EVERY_SECONDS", 1e9)  # lines by 10 % only

    cfg = tmp_path / "t.toml"
    cfg.write_text(TUNE)
    out = tmp_path / "tuned"
    main(["tune", str(cfg), "--budget", "3", "--target", "1e-4", "--out", str(out)])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("stflow tune: ")]
    # the bar counts runs (robustness reruns included) against the upper bound 3 * (2 + 5)
    assert lines[0].startswith("stflow tune: 0 of 21 runs (0%)")
    assert lines[-1].startswith("stflow tune: 21 of 21 runs (100%)")
    assert "candidate 3 of 3" in lines[-1]
    assert len(lines) >= 3  # a line per 10 % crossed, at least start, a run and the end
    assert (out / "progress.log").read_text().splitlines() == lines


def test_reproduce_progress_outside_a_terminal(capsys, monkeypatch):
    import stflow.experiments as experiments
    import stflow.progress

    monkeypatch.setattr(stflow.progress, "EVERY_SECONDS", 1e9)

    monkeypatch.setenv("STFLOW_TINY", "1")
    bar = experiments._Progress(["E1", "E3"], quick=True, quiet=False)
    planned = sum(bar.planned.values())
    assert planned == experiments.planned_runs("E1", True) + experiments.planned_runs(
        "E3", True) and planned > 2
    bar.tick("E1", "identity: ST")
    bar.finish("E1")
    bar.finish("E3")
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"stflow reproduce: 0 of {planned} runs (0%)")
    assert lines[-1].startswith(f"stflow reproduce: {planned} of {planned} runs (100%)")
    assert all(x.startswith("stflow reproduce: ") for x in lines)


TRIGGERED_NET = """
[problem]
kind = "quadratic"
agents = 5
dim = 4
[graph]
kind = "ring"
[method]
kind = "observer"
trigger = 0.05
trigger_decay = 5.0
[compressor]
spec = "quantize:bits=4"
[solver]
step = 1e-3
horizon = 0.2
record_every = 20
[network]
bandwidth = 1000.0
latency = 0.01
"""


def test_mpi_charges_the_same_modeled_seconds_for_triggered_rounds(tmp_path):
    """Two ranks: each round's largest message is the max over both ranks' agents, so the
    modeled time equals the simulator's; every round costs between the flag and a full
    message (81 bits at 1000 bit/s, plus 0.01 s latency)."""
    import os
    import shutil
    import subprocess
    import sys

    from stflow.cli import main
    from stflow.output import read_metrics_csv

    mpiexec = shutil.which("mpiexec")
    assert mpiexec is not None, "no mpiexec: `pip install -e .[all]` installs it (mpich)"
    cfg = tmp_path / "c.toml"
    cfg.write_text(TRIGGERED_NET)
    assert main(["run", str(cfg), "--out", str(tmp_path / "sim"), "--quiet",
                 "--no-figure"]) in (0, 1)
    proc = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "stflow.cli", "run",
                           str(cfg), "--backend", "mpi", "--out", str(tmp_path / "mpi"),
                           "--quiet", "--no-figure"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode in (0, 1), proc.stderr
    a = read_metrics_csv(tmp_path / "sim" / "metrics.csv")
    b = read_metrics_csv(tmp_path / "mpi" / "metrics.csv")
    np.testing.assert_allclose(b["modeled_seconds"], a["modeled_seconds"], rtol=1e-12, atol=0)
    secs = a["modeled_seconds"][-1]
    assert 200 * (0.01 + 1 / 1000) < secs < 200 * (0.01 + 81 / 1000)


def test_report_html_structure(report):
    """Without a browser: every figure is an embedded PNG with a caption, the page's style
    lets cells wrap and images shrink (what keeps it within 1024 px), every heading anchor
    is unique."""
    import re

    page = (report / "report.html").read_text()
    figures = re.findall(r"<figure>(.*?)</figure>", page, flags=re.S)
    assert len(figures) == len(list(report.glob("E*/*.png")))
    for f in figures:
        assert 'src="data:image/png;base64,' in f and "<figcaption>Figure " in f
    style = re.search(r"<style>(.*?)</style>", page, flags=re.S).group(1)
    assert re.search(r"th,td\{[^}]*overflow-wrap:anywhere", style)
    assert re.search(r"table\{[^}]*max-width:100%", style)
    assert re.search(r"img\{[^}]*max-width:100%", style)
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_line_progress_heartbeat_while_no_update_arrives():
    import io
    import time

    from stflow.progress import LineProgress

    f = io.StringIO()
    bar = LineProgress(total=10, desc="stflow run", unit="round", file=f, every=0.05,
                       heartbeat=True)
    time.sleep(0.4)  # one long round: no update, yet lines keep coming
    bar.close()
    lines = f.getvalue().splitlines()
    assert len(lines) >= 3
    assert all(x.startswith("stflow run: 0 of 10 rounds (0%)") for x in lines)
