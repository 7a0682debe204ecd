"""A user-defined compressor loaded as `py:FILE:ATTR` is certified and runs in a flow."""

from pathlib import Path

import numpy as np
import pytest
from test_faults import GOOD  # tests/ is on sys.path (rootdir conftest)

from stflow.certify import certify
from stflow.compressors import make_compressor
from stflow.config import resolve_config, run_config
from stflow.errors import InputError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "my_compressor.py"


def test_example_user_compressor_certified_at_rate_one_half():
    comp = make_compressor(f"py:{EXAMPLE}:make:tau=0.01", 10)
    assert comp.linear and comp.bits_per_message() == 640
    cert = certify(comp)
    # each coordinate is active half of the time: ||z|| decays at rate 1/2
    assert cert.spatio_temporal
    assert cert.rate == pytest.approx(0.5, rel=0.05)


def test_user_compressor_in_observer_flow():
    """The example declares its period 2 tau = 0.02, so "auto" gains cap the flow's speed
    at s = 1 / 0.02 = 50 (alpha = 2 s / lambda_max); without it they diverged by round 200
    (docs/gains.md). Plain callables send d float64 a round."""
    cfg = resolve_config({
        "problem": {"agents": 6, "dim": 4},
        "method": {"kind": "observer"},
        "compressor": {"spec": f"py:{EXAMPLE}:make"},
        "solver": {"horizon": 30.0, "record_every": 1000},
    })
    run, sol = run_config(cfg)
    assert run.compressor.period == pytest.approx(0.02)
    assert run.config["method"]["alpha"] == pytest.approx(2 * 50.0 / run.graph.lambda_max,
                                                          rel=1e-12)
    assert sol.converged, sol.message
    assert sol.bits_per_agent == 30000 * 64 * 4


def test_unknown_attr_is_input_error():
    with pytest.raises(InputError, match="no_such_factory"):
        make_compressor(f"py:{EXAMPLE}:no_such_factory", 4)


BROKEN = """
import numpy as np

def raises_late(dim):
    def C(Z, t):
        if t > 0.05:
            raise ZeroDivisionError("late failure")
        return Z
    return C

def nan_late(dim):
    return lambda Z, t: Z * (np.nan if t > 0.05 else 1.0)
"""


@pytest.mark.parametrize(
    ("attr", "match"),
    [
        # the line of the user's code that raised it (BROKEN's line 7), as docs/cli.md promises
        ("raises_late", r"compressor `py:.*broken.py:raises_late` raised ZeroDivisionError at "
                        r"\S*broken.py:7 \(in C\): late"),
        ("nan_late", r"compressor `py:.*broken.py:nan_late` returned NaN or inf for a finite"),
    ],
)
def test_user_compressor_failing_during_a_run_is_one_input_error(tmp_path, attr, match):
    (tmp_path / "broken.py").write_text(BROKEN)
    cfg = resolve_config({
        "problem": {"agents": 4, "dim": 3},
        "compressor": {"spec": f"py:{tmp_path / 'broken.py'}:{attr}"},
        "solver": {"horizon": 1.0, "record_every": 10},
    })
    with pytest.raises(InputError, match=match) as info:
        run_config(cfg)
    assert "\n" not in str(info.value)


def test_py_file_resolved_against_base_dir(tmp_path, monkeypatch):
    folder = tmp_path / "configs" / "lib"
    folder.mkdir(parents=True)
    (folder / "halver.py").write_text("def make(dim):\n    return lambda Z, t: 0.5 * Z\n")
    monkeypatch.chdir(tmp_path)  # the working directory is NOT the config's folder
    comp = make_compressor("py:lib/halver.py:make", 2, base_dir=tmp_path / "configs")
    assert comp([2.0, -4.0], 0.0).tolist() == [1.0, -2.0]
    # without base_dir the same relative path is looked up in the working directory
    with pytest.raises(InputError, match="relative to the working directory"):
        make_compressor("py:lib/halver.py:make", 2)
    with pytest.raises(InputError, match=r"relative to '.*configs' \(the config file's folder\)"):
        make_compressor("py:lib/nothere.py:make", 2, base_dir=tmp_path / "configs")
    # an absolute path ignores base_dir; a module name on sys.path still works
    absolute = f"py:{folder / 'halver.py'}:make"
    assert make_compressor(absolute, 2, base_dir="/nonexistent").linear_bound == float("inf")
    monkeypatch.syspath_prepend(str(folder))
    assert make_compressor("py:halver:make", 2, base_dir=tmp_path)([4.0, 0.0], 0).tolist() == [
        2.0,
        0.0,
    ]


USER_CLASS = """
import numpy as np
from stflow.compressors import Compressor

class Halve(Compressor):
    name = "halve"
    spec = "py:halve-class"
    linear = True
    linear_bound = 0.5

    def __init__(self, dim, fail_at=None):
        self.dim = dim
        self.fail_at = fail_at

    def __call__(self, Z, t):
        if self.fail_at is not None and t >= self.fail_at:
            raise KeyError("no such key")
        return 0.5 * np.asarray(Z)

    def bits_per_message(self):
        return 64 * self.dim

    def encode(self, Z, t):
        return [row.astype("<f8").tobytes() for row in self(np.atleast_2d(Z), t)]

    def decode(self, messages, t):
        return np.array([np.frombuffer(m, dtype="<f8") for m in messages])

def make(dim, fail_at=-1.0):
    return Halve(dim, None if fail_at < 0 else fail_at)
"""


