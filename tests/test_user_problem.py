"""A user's numpy cost (``[problem] kind = "py:FILE:ATTR"``): the contract of
docs/problems.md, on the simulator, over MPI and under the tuner, and its errors."""

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from stflow.cli import main
from stflow.config import build_run, load_config, resolve_config, run_config
from stflow.errors import InputError
from stflow.problems import make_problem

ROOT = Path(__file__).resolve().parents[1]

#: f_i(x) = a_i / 2 ||x - c_i||^2: x* = sum a_i c_i / sum a_i, L_f = max a_i, mu = sum a_i.
SPRINGS = '''
import numpy as np

class Springs:
    def __init__(self, a, c):
        self.a, self.c = a, c
        self.n_agents, self.dim = c.shape

    def values(self, X):
        return 0.5 * self.a * ((X - self.c) ** 2).sum(axis=1)

    def grad(self, X):
        return self.a[:, None] * (X - self.c)

def make(agents, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    return Springs(rng.uniform(0.5, 2.0, agents), rng.standard_normal((agents, dim)))

class FromArrays:
    """The built-in quadratic's arrays, evaluated by the user's own code."""
    def __init__(self, Q, b):
        self.Q, self.b = Q, b
        self.n_agents, self.dim = b.shape
    def values(self, X):
        return 0.5 * np.einsum("nd,nde,ne->n", X, self.Q, X) - (self.b * X).sum(axis=1)
    def grad(self, X):
        return np.einsum("nde,ne->nd", self.Q, X) - self.b

def quadratic(agents, dim, seed):
    from stflow.problems import make_problem
    a = make_problem("quadratic", agents=agents, dim=dim, seed=seed).arrays()
    return FromArrays(np.array(a["Q"]), np.array(a["b"]))
'''


@pytest.fixture
def springs(tmp_path):
    (tmp_path / "springs.py").write_text(SPRINGS)
    return tmp_path


def _config(folder, body: str) -> Path:
    path = folder / "run.toml"
    path.write_text(textwrap.dedent(body))
    return path


def test_x_star_smoothness_and_mu_are_computed_when_the_cost_does_not_say(springs):
    cfg = load_config(_config(springs, """
        [problem]
        kind = "py:springs.py:make:dim=4"
        agents = 6
        seed = 3
    """))
    p = build_run(cfg).problem
    rng = np.random.default_rng(3)
    a, c = rng.uniform(0.5, 2.0, 6), rng.standard_normal((6, 4))
    x_star = (a[:, None] * c).sum(axis=0) / a.sum()  # by hand
    np.testing.assert_allclose(p.x_star, x_star, rtol=0, atol=1e-12)
    assert p.smoothness == pytest.approx(a.max(), rel=1e-6)
    assert p.strong_convexity == pytest.approx(a.sum(), rel=1e-6)
    assert cfg["problem"] == {"kind": f"py:{springs / 'springs.py'}:make:dim=4", "agents": 6,
                              "seed": 3}


def test_a_user_cost_runs_exactly_like_the_same_built_in_cost(springs):
    method = {"kind": "observer", "alpha": 3.0, "beta": 3.0, "eta": 1.0, "gamma": 40.0}
    solver = {"step": 0.01, "horizon": 10.0, "record_every": 50}
    ours = resolve_config({"problem": {"kind": f"py:{springs}/springs.py:quadratic",
                                       "agents": 5, "dim": 3, "seed": 1},
                           "method": method, "solver": solver})
    theirs = resolve_config({"problem": {"kind": "quadratic", "agents": 5, "dim": 3,
                                         "seed": 1}, "method": method, "solver": solver})
    _, a = run_config(ours)
    _, b = run_config(theirs)
    for key in ("relative_error", "consensus_error", "bits_per_agent"):
        np.testing.assert_allclose(a.records[key], b.records[key], rtol=1e-9, atol=1e-14)
    assert a.records["relative_error"][-1] < 0.1 * a.records["relative_error"][0]


def test_keys_are_checked_against_the_factory(springs):
    kind = f"py:{springs}/springs.py:make"
    with pytest.raises(InputError, match=r"unknown key \[problem\] samples .*its factory "
                                         r"takes agents, dim, seed"):
        resolve_config({"problem": {"kind": kind, "agents": 3, "samples": 4}})
    with pytest.raises(InputError, match=r"\[problem\] agents is required"):
        resolve_config({"problem": {"kind": kind}})
    with pytest.raises(InputError, match="given both in the section and in kind"):
        resolve_config({"problem": {"kind": kind + ":dim=2", "agents": 3, "dim": 2}})
    with pytest.raises(InputError, match="has no attribute 'nope'"):
        resolve_config({"problem": {"kind": f"py:{springs}/springs.py:nope"}})


