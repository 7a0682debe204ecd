"""``stflow study``: the study file's checks, numbers by hand, determinism across --jobs,
resume after an interrupt, failed cells, and the shipped examples at a small size."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stflow.cli import main
from stflow.output import read_metrics_csv
from stflow.study import (
    TIMING_COLUMNS,
    load_study,
    parse_study,
    run_study,
    spread,
)

ROOT = Path(__file__).resolve().parents[1]

TINY = """
[study]
title = "tiny"
target = 1e-6
seeds = [0, 1, 2]
rounds = 300

[base.problem]
kind = "least_squares"
agents = 6
dim = 4

[base.graph]
kind = "ring"

[[method]]
kind = "lead"
step = 1.0

[[method]]
kind = "choco"
step = 1.0

[[compressor]]
label = "q4"
spec = "quantize:bits=4"
"""


def _write(tmp_path, text, name="study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _rows(out: Path, *, drop_timing: bool = True) -> list[dict]:
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if drop_timing:
        for r in rows:
            for c in TIMING_COLUMNS:
                r.pop(c)
    return rows


def test_numbers_by_hand(tmp_path, capsys):
    """Rounds and bits to the target read from each cell's metrics.csv, bits = rounds x
    (64 + 4 x 4) for LEAD with 4-bit quantization of d = 4, and the median / IQR of the
    tables recomputed by hand from the three trials."""
    out = tmp_path / "out"
    assert main(["study", str(_write(tmp_path, TINY)), "--out", str(out), "--quiet"]) == 0
    rows = _rows(out)
    assert len(rows) == 6 and [r["seed"] for r in rows[:3]] == ["0", "1", "2"]
    lead = [r for r in rows if r["method"] == "lead"]
    rounds = []
    for r in lead:
        rec = read_metrics_csv(out / r["run_dir"] / "metrics.csv")
        ok = rec["relative_error"] <= 1e-6
        i = int(np.argmax(ok))
        assert ok[i] and ok[i:].all()
        assert int(r["rounds_to_target"]) == int(rec["step"][i])
        assert float(r["bits_to_target"]) == int(rec["step"][i]) * (64 + 4 * 4)
        assert float(r["final_value"]) == rec["relative_error"][-1]
        rounds.append(int(rec["step"][i]))
    v = sorted(rounds)  # n = 3: quartiles at positions 0.5 and 1.5 (linear interpolation)
    q25, med, q75 = v[0] + 0.5 * (v[1] - v[0]), v[1], v[1] + 0.5 * (v[2] - v[1])
    tables = json.loads((out / "tables.json").read_text())
    entry = next(t for t in tables if t["method"] == "lead")
    assert entry["trials"] == 3 and entry["reached"] == 3
    assert entry["rounds"]["median"] == med
    assert entry["rounds"]["iqr"] == pytest.approx(q75 - q25)
    assert entry["bits"]["median"] == med * 80
    md = (out / "report.md").read_text()
    assert f"| lead | `q4` | 3/3 | 3 finished | {80 * med:.4g} ({80 * (q75 - q25):.4g})" in md
    html = (out / "report.html").read_text()
    assert '<a href="#results">Results</a>' in html and "data:image/png;base64," in html
    for name in ("metrics.csv", "summary.json", "result.json"):
        assert (out / lead[0]["run_dir"] / name).exists()
    assert "6 cells (6 run, 0 kept" in capsys.readouterr().out


def test_spread_by_hand():
    s = spread([10.0, 40.0, 20.0, 30.0, None])
    assert (s["median"], s["q25"], s["q75"], s["iqr"], s["n"]) == (25.0, 17.5, 32.5, 15.0, 4)


DET = TINY.replace("seeds = [0, 1, 2]", "seeds = [0, 1]").replace(
    '[[method]]\nkind = "lead"\nstep = 1.0',
    '[[method]]\nkind = "lead"\nstep = 1.0\ntune = { budget = 3 }') + """
