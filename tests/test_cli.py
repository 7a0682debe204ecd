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
[method]
kind = "observer"
[compressor]
spec = "topk:k=2"
[solver]
step = 1e-3
horizon = 30.0
record_every = 500
"""


#: The flows' fixed gains of the tests below that need a run to diverge, stall or reach a
#: step at a given time: "auto" (the default since issue 20) scales with 1/h and
#: certifies the compressor first (calling a py: compressor at many t).
FIXED = "[method]\nalpha = 2.0\nbeta = 2.0\neta = 1.0\ngamma = 50.0\n"


def _fixed(text: str) -> str:
    """``text`` with :data:`FIXED` gains in its [method] section (added if it has none)."""
    if 'kind = "observer"\n' in text:
        return text.replace('kind = "observer"\n', 'kind = "observer"\n' + FIXED[9:], 1)
    return text + FIXED


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
    code, out, cap = _run(tmp_path, _fixed(BASE.replace("horizon = 30.0", "horizon = 1.0")),
                          capsys)
    assert code == 1
    assert json.loads((out / "summary.json").read_text())["converged"] is False


def test_divergence_exits_3_and_keeps_records(tmp_path, capsys):
    text = _fixed(BASE).replace("step = 1e-3", "step = 0.5").replace("horizon = 30.0",
                                                                      "horizon = 500.0")
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
    ("[method]\nalpha = -1.0\n", "[method] alpha must be a number > 0"),
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


def test_certify_lowrank_shapes(capsys):
    """`certify --shapes` gives lowrank its blocks (issue 20): rank 1 of a 3x4 matrix sends
    (3 + 4 + 1) floats, a 3-vector 3, a 1x2 matrix (1 + 2 + 1): 15 float64 = 960 bits."""
    assert main(["certify", "lowrank:rank=1", "--dim", "17", "--shapes", "3x4,3,1x2",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["spatio_temporal"] is True and d["bits_per_message"] == 64 * (8 + 3 + 4)
    for bad in (["--shapes", "3x4,3,1x2", "--dim", "16"], ["--shapes", "3x", "--dim", "15"],
                ["--dim", "17"]):
        assert main(["certify", "lowrank:rank=1", *bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--shapes" in err


# -- the exit-code contract and failures that must end in one line (issue 10) -------------
SMALL = """
[problem]
agents = 4
dim = 3
[solver]
step = 0.01
horizon = 2.0
record_every = 10
"""


def _one_line_exit(capsys, argv, code):
    got = main(argv)
    cap = capsys.readouterr()
    assert got == code, cap.err
    assert len(cap.err.strip().splitlines()) == 1, cap.err
    assert "Traceback" not in cap.err and cap.err.startswith("stflow: ")
    return cap


def test_help_names_exactly_the_commands_and_the_exit_codes(capsys):
    from stflow.cli import COMMANDS

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "later issues" not in text
    assert f"Commands: {', '.join(COMMANDS)}." in " ".join(text.split())
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "130 "):
        assert f"\n  {code}" in text
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        sub = capsys.readouterr().out
        assert "--quiet" in sub and "--debug" in sub and "130  interrupted" in sub


def test_exit_code_contract_in_docs():
    from stflow.cli import EXIT_CODES_HELP
    from stflow.status import EXIT_CODES

    doc = (ROOT / "docs" / "cli.md").read_text()
    for status, code in EXIT_CODES.items():
        assert f"| {code} |" in doc and f"`{status}`" in doc
    assert "| 4 |" in doc and "| 2 |" in doc
    assert EXIT_CODES_HELP.splitlines()[0] == "exit codes (every command):"


def _config_cases(tmp_path):
    (tmp_path / "latin1.toml").write_bytes("[problem]\n# caf\xe9\n".encode("latin-1"))
    (tmp_path / "binary.toml").write_bytes(bytes(range(256)))
    (tmp_path / "folder.toml").mkdir()
    (tmp_path / "d.txt").write_text("a,b,y\n1,2,3\n4,5,6\n7,8,9\n")
    (tmp_path / "raises.py").write_text(
        "def make(dim):\n"
        "    def C(Z, t):\n"
        "        if t > 0.05:\n"
        "            raise RuntimeError('boom in the user compressor')\n"
        "        return Z\n"
        "    return C\n"
    )
    texts = {
        "empty.toml": "# nothing\n",
        "huge_agents.toml": "[problem]\nagents = 1000000000\n",
        "huge_dim.toml": "[problem]\ndim = 10000000000\n",
        "stages.toml": '[compressor]\nspec = "' + "|".join(["topk:k=1"] * 2000) + '"\n',
        "one_agent.toml": "[problem]\nagents = 1\n",
        "tolerance.toml": "[solver]\ntolerance = -1.0\n",
        "horizon.toml": "[solver]\nhorizon = 0.0\n",
        "long.toml": "[solver]\nhorizon = 1e300\n",
        "step_gt_horizon.toml": "[problem]\nagents = 4\ndim = 3\n[solver]\nstep = 10.0\n"
                                "horizon = 5.0\n",
        "csv_as_txt.toml": '[problem]\nkind = "least_squares"\ndata = "d.txt"\n',
        "continuous_topk.toml": "[problem]\nagents = 4\ndim = 3\n[compressor]\n"
                                'spec = "topk:k=2"\n[solver]\nmethod = "continuous"\n'
                                "horizon = 0.5\n",
        "user_raises.toml": SMALL + f'[compressor]\nspec = "py:{tmp_path}/raises.py:make"\n',
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text)


FAILURES = [
    ("latin1.toml", "is not UTF-8 text (byte 0xe9"),
    ("binary.toml", "is not UTF-8 text"),
    ("folder.toml", "is a folder: give the TOML file inside it"),
    ("missing.toml", "not found"),
    ("empty.toml", "is empty: add at least [problem] and [solver], or start from "
                   "examples/quickstart.toml"),
    ("huge_agents.toml", "agents = 1000000000, dim = 8 need about 3.58e+03 GB of memory"),
    ("huge_dim.toml", "dim = 10000000000 need about 4.24e+13 GB"),
    ("stages.toml", "at most 32 stages joined by `|` (got 2000)"),
    ("one_agent.toml", "[problem] agents must be an integer >= 2"),
    ("tolerance.toml", "[solver] tolerance must be > 0 (got -1.0): e.g. tolerance = 1e-08"),
    ("horizon.toml", "[solver] horizon must be > 0 (got 0.0): e.g. horizon = 30.0"),
    ("long.toml", "= 1e+303 steps, more than 1e+08: lower horizon or raise step, or add --force"),
    ("step_gt_horizon.toml", "[solver] step must be <= horizon (got step = 10, horizon = 5)"),
    ("csv_as_txt.toml", "'d.txt' is a text table, not an .npz archive"),
    ("continuous_topk.toml", 'scheme = "continuous" cannot integrate the compressor '
                             "`topk:k=2`: topk jumps with z"),
    ("user_raises.toml", "raises.py:4 (in C): boom in the user compressor"),
]


@pytest.mark.parametrize(("name", "message"), FAILURES)
def test_failures_give_one_line_and_exit_2(tmp_path, capsys, name, message):
    _config_cases(tmp_path)
    out = tmp_path / "out"
    cap = _one_line_exit(capsys, ["run", str(tmp_path / name), "--out", str(out), "--quiet"], 2)
    assert message in cap.err
    assert "e.g. step = 1e-3" not in cap.err and "[graph] n" not in cap.err
    assert not out.exists()  # created first, removed again since nothing was written


def test_memory_estimate_uses_this_machine(tmp_path, capsys):
    from stflow.config import total_memory

    _config_cases(tmp_path)
    cap = _one_line_exit(capsys, ["run", str(tmp_path / "huge_agents.toml"), "--out",
                                  str(tmp_path / "o"), "--quiet"], 2)
    assert f"more than this machine's {total_memory() / 1e9:.3g} GB" in cap.err


@pytest.mark.parametrize("bad", ["", "file/sub", "file", "/proc/stflow-out"])
def test_bad_out_is_refused_first_and_fast(tmp_path, capsys, monkeypatch, bad):
    import time

    import stflow.config

    (tmp_path / "file").write_text("x")
    monkeypatch.chdir(tmp_path)
    built = []
    monkeypatch.setattr(stflow.config, "build_run", lambda *a: built.append(a))
    cfg = _write(tmp_path, SMALL)
    start = time.perf_counter()
    cap = _one_line_exit(capsys, ["run", str(cfg), "--out", bad, "--quiet"], 2)
    assert time.perf_counter() - start < 2.0
    assert "--out" in cap.err and not built
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "file"]


def test_out_checked_before_the_config(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    cap = _one_line_exit(capsys, ["run", str(tmp_path / "missing.toml"), "--out",
                                  str(tmp_path / "file" / "o"), "--quiet"], 2)
    assert "which is a file" in cap.err


def test_run_refuses_non_empty_out_and_force_removes_stale_files(tmp_path, capsys):
    cfg = _write(tmp_path, SMALL)
    out = tmp_path / "out"
    out.mkdir()
    (out / "comm.json").write_text("{}")  # an earlier MPI run
    (out / "checkpoint").mkdir()
    (out / "checkpoint" / "rank0.npz").write_bytes(b"x")
    (out / "notes.txt").write_text("mine")
    cap = _one_line_exit(capsys, ["run", str(cfg), "--out", str(out), "--quiet"], 2)
    assert "exists and is not empty: give a new folder or add --force" in cap.err
    assert (out / "comm.json").exists()
    assert main(["run", str(cfg), "--out", str(out), "--quiet", "--force", "--no-figure"]) == 1
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["final_state.npz", "metrics.csv", "notes.txt",
                                                     "summary.json"]


def test_force_allows_many_steps_but_memory_still_checked(tmp_path, capsys):
    cfg = _write(tmp_path, "[solver]\nhorizon = 1e300\n")
    cap = _one_line_exit(capsys, ["run", str(cfg), "--out", str(tmp_path / "o"), "--quiet",
                                  "--force"], 2)
    assert "recorded rows need about" in cap.err and "raise record_every" in cap.err


def _stflow_raiser(exc):
    """A function that raises ``exc`` from a frame inside the stflow package (a bug there),
    not from this test file (which the CLI would blame as the user's code)."""
    import stflow

    ns = {"exc": exc}
    name = str(Path(stflow.__file__).parent / "_test_bug.py")
    exec(compile("def broken(*args, **kwargs):\n    raise exc\n", name, "exec"), ns)
    return ns["broken"]


def test_internal_error_exit_4_one_line_and_debug_traceback(tmp_path, capsys, monkeypatch):
    import stflow.config

    broken = _stflow_raiser(ZeroDivisionError("float division by zero"))
    monkeypatch.setattr(stflow.config, "run_config", broken)
    cfg = _write(tmp_path, SMALL)
    out = tmp_path / "o"
    cap = _one_line_exit(capsys, ["run", str(cfg), "--out", str(out), "--quiet"], 4)
    assert "internal error: ZeroDivisionError: float division by zero" in cap.err
    assert "bug in stflow; please report it" in cap.err and not out.exists()
    assert main(["run", str(cfg), "--out", str(out), "--quiet", "--debug"]) == 4
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("stflow: internal")


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (MemoryError("Unable to allocate 477. GiB"), 2, "out of memory (MemoryError: Unable"),
        (PermissionError(13, "Permission denied", "/data/x.npz"), 2,
         "cannot use '/data/x.npz': Permission denied"),
        (RecursionError("maximum recursion depth exceeded"), 4, "internal error: RecursionError"),
        (KeyboardInterrupt(), 130, "interrupted before any result was written"),
    ],
)
def test_exceptions_map_to_exit_codes(tmp_path, capsys, monkeypatch, exc, code, message):
    import stflow.config

    monkeypatch.setattr(stflow.config, "run_config", _stflow_raiser(exc))
    cap = _one_line_exit(capsys, ["run", str(_write(tmp_path, SMALL)), "--out",
                                  str(tmp_path / "o"), "--quiet"], code)
    assert message in cap.err and not (tmp_path / "o").exists()


