"""`stflow reproduce`: the suite end to end on tiny sizes, failures, bad arguments, and E6.

The end-to-end run sets ``STFLOW_TINY=1`` (test-only sizes) and ``--quick``; it runs every
registered experiment (E1..E8 are checked in detail here; E9, the peer comparison, has its
own tests). Progress: every experiment reports as many runs as it plans, so the bar of
runs done / runs planned moves within each experiment and ends full.
"""

import json
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import stflow.experiments as experiments
from stflow.cli import main
from stflow.experiments import EXPERIMENTS, experiment_names, planned_runs, run_suite
from stflow.experiments.report import heading_anchor, markdown_to_html

OWN = ["E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8"]
RUN_KEYS = {"status", "final_relative_error", "final_consensus_error", "bits_per_agent",
            "steps", "fitted_rate", "tolerance"}
EXPERIMENT_KEYS = {"name", "title", "ok", "error", "seconds", "figures", "quick"}


def _valid_png(path: Path) -> bool:
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return False
    (crc,) = struct.unpack(">I", data[29:33])
    width, height = struct.unpack(">II", data[16:24])
    return zlib.crc32(data[12:29]) == crc and width > 100 and height > 100 and b"IEND" in data


#: (experiment, message) of every progress tick the parent process received in `suite`.
TICKS: list[tuple[str, str]] = []


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce") / "results"
    tick = experiments._Progress.tick

    def record(self, name, message=""):
        TICKS.append((name, message))
        tick(self, name, message)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STFLOW_TINY", "1")
        mp.setattr(experiments._Progress, "tick", record)
        code = main(["reproduce", "--out", str(out), "--quick", "--quiet", "--jobs", "2",
                     "--only", ",".join(experiment_names())])
    return out, code


def test_suite_writes_the_report(suite):
    out, code = suite
    assert code == 0
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for name in OWN:
        assert f"## {name}: " in md
        assert re.search(f'<h2 id="{name.lower()}-[^"]+">{name}: ', html)
    assert "FAILED" not in md
    n_fig = md.count("![")
    assert n_fig >= len(OWN)
    # every figure is embedded, none is linked
    assert html.count('src="data:image/png;base64,') == n_fig
    assert 'src="E' not in html


def test_report_has_linked_contents_and_captions(suite):
    out, _ = suite
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert '<h2 id="contents">Contents</h2>' in html
    for name in experiment_names():
        title = json.loads((out / name / "summary.json").read_text())["title"]
        anchor = heading_anchor(f"{name}: {title}")
        assert f"| [{name}](#{anchor}) |" in md
        assert f'<a href="#{anchor}">{name}</a>' in html
        assert f'<h2 id="{anchor}">' in html
    assert html.count('<a href="#contents">') == len(experiment_names())
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html)
    assert len(captions) == md.count("![")
    for k, caption in enumerate(captions, start=1):
        assert caption.startswith(f"Figure {k} (E"), caption
        # the experiment's own caption (what to look at), not the file-name fallback
        assert len(caption) > 120, caption


def test_every_experiment_reports_the_runs_it_planned(suite, monkeypatch):
    out, _ = suite
    monkeypatch.setenv("STFLOW_TINY", "1")  # the sizes the suite ran
    for name in experiment_names():
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["runs"] == summary["runs_planned"] > 1, (
            f"{name}: run() called progress {summary['runs']} times, planned_runs(quick) "
            f"says {summary['runs_planned']}: call progress once per run and define "
            "planned_runs(quick) in the experiment's module to match")
        assert summary["runs_planned"] == planned_runs(name, quick=True)


def test_full_sizes_plan_more_runs_than_quick(monkeypatch):
    monkeypatch.delenv("STFLOW_TINY", raising=False)
    # E9: one tick per tuning: E2 (compressors x 5 methods + gradient tracking, seeds 0-1
    # with --quick) and E6 (the quantizer x 5 methods + gradient tracking, seed 0)
    from stflow.experiments.comparison import compressor_specs

    assert planned_runs("E9", quick=True) == 2 * (len(compressor_specs()) * 5 + 1) + (5 + 1)
    assert planned_runs("E9", quick=False) > planned_runs("E9", quick=True)
    for name in experiment_names():
        assert planned_runs(name, quick=False) >= planned_runs(name, quick=True) >= 1, name


def test_progress_ticks_cross_the_process_pool(suite, monkeypatch):
    """The suite ran with --jobs 2: every run's tick reached the parent's bar."""
    monkeypatch.setenv("STFLOW_TINY", "1")
    received = [name for name, _ in TICKS]
    for name in experiment_names():
        assert received.count(name) == planned_runs(name, quick=True), name
    # the messages travel too (shown after the bar)
    assert any(name == "E8" and msg.startswith("N=10: ") for name, msg in TICKS)
    assert any(name == "E2" and msg.endswith(": converged") for name, msg in TICKS)


def test_progress_in_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("STFLOW_TINY", "1")
    ticks = []
    tick = experiments._Progress.tick
    monkeypatch.setattr(experiments._Progress, "tick",
                        lambda self, name, msg="": (ticks.append(name), tick(self, name, msg)))
    run_suite(tmp_path / "r", ["E8"], quick=True, jobs=1, quiet=True)
    assert ticks == ["E8"] * planned_runs("E8", quick=True)