[[compressor]]
spec = "randk:k=2,seed={seed},tau={step}"
"""


def test_deterministic_across_jobs(tmp_path):
    study = _write(tmp_path, DET)
    for jobs in (1, 2):
        code = main(["study", str(study), "--out", str(tmp_path / f"j{jobs}"), "--jobs",
                     str(jobs), "--quiet"])
        assert code == 0
    one, two = _rows(tmp_path / "j1"), _rows(tmp_path / "j2")
    assert len(one) == 8 and one == two
    assert any(r["tuned_params"] for r in one)  # the tuned method's winners are in the rows
    assert (tmp_path / "j1" / "cells" / one[0]["id"] / "tuning.json").exists()


SLOW = TINY.replace("seeds = [0, 1, 2]", "seeds = [0, 1, 2, 3, 4, 5]").replace(
    "rounds = 300", "rounds = 4000")


def test_interrupt_then_resume_equals_uninterrupted(tmp_path):
    study = _write(tmp_path, SLOW)
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(["study", str(study), "--out", str(full), "--quiet"]) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "stflow", "study", str(study), "--out",
                             str(cut), "--quiet"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if len(list(cut.glob("cells/*/result.json"))) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    kept = sorted(cut.glob("cells/*/result.json"))
    assert 2 <= len(kept) < 12, "the interrupt came after the study ended: make cells slower"
    assert "rerun with --resume" in err
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    # without --resume or --force a non-empty --out is refused
    assert main(["study", str(study), "--out", str(cut), "--quiet"]) == 2
    assert main(["study", str(study), "--out", str(cut), "--resume", "--quiet"]) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # not rerun
    assert _rows(cut) == _rows(full)


def test_failed_cell_is_recorded_and_the_study_goes_on(tmp_path, capsys):
    bad = tmp_path / "bad_comp.py"
    bad.write_text(
        "def make(dim):\n"
        "    def compress(Z, t):\n"
        "        if t >= 5:  # passes the checks before running, fails in round 5\n"
        "            raise RuntimeError(f'boom at t = {t:g}')\n"
        "        return Z\n"
        "    return compress\n")
    text = TINY.replace("seeds = [0, 1, 2]", "seeds = [0]") + f"""
