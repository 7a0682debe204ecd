"""A method of the user's own (``[method] kind = "py:FILE:ATTR"``): the heavy-ball example by
hand, through ``stflow run``, ``tune`` and MPI, the checker on good and broken methods, and
one line (exit 2) for bad user code."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from stflow.cli import main
from stflow.config import load_config, resolve_config
from stflow.errors import InputError
from stflow.graphs import make_graph
from stflow.methods import Method, make_method, method_class, method_params, metropolis_weights
from stflow.output import read_metrics_csv
from stflow.problems import make_problem
from stflow.testing import assert_method_ok, check_method

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "heavy_ball.toml"
HEAVY_BALL = f"py:{ROOT / 'examples' / 'heavy_ball.py'}:HeavyBall"
BROKEN = Path(__file__).resolve().parent / "user_methods" / "broken_methods.py"


def _max_rel(a: dict, b: dict) -> float:
    worst = 0.0
    for col in a:
        x, y = np.nan_to_num(a[col]), np.nan_to_num(b[col])
        diff = np.abs(x - y)
        scale = np.maximum(np.abs(x), np.abs(y))
        worst = max(worst, float(np.max(np.where(diff == 0, 0.0, diff / np.where(
            scale > 0, scale, 1.0)), initial=0.0)))
    return worst


# ------------------------------------------------------------------------- the example


def test_two_rounds_of_heavy_ball_by_hand():
    # path of 3 agents: W = [[2/3, 1/3, 0], [1/3, 1/3, 1/3], [0, 1/3, 2/3]];
    # f_i(x) = (x - c_i)^2 / 2 with c = (0, 0, 3); X^0 = (3, 0, 0); lr = mu = 0.5
    #   round 1: W X0 = (2, 1, 0), grad = (3, 0, -3)      -> X1 = (0.5, 1, 1.5)
    #   round 2: W X1 = (2/3, 1, 4/3), lr grad = (0.25, 0.5, -0.75),
    #            mu (X1 - X0) = (-1.25, 0.5, 0.75)          -> X2 = (-5/6, 1, 17/6)
    c = np.array([[0.0], [0.0], [3.0]])
    problem = SimpleNamespace(n_agents=3, dim=1, grad=lambda X: X - c)
    cls = method_class(HEAVY_BALL)
    m = cls.build(problem, make_graph("path", 3), lr=0.5, momentum=0.5)
    s0 = m.initial_state(x0=np.array([[3.0], [0.0], [0.0]]))
    s1 = m.step(s0, 0.0, 1.0)
    s2 = m.step(s1, 1.0, 1.0)
    assert s1["X"].ravel().tolist() == [0.5, 1.0, 1.5]
    np.testing.assert_allclose(s2["X"].ravel(), [-5 / 6, 1.0, 17 / 6], rtol=1e-15)
    np.testing.assert_array_equal(s2["Xprev"], s1["X"])
    assert m.draws == 2 and m.bits_per_message == 64


def test_the_reference_pairs_are_defaults_and_flow_keys_override_them():
    cfg = load_config(EXAMPLE)
    assert cfg["method"] == {"kind": HEAVY_BALL + ":momentum=0.5", "lr": 0.01, "momentum": 0.5}
    raw = {"method": {"kind": "py:heavy_ball.py:HeavyBall:momentum=0.25"}}
    flow = resolve_config(raw, base_dir=ROOT / "examples")["method"]
    assert (flow["lr"], flow["momentum"]) == (0.05, 0.25)  # lr: the class's default
    raw["method"]["momentum"] = 0.75
    assert resolve_config(raw, base_dir=ROOT / "examples")["method"]["momentum"] == 0.75
    with pytest.raises(InputError, match=r"unknown key \[method\] beta .*its keys are kind, lr, "
                                         r"momentum"):
        resolve_config({"method": {"kind": HEAVY_BALL, "beta": 1.0}})
    with pytest.raises(InputError, match=r"momentum must be a number in \(0, 0.999\]"):
        resolve_config({"method": {"kind": HEAVY_BALL, "momentum": 1.5}})
    with pytest.raises(InputError, match="friction=1 is not a parameter of HeavyBall"):
        resolve_config({"method": {"kind": HEAVY_BALL + ":friction=1"}})
    assert [p.name for p in method_params(HEAVY_BALL)] == ["lr", "momentum"]


def test_stflow_run_on_the_example_matches_a_numpy_loop(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(EXAMPLE), "--out", str(out), "--quiet", "--no-figure"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["method"] == {"kind": HEAVY_BALL + ":momentum=0.5", "lr": 0.01,
                                         "momentum": 0.5}
    # the same 1000 rounds written directly in numpy
    p = make_problem("least_squares", agents=8, dim=4, samples=50, seed=0)
    W = metropolis_weights(make_graph("ring", 8)).toarray()
    X = Xprev = np.zeros((8, 4))
    for _ in range(1000):
        X, Xprev = W @ X - 0.01 * p.grad(X) + 0.5 * (X - Xprev), X
    err = np.linalg.norm(X - p.x_star) / (np.sqrt(8) * np.linalg.norm(p.x_star))
    assert summary["final_relative_error"] == pytest.approx(err, rel=1e-9)
    assert 1e-3 < err < 5e-3  # DGD's O(lr) floor, 10x below the example's tolerance 0.05
    assert summary["bits_per_message"] == 64 * 4 and summary["steps"] == 1000
    assert summary["bits_per_agent"] == 1000 * 256


def test_stflow_tune_searches_the_declared_params(tmp_path, capsys):
    cfg = tmp_path / "hb.toml"
    cfg.write_text(EXAMPLE.read_text().replace('"py:heavy_ball.py:', f'"py:{ROOT}/examples/'
                                               "heavy_ball.py:").replace(
        "horizon = 1000.0", "horizon = 300.0"))
    code = main(["tune", str(cfg), "--budget", "4", "--target", "0.05",
                 "--out", str(tmp_path / "t")])
    assert code == 0, capsys.readouterr().err
    tuning = json.loads((tmp_path / "t" / "tuning.json").read_text())
    assert sorted(tuning["params"]) == ["lr", "momentum"]
    assert 0 < tuning["params"]["momentum"] <= 0.999 and tuning["params"]["lr"] > 0
    assert tuning["method"].endswith("heavy_ball.py:HeavyBall:momentum=0.5")
    assert tuning["evaluations"] == 4
    # the first candidate is the config's own setting; the best is no worse, and its bits
    # are its rounds times 64 d = 256 bits
    assert tuning["trials"][0]["params"] == {"lr": 0.01, "momentum": 0.5}
    assert tuning["bits_to_target"] <= tuning["trials"][0]["bits_to_target"]
    assert tuning["bits_to_target"] == 256 * tuning["rounds_to_target"]


def _mpiexec() -> str:
    exe = shutil.which("mpiexec")
    assert exe, 'mpiexec not found: install it with pip install -e ".[all]"'
    return exe


def test_mpi_two_ranks_equal_the_simulator(tmp_path):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("stflow.output.plot_convergence", lambda *a, **k: None)
        assert main(["run", str(EXAMPLE), "--out", str(tmp_path / "sim"), "--quiet"]) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([_mpiexec(), "-n", "2", sys.executable, "-m", "stflow.cli", "run",
                           str(EXAMPLE), "--out", str(tmp_path / "mpi"), "--backend", "mpi",
                           "--quiet", "--no-figure"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    a = read_metrics_csv(tmp_path / "sim" / "metrics.csv")
    b = read_metrics_csv(tmp_path / "mpi" / "metrics.csv")
    assert a.keys() == b.keys() and len(a["step"]) == 11
    assert _max_rel(a, b) <= 1e-9
    comm = json.loads((tmp_path / "mpi" / "comm.json").read_text())
    # ring of 8 on 2 ranks: 16 messages of 32 bytes per round, 4 of them between ranks
    assert comm["bytes_total"] == 1000 * 16 * 32 and comm["bytes_mpi_total"] == 1000 * 4 * 32


# ----------------------------------------------------------------------------- checker


def test_check_method_passes_on_the_example():
    result = assert_method_ok(HEAVY_BALL, procs=(1, 2, 3))
    assert result.ok and result.problems == []
    assert set(result.max_relative_difference) == {"simulator_repeat", "fresh_object",
                                                   "mpi_P1", "mpi_P2", "mpi_P3"}
    assert max(result.max_relative_difference.values()) <= 1e-9


def test_a_compressed_channel_with_public_copies_runs_on_both_engines():
    ref = f"py:{BROKEN.parent / 'good_methods.py'}:CompressedGossip"
    from stflow.compressors import make_compressor

    m = method_class(ref).build(make_problem("quadratic", agents=6, dim=4),
                                make_graph("ring", 6), make_compressor("topk:k=2", 4))
    assert m.bits_per_message == 2 * (2 + 64)  # two (index, value) pairs of d = 4
    result = check_method(ref, procs=(2,))  # topk:k=2 on a ring of 6, blocks 0:3 and 3:6
    assert result.ok, result.report()
    assert result.max_relative_difference["mpi_P2"] <= 1e-9


def test_check_method_takes_the_class_itself():
    import importlib.util

    spec = importlib.util.spec_from_file_location("hb_example", ROOT / "examples" /
                                                  "heavy_ball.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["hb_example"] = module  # as an import would
    spec.loader.exec_module(module)
    result = check_method(module.HeavyBall, mpi=False)
    assert result.ok and result.method == HEAVY_BALL
    with pytest.raises(InputError, match="not defined at the top level of a .py file"):
        class Local(Method):
            pass
        check_method(Local, mpi=False)


def test_check_method_names_the_broken_rule():
    noisy = check_method(f"py:{BROKEN}:GlobalNoise", mpi=False)
    assert not noisy.ok and noisy.problems[0].startswith("determinism: two identical "
                                                         "simulator runs differ")
    on_self = check_method(f"py:{BROKEN}:MomentumOnSelf", mpi=False)
    assert len(on_self.problems) == 1 and "not on self" in on_self.problems[0]
    rows = check_method(f"py:{BROKEN}:RowNoise", procs=(1, 2))
    assert [p.split(":")[0] for p in rows.problems] == ["engines (P=2)"]
    assert "results differ between P=1 and P=2" in rows.problems[0]
    assert "randomness keyed on a row's position" in rows.problems[0]
    assert rows.max_relative_difference["mpi_P1"] == 0.0
    assert rows.max_relative_difference["mpi_P2"] > 1e-6
    with pytest.raises(AssertionError, match="FAIL protocol: .*WrongShape.send returned "
                                             r"channel 0 of shape \(6, 1\), expected \(6, 4\)"):
        assert_method_ok(f"py:{BROKEN}:WrongShape", mpi=False)


def test_check_method_names_the_in_place_rule():
    # X -= ... on the state it was given: named as rule 1's "return new arrays", not as
    # an engine difference (the other checks are skipped)
    result = check_method(f"py:{BROKEN}:InPlace", procs=(1,))
    assert len(result.problems) == 1, result.report()
    line = result.problems[0]
    assert line.startswith("in place: ") and "InPlace.receive raised ValueError" in line
    assert "broken_methods.py:" in line and "read-only" in line
    assert "return new arrays; do not modify state or messages in place" in line
    assert "engines" not in line and result.passed == []
    good = check_method(HEAVY_BALL, mpi=False)
    assert good.ok and good.passed[0].startswith("in place: ")


def test_a_peer_method_of_ones_own_gets_lr_from_peer_method():
    from stflow.methods import PeerMethod
    from stflow.problems import curvature_estimate

    assert [p.name for p in PeerMethod.params] == ["lr"] and PeerMethod.params[0].auto
    ref = f"py:{BROKEN.parent / 'good_methods.py'}:HeavyPeer"
    cfg = resolve_config({"problem": {"kind": "quadratic", "agents": 6, "dim": 4},
                          "method": {"kind": ref, "lr": "auto", "beta": 0.2},
                          "solver": {"step": 1.0, "horizon": 20.0}})
    assert cfg["method"] == {"kind": ref, "lr": "auto", "beta": 0.2}
    from stflow.config import build_run

    run = build_run(cfg)
    problem = make_problem("quadratic", agents=6, dim=4)
    assert run.flow.lr == pytest.approx(0.5 / curvature_estimate(problem), rel=1e-12)
    assert run.config["method"]["lr"] == run.flow.lr  # summary.json shows the value
    # the built-in peers keep their own lr declaration (their own auto_lr)
    assert method_params("nids")[0].doc.startswith('step size (> 0, or "auto" = 1.0 / L')


def test_the_registry_is_read_from_the_classes():
    from stflow.methods import AUTO_LR, METHOD_CLASSES, METHOD_KINDS, PrimalDualFlow

    assert METHOD_KINDS == tuple(c.kind for c in METHOD_CLASSES)
    assert {k: AUTO_LR[k] for k in ("dgd", "gradient_tracking", "nids", "choco", "lead",
                                    "extra", "beer", "motef")} == {
        "dgd": 0.5, "gradient_tracking": 0.3, "nids": 1.0, "choco": 0.5, "lead": 0.5,
        "extra": 1.8, "beer": 0.3, "motef": 0.1}
    assert all(issubclass(c, Method) and c.params for c in METHOD_CLASSES)
    flow = PrimalDualFlow("observer", make_problem("quadratic", agents=3, dim=2),
                          make_graph("ring", 3), __import__("stflow").compressors
                          .make_compressor("topk:k=1", 2),
                          gains=__import__("stflow").methods.Gains(1.0, 1.0, 1.0, 10.0))
    assert type(flow).__name__ == "ObserverFlow" and flow.kind == "observer"
    p = make_problem("quadratic", agents=4, dim=2, seed=0)
    assert make_method("dgd", p, make_graph("ring", 4)).lr == pytest.approx(0.5 / p.smoothness)


# ------------------------------------------------------------------------ bad user code


def _one_line(capsys, argv) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return code, err[0]


@pytest.mark.parametrize("attr, expected", [
    ("WrongShape", r"WrongShape.send returned channel 0 of shape \(6, 1\), expected \(6, 4\)"),
    ("Float32", "Float32.send returned channel 0 as an array of dtype float32 .* not a "
                "float64 array"),
    ("Nan", r"Nan.receive returned NaN or inf in state\['X'\] from a finite state"),
    # the line of the user's code that raised (docs/cli.md)
    ("Raises", r"Raises.receive raised ValueError at \S*broken_methods.py:\d+ \(in receive\): "
               "boom: fix Raises.receive"),
    ("Exits", r"Exits.receive raised SystemExit\(3\) at \S*broken_methods.py:\d+ \(in receive\) "
              r"\(user code must not exit"),
    ("NotAMethod", "'NotAMethod' is class NotAMethod, not a stflow.methods.Method subclass: "
                   "write `class NotAMethod"),
    ("Missing", "has no attribute 'Missing' .*: name a stflow.methods.Method subclass"),
    ("BadBind", "BadBind.bind_block raised ValueError at .*: matmul: .*: fix BadBind.bind_block"),
    ("TwoMessages", r"TwoMessages.send returned a list of 2 item\(s\), not a list of 1 "
                    r"array\(s\)"),
])
def test_bad_user_method_is_one_line_exit_2(tmp_path, capsys, attr, expected):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[problem]\nagents = 6\ndim = 4\n[method]\nkind = "py:{BROKEN}:{attr}"\n'
                   "[solver]\nstep = 1.0\nhorizon = 5.0\n")
    code, line = _one_line(capsys, ["run", str(cfg), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    assert line.startswith(f"stflow: error: [method] kind = 'py:{BROKEN}:{attr}'"), line
    assert __import__("re").search(expected, line), line


def test_a_method_file_that_raises_on_import(tmp_path, capsys):
    (tmp_path / "bad.py").write_text("raise RuntimeError('no numpy here')\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[method]\nkind = "py:bad.py:M"\n')
    code, line = _one_line(capsys, ["run", str(cfg), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "importing 'bad.py' raised RuntimeError at " in line
    assert "bad.py:1 (in <module>): no numpy here: fix the file" in line


def test_docs_show_the_example_as_it_is():
    import re

    doc = (ROOT / "docs" / "methods.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL)
                if "class HeavyBall" in b]
    code = {ln.split("#")[0].strip() for ln in
            (ROOT / "examples" / "heavy_ball.py").read_text().splitlines()}
    missing = [ln for ln in (x.split("#")[0].strip() for x in block.splitlines())
               if ln and ln not in code]
    assert not missing, f"docs/methods.md shows lines examples/heavy_ball.py lacks: {missing}"
    for link in ("README.md", "docs/peers.md"):
        assert "methods.md" in (ROOT / link).read_text(), link
