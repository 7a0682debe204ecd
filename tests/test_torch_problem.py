"""``kind = "torch"``: any PyTorch model on a data table (docs/torch.md).

The example CNN's batched per-agent gradients against a plain PyTorch loop, float32 against
float64, the ``mse`` loss and a ``py:`` loss against hand-computed values, ``stflow run``,
``stflow tune`` and ``mpiexec -n 2 ... --backend mpi`` on the example (short horizons), bad
model code as one line with exit 2, and a model too large for the machine refused before
it is allocated.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stflow.cli import main
from stflow.errors import InputError

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cnn_digits.toml"
NET = ROOT / "examples" / "cnn_digits.py"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread, as with OMP_NUM_THREADS=1: these models are tiny, and torch's
    thread pool on a loaded 2-core machine made a 100-round run 20x slower (docs/torch.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _short_config(folder: Path, rounds: int, **problem) -> Path:
    """A copy of the example with ``rounds`` rounds and ``problem`` keys replaced, its
    model file copied next to it (the copy's relative ``py:`` path must resolve there)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(NET, folder / NET.name)
    text = EXAMPLE.read_text()
    text = re.sub(r"(?m)^horizon = .*$", f"horizon = {float(rounds)}", text)
    for key, value in problem.items():
        line = f"{key} = {json.dumps(value)}"
        text, n = re.subn(rf"(?m)^{key} = .*$", line, text)
        if not n:
            text = text.replace("[problem]\n", f"[problem]\n{line}\n", 1)
    path = folder / "cnn.toml"
    path.write_text(text)
    return path


def _problem(**keys):
    from stflow.config import build_problem, resolve_config

    section = {"kind": "torch", "model": f"py:{NET}:make:channels=4", "dataset": "digits",
               "intercept": False, "agents": 3, "test_fraction": 0.25, "seed": 3, **keys}
    return build_problem(resolve_config({"problem": section})["problem"])


def _loop_gradient(x, F, y, seed):
    """Gradient of the summed cross-entropy of ONE fresh CNN on rows (F, y), by autograd."""
    sys.path.insert(0, str(NET.parent))
    try:
        import cnn_digits
    finally:
        sys.path.remove(str(NET.parent))
    default = torch.get_default_dtype()
    torch.manual_seed(seed)
    torch.set_default_dtype(torch.float64)
    try:
        net = cnn_digits.make(in_features=64, classes=10, channels=4)
    finally:
        torch.set_default_dtype(default)
    init = torch.nn.utils.parameters_to_vector(net.parameters()).detach().numpy().copy()
    torch.nn.utils.vector_to_parameters(torch.tensor(x), net.parameters())
    loss = torch.nn.functional.cross_entropy(net(torch.tensor(F)), torch.tensor(y),
                                             reduction="sum")
    grads = torch.autograd.grad(loss, list(net.parameters()))
    return torch.cat([g.reshape(-1) for g in grads]).numpy(), init


def test_cnn_gradients_equal_a_plain_pytorch_loop_per_agent():
    p = _problem(batch=8)
    assert p.dim == 4 * 9 + 4 + 10 * 4 * 36 + 10 and p.n_agents == 3
    assert [name for name, _ in p.param_shapes] == ["1.weight", "1.bias", "4.weight",
                                                     "4.bias"]
    X = p.initial_point() + 0.1 * np.random.default_rng(0).standard_normal((3, p.dim))
    G = p.grad(X)
    S = p.stochastic_grad(X, 5)
    rows = p._sampler.rows(5)
    for i in range(3):
        m = int(p.rows_per_agent[i])
        ref, init = _loop_gradient(X[i], p.features[i, :m], p.labels[i, :m], seed=3)
        assert np.max(np.abs(G[i] - ref)) <= 1e-10 * np.abs(ref).max()
        # the batch of draw 5, scaled by m_i / B (SPEC section 7)
        ref_b, _ = _loop_gradient(X[i], p.features[i, rows[i]], p.labels[i, rows[i]], seed=3)
        assert np.max(np.abs(S[i] - ref_b * m / 8)) <= 1e-10 * np.abs(ref_b).max() * m / 8
        # x_i(0): the factory's parameters after torch.manual_seed(seed), in float64
        assert np.array_equal(p.initial_point(), init)
    # a block of agents (one MPI rank) gives its rows of the whole problem's gradients
    block = p.subset(slice(1, 3))
    assert np.array_equal(block.grad(X[1:]), G[1:])
    assert np.array_equal(block.stochastic_grad(X[1:], 5), S[1:])


def test_float32_gradients_are_float64_ones_to_1e_5():
    p64, p32 = _problem(), _problem(dtype="float32")
    X = p64.initial_point() + 0.1 * np.random.default_rng(1).standard_normal((3, p64.dim))
    G64, G32 = p64.grad(X), p32.grad(X)
    assert G32.dtype == np.float64  # cast back: the state stays float64
    rel = np.linalg.norm(G32 - G64, axis=1) / np.linalg.norm(G64, axis=1)
    assert rel.max() <= 1e-5 and rel.max() > 0  # float32 really ran
    np.testing.assert_allclose(p32.values(X), p64.values(X), rtol=1e-5)
    assert np.array_equal(p32.initial_point(), p64.initial_point())


def test_mse_loss_is_the_hand_computed_mean_square_to_one_hot():
    # Linear(2, 3): outputs W a + b; per row, mean over the 3 outputs of (o - onehot)^2
    F = np.array([[[1.0, 2.0], [0.5, -1.0], [0.0, 0.0]], [[2.0, 0.0], [1.0, 1.0], [3.0, 1.0]]])
    y = np.array([[0, 2, 0], [1, 1, 2]])
    from stflow.problems.torch_model import TorchProblem

    p = TorchProblem(F, y, model=lambda in_features, classes: torch.nn.Linear(2, 3),
                     classes=3, loss="mse", rows_per_agent=[2, 3])
    W = np.array([[0.5, -1.0], [1.0, 0.0], [0.0, 2.0]])
    b = np.array([0.1, 0.0, -0.2])
    x = np.concatenate([W.ravel(), b])
    expected, grads = [], []
    for i, m in enumerate((2, 3)):
        out = F[i, :m] @ W.T + b
        r = out - np.eye(3)[y[i, :m]]
        expected.append(np.sum(r ** 2) / 3)  # rows summed, outputs averaged
        grads.append(np.concatenate([(2 / 3 * r.T @ F[i, :m]).ravel(), 2 / 3 * r.sum(0)]))
    # agent 0, row 0: out (-1.4, 1, 3.8) vs (1, 0, 0); row 1: (1.35, 0.5, -2.2) vs (0, 0, 1)
    assert expected[0] == pytest.approx((2.4**2 + 1 + 3.8**2 + 1.35**2 + 0.25 + 3.2**2) / 3)
    np.testing.assert_allclose(p.values(np.stack([x, x])), expected, rtol=1e-14)
    np.testing.assert_allclose(p.grad(np.stack([x, x])), grads, rtol=1e-13, atol=1e-14)


def test_a_py_loss_equals_the_builtin_and_must_be_a_mean(tmp_path):
    (tmp_path / "losses.py").write_text(
        "import torch.nn.functional as F\n"
        "def ce(outputs, targets):\n"
        "    return F.cross_entropy(outputs, targets)\n"
        "def summed(outputs, targets):\n"
        "    return F.cross_entropy(outputs, targets, reduction='sum')\n"
    )
    ref = _problem(batch=8)
    mine = _problem(batch=8, loss=f"py:{tmp_path / 'losses.py'}:ce")
    X = ref.initial_point() + 0.1 * np.random.default_rng(2).standard_normal((3, ref.dim))
    np.testing.assert_allclose(mine.values(X), ref.values(X), rtol=1e-12)
    np.testing.assert_allclose(mine.stochastic_grad(X, 1), ref.stochastic_grad(X, 1),
                               rtol=1e-10, atol=1e-12)
    with pytest.raises(InputError, match=r"summed'.* is not a mean over rows: .*return the "
                                         "mean of a per-row loss"):
        _problem(loss=f"py:{tmp_path / 'losses.py'}:summed")


def test_stflow_run_trains_the_cnn_and_float32_converges_alike(tmp_path, monkeypatch):
    # 100 rounds of the example (200 in the file): the mean agent test accuracy is 0.964
    cfg = _short_config(tmp_path / "cfg", 100)
    monkeypatch.chdir(tmp_path)  # model = "py:cnn_digits.py:..." is found next to the config
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == "converged"
    assert summary["config"]["problem"]["model"].startswith(f"py:{cfg.parent}")
    from stflow.output import read_metrics_csv

    m64 = read_metrics_csv(tmp_path / "out" / "metrics.csv")
    assert m64["mean_agent_test_accuracy"][-1] >= 0.93
    cfg32 = _short_config(tmp_path / "cfg32", 100, dtype="float32")
    assert main(["run", str(cfg32), "--out", str(tmp_path / "out32"), "--quiet"]) == 0
    m32 = read_metrics_csv(tmp_path / "out32" / "metrics.csv")
    assert m32["mean_agent_test_accuracy"][-1] >= 0.93
    # the same run to float32 rounding: accuracies within 1 %, losses within 1 % relative
    assert np.max(np.abs(m32["mean_agent_test_accuracy"] - m64["mean_agent_test_accuracy"])) \
        <= 0.01
    np.testing.assert_allclose(m32["train_loss"], m64["train_loss"], rtol=1e-2)


def test_stflow_tune_runs_on_the_cnn(tmp_path):
    cfg = _short_config(tmp_path / "cfg", 30)
    code = main(["tune", str(cfg), "--budget", "2", "--target-accuracy", "0.7", "--out",
                 str(tmp_path / "tune"), "--quiet"])
    assert code == 0
    tuning = json.loads((tmp_path / "tune" / "tuning.json").read_text())
    assert tuning["method"] == "choco" and tuning["evaluations"] == 2
    assert tuning["rounds_to_target"] is not None and tuning["rounds_to_target"] <= 30


def test_mpi_backend_equals_the_simulator(tmp_path):
    exe = shutil.which("mpiexec")
    assert exe, 'mpiexec not found: install it with `pip install -e ".[all]"`'
    cfg = _short_config(tmp_path / "cfg", 40)
    assert main(["run", str(cfg), "--out", str(tmp_path / "sim"), "--quiet"]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([exe, "-n", "2", sys.executable, "-m", "stflow.cli", "run", str(cfg),
                           "--out", str(tmp_path / "mpi"), "--backend", "mpi", "--quiet"],
                          capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from stflow.output import read_metrics_csv

    a = read_metrics_csv(tmp_path / "sim" / "metrics.csv")
    b = read_metrics_csv(tmp_path / "mpi" / "metrics.csv")
    assert a.keys() == b.keys() and len(a["step"]) == 5
    for col in a:
        x, y = np.nan_to_num(a[col]), np.nan_to_num(b[col])
        np.testing.assert_allclose(y, x, rtol=1e-6, atol=0, err_msg=col)
    assert a["mean_agent_test_accuracy"][-1] > 0.8  # it trained


_BAD = {
    "raises": ("def make(in_features, classes):\n    raise ValueError('no such layer')\n",
               r"make\(in_features=64, classes=10\) raised ValueError at \S*net.py:2 \(in make\): "
               r"no such layer: fix the factory"),
    "not_a_module": ("def make(in_features, classes):\n    return 3\n",
                     r"returned int, not a torch.nn.Module: return the network"),
    "wrong_shape": ("import torch\ndef make(in_features, classes):\n"
                    "    return torch.nn.Linear(in_features, classes + 1)\n",
                    r"the forward returned \(4, 11\) for a batch of shape \(4, 64\): return "
                    r"\(B, classes\) = \(4, 10\)"),
    "nan": ("import torch\nclass Net(torch.nn.Linear):\n"
            "    def forward(self, x):\n        return super().forward(x) / 0.0 * 0.0\n"
            "def make(in_features, classes):\n    return Net(in_features, classes)\n",
            r"the forward returned NaN or inf at the initial point"),
    "exits": ("import sys\ndef make(in_features, classes):\n    sys.exit(3)\n",
              r"raised SystemExit\(3\) at \S*net.py:3 \(in make\) \(user code must not exit the "
              r"program\)"),
}


@pytest.mark.parametrize("case", sorted(_BAD))
def test_bad_model_code_is_one_line_exit_2(case, tmp_path, capsys):
    code, message = _BAD[case]
    (tmp_path / "net.py").write_text(code)
    (tmp_path / "run.toml").write_text(
        '[problem]\nkind = "torch"\nmodel = "py:net.py:make"\nintercept = false\nagents = 3\n'
        '[method]\nkind = "dgd"\nlr = 0.001\n[solver]\nstep = 1.0\nhorizon = 2.0\n'
        "target_accuracy = 0.5\n")
    assert main(["run", str(tmp_path / "run.toml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"[problem] model = 'py:{tmp_path / 'net.py'}:make'" in err, err
    assert re.search(message, err), err


def test_missing_model_names_the_key(tmp_path, capsys):
    (tmp_path / "run.toml").write_text('[problem]\nkind = "torch"\n[method]\nkind = "dgd"\n')
    assert main(["run", str(tmp_path / "run.toml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert '[problem] model is required for kind = "torch"' in err and "py:net.py:make" in err


@pytest.mark.parametrize("problem", [
    '[problem]\nkind = "mlp"\nhidden = [100000, 100000]\nagents = 8\n',
    '[problem]\nkind = "torch"\nmodel = "py:big.py:make"\nagents = 8\n',
])
def test_a_model_too_large_for_the_machine_is_refused_before_allocation(problem, tmp_path,
                                                                        capsys):
    (tmp_path / "big.py").write_text(
        "import torch\ndef make(in_features, classes):\n"
        "    return torch.nn.Sequential(torch.nn.Linear(in_features, 100000),\n"
        "                               torch.nn.Linear(100000, 100000),\n"
        "                               torch.nn.Linear(100000, classes))\n")
    (tmp_path / "run.toml").write_text(problem + '[method]\nkind = "dgd"\n[solver]\nstep = 1.0\n'
                                       "horizon = 2.0\ntarget_accuracy = 0.5\n")
    d = 65 * 100000 + 100000 + 100000 * 100000 + 100000 + 100000 * 10 + 10
    assert main(["run", str(tmp_path / "run.toml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"agents = 8 copies of a model with d = {d:,} parameters" in err, err
    assert "lower agents or the model's size" in err
    # the estimate: 8 agents x d x 4 float64 copies (+ the model) + 12 N d of state
    from stflow.config import estimate_memory, load_config

    est = estimate_memory(load_config(tmp_path / "run.toml"))
    assert est["problem"] == 8 * 8 * d * 4 + 8 * d and est["state"] == 8 * 12 * 8 * d
