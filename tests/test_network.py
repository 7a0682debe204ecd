"""Lossy networks (issue 23): the channel's draws, each rule of the round driver replayed by
hand, bad settings refused, the observer protocol's bits, and simulator == MPI."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from stflow.cli import main
from stflow.compressors import make_compressor
from stflow.engines.driver import LocalExchange, RoundDriver
from stflow.engines.simulate import solve
from stflow.graphs import make_graph
from stflow.methods import Gains, PrimalDualFlow
from stflow.methods.dgd import DGD
from stflow.network import Channel, keyed_uniform
from stflow.output import read_metrics_csv
from stflow.problems import make_problem

CFG = """
[problem]
kind = "quadratic"
agents = {agents}
dim = 3
[graph]
kind = "{graph}"
{graph_extra}
[method]
kind = "{method}"
{method_extra}
[compressor]
spec = "{spec}"
[solver]
scheme = "{scheme}"
step = 1e-3
horizon = {horizon}
record_every = {record_every}
[network]
{network}
"""


def _cfg(path, *, agents=6, graph="ring", graph_extra="", method="observer", method_extra="",
         spec="quantize:bits=4", scheme="euler", horizon=0.2, record_every=20, network=""):
    text = CFG.format(agents=agents, graph=graph, graph_extra=graph_extra,
                      method=method, method_extra=method_extra, spec=spec,
                      scheme=scheme, horizon=horizon, record_every=record_every,
                      network=network)
    if spec is None:  # an uncompressed method: no [compressor] (it would be named unused)
        text = text.replace("[compressor]\nspec = \"None\"\n", "")
        assert "[compressor]" not in text
    path.write_text(text)
    return path


# ------------------------------------------------------------------------ the channel


def test_keyed_draws_are_uniform_and_do_not_depend_on_who_asks():
    u = keyed_uniform(3, 1, 7, np.arange(20000), np.arange(20000) + 1)
    assert abs(u.mean() - 0.5) < 0.01 and abs(np.mean(u < 0.1) - 0.1) < 0.006
    assert u[123] == keyed_uniform(3, 1, 7, [123], [124])[0]
    assert u[123] != keyed_uniform(3, 1, 8, [123], [124])[0]   # another round


def test_loss_rates_of_the_independent_and_bursty_channels():
    g = make_graph("ring", 20, chords=3, seed=0)
    ch = Channel(g, drop=0.1, seed=1)
    lost = np.mean([1 - ch.masks(k).delivered.mean() for k in range(500)])
    assert abs(lost - 0.1) < 0.01
    # Gilbert-Elliott: stationary bad fraction enter / (enter + exit) = 0.05 / 0.55
    ge = Channel(g, burst_enter=0.05, burst_exit=0.5, burst_drop=1.0, seed=1)
    runs = np.array([~ge.masks(k).delivered for k in range(2000)])
    assert abs(runs.mean() - 0.05 / 0.55) < 0.015
    # bursty: a lost message is followed by another loss with probability 1 - exit = 0.5
    follow = (runs[1:] & runs[:-1]).sum() / runs[:-1].sum()
    assert 0.4 < follow < 0.6
    # replayed state (a resumed run asks round 1500 first) equals the state reached in order
    again = Channel(g, burst_enter=0.05, burst_exit=0.5, seed=1)
    assert np.array_equal(~again.masks(1500).delivered, runs[1500])
    sleepy = Channel(g, activation=0.5, seed=2)
    assert abs(np.mean([sleepy.masks(k).awake.mean() for k in range(400)]) - 0.5) < 0.03


def test_schedules_matching_one_peer_and_failures():
    g = make_graph("ring", 8, chords=4, seed=0)
    m = Channel(g, schedule="matching", seed=0)
    for k in range(20):
        up = m.masks(k).up
        deg = np.bincount(g.edges[up].ravel(), minlength=8)
        assert deg.max() == 1  # a matching
    c = Channel(make_graph("complete", 8), schedule="one_peer_exp")
    e = make_graph("complete", 8).edges
    for k in range(3):
        pairs = e[c.masks(k).up]
        assert len(pairs) == 4 and np.all(pairs[:, 0] ^ pairs[:, 1] == 1 << k)
    f = Channel(g, schedule="failures", fail=0.02, recovery=10, seed=0)
    ups = np.array([f.masks(k).up for k in range(3000)])
    # a link is down when it failed in one of the last 10 rounds: 1 - 0.98^10 = 0.183
    assert abs(1 - ups.mean() - (1 - 0.98 ** 10)) < 0.02


# ------------------------------------------------------------------------ hand replay


def _observer(problem, graph):
    comp = make_compressor("identity", problem.dim)
    return PrimalDualFlow("observer", problem, graph, comp, scheme="euler",
                          gains=Gains(alpha=1.0, beta=2.0, eta=1.0, gamma=10.0))


def test_two_lossy_rounds_of_the_observer_replayed_by_hand():
    """Path 0-1-2, identity compressor (64 bits a message), drop 0.5, seed 76. Every
    expected number below is computed here from the SPEC's Euler step."""
    p = make_problem("quadratic", agents=3, dim=1, seed=0)
    g = make_graph("path", 3)
    ch = Channel(g, drop=0.5, seed=76)
    # directed edges: 0->1, 1->2, 1->0, 2->1 (graph.edges then reversed)
    lost = [(~ch.masks(k).delivered).tolist() for k in range(2)]
    assert lost == [[False, True, False, False], [False, False, True, True]]
    # round 0: 1->2 lost, so agent 1 does not commit; round 1: 1->0 and 2->1 lost, so
    # agents 1 and 2 do not commit
    flow = _observer(p, g)
    drv = RoundDriver(flow, LocalExchange(flow), ch)
    state = flow.initial_state(x0=np.array([[1.0], [2.0], [4.0]]))
    h, gm = 0.1, flow.gains
    L = g.laplacian.toarray()
    X, V, Xh = state["X"].copy(), state["V"].copy(), state["Xhat"].copy()
    for k, commit in enumerate(([1, 0, 1], [1, 0, 0])):
        G = p.grad(X)
        Q = (X - Xh) * np.array(commit)[:, None]
        X, V, Xh = (X + h * (-gm.alpha * L @ Xh - gm.beta * V - gm.eta * G),
                    V + h * gm.beta * L @ Xh, Xh + h * gm.gamma * Q)
        state = drv.round(state, k, k * h, h)
        assert np.allclose(state["Xhat"], Xh, rtol=0, atol=1e-15)  # what every holder has
        assert np.allclose(state["X"], X, rtol=0, atol=1e-14)
        assert abs(state["V"].sum()) < 1e-15  # copies equal: sum of V stays 0
    # bits: 64 + 1 commit bit per message, 1 ack bit per link; degrees 1, 2, 1
    sent, p2p = drv.counter.totals()
    assert sent == 2 * ((65 + 1) + (65 + 2) + (65 + 1))
    assert p2p == 2 * ((65 + 1) + (130 + 2) + (65 + 1))