def test_diverged_numbers_agree(tmp_path, capsys):
    text = _fixed(SMALL).replace("step = 0.01", "step = 0.5").replace("horizon = 2.0",
                                                                       "horizon = 500.0")
    code, out, cap = _run(tmp_path, text, capsys)
    assert code == 3
    s = json.loads((out / "summary.json").read_text())
    m = read_metrics_csv(out / "metrics.csv")
    assert s["status"] == "diverged" and s["exit_code"] == 3
    # the blow-up is checked every record_every = 10 steps: detected at step 10
    assert s["steps"] == 10 and s["t_final"] == 5.0 and s["grad_evals"] == 10 * 4
    assert s["last_recorded_step"] == int(m["step"][-1]) == 0
    assert cap.out.startswith("diverged at step 10 (t = 5); last finite record at step 0")
    assert "40 gradient evaluations" in cap.out
    assert "by step 10 (t = 5)" in cap.err


INTERRUPTER = """
import os, signal
def make(dim):
    def C(Z, t):
        if abs(t - {at}) < 1e-9:
            os.kill(os.getpid(), signal.{sig})
        return Z
    return C
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupt_keeps_records_and_exits_130(tmp_path, capsys, sig):
    import signal

    (tmp_path / "intr.py").write_text(INTERRUPTER.format(at=0.37, sig=sig))
    before = signal.getsignal(getattr(signal, sig))
    text = _fixed(SMALL) + f'[compressor]\nspec = "py:{tmp_path}/intr.py:make"\n'
    code, out, cap = _run(tmp_path, text, capsys)
    assert code == 130
    assert len(cap.err.strip().splitlines()) == 1 and "Traceback" not in cap.err
    assert f"interrupted by {sig} at step 38 of 200 (t = 0.38)" in cap.err
    s = json.loads((out / "summary.json").read_text())
    m = read_metrics_csv(out / "metrics.csv")
    assert s["status"] == "interrupted" and s["steps"] == 38 and s["exit_code"] == 130
    np.testing.assert_array_equal(m["step"], [0, 10, 20, 30, 38])
    assert signal.getsignal(getattr(signal, sig)) is before


def test_interrupt_in_a_real_process(tmp_path):
    (tmp_path / "intr.py").write_text(INTERRUPTER.format(at=0.5, sig="SIGINT"))
    cfg = _write(tmp_path, _fixed(SMALL) + f'[compressor]\nspec = "py:{tmp_path}/intr.py:make"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "stflow.cli", "run", str(cfg), "--out", str(tmp_path / "o"),
         "--quiet"], capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr and "interrupted by SIGINT at step 51" in proc.stderr
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["status"] == "interrupted"


def test_mpi_out_checks_one_line_and_force_clears_stale(tmp_path):
    import os
    import shutil

    exe = shutil.which("mpiexec")
    assert exe, "mpiexec not found: install with python -m pip install -e '.[all]'"
    cfg = _write(tmp_path, SMALL)
    out = tmp_path / "out"
    out.mkdir()
    (out / "comm.json").write_text('{"stale": true}')
    (out / "convergence.png").write_bytes(b"old")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    base = [exe, "-n", "2", sys.executable, "-m", "stflow.cli", "run", str(cfg), "--backend",
            "mpi", "--out", str(out), "--quiet"]
    proc = subprocess.run(base, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"stflow: error: --out {str(out)!r} exists and is not empty: give a new folder or add "
        "--force"
    ]
    proc = subprocess.run([*base, "--force", "--no-figure"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 1, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["comm.json", "final_state.npz", "metrics.csv",
                                                     "summary.json"]
    assert "stale" not in (out / "comm.json").read_text()


DGD_CONFIG = """
[problem]
kind = "quadratic"
agents = 6
dim = 3
[method]
kind = "dgd"
lr = 0.05
[solver]
step = 1.0
horizon = 3000
record_every = 100
"""


def test_dgd_says_compressor_unused_and_its_own_stall_hint(tmp_path, capsys):
    """DGD sends raw vectors: a [compressor] is named as unused, not ignored silently, and
    its stall message names DGD's knob (lr), not gains it lacks (issue 20)."""
    cfg = _write(tmp_path, DGD_CONFIG + '[compressor]\nspec = "topk:k=1"\n')
    assert main(["run", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("stflow: warning: [compressor] spec = 'topk:k=1' is not used")
    assert "lower [method] lr" in err[1] and "gains" not in err[1]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    # uncompressed: 64 d bits a round for 3000 rounds, whatever [compressor] said
    assert summary["status"] == "stalled" and summary["bits_per_agent"] == 3000 * 64 * 3
    cfg = _write(tmp_path, DGD_CONFIG)
    assert main(["run", str(cfg), "--out", str(tmp_path / "p"), "--quiet"]) == 1
    assert "warning" not in capsys.readouterr().err


def test_runs_that_cannot_be_judged_or_read_a_measurement_as_classes_are_refused(tmp_path,
                                                                                 capsys):
    """Refused before the first round, exit 2, nothing written (issue 20): a network with test
    rows and no target_accuracy (no x*, so nothing would judge it); a softmax on a target that
    is a measurement (diabetes: 214 values in 442 rows) or has non-integer values."""
    mlp = (ROOT / "examples" / "mlp.toml").read_text().replace("target_accuracy = 0.93", "")
    table = tmp_path / "t.csv"
    table.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i / 7:.3f}\n" for i in range(40)))
    cases = {
        "mlp": (mlp, "[solver] target_accuracy is needed"),
        "diabetes": ('[problem]\nkind = "softmax"\ndataset = "diabetes"\nagents = 4\n',
                     "214 distinct values in 442 rows"),
        "csv": (f'[problem]\nkind = "softmax"\ndata = "{table}"\nagents = 4\n',
                "non-integer values (e.g. 0.143"),
    }
    for name, (text, said) in cases.items():
        out = tmp_path / f"o-{name}"
        assert main(["run", str(_write(tmp_path, text, f"{name}.toml")), "--out", str(out),
                     "--quiet"]) == 2, name
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, (name, err)
        assert not out.exists()


def test_every_help_lists_what_exit_code_1_means_for_each_command(capsys):
    """docs/cli.md's table is printed at the end of every --help: code 1 for run, tune,
    reproduce and study alike."""
    for cmd in ("run", "tune", "study", "reproduce", "certify"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        out = " ".join(capsys.readouterr().out.split())
        for what in ("(run)", "no candidate reached the target robustly (tune)",
                     "an experiment failed (reproduce)", "a cell failed (study)"):
            assert what in out, (cmd, what)
