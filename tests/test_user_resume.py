"""--resume refuses a checkpoint once a py: file the config names has changed (docs/cli.md):
a cost with key=value pairs and a compressor stage in a composed spec, like a method."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

COST = '''
import numpy as np

class LogCosh:
    def __init__(self, agents, dim, scale):
        self.c = np.random.default_rng(0).standard_normal((agents, dim))
        self.n_agents, self.dim, self.scale = agents, dim, scale
    def values(self, X):
        return self.scale * np.log(np.cosh(X - self.c)).sum(axis=1)
    def grad(self, X):
        return self.scale * np.tanh(X - self.c)

def make(agents=4, dim=3, scale=1.0):
    return LogCosh(agents, dim, scale)
'''

COMPRESSOR = '''
import numpy as np

def sign(dim):
    return lambda Z, t: np.sign(Z) * np.abs(Z).mean(axis=1, keepdims=True)
'''


def _mpirun(args, env=None):
    cmd = [shutil.which("mpiexec"), "-n", "2", sys.executable, "-m", "stflow.cli", *args]
    full = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=full)


@pytest.mark.parametrize("edited", ["cost", "compressor"])
def test_resume_refuses_an_edited_py_cost_or_compressor(tmp_path, edited):
    (tmp_path / "logcosh.py").write_text(COST)
    (tmp_path / "comp.py").write_text(COMPRESSOR)
    cfg = tmp_path / "c.toml"
    cfg.write_text(textwrap.dedent('''
        [problem]
        kind = "py:logcosh.py:make:scale=0.5"
        [method]
        kind = "choco"
        lr = 0.1
        [compressor]
        spec = "py:comp.py:sign|quantize:bits=8"
        [solver]
        step = 1.0
        horizon = 300.0
        record_every = 10
    '''))
    out = tmp_path / "o"
    args = ["run", str(cfg), "--backend", "mpi", "--out", str(out), "--quiet",
            "--checkpoint-every", "50"]
    proc = _mpirun(args, env={"STFLOW_MPI_STOP_AFTER": "130"})
    assert proc.returncode != 0
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 100
    name = "logcosh.py" if edited == "cost" else "comp.py"
    (tmp_path / name).write_text((tmp_path / name).read_text() + "\n# edited\n")
    proc = _mpirun([*args, "--resume"])
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "for another config, data file contents or P" in lines[0]
    assert not (out / "metrics.csv").exists()
    # unedited, the same checkpoint resumes
    (tmp_path / name).write_text(COST if edited == "cost" else COMPRESSOR)
    proc = _mpirun([*args, "--resume"])
    assert proc.returncode in (0, 1), proc.stderr
    assert (out / "metrics.csv").exists()