def test_a_declared_param_is_type_checked(tmp_path):
    (tmp_path / "typed.py").write_text(textwrap.dedent('''
        import numpy as np
        from stflow import Param

        def make(agents=4, scale=1.0):
            class C:
                n_agents, dim = agents, 2
                def values(self, X): return scale * (X ** 2).sum(axis=1)
                def grad(self, X): return 2 * scale * X
            return C()
        make.params = (Param("agents", 4, "agents", type="int", low=2),
                       Param("scale", 1.0, "curvature", high=10.0))
    '''))
    kind = f"py:{tmp_path}/typed.py:make"
    with pytest.raises(InputError, match=r"\[problem\] scale must be a number in \(0, 10\]"):
        resolve_config({"problem": {"kind": kind, "scale": 20}})
    assert build_run(resolve_config({"problem": {"kind": kind, "scale": 2}})).problem.dim == 2


BAD = {
    "raises": ("def make(**k):\n    raise ValueError('no data here')\n",
               "cost.py:2 (in make): no data here"),
    "exits": ("import sys\ndef make(**k):\n    sys.exit(0)\n", "raised SystemExit(0)"),
    "missing_grad": ("class C:\n    n_agents, dim = 3, 2\n    def values(self, X): return "
                     "X.sum(1)\ndef make(**k):\n    return C()\n", "has no `grad`"),
    "shape": ("import numpy as np\nclass C:\n    n_agents, dim = 3, 2\n    def values(self, X):"
              " return X.sum(1)\n    def grad(self, X): return X[:, :1]\n"
              "def make(**k):\n    return C()\n", "grad(X) returned shape (3, 1)"),
    "nan": ("import numpy as np\nclass C:\n    n_agents, dim = 3, 2\n    def values(self, X):"
            " return X.sum(1)\n    def grad(self, X): return X * np.nan\n"
            "def make(**k):\n    return C()\n", "grad(X) returned NaN or inf"),
    "import": ("import numpy as np\n1 / 0\n", "importing 'cost.py' raised ZeroDivisionError"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_user_cost_is_one_line_and_exit_2(tmp_path, capsys, case):
    code, message = BAD[case]
    (tmp_path / "cost.py").write_text(code)
    cfg = _config(tmp_path, """
        [problem]
        kind = "py:cost.py:make"
        [method]
        kind = "dgd"
        lr = 0.1
        [solver]
        step = 1.0
        horizon = 5.0
    """)
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "cost.py" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out" / "summary.json").exists()


def _metrics(path: Path) -> dict[str, np.ndarray]:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


@pytest.mark.parametrize("with_subset", [True, False], ids=["subset", "whole"])
def test_huber_over_mpi_equals_the_simulator(tmp_path, with_subset):
    shutil.copy(ROOT / "examples" / "huber.py", tmp_path / "huber.py")
    text = (ROOT / "examples" / "huber.toml").read_text().replace("horizon = 40.0",
                                                                    "horizon = 3.0")
    if not with_subset:  # the same cost without subset: every rank keeps the whole object
        src = (tmp_path / "huber.py").read_text()
        (tmp_path / "huber.py").write_text(src.replace("def subset(", "def _subset("))
    (tmp_path / "huber.toml").write_text(text)
    sim, par = tmp_path / "sim", tmp_path / "mpi"
    code = main(["run", str(tmp_path / "huber.toml"), "--out", str(sim), "--quiet",
                 "--no-figure"])
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [shutil.which("mpiexec"), "-n", "2", sys.executable, "-m", "stflow.cli", "run",
         str(tmp_path / "huber.toml"), "--out", str(par), "--backend", "mpi", "--quiet",
         "--no-figure"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == code, proc.stderr
    a, b = _metrics(sim / "metrics.csv"), _metrics(par / "metrics.csv")
    for key in ("relative_error", "consensus_error", "optimality_gap", "bits_per_agent"):
        np.testing.assert_allclose(b[key], a[key], rtol=1e-9, atol=0)
    assert a["relative_error"][-1] < 1e-2 * a["relative_error"][0]
    summary = json.loads((par / "summary.json").read_text())
    assert summary["config"]["problem"]["kind"].endswith("huber.py:make:delta=1.0")


def test_tune_works_on_a_user_cost(tmp_path, capsys):
    shutil.copy(ROOT / "examples" / "huber.py", tmp_path / "huber.py")
    shutil.copy(ROOT / "examples" / "huber.toml", tmp_path / "huber.toml")
    out = tmp_path / "tuned"
    code = main(["tune", str(tmp_path / "huber.toml"), "--budget", "4", "--target", "1e-6",
                 "--out", str(out), "--quiet", "--seed", "0"])
    assert code == 0, capsys.readouterr().err
    tuning = json.loads((out / "tuning.json").read_text())
    assert tuning["rounds_to_target"] > 0
    # the tuned config runs as it is (the py: path and its pairs are kept once)
    assert main(["run", str(out / "tuned.toml"), "--out", str(tmp_path / "again"),
                 "--quiet", "--no-figure"]) == 0


def test_stochastic_grad_is_used_with_the_draw_number(tmp_path):
    (tmp_path / "noisy.py").write_text(textwrap.dedent('''
        import numpy as np
        DRAWS = []
        C = np.array([1.0, 2.0])

        class Noisy:
            n_agents, dim = 4, 2
            def values(self, X): return 0.5 * ((X - C) ** 2).sum(axis=1)
            def grad(self, X): return X - C
            def stochastic_grad(self, X, draw):
                DRAWS.append(draw)
                return X - C + 0.01 * np.random.default_rng(draw).standard_normal(X.shape)

        def make():
            return Noisy()
    '''))
    cfg = resolve_config({"problem": {"kind": f"py:{tmp_path}/noisy.py:make"},
                          "method": {"kind": "dgd", "lr": 0.5},
                          "solver": {"step": 1.0, "horizon": 5.0, "record_every": 1}})
    _, sol = run_config(cfg)
    module = next(m for k, m in sys.modules.items()
                  if k.startswith("stflow_user_") and hasattr(m, "DRAWS"))
    assert module.DRAWS == [0, 1, 2, 3, 4]
    # DGD by hand: X <- W X - lr (X - c + noise(draw)) from X = 0; ring of 4, Metropolis
    # weights 1/3 for itself and each of its two neighbours
    W = np.array([[1, 1, 0, 1], [1, 1, 1, 0], [0, 1, 1, 1], [1, 0, 1, 1]]) / 3.0
    X, c = np.zeros((4, 2)), np.array([1.0, 2.0])
    for k in range(5):
        X = W @ X - 0.5 * (X - c + 0.01 * np.random.default_rng(k).standard_normal((4, 2)))
    np.testing.assert_allclose(sol.state["X"], X, rtol=0, atol=1e-15)


def test_a_subset_is_the_same_costs(springs):
    p = build_run(load_config(_config(springs, """
        [problem]
        kind = "py:springs.py:make"
        agents = 5
    """))).problem
    part = p.subset(slice(1, 4), x_star=p.x_star)
    X = np.arange(15.0).reshape(5, 3)
    np.testing.assert_array_equal(part.grad(X[1:4]), p.grad(X)[1:4])
    np.testing.assert_array_equal(part.values(X[1:4]), p.values(X)[1:4])
    assert part.f_star == pytest.approx(p.f_star, rel=1e-14)
    q = make_problem("quadratic", agents=2, dim=2)  # a built-in is untouched
    assert q.kind == "quadratic"


# ------------------------------------------------------------ errors of a cost of one's own

LOGCOSH = '''
import numpy as np
from stflow import Param

class LogCosh:
    def __init__(self, agents, dim, scale, seed=0, dtype=np.float64):
        self.c = np.random.default_rng(seed).standard_normal((agents, dim))
        self.n_agents, self.dim, self.scale, self.dtype = agents, dim, scale, dtype
    def values(self, X):
        return self.scale * np.log(np.cosh(X - self.c)).sum(axis=1)
    def grad(self, X):
        return (self.scale * np.tanh(X - self.c)).astype(self.dtype)

def make(agents=4, dim=3, scale=1.0, seed=0):
    return LogCosh(agents, dim, scale, seed)

def make_int(agents=4, dim=3, scale=1.0):
    return LogCosh(agents, dim, scale, dtype=np.int64)

def make_f32(agents=4, dim=3, scale=1.0):
    return LogCosh(agents, dim, scale, dtype=np.float32)

def declared(agents, dim, seed, delta, label, weighted):
    cost = LogCosh(agents, dim, delta, seed)
    cost.label, cost.weighted = label, weighted
    return cost
declared.params = (Param("agents", 4, "N", type="int", low=2),
                   Param("dim", 3, "d", type="int", low=1),
                   Param("seed", 0, "seed", type="int"),
                   Param("delta", 1.0, "scale"),
                   Param("label", "x", "a label", type="str"),
                   Param("weighted", False, "weights", type="bool"))

class NoOptimum(LogCosh):
    x_star = None

class Scored(NoOptimum):
    def test_accuracy(self, X):
        return (np.abs(X - self.c.mean(axis=0)) < 0.5).mean(axis=1)

def no_optimum(agents=4, dim=3):
    return NoOptimum(agents, dim, 1.0)

def scored(agents=4, dim=3):
    return Scored(agents, dim, 1.0)
'''


@pytest.fixture
def logcosh(tmp_path):
    (tmp_path / "logcosh.py").write_text(LOGCOSH)
    return tmp_path


def _run_one_line(capsys, cfg: Path, out: Path) -> tuple[int, str]:
    code = main(["run", str(cfg), "--out", str(out), "--quiet", "--no-figure"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return code, err[0]


@pytest.mark.parametrize("attr, dtype", [("make_int", "int64"), ("make_f32", "float32")])
def test_a_gradient_of_another_dtype_is_refused(logcosh, capsys, attr, dtype):
    cfg = _config(logcosh, f"""
        [problem]
        kind = "py:logcosh.py:{attr}:scale=0.5"
        [method]
        kind = "dgd"
        [solver]
        step = 0.01
        horizon = 1.0
    """)
    code, line = _run_one_line(capsys, cfg, logcosh / "out")
    assert code == 2, line
    assert f"logcosh.py:{attr}:scale=0.5': grad(X) returned an array of dtype {dtype}, " \
           "not float64: return float64 values of shape (4, 3), e.g. " \
           "`return out.astype(float)`" in line


def test_a_missing_file_is_relative_to_the_config_folder(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)  # not the config's folder
    for section in ('[problem]\nkind = "py:nosuch.py:make"',
                    '[problem]\nkind = "torch"\nmodel = "py:nosuch.py:make"',
                    '[compressor]\nspec = "py:nosuch.py:make|quantize:bits=4"'):
        (folder / "c.toml").write_text(section + "\n[solver]\nhorizon = 1.0\n")
        code, line = _run_one_line(capsys, folder / "c.toml", tmp_path / "out")
        assert code == 2
        assert (f"file '{folder / 'nosuch.py'}' not found: give a path relative to "
                f"'{folder}' (the config file's folder) or an absolute one") in line, line
        assert "working directory" not in line
    with pytest.raises(InputError, match=r"file '\S*nosuch.py' not found: give a path "
                                         "relative to the working directory"):
        from stflow.user_code import load_attr

        load_attr("py:nosuch.py:make", "[problem] kind")


def test_declared_params_fill_in_their_defaults(logcosh):
    cfg = load_config(_config(logcosh, """
        [problem]
        kind = "py:logcosh.py:declared:delta=0.5,label=abc,weighted=true"
        agents = 5
    """))
    assert {k: v for k, v in cfg["problem"].items() if k != "kind"} == {
        "agents": 5, "dim": 3, "seed": 0}
    p = build_run(cfg).problem
    assert (p.n_agents, p.dim) == (5, 3)
    assert (p.obj.scale, p.obj.label, p.obj.weighted) == (0.5, "abc", True)
    np.testing.assert_array_equal(p.obj.c, np.random.default_rng(0).standard_normal((5, 3)))


def test_a_pair_of_the_reference_is_checked_like_a_key(logcosh):
    kind = f"py:{logcosh}/logcosh.py:make:scale=0.5,mode=1"
    with pytest.raises(InputError) as err:
        resolve_config({"problem": {"kind": kind}})
    assert str(err.value) == (
        f"unknown key mode=1 in [problem] kind = {kind!r}: its factory takes agents, dim, "
        "scale, seed (add mode to its parameters, or remove it from the py: string)")
    with pytest.raises(InputError, match=r"\[problem\] delta must be a number > 0"):
        resolve_config({"problem": {"kind": f"py:{logcosh}/logcosh.py:declared:delta=-1"}})


def test_a_cost_without_optimum_needs_test_accuracy_and_a_target(logcosh, capsys):
    body = """
        [problem]
        kind = "py:logcosh.py:{attr}"
        [method]
        kind = "dgd"
        lr = 0.1
        [solver]
        step = 1.0
        horizon = 20.0
        {target}
    """
    cfg = _config(logcosh, body.format(attr="no_optimum", target=""))
    code, line = _run_one_line(capsys, cfg, logcosh / "a")
    assert code == 2 and "sets x_star = None and has no test_accuracy(X), so nothing can " \
                         "judge the run" in line, line
    assert "or a test_accuracy(X) -> (N,) method and set [solver] target_accuracy" in line
    assert not (logcosh / "a" / "summary.json").exists()
    cfg = _config(logcosh, body.format(attr="no_optimum", target="target_accuracy = 0.9"))
    code, line = _run_one_line(capsys, cfg, logcosh / "b")
    assert code == 2 and "has no test_accuracy(X) method: give the cost object " \
                         "test_accuracy(X) -> (N,)" in line, line
    cfg = _config(logcosh, body.format(attr="scored", target=""))
    code, line = _run_one_line(capsys, cfg, logcosh / "c")
    assert code == 2 and "[solver] target_accuracy is needed" in line, line
    cfg = _config(logcosh, body.format(attr="scored", target="target_accuracy = 0.9"))
    assert main(["run", str(cfg), "--out", str(logcosh / "d"), "--quiet", "--no-figure"]) == 0
    summary = json.loads((logcosh / "d" / "summary.json").read_text())
    assert summary["status"] == "converged" and "mean agent test accuracy 1.0000" in \
        summary["message"]


def test_a_py_file_imports_a_helper_beside_it(tmp_path, monkeypatch):
    folder = tmp_path / "costs"
    folder.mkdir()
    (folder / "helper_for_stflow_test.py").write_text("SCALE = 0.5\n")
    (folder / "cost.py").write_text(textwrap.dedent('''
        import numpy as np
        from helper_for_stflow_test import SCALE

        class C:
            n_agents, dim = 3, 2
            def values(self, X): return SCALE * (X ** 2).sum(axis=1)
            def grad(self, X): return 2 * SCALE * X
            x_star = np.zeros(2)

        def make():
            return C()
    '''))
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    p = build_run(load_config(_config(folder, '[problem]\nkind = "py:cost.py:make"\n'))).problem
    np.testing.assert_array_equal(p.grad(np.ones((3, 2))), np.ones((3, 2)))
    assert sys.path == path_before  # the folder was on sys.path for the import only


def test_a_missing_attribute_lists_how_many_names_were_left_out(tmp_path):
    (tmp_path / "many.py").write_text("".join(f"def f{i}(): pass\n" for i in range(11)))
    with pytest.raises(InputError, match=r"\(it has f0, f1, f10, f2, f3, f4, f5, f6, \.\.\. "
                                         r"and 3 more\): name"):
        resolve_config({"problem": {"kind": f"py:{tmp_path}/many.py:make"}})


def test_a_compressor_spec_error_names_the_config_key(tmp_path, capsys):
    cfg = _config(tmp_path, """
        [problem]
        kind = "quadratic"
        agents = 4
        dim = 4
        [compressor]
        spec = "topk:k=20"
    """)
    code, line = _run_one_line(capsys, cfg, tmp_path / "o")
    assert code == 2
    assert line == ("stflow: error: [compressor] spec = 'topk:k=20' (d = 4): `k` must "
                    "satisfy 1 <= k <= d (got k=20, d=4): lower k or raise dim")


def test_py_files_names_the_file_of_every_py_reference():
    from stflow.user_code import py_files

    # the files the config hash of --resume reads (docs/cli.md): a cost with pairs, a
    # composed compressor spec, a model; modules are not files
    assert py_files("py:/runs/logcosh.py:make:scale=0.5") == ["/runs/logcosh.py"]
    assert py_files("py:/runs/c.py:sign|quantize:bits=4|py:mod:f|py:/r/d.py:g:k=1") == [
        "/runs/c.py", "/r/d.py"]
    assert py_files("topk:k=2") == [] and py_files(None) == []