def test_markdown_to_html_anchors_repeat_like_github():
    body = markdown_to_html("## Setting\n\n## Setting\n\n[back](#setting-1)")
    assert '<h2 id="setting">' in body and '<h2 id="setting-1">' in body
    assert '<a href="#setting-1">back</a>' in body


def test_every_figure_is_a_valid_png(suite):
    out, _ = suite
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) > len(OWN)
    for png in pngs:
        assert _valid_png(png), png


def test_every_summary_has_the_keys(suite):
    out, _ = suite
    for name in OWN:
        summary = json.loads((out / name / "summary.json").read_text())
        assert EXPERIMENT_KEYS <= set(summary), name
        assert summary["ok"] is True and summary["error"] is None
        for fig in summary["figures"]:
            assert (out / fig).is_file()
    runs = list(out.glob("E*/runs/*/summary.json"))
    assert len(runs) >= 15
    for path in runs:
        assert RUN_KEYS <= set(json.loads(path.read_text())), path
        assert (path.parent / "metrics.csv").is_file()


def test_e2_converged_at_the_uncompressed_rate(suite):
    out, _ = suite
    data = json.loads((out / "E2" / "summary.json").read_text())["data"]
    assert set(data["status"].values()) == {"converged"}
    rates = data["rates"]
    base = rates["uncompressed"]
    assert base > 0.5
    for label, rate in rates.items():
        assert abs(rate - base) < 0.25 * base, label


def test_e3_saves_bits(suite):
    out, _ = suite
    saving = json.loads((out / "E3" / "summary.json").read_text())["data"]["saving_factor"]
    # d = 5 in the tiny size: 320 bits uncompressed against 64 for the scalarizer
    assert saving["uncompressed"] == pytest.approx(1.0)
    assert saving["scalarize:basis=cyclic,tau=0.001"] > 3.0


def test_e6_matches_the_centralized_solution(suite):
    out, _ = suite
    agreement = json.loads((out / "E6" / "summary.json").read_text())["data"]["agreement"]
    assert len(agreement) == 2
    for label, row in agreement.items():
        assert row["relative_error_vs_centralized"] <= 1e-6, label
        assert row["score"] == pytest.approx(row["centralized_score"], abs=1e-9), label
    bc = agreement["breast_cancer-uncompressed"]
    assert bc["metric"] == "test accuracy" and bc["score"] > 0.9


def test_same_seed_same_numbers(suite, tmp_path):
    out, _ = suite
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STFLOW_TINY", "1")
        assert main(["reproduce", "--out", str(tmp_path / "again"), "--quick", "--quiet",
                     "--jobs", "1", "--only", "E7"]) == 0
    grid = out / "E7" / "grid.json"
    assert (tmp_path / "again" / "E7" / "grid.json").read_bytes() == grid.read_bytes()


def test_a_failing_experiment_is_reported_and_the_others_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STFLOW_TINY", "1")
    monkeypatch.setitem(EXPERIMENTS, "E2", ".does_not_exist")
    out = tmp_path / "r"
    code = main(["reproduce", "--out", str(out), "--quick", "--quiet", "--jobs", "1",
                 "--only", "E2,E8"])
    assert code == 1
    assert "E2 failed" in capsys.readouterr().err
    md = (out / "report.md").read_text()
    assert "**FAILED**" in md and "does_not_exist" in md
    assert json.loads((out / "E8" / "summary.json").read_text())["ok"] is True
    assert json.loads((out / "E2" / "summary.json").read_text())["ok"] is False


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--only", "E1,E42"], "--only must list experiments"),
        (["--only", ""], "--only must list experiments"),
        (["--jobs", "0"], "--jobs must be >= 1"),
    ],
)
def test_bad_arguments_exit_2_without_output(tmp_path, capsys, args, fragment):
    out = tmp_path / "new"
    assert main(["reproduce", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
    assert not out.exists()


def test_non_empty_out_needs_force(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert main(["reproduce", "--out", str(tmp_path), "--only", "E1"]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--force" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_unwritable_out_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["reproduce", "--out", str(blocker / "sub"), "--only", "E1"]) == 2
    err = capsys.readouterr().err
    assert "not writable" in err and err.count("\n") == 1
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["reproduce", "--out", str(locked / "x"), "--only", "E1"]) == 2


def test_unknown_subcommand_option_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "--out", "x", "--bogus"])
    assert exc.value.code == 2


def test_registry_lists_the_experiments():
    assert list(EXPERIMENTS)[:8] == OWN
    assert np.all([isinstance(v, str) for v in EXPERIMENTS.values()])


def test_reproduce_in_one_process_runs_one_blas_thread(monkeypatch):
    """``--jobs 1`` runs the experiments in this process with one BLAS thread (as the pool's
    workers do), unless the user set a thread variable."""
    from threadpoolctl import threadpool_info

    from stflow import experiments

    for k in experiments._THREAD_VARS:
        monkeypatch.delenv(k, raising=False)
    with experiments._one_blas_thread():
        blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
        assert blas and all(p["num_threads"] == 1 for p in blas)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    before = [p["num_threads"] for p in threadpool_info()]
    with experiments._one_blas_thread():
        assert [p["num_threads"] for p in threadpool_info()] == before