def test_user_compressor_class_is_guarded_and_gets_encode_array(tmp_path):
    (tmp_path / "halve_class.py").write_text(USER_CLASS)
    comp = make_compressor(f"py:{tmp_path / 'halve_class.py'}:make", 3)
    Z = np.array([[1.0, 2.0, -4.0], [0.5, 0.0, 8.0]])
    buf = comp.encode_array(Z, 0.0)  # the base-class default built on encode/decode
    assert buf.shape == (2, 24) and buf.dtype == np.uint8
    assert np.array_equal(comp.decode_array(buf, 0.0), 0.5 * Z)
    assert comp.fail_at is None  # the user's own attributes stay reachable
    failing = make_compressor(f"py:{tmp_path / 'halve_class.py'}:make:fail_at=2.0", 3)
    with pytest.raises(InputError, match=r"compressor `py:halve-class` raised KeyError"):
        certify(failing)


def test_resolve_user_paths_makes_the_spec_cwd_independent(tmp_path, monkeypatch):
    from stflow.compressors import resolve_user_paths

    (tmp_path / "lib").mkdir()
    code = "def make(dim, f=0.5):\n    return lambda Z, t: f * Z\n"
    (tmp_path / "lib" / "halver.py").write_text(code)
    spec = resolve_user_paths("py:lib/halver.py:make:f=0.25 | topk:k=1", tmp_path)
    assert spec == f"py:{tmp_path / 'lib' / 'halver.py'}:make:f=0.25 | topk:k=1"
    monkeypatch.chdir("/")
    assert make_compressor(spec, 2)([4.0, -8.0], 0.0).tolist() == [0.0, -2.0]
    assert resolve_user_paths("topk:k=2|py:mod:make", tmp_path) == "topk:k=2|py:mod:make"


EXITS = """
import sys

def exits_in_factory(dim):
    sys.exit(0)

def exits_late(dim):
    def C(Z, t):
        if t > 0.05:
            sys.exit(0)
        return Z
    return C
"""


@pytest.mark.parametrize(("attr", "where"), [("exits_in_factory", "make"),
                                             ("exits_late", "run")])
def test_sys_exit_in_a_user_compressor_is_its_error_exit_2(tmp_path, capsys, attr, where):
    """sys.exit(0) inside user code must not read as stflow's "converged" (exit 0)."""
    from stflow.cli import main

    (tmp_path / "exits.py").write_text(EXITS)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[problem]\nagents = 4\ndim = 3\n[compressor]\nspec = "py:exits.py:{attr}"\n'
                   "[solver]\nhorizon = 1.0\nrecord_every = 10\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "raised SystemExit(0)" in err and len(err.strip().splitlines()) == 1, (where, err)


BAD_DECODE = USER_CLASS + """

class Short(Halve):  # decodes one column too few
    def decode(self, messages, t):
        return super().decode(messages, t)[:, :-1]

class Nan(Halve):
    def decode(self, messages, t):
        return super().decode(messages, t) * np.nan

def short(dim):
    return Short(dim)

def nan(dim):
    return Nan(dim)
"""


@pytest.mark.parametrize("attr,match", [
    ("short", r"decode returned shape \(2, 2\) for 2 message\(s\) at t=0, not \(2, 3\)"),
    ("nan", r"decode returned NaN or inf at t=0"),
])
def test_a_user_decode_is_checked_like_c(tmp_path, attr, match):
    """decode is the receiving side of C(Z, t) (what MPI runs): the same shape and
    finiteness rules, one InputError line naming the spec and decode."""
    (tmp_path / "bad_decode.py").write_text(BAD_DECODE)
    comp = make_compressor(f"py:{tmp_path / 'bad_decode.py'}:{attr}", 3)
    Z = np.array([[1.0, 2.0, -4.0], [0.5, 0.0, 8.0]])
    with pytest.raises(InputError, match=r"compressor `py:halve-class`: " + match):
        comp.decode(comp.encode(Z, 0.0), 0.0)
    with pytest.raises(InputError, match=match):
        comp.decode_array(comp.encode_array(Z, 0.0), 0.0)


def test_a_bad_user_decode_under_mpi_is_exit_2_and_leaves_no_folder(tmp_path):
    """Under MPI (which decodes every message) a wrong decode was reported as an stflow
    bug with exit 1 and left an --out holding only progress.log."""
    import shutil
    import subprocess
    import sys

    mpiexec = shutil.which("mpiexec")
    assert mpiexec, "mpiexec not found: pip install -e '.[all]' (mpi4py and the mpich wheel)"
    (tmp_path / "bad_decode.py").write_text(BAD_DECODE)
    cfg = tmp_path / "c.toml"  # test_faults' good config with the bad decode
    cfg.write_text(GOOD.replace('spec = "topk:k=1"',
                                f'spec = "py:{tmp_path / "bad_decode.py"}:short"'))
    out = tmp_path / "out"
    proc = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "stflow.cli", "run",
                           str(cfg), "--backend", "mpi", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "decode returned shape (2, 2) for 2 message(s)" in proc.stderr
    assert "This is a bug in stflow" not in proc.stderr
    assert not out.exists()
