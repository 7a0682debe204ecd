"""The command line: `stflow run` outputs and exit codes, `stflow certify --json`, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stflow.cli import main
from stflow.output import read_metrics_csv

ROOT = Path(__file__).resolve().parents[1]

BASE = """
[problem]
kind = "quadratic"
agents = 6
dim = 4
[graph]
kind = "ring"
[flow]
kind = "observer"
[compressor]
spec = "topk:k=2"
[solver]
step = 1e-3
horizon = 30.0
record_every = 500
"""


def _write(tmp_path, text, name="c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _run(tmp_path, text, capsys, *extra):
    cfg = _write(tmp_path, text)
    out = tmp_path / "out"
    code = main(["run", str(cfg), "--out", str(out), "--quiet", *extra])
    captured = capsys.readouterr()
    return code, out, captured


def test_run_writes_outputs(tmp_path, capsys):
    code, out, cap = _run(tmp_path, BASE, capsys)
    assert code == 0, cap.err
    summary = json.loads((out / "summary.json").read_text())
    for key in ("converged", "status", "final_relative_error", "final_consensus_error", "steps",
                "t_final", "bits_per_agent", "fitted_rate", "wall_seconds", "config"):
        assert key in summary
    assert summary["converged"] is True and summary["final_relative_error"] <= 1e-8
    assert summary["steps"] == 30000
    # topk k=2, d=4: 2 * (2 index bits + 64) = 132 bits per round
    assert summary["bits_per_agent"] == 30000 * 132
    m = read_metrics_csv(out / "metrics.csv")
    assert m["step"][0] == 0 and m["step"][-1] == 30000 and len(m["step"]) == 61
    np.testing.assert_array_equal(m["bits_per_agent"], m["step"] * 132)
    np.testing.assert_array_equal(m["bits_per_agent_p2p"], m["step"] * 132 * 2)  # ring degree 2
    assert (out / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_not_converged_exits_1(tmp_path, capsys):
    code, out, cap = _run(tmp_path, BASE.replace("horizon = 30.0", "horizon = 1.0"), capsys)
    assert code == 1
    assert json.loads((out / "summary.json").read_text())["converged"] is False


def test_divergence_exits_3_and_keeps_records(tmp_path, capsys):
    text = BASE.replace("step = 1e-3", "step = 0.5").replace("horizon = 30.0", "horizon = 500.0")
    code, out, cap = _run(tmp_path, text.replace("record_every = 500", "record_every = 10"),
                          capsys)
    assert code == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert "step too large" in summary["message"]
    m = read_metrics_csv(out / "metrics.csv")
    assert len(m["step"]) >= 1 and np.all(np.isfinite(m["relative_error"]))
    assert summary["steps"] < 1000


BAD = [
    ("[solver]\nstepsize = 0.1\n", "unknown key [solver] stepsize: valid keys are"),
    ("[compressor]\nspec = \"topk:k=12\"\n", "`k` must satisfy 1 <= k <= d"),
    ("[compressor]\nspec = \"quantize:bits=1\"\n", "`bits`"),
    ("[flow]\nalpha = -1.0\n", "[flow] alpha must be a number > 0"),
    ("[solver]\nstep = 0.0\n", "[solver] step must be > 0"),
    ("[graph]\nkind = \"edges\"\nedges = [[0, 1], [2, 3]]\n[problem]\nagents = 4\n",
     "disconnected"),
    ("[compressor]\nspec = \"py:no_such_module_xyz:make\"\n", "no_such_module_xyz"),
    ("[init]\nv0 = [1.0, 0, 0, 0, 0, 0, 0, 0]\n", "zero column sums"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_input_exit_2(tmp_path, capsys, text, message):
    cfg = _write(tmp_path, text)
    out = tmp_path / "out"
    code = main(["run", str(cfg), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_bad_data_file(tmp_path, capsys):
    np.savez(tmp_path / "p.npz", Q=np.ones((3, 2, 2)), b=np.full((3, 2), np.nan))
    code = main(["run", str(_write(tmp_path, '[problem]\ndata = "p.npz"\n')),
                 "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "nan" in err.lower()
    assert not (tmp_path / "o").exists()


def test_debug_shows_traceback(tmp_path):
    cfg = _write(tmp_path, "[solver]\nstepsize = 0.1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "stflow.cli", "run", str(cfg), "--out", str(tmp_path / "o"),
         "--debug"], capture_output=True, text=True,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_certify_json(capsys):
    assert main(["certify", "topk:k=2", "--dim", "10", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) >= {"spec", "dim", "spatio_temporal", "rate", "kappa", "linear_bound",
                      "linear", "bits_per_message"}
    assert d["spatio_temporal"] is True and d["bits_per_message"] == 2 * (4 + 64)
    assert main(["certify", "fixedquant:step=0.1", "--dim", "10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["spatio_temporal"] is False
    assert main(["certify", "topk:k=11", "--dim", "10", "--json"]) == 2