HAND = """
[problem]
kind = "quadratic"
agents = 3
dim = 1
seed = 0
[graph]
kind = "path"
[method]
kind = "observer"
alpha = 1.0
beta = 2.0
eta = 1.0
gamma = 10.0
[compressor]
spec = "identity"
[solver]
scheme = "euler"
step = 0.1
horizon = 0.2
record_every = 1
[init]
x0 = [[1.0], [2.0], [4.0]]
[network]
drop = 0.5
seed = 76
"""


def test_the_hand_replay_on_both_engines(tmp_path, monkeypatch):
    """The two rounds above as a config: the simulator and MPI (P = 1, 2, 3) record the
    relative error of the hand-computed X and the hand-counted bits."""
    monkeypatch.setattr("stflow.output.plot_convergence", lambda *a, **k: None)
    p = make_problem("quadratic", agents=3, dim=1, seed=0)
    g = make_graph("path", 3)
    L = g.laplacian.toarray()
    X, V, Xh = np.array([[1.0], [2.0], [4.0]]), np.zeros((3, 1)), np.zeros((3, 1))
    errors = [np.linalg.norm(X - p.x_star) / (np.sqrt(3) * np.linalg.norm(p.x_star))]
    for commit in ([1, 0, 1], [1, 0, 0]):
        Q = (X - Xh) * np.array(commit)[:, None]
        X, V, Xh = (X + 0.1 * (-1.0 * L @ Xh - 2.0 * V - 1.0 * p.grad(X)),
                    V + 0.1 * 2.0 * L @ Xh, Xh + 0.1 * 10.0 * Q)
        errors.append(np.linalg.norm(X - p.x_star) / (np.sqrt(3) * np.linalg.norm(p.x_star)))
    bits = [0.0, 199 / 3, 2 * 199 / 3]  # (65 + 1) + (65 + 2) + (65 + 1) per round
    cfg = tmp_path / "hand.toml"
    cfg.write_text(HAND)
    assert main(["run", str(cfg), "--out", str(tmp_path / "sim"), "--quiet"]) != 2
    outs = [tmp_path / "sim"]
    for n in (1, 2, 3):
        out = tmp_path / f"mpi{n}"
        proc = subprocess.run([_mpiexec(), "-n", str(n), sys.executable, "-m", "stflow.cli",
                               "run", str(cfg), "--backend", "mpi", "--out", str(out)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode != 2, proc.stderr
        outs.append(out)
    for out in outs:
        rec = read_metrics_csv(out / "metrics.csv")
        assert np.allclose(rec["relative_error"], errors, rtol=1e-12), out
        assert np.allclose(rec["bits_per_agent"], bits, rtol=1e-12), out


def test_two_lossy_rounds_of_dgd_replayed_by_hand():
    """DGD drops a link when either direction is lost, moving its weight to the diagonal."""
    p = make_problem("quadratic", agents=3, dim=2, seed=1)
    g = make_graph("path", 3)
    ch = Channel(g, drop=0.5, seed=76)
    m = DGD(p, g, lr=0.1)
    drv = RoundDriver(m, LocalExchange(m), ch)
    state = m.initial_state(x0=np.arange(6.0).reshape(3, 2))
    W = m.mixing.toarray()
    X = state["X"].copy()
    # round 0: 1->2 lost, so link (1, 2) is out; round 1: 1->0 and 2->1 lost: both out
    for k, out in enumerate(([(1, 2)], [(0, 1), (1, 2)])):
        Wk = W.copy()
        for a, b in out:
            Wk[a, a] += Wk[a, b]
            Wk[b, b] += Wk[b, a]
            Wk[a, b] = Wk[b, a] = 0.0
        X = Wk @ X - 0.1 * p.grad(X)
        state = drv.round(state, k, float(k), 1.0)
        assert np.allclose(state["X"], X, rtol=0, atol=1e-14)
    assert drv.counter.totals()[0] == 2 * (3 * 128 + 4)  # no commit bit, 4 acks


def test_an_asleep_agent_keeps_its_rows_and_sends_nothing():
    p = make_problem("quadratic", agents=4, dim=2, seed=0)
    g = make_graph("ring", 4)
    ch = Channel(g, activation=0.5, seed=0)
    asleep = ~ch.masks(0).awake
    assert asleep.any() and not asleep.all()
    flow = _observer(p, g)
    drv = RoundDriver(flow, LocalExchange(flow), ch)
    state = flow.initial_state(x0=np.ones((4, 2)))
    new = drv.round({k: v.copy() for k, v in state.items()}, 0, 0.0, 0.01)
    for key in ("X", "V", "Xhat"):
        assert np.array_equal(new[key][asleep], state[key][asleep])
    assert not np.array_equal(new["X"][~asleep], state["X"][~asleep])
    # an asleep agent pays only its 2 acknowledgement bits
    assert drv.counter.totals()[0] == (~asleep).sum() * (64 * 2 + 1 + 2) + asleep.sum() * 2


# ------------------------------------------------------------------------ bad settings


@pytest.mark.parametrize("network, graph_extra, method, graph, needle", [
    ("drop = 1.0", "", "observer", "ring", "[network] drop must be a number in [0, 1)"),
    ("drop = -0.1", "", "observer", "ring", "[network] drop must be a number in [0, 1)"),
    ("activation = 0", "", "observer", "ring", "[network] activation must be a number in (0, 1]"),
    ("", 'schedule = "one_peer_exp"', "dgd", "ring", "needs the edge"),
    ("", 'schedule = "matching"', "observer", "ring", "cannot apply to [method] kind"),
    ("", 'schedule = "weekly"', "dgd", "ring", "[graph] schedule must be"),
])
def test_bad_channel_settings_are_one_line_exit_2(tmp_path, capsys, network, graph_extra,
                                                   method, graph, needle):
    cfg = _cfg(tmp_path / "c.toml", network=network, graph_extra=graph_extra, method=method,
               agents=8, graph=graph, spec=None if method == "dgd" else "topk:k=2")
    code = main(["run", str(cfg), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o" / "metrics.csv").exists()


def test_bad_channel_settings_on_mpi_are_one_line_exit_2(tmp_path):
    cfg = _cfg(tmp_path / "c.toml", graph_extra='schedule = "matching"', agents=6)
    proc = subprocess.run([_mpiexec(), "-n", "2", sys.executable, "-m", "stflow.cli", "run",
                           str(cfg), "--backend", "mpi", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, err
    assert 'schedule = "matching" cannot apply to [method] kind = "observer"' in err


# ------------------------------------------------------------------------ the protocol


def _e2_like(drop, spec="quantize:bits=4", horizon=12.0, seed=0, other=False):
    if other:  # a problem the protocol was not tuned on
        problem = make_problem("quadratic", agents=16, dim=8, seed=3)
        graph = make_graph("erdos_renyi", 16, seed=3)
        gains = Gains(alpha=10.0, beta=10.0, eta=5.0, gamma=300.0)
    else:
        problem = make_problem("least_squares", agents=20, dim=10, seed=0)
        graph = make_graph("ring", 20, chords=3, seed=0)
        gains = Gains(alpha=10.0, beta=10.0, eta=2.0, gamma=300.0)
    flow = PrimalDualFlow("observer", problem, graph, make_compressor(spec, problem.dim),
                          gains=gains, scheme="euler")
    ch = Channel(graph, drop=drop, seed=seed) if drop else None
    return solve(flow, step=1e-3, horizon=horizon, record_every=10, tolerance=1e-8,
                 channel=ch)


def _bits_to(sol, tol):
    r = sol.records
    i = np.nonzero(r["relative_error"] <= tol)[0]
    return float(r["bits_per_agent"][i[0]]) if i.size else np.inf


def test_observer_protocol_reaches_1e6_at_10pct_loss_within_1_1x_the_bits():
    free = _e2_like(0.0)
    lossy = _e2_like(0.1)
    ratio = _bits_to(lossy, 1e-6) / _bits_to(free, 1e-6)
    assert ratio <= 1.1, ratio
    assert lossy.final_relative_error < 1e-7  # exact: the sum of V stays 0
    assert abs(lossy.state["V"].sum(axis=0)).max() < 1e-9
    worse = _e2_like(0.2)  # still exact at 20 % loss
    assert worse.final_relative_error < 1e-7 and _bits_to(worse, 1e-6) / _bits_to(
        free, 1e-6) <= 1.1


def test_observer_protocol_on_a_problem_it_was_not_tuned_on():
    free = _e2_like(0.0, other=True, horizon=8.0)
    for drop in (0.1, 0.2):
        lossy = _e2_like(drop, other=True, horizon=8.0)
        assert _bits_to(lossy, 1e-6) / _bits_to(free, 1e-6) <= 1.1, drop
        assert lossy.final_relative_error < 1e-9


# ------------------------------------------------------------------------ MPI


_MPI_CASES = [
    ("observer", "quantize:bits=4", "euler", "drop = 0.2\nactivation = 0.8", ""),
    ("observer", "topk:k=2", "predict", "burst_enter = 0.05\nburst_exit = 0.3", ""),
    ("dgd", "identity", "euler", "drop = 0.1\nactivation = 0.9", ""),
    ("gradient_tracking", "identity", "euler", "drop = 0.1", 'schedule = "matching"'),
    ("uncompressed", "identity", "predict", "drop = 0.1", ""),
    ("choco", "topk:k=2", "euler", "drop = 0.1",
     'schedule = "failures"\nfail = 0.05\nrecovery = 3'),
    ("lead", "quantize:bits=4", "euler", "activation = 0.7", ""),
]
_DRIVER = (
    "import sys; import stflow.output as o; o.plot_convergence = lambda *a, **k: None; "
    "from stflow.cli import main; a = sys.argv[1:]; "
    "codes = [main(['run', c, '--backend', 'mpi', '--out', o]) for c, o in zip(a[::2], a[1::2])];"
    " print('codes', codes)"
)


def _mpiexec():
    exe = shutil.which("mpiexec")
    assert exe, 'mpiexec not found: install it with `pip install -e ".[all]"`'
    return exe


def test_simulator_equals_mpi_with_drops_sleep_and_schedules(tmp_path, monkeypatch):
    monkeypatch.setattr("stflow.output.plot_convergence", lambda *a, **k: None)
    cases = []
    for i, (method, spec, scheme, net, gx) in enumerate(_MPI_CASES):
        cfg = _cfg(tmp_path / f"c{i}.toml", method=method, spec=spec, scheme=scheme,
                   network=net, graph_extra=gx, agents=7)
        assert main(["run", str(cfg), "--out", str(tmp_path / f"sim{i}"), "--quiet"]) != 2
        cases.append(cfg)
    for p in (1, 2, 3):
        args = []
        for i, cfg in enumerate(cases):
            args += [str(cfg), str(tmp_path / f"mpi{p}-{i}")]
        proc = subprocess.run([_mpiexec(), "-n", str(p), sys.executable, "-c", _DRIVER, *args],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        for i in range(len(cases)):
            a = read_metrics_csv(tmp_path / f"sim{i}" / "metrics.csv")
            b = read_metrics_csv(tmp_path / f"mpi{p}-{i}" / "metrics.csv")
            for col in a:
                x, y = np.nan_to_num(a[col]), np.nan_to_num(b[col])
                assert np.allclose(x, y, rtol=1e-9, atol=1e-300), (p, _MPI_CASES[i], col)
            assert a["bits_per_agent"][-1] > 0


def test_resume_keeps_the_bursty_channels_state(tmp_path):
    cfg = _cfg(tmp_path / "c.toml", horizon=0.2,
               network="burst_enter = 0.05\nburst_exit = 0.3\ndrop = 0.05")
    whole, part = tmp_path / "whole", tmp_path / "part"
    run = [_mpiexec(), "-n", "2", sys.executable, "-m", "stflow.cli"]
    proc = subprocess.run([*run, "run", cfg, "--backend", "mpi", "--out", whole],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    args = ["run", cfg, "--backend", "mpi", "--out", part, "--checkpoint-every", "50"]
    import os

    env = {**os.environ, "STFLOW_MPI_STOP_AFTER": "130"}
    proc = subprocess.run([*run, *args], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode != 0
    proc = subprocess.run([*run, *args, "--resume"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    assert (whole / "metrics.csv").read_bytes() == (part / "metrics.csv").read_bytes()
    assert json.loads((whole / "summary.json").read_text())["bits_per_agent"] == json.loads(
        (part / "summary.json").read_text())["bits_per_agent"]


# -- auto gains on a lossy channel ------------------------------------------------------


def test_commit_rate_by_hand():
    from stflow.network import commit_rate

    ring = make_graph("ring", 6)  # every agent has 2 neighbours
    assert commit_rate({}, {}, ring) == 1.0
    assert commit_rate({"drop": 0.2}, {}, ring) == pytest.approx(0.8**2, rel=1e-15)
    # bursts: the stationary bad share 0.05 / (0.05 + 0.5), loss 1 there and 0.1 elsewhere
    bad = 0.05 / 0.55
    p = bad * 1.0 + (1 - bad) * 0.1
    assert commit_rate({"drop": 0.1, "burst_enter": 0.05, "burst_exit": 0.5,
                        "burst_drop": 1.0}, {}, ring) == pytest.approx((1 - p) ** 2, rel=1e-15)
    # link failures: a link is up when none of the last 10 rounds drew a failure
    assert commit_rate({}, {"schedule": "failures", "fail": 0.05, "recovery": 10},
                       ring) == pytest.approx(0.95**20, rel=1e-15)
    # one peer a round; sleep is left out (a sleeping agent pauses whole)
    assert commit_rate({"drop": 0.3, "activation": 0.5}, {"schedule": "matching"},
                       ring) == pytest.approx(0.7, rel=1e-15)
    chords = make_graph("ring", 20, chords=3, seed=0)  # E2's graph: largest degree 3
    assert commit_rate({"drop": 0.2}, {}, chords) == pytest.approx(0.8**3, rel=1e-15)


def _auto(kind="observer", scheme="predict", **network):
    import stflow

    raw = {"problem": {"kind": "quadratic", "agents": 6, "dim": 4},
           "graph": {"kind": "ring"}, "method": {"kind": kind},
           "compressor": {"spec": "quantize:bits=4" if kind == "observer" else "none"},
           "network": network,
           "solver": {"scheme": scheme, "step": 0.001, "horizon": 1.0, "record_every": 50}}
    return stflow.resolve_config(raw)


def test_auto_gains_slow_the_observer_flow_by_the_commit_rate_and_it_converges():
    """Loss-free "auto" gains diverged at 20 % loss (quadratic, N = 6, ring, 4-bit
    quantizer, predict: relative error 2.7e5, measured before this rule); scaled by
    q = 0.8^2 the run reaches 1e-6 within 1000 rounds. gamma and the uncompressed flow
    (no copies) are unchanged."""
    import stflow

    free, _ = stflow.run_config(_auto())
    lossy, sol = stflow.run_config(_auto(drop=0.2))
    q = 0.8**2
    for k in ("alpha", "beta", "eta"):
        assert lossy.config["method"][k] == pytest.approx(q * free.config["method"][k],
                                                          rel=1e-14)
    assert lossy.config["method"]["gamma"] == free.config["method"]["gamma"] == 500.0
    assert sol.status != "diverged" and sol.records["relative_error"][-1] < 1e-6
    raw_free, _ = stflow.run_config(_auto("uncompressed"))
    raw_lossy, _ = stflow.run_config(_auto("uncompressed", drop=0.2))
    assert raw_lossy.config["method"] == raw_free.config["method"]


def test_a_divergence_on_a_lossy_channel_names_the_commit_rate():
    import stflow

    cfg = _auto(drop=0.3)
    free, _ = stflow.run_config(_auto())
    for k in ("alpha", "beta", "eta"):  # the loss-free gains, set by hand
        cfg["method"][k] = free.config["method"][k]
    _, sol = stflow.run_config(cfg)
    assert sol.status == "diverged"
    assert "copies move in 0.49 of the rounds (its commit rate" in sol.message
    assert "about 0.49 times as large" in sol.message


#: quantize:bits=4 at d = 3: a float64 scale and 3 levels of 4 bits; the observer adds the
#: commit bit, and each of a ring agent's 2 links its acknowledgement (docs/network.md, Bits)
_B, _COMMIT, _DEG = 64 + 3 * 4, 1, 2


def _both_engines(tmp_path, cfg):
    """(summary, metrics, stdout) of the simulator and of ``mpiexec -n 2``."""
    sim, mpi = tmp_path / "sim", tmp_path / "mpi"
    got = []
    for out, pre in ((sim, [sys.executable]), (mpi, [_mpiexec(), "-n", "2", sys.executable])):
        args = ["--backend", "mpi"] if out == mpi else []
        proc = subprocess.run([*pre, "-m", "stflow.cli", "run", str(cfg), "--out", str(out),
                               "--quiet", "--no-figure", *args],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode in (0, 1, 3), proc.stderr
        got.append((json.loads((out / "summary.json").read_text()),
                    read_metrics_csv(out / "metrics.csv"), proc.stdout))
    return got


@pytest.mark.parametrize("network", ["drop = 0.3", "drop = 0.3\nactivation = 0.7\nseed = 5"])
def test_summary_bits_are_the_counted_bits_on_both_engines(tmp_path, network):
    """MPI's summary.json and stdout line said steps * bits_per_message (no acknowledgement
    or commit bits, lost messages' rounds as if perfect) while its metrics.csv and the
    simulator counted the channel's bits. Every agent always has its 2 links (no schedule),
    so agent i pays [awake_i] (B + 1) + 2 a round, whatever is lost."""
    cfg = _cfg(tmp_path / "c.toml", horizon=0.2, record_every=30, network=network)
    steps = 200  # rows at 0, 30, ..., 180 and the last step, 200
    ch = Channel(make_graph("ring", 6), drop=0.3, seed=5,
                 activation=0.7 if "activation" in network else 1.0)
    awake = sum(int(ch.masks(k).awake.sum()) for k in range(steps))
    expected = (awake * (_B + _COMMIT) + steps * 6 * _DEG) / 6
    if "activation" not in network:
        assert expected == steps * (_B + _COMMIT + _DEG)  # 15 800
    else:
        assert awake < steps * 6  # some agents slept
    for summary, rows, stdout in _both_engines(tmp_path, cfg):
        assert summary["bits_per_message"] == _B and summary["steps"] == steps
        assert rows["step"][-1] == steps
        assert summary["bits_per_agent"] == rows["bits_per_agent"][-1] == expected
        assert f"; {expected:.4g} bits per agent;" in stdout


def test_a_diverged_lossy_run_counts_the_bits_up_to_its_steps_on_both_engines(tmp_path):
    """A diverged run ends between records: summary.json's steps is the step the blow-up was
    seen at, after the last finite row (docs/cli.md), and its bits count those steps."""
    cfg = _cfg(tmp_path / "c.toml", horizon=100.0, record_every=30, network="drop = 0.3",
               method_extra="alpha = 2.0\nbeta = 2.0\neta = 1.0\ngamma = 50.0")
    cfg.write_text(cfg.read_text().replace("step = 1e-3", "step = 0.2"))
    (sim, sim_rows, _), (mpi, mpi_rows, _) = _both_engines(tmp_path, cfg)
    assert sim["status"] == mpi["status"] == "diverged"
    assert sim["steps"] == mpi["steps"] > sim["last_recorded_step"] == mpi["last_recorded_step"]
    assert sim["bits_per_agent"] == mpi["bits_per_agent"] == sim["steps"] * (_B + _COMMIT + _DEG)
    assert sim_rows["bits_per_agent"][-1] == mpi_rows["bits_per_agent"][-1]


def test_a_peer_that_diverges_at_its_auto_lr_is_not_told_to_use_auto():
    """LEAD at lr = "auto" under 10-round link outages (quadratic N = 6, 4-bit quantizer,
    5 % failures) diverges; the hint used to say 'lower lr (e.g. lr = "auto" = ...)' with
    that very value."""
    import stflow

    raw = {"problem": {"kind": "quadratic", "agents": 6, "dim": 4},
           "graph": {"kind": "ring", "schedule": "failures", "fail": 0.05, "recovery": 10},
           "method": {"kind": "lead"}, "compressor": {"spec": "quantize:bits=4"},
           "solver": {"scheme": "euler", "step": 1.0, "horizon": 2000.0, "record_every": 50}}
    _, sol = stflow.run_config(stflow.resolve_config(raw))
    assert sol.status == "diverged"
    assert 'lr = 0.162 is at or below "auto" (0.162; lr * L_f = 0.5)' in sol.message
    assert 'e.g. lr = "auto"' not in sol.message
    assert "copies move in 0.36 of the rounds" in sol.message  # (0.95 ** 10) ** 2