[[compressor]]
label = "boom"
spec = "py:{bad}:make"
"""
    out = tmp_path / "out"
    code = main(["study", str(_write(tmp_path, text)), "--out", str(out), "--quiet"])
    rows = _rows(out)
    failed = [r for r in rows if r["status"] == "failed"]
    assert code == 1 and len(rows) == 4 and len(failed) == 2
    assert all(r["compressor"] == "boom" for r in failed)
    assert all(r["status"] != "failed" and r["reached"] == "True" or r["method"] == "choco"
               for r in rows if r["compressor"] == "q4")
    assert "boom" in failed[0]["reason"]
    assert "failed" in capsys.readouterr().err
    assert "2 failed cell(s)" in (out / "report.md").read_text()


BAD = [
    ("[foo]\nx = 1\n", "[foo]"),
    ('[study]\ntarget = 1e-6\ncolour = "red"\n', "'colour'"),
    ("[study]\ntarget = 1e-6\nseeds = []\n", "seeds"),
    ("[study]\ntarget = 1e-6\nmethod = []\n", "method"),
    ("[study]\nseeds = [0]\n", "target"),
    ("[study]\ntarget = 1e-20\n", "target"),
    ('[study]\ntarget = 1e-6\nquantities = ["speed"]\n', "quantities"),
    ('[study]\ntarget = 1e-6\n[[method]]\nkind = "lead"\ntune = { budgt = 5 }\n', "'budgt'"),
    ('[study]\ntarget = 1e-6\n[[method]]\nkind = "lead"\nwibble = 2\n[[compressor]]\n'
     'spec = "topk:k=2"\n', "wibble"),
    ('[study]\ntarget = 1e-6\n[[method]]\nkind = "lead"\n', "needs a compressor"),
    ('[study]\ntarget = 1e-6\n[[method]]\nkind = "gradient_tracking"\n[[compressor]]\n'
     'spec = "topk:k=2"\n', "cannot take a compressor"),
    ('[study]\ntarget = 1e-6\n[[method]]\nkind = "lead"\n[[compressor]]\nspec = "topk:k=99"\n',
     "k"),
    ('[study]\ntarget_accuracy = 0.9\n[base.problem]\nkind = "least_squares"\n[[method]]\n'
     'kind = "lead"\n[[compressor]]\nspec = "topk:k=2"\n', "target_accuracy"),
    ('[study]\ntarget = 1e-6\n[[method]]\nkind = "nosuch"\n', "kind"),
    ('[study]\ntarget = 1e-6\n[[method]]\nkind = "lead"\ncompressor = "q8"\n[[compressor]]\n'
     'label = "q4"\nspec = "quantize:bits=4"\n', "'q8' is not the label"),
    ('[study]\ntarget = 1e-6\n[[method]]\nkind = "dgd"\ncompressor = "q4"\n[[compressor]]\n'
     'label = "q4"\nspec = "quantize:bits=4"\n', 'write compressor = "none"'),
    ('[study]\ntarget = 1e-6\n[[method]]\nkind = "dgd"\ncompressor = "none"\n'
     'solver = { step = 0.5 }\n', "solver.step"),
    ('[study]\ntarget = 1e-6\n[[method]]\nkind = "dgd"\ncompressor = "none"\n'
     'solver = { local_steeps = 2 }\n', "local_steeps"),
    ("[study]\ntarget = 1e-6\ndata_seed = -1\n", "data_seed"),
]


@pytest.mark.parametrize("text,named", BAD)
def test_bad_study_file_is_one_line_exit_2(tmp_path, capsys, text, named):
    out = tmp_path / "out"
    assert main(["study", str(_write(tmp_path, text)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stflow: error:") and "\n" not in err and named in err
    assert not out.exists()  # nothing ran, nothing was written


def test_parse_study_errors_name_the_key():
    from stflow.errors import InputError

    with pytest.raises(InputError, match=r"\[\[method\]\] entry 1 must be a table"):
        parse_study({"study": {"target": 1e-6}, "method": [3]})
    with pytest.raises(InputError, match="two \\[\\[compressor\\]\\] entries have the label"):
        parse_study({"study": {"target": 1e-6}, "method": [{"kind": "lead"}],
                     "compressor": [{"spec": "topk:k=2", "label": "a"},
                                    {"spec": "topk:k=1", "label": "a"}]})


def test_method_entry_pins_compressor_rounds_solver_and_note(tmp_path):
    """A [[method]] entry may pin one compressor, set its own rounds and [solver] keys and
    carry a note (how E11 and E12 store one tuned setting per method and compressor)."""
    raw = {"study": {"target": 1e-6, "rounds": 300},
           "base": {"problem": {"kind": "least_squares", "agents": 6, "dim": 4}},
           "method": [{"kind": "lead", "label": "lead q4", "compressor": "q4", "step": 0.5,
                       "rounds": 40, "note": "tuned offline"},
                      {"kind": "choco", "step": 1.0, "solver": {"local_steps": 3}},
                      {"kind": "dgd", "step": 1.0, "compressor": "none", "lr": 0.05}],
           "compressor": [{"spec": "quantize:bits=4", "label": "q4"},
                          {"spec": "topk:k=2", "label": "top2"}]}
    s = parse_study(raw)
    got = [(c.method, c.compressor, c.config["solver"]["horizon"],
            c.config["solver"]["local_steps"], c.note) for c in s.cells]
    assert got == [("lead q4", "q4", 40 * 0.5, 1, "tuned offline"),
                   ("choco", "q4", 300.0, 3, ""), ("choco", "top2", 300.0, 3, ""),
                   ("dgd", "none", 300.0, 1, "")]
    assert parse_study(raw, shrink={"rounds": 20}).cells[0].config["solver"]["horizon"] == 10.0
    path = _write(tmp_path, TINY.replace('[[method]]\nkind = "lead"\n',
                                         '[[method]]\nkind = "lead"\nnote = "from a file"\n'))
    run_study(load_study(path, shrink={"seeds": 1, "rounds": 30}), tmp_path / "out",
              quiet=True)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "fixed settings lr = auto, alpha = 0.1, gamma = 1.0 (from a file)\n" in report


@pytest.mark.parametrize("name,cells", [("study_compressors.toml", 18),
                                        ("study_learning.toml", 6)])
def test_examples_at_a_small_size(tmp_path, name, cells):
    study = load_study(ROOT / "examples" / name, shrink={"budget": 2, "rounds": 40, "seeds": 1})
    assert len(study.cells) == cells
    res = run_study(study, tmp_path / "out", jobs=1, quiet=True)
    assert res["failed"] == 0 and res["ran"] == cells
    assert all(r["rounds"] == 40 for r in res["rows"])
    full = load_study(ROOT / "examples" / name)
    assert len(full.cells) == cells * len(full.seeds)
    if name == "study_compressors.toml":
        assert {c.config["method"]["kind"] for c in full.cells} == {
            "observer", "direct", "choco", "lead", "beer", "motef"}
        assert all(c.tune["budget"] == 20 for c in full.cells) and full.seeds == [0, 1, 2, 3, 4]
    assert (tmp_path / "out" / "report.html").exists()


def test_force_and_resume_guards(tmp_path, capsys):
    one = _write(tmp_path, TINY.replace("seeds = [0, 1, 2]", "seeds = [0]"), "one.toml")
    two = _write(tmp_path, TINY.replace("seeds = [0, 1, 2]", "seeds = [1]"), "two.toml")
    out = tmp_path / "out"
    assert main(["study", str(one), "--out", str(out), "--quiet"]) == 0
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["study", str(two), "--out", str(out), "--resume", "--quiet"]) == 2
    assert "holds another study" in capsys.readouterr().err
    assert main(["study", str(one), "--out", str(out), "--resume", "--force"]) == 2
    assert main(["study", str(two), "--out", str(out), "--force", "--quiet"]) == 0
    assert [r["seed"] for r in _rows(out)] == ["1", "1"]
    assert sorted(p.name for p in (out / "cells").iterdir()) == [
        "choco__q4__default__default__s1", "lead__q4__default__default__s1"]  # s0 removed
    assert (out / "notes.txt").read_text() == "mine"  # not the study's: kept
    assert "2 cells (0 run, 2 kept" in _last_out(main, two, out, capsys)


def _last_out(main, study, out, capsys) -> str:
    capsys.readouterr()
    assert main(["study", str(study), "--out", str(out), "--resume"]) == 0
    return capsys.readouterr().out


def test_tune_wave_in_a_study_is_the_tuners_wave(tmp_path):
    """``tune = { budget = 6, wave = 3 }``: the cell's tuning is ``tune(config, wave=3)``
    (its candidates drawn three at a time and run as one batch), recorded as such; the
    report says so."""
    from stflow.tune import tune

    text = TINY.replace("seeds = [0, 1, 2]", "seeds = [1]").replace(
        '[[method]]\nkind = "lead"\nstep = 1.0',
        '[[method]]\nkind = "lead"\nstep = 1.0\ntune = { budget = 6, wave = 3 }').replace(
        '[[method]]\nkind = "choco"\nstep = 1.0\n', "")
    study = _write(tmp_path, text)
    out = tmp_path / "out"
    assert main(["study", str(study), "--out", str(out), "--quiet"]) == 0
    (row,) = _rows(out)
    tuning = json.loads((out / "cells" / row["id"] / "tuning.json").read_text())
    assert tuning["wave"] == 3 and tuning["evaluations"] == 6
    cell = next(c for c in load_study(study).cells)
    alone = tune(cell.config, budget=6, target=1e-6, seed=1, wave=3)
    assert tuning["params"] == alone.params
    assert tuning["bits_to_target"] == alone.bits_to_target
    assert [t["params"] for t in tuning["trials"]] == [t["params"] for t in alone.trials]
    assert "waves of 3" in (out / "report.md").read_text()
    assert "one candidate at a time" not in (out / "report.md").read_text()
    assert row["tune_wave"] == "3"
    # a lossy network: the batch engine cannot run it, the tuner searches one candidate at a
    # time, and the row and the report say so instead of "waves of 3"
    lossy = _write(tmp_path, text + "\n[base.network]\ndrop = 0.1\n", "lossy.toml")
    out2 = tmp_path / "lossy"
    assert main(["study", str(lossy), "--out", str(out2), "--quiet"]) in (0, 1)
    (row2,) = _rows(out2)
    tuning2 = json.loads((out2 / "cells" / row2["id"] / "tuning.json").read_text())
    assert tuning2["wave"] == 1 and tuning2["batch_fallback"]
    assert row2["tune_wave"] == "1"
    report = (out2 / "report.md").read_text()
    assert "waves of 3 asked, but 1 of 1 tuning(s) searched one candidate at a time (" in report
    bad = _write(tmp_path, text.replace("wave = 3", "wave = 0"), "bad.toml")
    assert main(["study", str(bad), "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert not (tmp_path / "bad" / "results.csv").exists()
