"""Issue 21: nothing the user had is lost to a bad config, on the simulator and under MPI.

``stflow run BAD.toml --out prev --force`` must refuse the config (exit 2) before it removes
the earlier ``metrics.csv`` and ``summary.json``: the run is built and checked first
(problem, data, graph, compressor, method, channel), the folder is cleared last.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stflow.cli import main

#: The observer flow with fixed gains: a run that ends 0 or 1 (the default "auto" gains
#: diverge on this 4-agent ring with top-1 of 3 coordinates, docs/gains.md).
OBSERVER = 'kind = "observer"\nalpha = 2.0\nbeta = 2.0\neta = 1.0\ngamma = 50.0'
GOOD = f"""
[problem]
kind = "quadratic"
agents = 4
dim = 3
[graph]
kind = "ring"
[method]
{OBSERVER}
[compressor]
spec = "topk:k=1"
[solver]
step = 1e-2
horizon = 2.0
record_every = 50
"""

# Each bad config fails only once the run is built: the schema alone accepts it.
BAD = {
    "topk k > d": GOOD.replace('spec = "topk:k=1"', 'spec = "topk:k=5"'),
    "missing data file": GOOD.replace('kind = "quadratic"\nagents = 4\ndim = 3',
                                      'kind = "least_squares"\ndata = "nowhere.npz"'),
    "disconnected edges": GOOD.replace('kind = "ring"',
                                       'kind = "edges"\nedges = [[0, 1], [2, 3]]'),
    "target_accuracy without test rows": GOOD.replace("record_every = 50",
                                                      "record_every = 50\ntarget_accuracy = 0.9"),
}


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def previous(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    out = tmp_path / "prev"
    assert main(["run", str(good), "--out", str(out), "--quiet"]) in (0, 1)  # written either way
    before = _digest(out)
    assert {"metrics.csv", "summary.json"} <= set(before)
    return out, before


@pytest.mark.parametrize("case", sorted(BAD))
def test_force_keeps_earlier_results_when_the_config_is_bad(tmp_path, previous, capsys, case):
    out, before = previous
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD[case])
    code = main(["run", str(bad), "--out", str(out), "--force", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert _digest(out) == before  # every earlier file still there, byte for byte


def test_force_replaces_results_of_a_good_config(tmp_path, previous, capsys):
    out, before = previous
    other = tmp_path / "other.toml"
    other.write_text(GOOD.replace("horizon = 2.0", "horizon = 1.0"))
    assert main(["run", str(other), "--out", str(out), "--force", "--quiet"]) in (0, 1)
    after = _digest(out)
    assert after["summary.json"] != before["summary.json"]


def test_force_under_mpi_keeps_earlier_results_on_a_compressor_error(tmp_path, previous):
    exe = shutil.which("mpiexec")
    assert exe is not None, "no mpiexec: `pip install -e .[all]` installs it (mpich)"
    out, before = previous
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD["topk k > d"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([exe, "-n", "2", sys.executable, "-m", "stflow.cli", "run", str(bad),
                           "--out", str(out), "--force", "--quiet", "--backend", "mpi"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("stflow")]
    assert len(lines) == 1, proc.stderr  # one line, printed once (not once per rank)
    assert _digest(out) == before


def test_a_planted_symlink_at_a_temporary_name_is_never_followed(tmp_path, capsys):
    """The old temporary names (``.metrics.csv.tmp`` ...) were predictable: a link planted
    there redirected the write into another file. Now temporary files are created new,
    under random names, and planted links are left alone."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("metrics.csv", "summary.json", "convergence.png", "final_state.npz"):
        (out / f".{name}.tmp").symlink_to(victim)
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    code = main(["run", str(good), "--out", str(out), "--force", "--quiet"])
    assert code in (0, 1), capsys.readouterr().err
    assert victim.read_text() == "precious"
    assert (out / "metrics.csv").is_file() and not (out / "metrics.csv").is_symlink()
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")
                 and not p.is_symlink()]
    assert leftovers == []


def test_a_failed_write_names_the_file_and_leaves_no_temporary(tmp_path):
    from stflow.output import atomic_output

    target = tmp_path / "fig.png"
    with pytest.raises(OSError, match="fig.png"), atomic_output(target) as f:
        f.write(b"half")
        raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []


TUNE_INTERRUPTER = """
import os, signal
CALLS = [0]
def make(dim):
    def C(Z, t):
        CALLS[0] += 1
        if CALLS[0] == {at}:
            os.kill(os.getpid(), signal.{sig})
        return Z
    return C
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupted_tune_exits_130_and_writes_no_tuned_toml(tmp_path, sig):
    """Interrupted means 130 everywhere: the search keeps what it tried in tuning.json
    (``interrupted: true``) and never writes tuned.toml as if it had finished."""
    import json

    (tmp_path / "intr.py").write_text(TUNE_INTERRUPTER.format(at=1500, sig=sig))
    cfg = tmp_path / "t.toml"
    cfg.write_text(GOOD.replace('spec = "topk:k=1"', f'spec = "py:{tmp_path}/intr.py:make"'))
    out = tmp_path / "tuned"
    proc = subprocess.run([sys.executable, "-m", "stflow.cli", "tune", str(cfg), "--out",
                           str(out), "--budget", "20", "--target", "1e-3", "--quiet"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr and "stflow: interrupted" in proc.stderr
    assert not (out / "tuned.toml").exists()
    info = json.loads((out / "tuning.json").read_text())
    assert info["interrupted"] is True and info["reason"].startswith("interrupted after")
    assert info["found"] is False  # the best so far is in params, not a winner
    assert len(info["trials"]) < 20


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_sigterm_stops_reproduce_and_its_workers_with_exit_130(tmp_path):
    """SIGTERM to ``reproduce --jobs 2``: exit 130 and a line saying so, the workers gone,
    the report written with the unfinished experiments marked (not '3 of 3 ok', exit 0)."""
    import signal
    import time

    out = tmp_path / "rep"
    proc = subprocess.Popen([sys.executable, "-m", "stflow.cli", "reproduce", "--quick",
                             "--only", "E9,E1", "--jobs", "2", "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while not (out / "E9").exists() and time.monotonic() < deadline:  # workers started
        time.sleep(0.2)
    time.sleep(1.0)
    children = _children(proc.pid)
    assert children, "the pool's workers should be running"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stflow: interrupted:" in err and "Traceback" not in err
    time.sleep(0.5)
    alive = [p for p in children if Path(f"/proc/{p}").exists()
             and Path(f"/proc/{p}/stat").read_text().split()[2] != "Z"]
    assert alive == []
    report = (out / "report.md").read_text()
    assert "interrupted" in report


LOCK_HOLDER = """
import sys, time
from stflow.output import lock_folder
lock_folder(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


def test_two_commands_into_one_out_the_second_is_refused(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        good = tmp_path / "good.toml"
        good.write_text(GOOD)
        code = main(["run", str(good), "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and "is in use by another stflow command" in err, err
        assert list(out.iterdir()) == []  # nothing written beside the other command
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # the lock went with its process: the folder is free again
    assert main(["run", str(good), "--out", str(out), "--quiet"]) in (0, 1)


def test_mpiexec_without_backend_mpi_is_refused(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    env = {**os.environ, "PMI_SIZE": "2", "PMI_RANK": "0"}  # what mpiexec (Hydra) sets
    proc = subprocess.run([sys.executable, "-m", "stflow.cli", "run", str(good), "--out",
                           str(tmp_path / "o"), "--quiet"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "add --backend mpi" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


# ---- inputs that used to exit 4 (internal error) or be ignored: exit 2 with one line ----

def _run_text(tmp_path, text, *extra, name="c.toml"):
    cfg = tmp_path / name
    cfg.write_bytes(text if isinstance(text, bytes) else text.encode())
    return main(["run", str(cfg), "--out", str(tmp_path / "o"), "--quiet", *extra])


BAD_INPUT = {
    "5000-digit integer": (GOOD.replace("record_every = 50", "record_every = " + "9" * 5000),
                           "more than 4300 digits"),
    "5000-deep nesting": (GOOD + "[extra]\nx = " + "[" * 5000 + "]" * 5000 + "\n",
                          "nests arrays or tables too deeply"),
    "horizon / step overflows": (GOOD.replace("step = 1e-2", "step = 1e-300")
                                 .replace("horizon = 2.0", "horizon = 1e308"),
                                 "not a finite number of steps"),
    "built-in dataset, foreign target": (
        GOOD.replace('kind = "quadratic"\nagents = 4\ndim = 3',
                     'kind = "logistic"\ndataset = "breast_cancer"\ntarget = "nope"\nagents = 4')
        .replace('spec = "topk:k=1"', 'spec = "identity"'),
        "does not name the target of the built-in data set 'breast_cancer'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, case):
    text, needle = BAD_INPUT[case]
    assert _run_text(tmp_path, text) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stflow: error:") and needle in err[0], err
    assert not (tmp_path / "o").exists()  # nothing written


def test_a_fifo_config_is_refused_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo)  # reading it would block forever: nobody writes
    assert main(["run", str(fifo), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "is not a regular file" in capsys.readouterr().err


def test_a_utf8_bom_config_is_read(tmp_path, capsys):
    # the same run with and without the byte-order mark: same metrics
    assert _run_text(tmp_path, b"\xef\xbb\xbf" + GOOD.encode()) in (0, 1)
    with_bom = (tmp_path / "o" / "metrics.csv").read_text()
    (tmp_path / "c.toml").write_text(GOOD)
    plain = tmp_path / "o3"
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(plain), "--quiet"]) in (0, 1)
    assert with_bom.splitlines()[1:] == (plain / "metrics.csv").read_text().splitlines()[1:]


@pytest.mark.parametrize("method", ['kind = "choco"\nlr = 1e6',
                                    OBSERVER.replace("gamma = 50.0", "gamma = 1e12")])
def test_topk_on_a_non_finite_state_reports_diverged_exit_3(tmp_path, capsys, method):
    text = GOOD.replace(OBSERVER, method)
    assert _run_text(tmp_path, text) == 3
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert "internal error" not in capsys.readouterr().err


def test_topk_keeps_k_entries_of_a_row_with_nan():
    from stflow.compressors import make_compressor

    c = make_compressor("topk:k=2", 4)
    Z = np.array([[1.0, np.nan, -3.0, 0.5], [np.nan, np.nan, np.nan, np.nan]])
    out = c(Z, 0.0)
    assert np.isnan(out[0, 1]) and out[0, 2] == -3.0 and out[0, 0] == 0 and out[0, 3] == 0
    assert np.isnan(out[1, :2]).all() and (out[1, 2:] == 0).all()  # ties: lower indices


@pytest.mark.parametrize("args,needle", [
    (["--seed", "-1", "--target", "1e-3"], "--seed must be an integer >= 0 (got -1)"),
    (["--target", "5"], "--target must be a relative error in (0, 1) (got 5)"),
])
def test_tune_bad_arguments_exit_2(tmp_path, capsys, args, needle):
    cfg = tmp_path / "c.toml"
    cfg.write_text(GOOD)
    assert main(["tune", str(cfg), "--out", str(tmp_path / "t"), "--budget", "2", "--quiet",
                 *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "t").exists()


MEMORY_PROBE = """
import tracemalloc
from stflow.config import build_run, resolve_config
from stflow.config.preflight import estimate_memory
cfg = resolve_config({"problem": {"kind": "quadratic", "agents": 30, "dim": 300},
                      "solver": {"step": 1e-3, "horizon": 0.01}})
tracemalloc.start()  # numpy reports its buffers to tracemalloc
build_run(cfg)
print(estimate_memory(cfg)["problem"], tracemalloc.get_traced_memory()[1])
"""


def test_the_memory_estimate_of_a_quadratic_problem_covers_building_it():
    """Issue 21: the preflight estimated 303 MB where building took 1.18 GB (4x low)."""
    proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    estimate, grown = (int(v) for v in proc.stdout.split())  # grown: peak traced bytes
    stored = 8 * 30 * 300 * 300
    assert grown > 2 * stored  # the temporaries are real: the old N d^2 count was too low
    assert estimate >= grown


# ---- huge local_steps: counted by the preflight, and a SIGTERM is not kept waiting ----

HUGE_LOCAL = GOOD.replace(OBSERVER, 'kind = "dgd"').replace(
    '[compressor]\nspec = "topk:k=1"\n', '').replace(
    "record_every = 50", "record_every = 50\nlocal_steps = 100000000")


def test_huge_local_steps_need_force(tmp_path, capsys):
    assert _run_text(tmp_path, HUGE_LOCAL) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("local_steps * horizon / step = 100000000 * 200 = 2e+10 gradient "
                              "evaluations per agent") in err[0] and "--force" in err[0], err
    assert not (tmp_path / "o").exists()
    # 1e6 * 100 = 1e8 evaluations: at the limit, not above it
    from stflow.config import preflight, resolve_config

    cfg = resolve_config({"method": {"kind": "dgd"},
                          "solver": {"step": 0.01, "horizon": 1.0, "local_steps": 10**6}})
    preflight(cfg)
    cfg["solver"]["local_steps"] += 1
    with pytest.raises(Exception, match=r"local_steps \* horizon / step = 1000001 \* 100 = "):
        preflight(cfg)


def _signal_after(argv, sig, when, *, timeout=30):
    """Run the CLI, send ``sig`` once ``when()`` holds (or after 3 s); (rc, err, seconds the
    process took after the signal)."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "stflow.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 20
    while not when() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(getattr(signal, sig))
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"{sig} ignored for {timeout} s") from None
    return proc.returncode, err, time.monotonic() - sent


def test_sigterm_stops_huge_local_steps_within_seconds(tmp_path):
    """local_steps = 1e8 makes one round last minutes: SIGTERM used to wait for its end."""
    import time

    cfg = tmp_path / "c.toml"
    cfg.write_text(HUGE_LOCAL)
    out = tmp_path / "o"
    started = time.monotonic()
    code, err, took = _signal_after(
        ["run", str(cfg), "--out", str(out), "--quiet", "--force", "--no-figure"], "SIGTERM",
        lambda: time.monotonic() - started > 3.0)
    assert code == 130, err
    assert took < 5.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["exit_code"] == 130
    assert "SIGTERM during the local updates of round 1" in summary["message"]
    assert summary["steps"] == 0 and summary["grad_evals"] > 0  # the abandoned round's work
    assert "stflow: interrupted" in err and "Traceback" not in err


# ---- interrupts during set-up and during a continuous run: 130, one line, no empty --out ----

SIGNALLING_COST = """
import os, signal
import numpy as np
CALLS = [0]
class Cost:
    n_agents, dim = 4, 3
    def values(self, X):
        return 0.5 * (X ** 2).sum(axis=1)
    def grad(self, X):
        CALLS[0] += 1
        if CALLS[0] == {at}:
            os.kill(os.getpid(), signal.{sig})
        return X - np.arange(3.0)
def make(**kw):
    if {at} == 0:  # during the set-up (as a slow torch import would be)
        os.kill(os.getpid(), signal.{sig})
    return Cost()
"""


def _signalling_run(tmp_path, sig, at, solver=""):
    (tmp_path / "cost.py").write_text(SIGNALLING_COST.format(sig=sig, at=at))
    cfg = tmp_path / "c.toml"
    cfg.write_text('[problem]\nkind = "py:cost.py:make"\n[graph]\nkind = "ring"\n[method]\n'
                   'kind = "observer"\n[compressor]\nspec = "identity"\n[solver]\n' + solver)
    out = tmp_path / "o"
    proc = subprocess.run([sys.executable, "-m", "stflow.cli", "run", str(cfg), "--out",
                           str(out), "--no-figure"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return proc, out


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupt_during_set_up_exits_130_and_leaves_no_empty_out(tmp_path, sig):
    """SIGTERM while the problem builds used to end with the bare 143 of the default action,
    no message and an empty --out."""
    proc, out = _signalling_run(tmp_path, sig, 0)
    assert proc.returncode == 130, proc.stderr
    by = " by SIGTERM" if sig == "SIGTERM" else ""
    assert proc.stderr.strip().splitlines() == [
        f"stflow: interrupted{by} before any result was written"], proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupted_continuous_run_keeps_its_rows(tmp_path, sig):
    proc, out = _signalling_run(tmp_path, sig, 3000,
                                'scheme = "continuous"\nstep = 0.01\nhorizon = 1000.0\n'
                                "record_every = 10\n")
    assert proc.returncode == 130, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["exit_code"] == 130
    assert f"interrupted by {sig} at t = " in summary["message"]
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    steps = [int(r.split(",")[0]) for r in rows]
    assert 0 < steps[-1] == summary["steps"] < 100000 and steps[0] == 0
    # t = step * h on every row, the last one (the step reached) included
    assert all(float(r.split(",")[1]) == pytest.approx(0.01 * s)
               for r, s in zip(rows, steps, strict=True))
    assert f"stflow: interrupted: interrupted by {sig}" in proc.stderr


# ---- an interrupt or a full disk while the outputs are written ----

@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("during", ["write_final_state", "plot_convergence"])
def test_an_interrupt_while_writing_is_130_and_summary_says_interrupted(
        tmp_path, monkeypatch, capsys, sig, during):
    """It used to exit 130 while summary.json said `converged` (exit_code 0)."""
    import signal

    import stflow.output

    original = getattr(stflow.output, during)

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), getattr(signal, sig))
        return original(*args, **kwargs)

    monkeypatch.setattr(stflow.output, during, interrupted)
    (tmp_path / "c.toml").write_text(GOOD.replace("horizon = 2.0", "horizon = 80.0"))
    code = main(["run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o"), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 130, err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["exit_code"] == 130
    assert summary["converged"] is False
    assert summary["message"].startswith(f"interrupted by {sig} while the outputs were written "
                                         "(the run had ended converged: ")
    # the figure is skipped when the stop came before it, kept when it came while drawing
    drawn = (tmp_path / "o" / "convergence.png").exists()
    assert drawn == (during == "plot_convergence")
    assert ("convergence.png was not drawn" in summary["message"]) == (not drawn)
    assert out.startswith("interrupted: ") and err.startswith("stflow: interrupted: "), (out, err)


def _full_disk_at(monkeypatch, name):
    """Writes of ``name`` through stflow.output go to /dev/full (ENOSPC), as on a full disk."""
    import types

    import stflow.output

    real = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        if f".{name}." in os.readlink(f"/proc/self/fd/{fd}"):  # the temporary file of `name`
            os.close(fd)
            return open("/dev/full", "wb", buffering=0)
        return real(fd, mode, *args, **kwargs)

    fake = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
    fake.fdopen = fdopen
    monkeypatch.setattr(stflow.output, "os", fake)


@pytest.mark.parametrize("name,kept", [
    ("metrics.csv", None),  # nothing written: the --out it created is removed
    ("final_state.npz", ["metrics.csv"]),
    ("convergence.png", ["final_state.npz", "metrics.csv"]),
    ("summary.json", ["convergence.png", "final_state.npz", "metrics.csv"]),
])
def test_a_full_disk_names_the_file_exit_2_and_no_summary(tmp_path, monkeypatch, capsys, name,
                                                          kept):
    _full_disk_at(monkeypatch, name)
    (tmp_path / "c.toml").write_text(GOOD)
    out = tmp_path / "o"
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"stflow: error: cannot write '{out / name}': No space left on device (no "
                   "summary.json was written): free space on that disk (or choose another "
                   "--out) and run again"], err
    if kept is None:
        assert not out.exists()
    else:  # no temporary left, no summary.json claiming a finished run
        assert sorted(p.name for p in out.iterdir()) == kept


# ---- py: code that exits: its error (exit 2, one line), never stflow's exit status ----

EXITING = """
import os, sys
import numpy as np
MODE = {mode!r}
CALLS = [0]
class Cost:
    n_agents, dim = 4, 3
    x_star = np.arange(3.0)
    def values(self, X):
        return 0.5 * ((X - np.arange(3.0)) ** 2).sum(axis=1)
    def grad(self, X):
        CALLS[0] += 1
        if MODE == "cost grad" and CALLS[0] > 20:
            sys.exit(0)
        return X - np.arange(3.0)
def make(**kw):
    return Cost()
from stflow.methods.dgd import DGD
class Method(DGD):
    kind = "mine"
    def initial_state(self, *a, **k):  # not a protocol call: nothing guards it but the CLI
        if MODE == "method initial_state":
            raise SystemExit("done")
        return super().initial_state(*a, **k)
def compressor(dim):
    def C(Z, t):
        CALLS[0] += 1
        if CALLS[0] > 5:
            sys.exit(0)
        return Z
    return C
"""

EXIT_CASES = {
    "cost grad": ('kind = "py:u.py:make"', 'kind = "dgd"', "",
                  "grad raised SystemExit(0) at ", "u.py:14 (in grad) (user code must not exit "
                  "the program)"),
    "method initial_state": ("agents = 4\ndim = 3", 'kind = "py:u.py:Method"', "",
                             "u.py:23 (in initial_state) raised SystemExit('done'): user code "
                             "must not exit the program"),
    "compressor call": ("agents = 4\ndim = 3", 'kind = "observer"',
                        '[compressor]\nspec = "py:u.py:compressor"\n',
                        "raised SystemExit(0) at ", "u.py:29 (in C) (user code must not exit "
                        "the program)"),
    "os._exit as compressor": ("agents = 4\ndim = 3", 'kind = "observer"',
                               '[compressor]\nspec = "py:os:_exit"\n',
                               "'os._exit' is a built-in function, not a compressor factory"),
    "sys.exit as method": ("agents = 4\ndim = 3", 'kind = "py:sys:exit"', "",
                           "'sys.exit' is a built-in function, not a stflow.methods.Method"),
}


@pytest.mark.parametrize("case", sorted(EXIT_CASES))
def test_user_code_that_exits_is_its_error_exit_2(tmp_path, capsys, case):
    problem, method, extra, *needles = EXIT_CASES[case]
    (tmp_path / "u.py").write_text(EXITING.format(mode=case))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[problem]\n{problem}\n[method]\n{method}\n{extra}[solver]\nstep = 0.1\n"
                   "horizon = 5.0\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stflow: error:"), err
    assert all(needle in err[0] for needle in needles), err
    assert not (tmp_path / "o").exists()


TORCH_EXITING = """
import sys
import torch
CALLS = [0]
class Net(torch.nn.Module):
    def __init__(self, i, c):
        super().__init__()
        self.lin = torch.nn.Linear(i, c)
    def forward(self, x):
        CALLS[0] += 1
        if {forward} and CALLS[0] > 5:
            sys.exit(0)
        return self.lin(x)
def make(in_features, classes):
    return Net(in_features, classes)
def loss(out, y):
    if not {forward}:
        sys.exit(0)
    return torch.nn.functional.cross_entropy(out, y)
"""


@pytest.mark.parametrize("where", ["forward", "loss"])
def test_a_torch_model_or_loss_that_exits_is_exit_2(tmp_path, capsys, where):
    pytest.importorskip("torch")
    (tmp_path / "net.py").write_text(TORCH_EXITING.format(forward=where == "forward"))
    cfg = tmp_path / "c.toml"
    cfg.write_text('[problem]\nkind = "torch"\nmodel = "py:net.py:make"\nloss = "py:net.py:loss"'
                   '\ndtype = "float64"\ndataset = "breast_cancer"\nagents = 4\nbatch = 8\n'
                   '[method]\nkind = "dgd"\nlr = 0.01\n[solver]\nstep = 1.0\nhorizon = 10.0\n')
    assert main(["run", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    needle = ("net.py:12 (in forward) raised SystemExit(0)" if where == "forward"
              else "[problem] loss = 'py:")
    assert len(err) == 1 and needle in err[0] and "SystemExit(0)" in err[0], err
    assert not (tmp_path / "o").exists()


# ---- a user compressor whose encode disagrees with its bits_per_message ----

LIAR = """
import numpy as np
from stflow.compressors import Compressor

class Liar(Compressor):
    name, spec, linear, linear_bound = "liar", "py:liar", True, 0.5
    def __init__(self, dim):
        self.dim = dim
    def __call__(self, Z, t):
        return 0.5 * np.asarray(Z)
    def bits_per_message(self):
        return 32 * self.dim  # says 32 d bits...
    def encode(self, Z, t):  # ...sends 64 d
        return [row.astype("<f8").tobytes() for row in self(np.atleast_2d(Z), t)]
    def decode(self, messages, t):
        return np.array([np.frombuffer(m, dtype="<f8") for m in messages])

def make(dim):
    return Liar(dim)
"""

LIAR_LINE = ("encode gives messages of 24 bytes (192 bits) at d = 3, but bits_per_message() "
             "says 96 bits (12 bytes): make bits_per_message() return the bits one encoded "
             "message holds")


@pytest.mark.parametrize("where", ["certify", "run", "run --backend mpi"])
def test_encode_disagreeing_with_bits_per_message_is_one_line_exit_2(tmp_path, capsys, where):
    """It used to pass certify and the simulator (which count the declared bits) and fail
    only under MPI, mid-run, once per rank with MPICH Abort lines."""
    (tmp_path / "liar.py").write_text(LIAR)
    cfg = tmp_path / "c.toml"
    cfg.write_text(GOOD.replace('spec = "topk:k=1"', 'spec = "py:liar.py:make"'))
    out = tmp_path / "o"
    if where == "certify":
        code = main(["certify", f"py:{tmp_path}/liar.py:make", "--dim", "3"])
        err = capsys.readouterr().err
    elif where == "run":
        code = main(["run", str(cfg), "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
    else:
        exe = shutil.which("mpiexec")
        assert exe is not None, "no mpiexec: `pip install -e .[all]` installs it (mpich)"
        proc = subprocess.run([exe, "-n", "2", sys.executable, "-m", "stflow.cli", "run",
                               str(cfg), "--out", str(out), "--quiet", "--backend", "mpi"],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        code, err = proc.returncode, proc.stderr
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stflow: error: compressor `py:"), err
    assert LIAR_LINE in lines[0]
    assert not out.exists()


# ---- bad [init] arrays, booleans as numbers, misleading messages ----

def _with_init(text):
    return GOOD.replace("dim = 3", "dim = 3\n[init]\n" + text)


BAD_INIT = {
    "x0 strings": (_with_init('x0 = ["a", "b", "c"]'), "[init] x0 must hold numbers: x0[0] is 'a'"),
    "x0 ragged": (_with_init("x0 = [[1.0, 2.0, 3.0], [1.0]]"),
                  "[init] x0 must be rectangular: row 1 has 1 numbers, row 0 has 3"),
    "x0 table": (_with_init("x0 = {a = 1}"),
                 "[init] x0 must be a list of numbers or of rows (got {'a': 1})"),
    "v0 ragged": (_with_init("v0 = [[0.0], [0.0, 1.0]]"),
                  "[init] v0 must be rectangular: row 1 has 2 numbers, row 0 has 1"),
    "x0 booleans": (_with_init("x0 = [true, false, true]"),
                    "[init] x0 must hold numbers: x0[0] is True"),
    "x0 mixed": (_with_init("x0 = [1.0, [2.0], 3.0]"),
                 "[init] x0 must hold numbers: x0[1] is [2.0]"),
    "edges booleans": (GOOD.replace('kind = "ring"', 'kind = "edges"\nedges = [[0, true], [1, 2], '
                                    '[2, 3], [3, 0]]'),
                       "`edges` must hold numbers, not booleans (got true at edges[0][1])"),
    "weights booleans": (GOOD.replace('kind = "ring"', 'kind = "edges"\nedges = [[0, 1], [1, 2], '
                                      '[2, 3], [3, 0]]\nweights = [1.0, false, 1.0, 1.0]'),
                         "`weights` must hold numbers, not booleans (got false at weights[1])"),
}


@pytest.mark.parametrize("case", sorted(BAD_INIT))
def test_bad_init_and_boolean_numbers_exit_2(tmp_path, capsys, case):
    """x0 = ["a", "b", "c"] and ragged or table x0/v0 used to be internal errors (exit 4);
    true/false were read as 1/0 in edges and x0."""
    text, needle = BAD_INIT[case]
    assert _run_text(tmp_path, text) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stflow: error: ") and needle in err[0], err
    assert not (tmp_path / "o").exists()


def test_an_empty_config_path_is_named_as_empty(tmp_path, capsys):
    assert main(["run", "", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("stflow: error: config file path is empty: give a TOML file, e.g. "
                   "examples/quickstart.toml"), err  # it said "'.' is a folder"


@pytest.mark.parametrize("below", [False, True])
def test_a_dangling_out_symlink_is_named_as_such(tmp_path, capsys, below):
    (tmp_path / "c.toml").write_text(GOOD)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    out = link / "sub" if below else link
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"a symbolic link to '{tmp_path / 'gone'}', which does not exist" \
        in err[0] and "is a file" not in err[0], err
    assert not (tmp_path / "gone").exists() and link.is_symlink()


COMPLEX = """
import numpy as np
class Cost:
    n_agents, dim = 4, 3
    x_star = np.arange(3.0)
    def values(self, X):
        return 0.5 * ((X - np.arange(3.0)) ** 2).sum(axis=1)
    def grad(self, X):
        return (X - np.arange(3.0)) + 0j
def make(**kw):
    return Cost()
def compressor(dim):
    return lambda Z, t: Z + 0j
"""


@pytest.mark.parametrize("where", ["cost", "compressor"])
def test_complex_user_output_is_one_line_exit_2(tmp_path, capsys, where):
    """It printed "Casting complex values to real discards the imaginary part" once a call
    (1001 lines) and ran on the real parts."""
    (tmp_path / "u.py").write_text(COMPLEX)
    text = (GOOD.replace('kind = "quadratic"\nagents = 4\ndim = 3', 'kind = "py:u.py:make"')
            if where == "cost"
            else GOOD.replace('spec = "topk:k=1"', 'spec = "py:u.py:compressor"'))
    assert _run_text(tmp_path, text) == 2
    err = capsys.readouterr().err.strip().splitlines()
    needle = ("grad(X) returned complex values: return a real float64 array of shape (4, 3)"
              if where == "cost" else "returned complex values at t=0: return a real (N, d)")
    assert len(err) == 1 and needle in err[0], err


def test_a_warning_raised_every_round_is_printed_once(tmp_path, capsys):
    (tmp_path / "w.py").write_text("import warnings\ndef make(dim):\n    def C(Z, t):\n"
                                   "        warnings.warn('my compressor is slow')\n"
                                   "        return Z\n    return C\n")
    text = GOOD.replace('spec = "topk:k=1"', 'spec = "py:w.py:make"')
    assert _run_text(tmp_path, text) in (0, 1)
    err = capsys.readouterr().err.splitlines()
    assert err.count("stflow: warning: my compressor is slow") == 1, err


def test_a_diverged_run_is_one_line_without_numpy_warnings(tmp_path, capsys):
    text = GOOD.replace(OBSERVER, 'kind = "lead"\nlr = 1e6')
    assert _run_text(tmp_path, text) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stflow: diverged: "), err


@pytest.mark.parametrize("standardize", ["true", "false"])
def test_a_csv_with_1e308_is_named_not_called_nan(tmp_path, capsys, standardize):
    """±1e308 are finite: the message names the column and the size, never NaN (without
    standardizing it was an internal error, exit 4)."""
    lines = (Path(__file__).parents[1] / "examples" / "data" / "tiny.csv").read_text().splitlines()
    rows = [r.split(",") for r in lines[1:]]
    rows[3][1], rows[5][1] = "1e308", "-1e308"
    (tmp_path / "big.csv").write_text("\n".join([lines[0], *map(",".join, rows)]) + "\n")
    text = (f'[problem]\nkind = "logistic"\ndata = "big.csv"\ntarget = "responded"\nagents = 4\n'
            f"standardize = {standardize}\n[method]\nkind = \"dgd\"\n[solver]\nstep = 1.0\n"
            "horizon = 5.0\n")
    assert _run_text(tmp_path, text) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "feature 'dose_mg' holds values" in err[0] and "1e+308" in err[0]
    assert "NaN" not in err[0], err


def test_a_data_file_larger_than_memory_is_named_not_agents_dim(tmp_path, capsys):
    """A 50 GB data file was told to "lower agents, dim or samples" (keys it does not use)."""
    from stflow.config import total_memory

    memory = total_memory()
    assert memory > 2**20, memory  # Linux reports it (/proc/meminfo); stflow's checks need it
    big = tmp_path / "big.csv"
    with big.open("wb") as f:  # sparse: no disk space used
        f.truncate(2 * memory)
    text = ('[problem]\nkind = "logistic"\ndata = "big.csv"\nagents = 4\n[method]\nkind = "dgd"\n'
            "[solver]\nstep = 1.0\nhorizon = 5.0\n")
    assert _run_text(tmp_path, text) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"[problem] data = '{big}' is a {2 * memory / 1e9:.3g} GB file" \
        in err[0] and "use a smaller file" in err[0] and "agents" not in err[0], err


# ---- a fuzz of interrupts at random times, with and without --force over earlier results ----

FUZZ_CONFIGS = {
    "long run": GOOD.replace("horizon = 2.0", "horizon = 3000.0").replace(
        "record_every = 50", "record_every = 5000"),
    "huge local_steps": HUGE_LOCAL,
    "continuous": GOOD.replace('spec = "topk:k=1"', 'spec = "scalarize:basis=cyclic"').replace(
        "step = 1e-2", 'scheme = "continuous"\nstep = 1e-2').replace("horizon = 2.0",
                                                                      "horizon = 1e5"),
    "bad compressor": BAD["topk k > d"],
    "diverging": GOOD.replace(OBSERVER, 'kind = "lead"\nlr = 1e6'),
    "torch": None,  # examples/cnn_digits.toml: a slow set-up (the torch import)
}


@pytest.mark.parametrize("seed", range(2 * len(FUZZ_CONFIGS)))
def test_fuzz_interrupts_at_random_times(tmp_path, seed):
    """SIGINT or SIGTERM at a random time (set-up, rounds, writing) into a new --out or with
    --force over earlier results. Whatever the moment: an exit code of docs/cli.md (never 4,
    never killed by the signal), no traceback, every stflow line one line; a summary.json is
    either the earlier one untouched or says the exit code; a refused config leaves the
    earlier results; a new --out is never left empty. (The first ~0.1 s, the interpreter's
    own start before stflow is imported, is not fuzzed: nothing of stflow runs there.)"""
    import random
    import signal
    import time

    rnd = random.Random(seed)
    name = sorted(FUZZ_CONFIGS)[seed % len(FUZZ_CONFIGS)]  # each config twice
    sig = rnd.choice(["SIGINT", "SIGTERM"])
    delay = rnd.uniform(0.1, 2.5)
    force = rnd.random() < 0.5
    cfg = tmp_path / "c.toml"
    root = Path(__file__).parents[1]
    if FUZZ_CONFIGS[name] is None:
        assert __import__("importlib").util.find_spec("torch") is not None, (
            "this fuzz case runs the PyTorch example: pip install -e '.[all]' installs torch")
        shutil.copy(root / "examples" / "cnn_digits.py", tmp_path / "cnn_digits.py")
        cfg.write_text((root / "examples" / "cnn_digits.toml").read_text())
    else:
        cfg.write_text(FUZZ_CONFIGS[name])
    out = tmp_path / "o"
    before = None
    if force:  # earlier results that only a good config may replace
        (tmp_path / "good.toml").write_text(GOOD)
        assert main(["run", str(tmp_path / "good.toml"), "--out", str(out), "--quiet",
                     "--no-figure"]) in (0, 1)
        before = _digest(out)
    argv = [sys.executable, "-m", "stflow.cli", "run", str(cfg), "--out", str(out), "--quiet",
            "--no-figure", *(["--force"] if force or name == "huge local_steps" else [])]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    time.sleep(delay)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    code = proc.returncode
    case = f"{name}, {sig} after {delay:.2f} s, force={force}: exit {code}\n{err}"
    assert code in (0, 1, 2, 3, 130), case
    assert "Traceback" not in err, case
    assert all(line.startswith("stflow: ") for line in err.splitlines() if line.strip()), case
    summary = out / "summary.json"
    if summary.exists():
        info = json.loads(summary.read_text())
        same = before is not None and _digest(out).get("summary.json") == before["summary.json"]
        assert same or info["exit_code"] == code, case
        if code == 130 and not same:
            assert info["status"] == "interrupted", case
    if code == 2 and before is not None:
        assert _digest(out) == before, case
    if before is None and out.exists():
        assert any(out.iterdir()), case


@pytest.mark.parametrize("seed", range(6))
def test_fuzz_interrupts_of_tune_certify_and_reproduce(tmp_path, seed):
    """The other commands under a signal at a random time: exit 0/1/2 or 130 (never 4, never
    killed by the signal), no traceback; an interrupted tune writes no tuned.toml."""
    import random
    import signal
    import time

    rnd = random.Random(100 + seed)
    command = ["tune", "certify", "reproduce"][seed % 3]
    sig = rnd.choice(["SIGINT", "SIGTERM"])
    delay = rnd.uniform(0.1, 3.0)
    out = tmp_path / "o"
    (tmp_path / "c.toml").write_text(GOOD.replace("horizon = 2.0", "horizon = 50.0"))
    argv = {  # each takes 5 to 15 s uninterrupted
        "tune": ["tune", str(tmp_path / "c.toml"), "--budget", "30", "--target", "1e-6",
                 "--out", str(out)],
        "certify": ["certify", "randk:k=3|quantize:bits=4", "--dim", "400"],
        "reproduce": ["reproduce", "--quick", "--only", "E1", "--jobs", "1", "--out", str(out)],
    }[command]
    proc = subprocess.Popen([sys.executable, "-m", "stflow.cli", *argv, "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    time.sleep(delay)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=120)
    case = f"{command}, {sig} after {delay:.2f} s: exit {proc.returncode}\n{err}"
    assert proc.returncode in (0, 1, 2, 130), case
    assert "Traceback" not in err, case
    if command == "tune" and proc.returncode == 130:
        assert not (out / "tuned.toml").exists(), case
        if (out / "tuning.json").exists():
            assert json.loads((out / "tuning.json").read_text())["interrupted"] is True, case
    if proc.returncode == 130:
        assert "stflow: interrupted" in err, case
