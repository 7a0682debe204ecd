"""Property-based fuzzing of `stflow run` (issue 10): configs, compressor specs and data
files, most of them wrong in one place. Every run, in-process through `stflow.cli.main`,
ends with exit 2 and one error line, or with a valid result; never a traceback (exit 4),
never a hang. Sizes stay small (N <= 8, d <= 6, at most a few hundred steps), examples are
derandomized so CI is reproducible.
"""

import io
import json
import math
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stflow.cli import main
from stflow.output import read_metrics_csv
from stflow.status import EXIT_CODES

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

BASE = {
    "problem": {"kind": "quadratic", "agents": 4, "dim": 3, "seed": 0},
    "graph": {"kind": "ring"},
    "method": {"kind": "observer", "alpha": 2.0, "beta": 2.0, "eta": 1.0, "gamma": 50.0},
    "compressor": {"spec": "topk:k=2"},
    "solver": {"step": 0.01, "horizon": 2.0, "record_every": 20, "tolerance": 1e-8},
}


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON escapes are valid TOML basic-string escapes
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def to_toml(cfg: dict) -> str:
    lines = []
    for section, keys in cfg.items():
        lines.append(f"[{json.dumps(section)}]")
        lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def check_outcome(tmp_path: Path, argv_tail, capsys) -> int:
    """Run `stflow run`, assert the contract of issue 10, return the exit code."""
    out = tmp_path / f"out{time.monotonic_ns()}"
    start = time.perf_counter()
    code = main(["run", *argv_tail, "--out", str(out), "--quiet", "--no-figure"])
    elapsed = time.perf_counter() - start
    cap = capsys.readouterr()
    assert elapsed < 30, f"took {elapsed:.1f} s"
    assert "Traceback" not in cap.err + cap.out
    assert code != 4, cap.err
    if code == 2:
        errors = [ln for ln in cap.err.splitlines() if ln.startswith("stflow: error:")]
        assert len(errors) == 1 and cap.err.strip().splitlines()[-1] == errors[0], cap.err
        assert not out.exists() or not any(out.iterdir())
        return code
    assert code in (0, 1, 3), cap.err
    summary = json.loads((out / "summary.json").read_text())
    assert EXIT_CODES[summary["status"]] == code == summary["exit_code"]
    metrics = read_metrics_csv(out / "metrics.csv")
    assert metrics["step"].size >= 1 and metrics["step"][0] == 0
    assert summary["last_recorded_step"] == int(metrics["step"][-1])
    return code


# -- configs: the base config, wrong in (at most) one place ---------------------------------
BAD_VALUES = st.sampled_from(
    [0, -1, 1, 2, 7, 10**30, 2**63 - 1, 0.0, -0.5, 1e-300, 1e300, math.nan, math.inf,
     -math.inf, True, "", "auto", "x", "ring", "topk:k=1", [1, 2], [[0, 1]], [], {"a": 1}]
)
KEYS = {
    "problem": ["kind", "agents", "dim", "seed", "data", "regularization", "samples",
                "dataset", "target", "standardize", "intercept", "test_fraction"],
    "graph": ["kind", "edges", "weights", "seed", "p", "radius", "chords"],
    "method": ["kind", "alpha", "beta", "eta", "gamma", "lr"],
    "compressor": ["spec"],
    "solver": ["scheme", "step", "horizon", "record_every", "tolerance"],
    "init": ["x0", "v0"],
}
GOOD_VALUES = {
    ("problem", "kind"): ["quadratic", "least_squares", "logistic"],
    ("graph", "kind"): ["ring", "path", "star", "complete", "grid", "erdos_renyi",
                        "geometric"],
    ("method", "kind"): ["uncompressed", "direct", "observer", "dgd", "gradient_tracking",
                       "nids", "choco", "lead"],
    ("compressor", "spec"): ["identity", "quantize:bits=3", "sign", "randk:k=1",
                             "scalarize:basis=cyclic", "fixedquant:step=0.1",
                             "topk:k=1|quantize:bits=4"],
    ("solver", "scheme"): ["euler", "predict", "continuous"],
}


@st.composite
def mutated_config(draw):
    cfg = json.loads(json.dumps(BASE))
    where = draw(st.sampled_from(["none", "value", "good", "unknown_key", "unknown_section",
                                  "drop_section"]))
    section = draw(st.sampled_from(sorted(KEYS)))
    if where == "value":
        cfg.setdefault(section, {})[draw(st.sampled_from(KEYS[section]))] = draw(BAD_VALUES)
    elif where == "good":
        key = draw(st.sampled_from(sorted(GOOD_VALUES)))
        cfg[key[0]][key[1]] = draw(st.sampled_from(GOOD_VALUES[key]))
    elif where == "unknown_key":
        cfg.setdefault(section, {})[draw(st.sampled_from(["stepsize", "n", "lead_alpha",
                                                          "Agents", ""]))] = 1
    elif where == "unknown_section":
        cfg[draw(st.sampled_from(["solve", "Problem", "network", ""]))] = {"a": 1}
    elif where == "drop_section":
        cfg.pop(section, None)
    return cfg


@SETTINGS
@given(cfg=mutated_config())
def test_fuzz_configs(tmp_path, capsys, cfg):
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    check_outcome(tmp_path, [str(path)], capsys)


@SETTINGS
@given(data=st.binary(max_size=200), cut=st.integers(0, 400))
def test_fuzz_config_bytes(tmp_path, capsys, data, cut):
    """Truncated configs and random bytes spliced into a valid one."""
    text = to_toml(BASE).encode()
    path = tmp_path / "c.toml"
    path.write_bytes(text[:cut] + data + text[cut:] if data else text[:cut])
    check_outcome(tmp_path, [str(path)], capsys)


# -- compressor specs ----------------------------------------------------------------------
NAMES = ["identity", "topk", "quantize", "scalarize", "sign", "randk", "fixedquant", "top-k",
         "", "QUANTIZE", "py"]
SPEC_KEYS = ["k", "bits", "basis", "tau", "freq", "seed", "step", "scale", "x", ""]
SPEC_VALUES = st.one_of(
    st.integers(-3, 70).map(str),
    st.sampled_from(["0.01", "1e300", "nan", "inf", "-1e-3", "cyclic", "sinusoid", "random",
                     "constant", "pow2", "float64", "", "=", "|", ":"]),
)


VALID_STAGES = ["identity", "topk:k=1", "topk:k=2", "quantize:bits=3", "quantize:bits=2",
                "scalarize:basis=cyclic", "scalarize:basis=sinusoid", "scalarize:basis=random",
                "sign", "randk:k=2", "fixedquant:step=0.1", "quantize:bits=4,scale=pow2"]


@st.composite
def spec(draw):
    """A valid composition of 1-3 stages, then (mostly) one fault."""
    stages = [draw(st.sampled_from(VALID_STAGES)) for _ in range(draw(st.integers(1, 3)))]
    i = draw(st.integers(0, len(stages) - 1))
    fault = draw(st.sampled_from(["none", "name", "key", "value", "value", "separator",
                                  "empty_stage"]))
    name = stages[i].split(":")[0]
    if fault == "name":
        stages[i] = draw(st.sampled_from(NAMES)) + stages[i][len(name):]
    elif fault == "key":
        stages[i] = f"{name}:{draw(st.sampled_from(SPEC_KEYS))}={draw(SPEC_VALUES)}"
    elif fault == "value" and "=" in stages[i]:
        stages[i] = stages[i].split("=")[0] + "=" + draw(SPEC_VALUES)
    elif fault == "separator":
        stages[i] = stages[i].replace(":", draw(st.sampled_from([",", " : ", "::", "="])))
    elif fault == "empty_stage":
        stages.insert(i, "")
    return draw(st.sampled_from(["|", "|", " | "])).join(stages)


@SETTINGS
@given(spec=spec(), flow=st.sampled_from(["observer", "direct", "lead"]))
def test_fuzz_compressor_specs(tmp_path, capsys, spec, flow):
    cfg = json.loads(json.dumps(BASE))
    cfg["compressor"]["spec"] = spec
    cfg["method"] = {"kind": flow} if flow == "lead" else {**cfg["method"], "kind": flow}
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    check_outcome(tmp_path, [str(path)], capsys)


# -- data files: CSV tables and NPZ arrays -------------------------------------------------
CELLS = st.one_of(
    st.floats(-1e3, 1e3, allow_nan=False).map(lambda x: f"{x:.6g}"),
    st.sampled_from(["0", "1", "", "nan", "inf", "abc", "1,5", " 2 ", '"3"', "1e400"]),
)


@st.composite
def csv_text(draw):
    """A valid numeric table (header row, 2-4 columns, the last one `y`), then one fault."""
    cols = draw(st.integers(2, 4))
    n = draw(st.integers(4, 24))
    rng = np.random.default_rng(draw(st.integers(0, 9)))
    rows = [[f"c{j}" for j in range(cols - 1)] + ["y"]]
    rows += [[f"{x:.6g}" for x in r] for r in rng.standard_normal((n, cols))]
    if draw(st.booleans()):  # a two-valued target (logistic)
        for r in rows[1:]:
            r[-1] = "1" if float(r[-1]) > 0 else "0"
    fault = draw(st.sampled_from(["none", "cell", "cell", "short_row", "long_row",
                                  "header", "no_rows", "constant_column"]))
    i, j = draw(st.integers(1, n)), draw(st.integers(0, cols - 1))
    if fault == "cell":
        rows[i][j] = draw(CELLS)
    elif fault == "short_row":
        rows[i] = rows[i][:-1]
    elif fault == "long_row":
        rows[i] = rows[i] + ["1"]
    elif fault == "header":
        rows[0][j] = draw(st.sampled_from(["", "y", "c0", " "]))
    elif fault == "no_rows":
        rows = rows[:1]
    elif fault == "constant_column":
        for r in rows[1:]:
            r[j] = "3"
    return "\n".join(",".join(r) for r in rows) + "\n"


@SETTINGS
@given(text=csv_text(), kind=st.sampled_from(["least_squares", "logistic"]),
       target=st.sampled_from([None, "y", "c0", "nope"]), agents=st.integers(1, 8),
       suffix=st.sampled_from([".csv", ".csv", ".txt"]))
def test_fuzz_csv_tables(tmp_path, capsys, text, kind, target, agents, suffix):
    data = tmp_path / f"t{suffix}"
    data.write_text(text)
    problem = {"kind": kind, "data": data.name, "agents": agents}
    if target is not None:
        problem["target"] = target
    cfg = {"problem": problem, "method": BASE["method"], "solver": BASE["solver"]}
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    check_outcome(tmp_path, [str(path)], capsys)


ARRAYS = st.sampled_from(["Q", "b", "A", "y", "X", "target", "junk"])
SHAPES = st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple)
FILL = st.sampled_from(["normal", "spd", "ones", "labels", "nan", "int", "text"])


def _array(fill, shape, rng):
    if fill == "text":
        return np.full(shape, "a")
    if fill == "nan":
        a = rng.standard_normal(shape)
        a.flat[:1] = np.nan
        return a
    if fill == "ones":
        return np.ones(shape)
    if fill == "labels":
        return rng.choice([-1.0, 1.0], size=shape)
    if fill == "int":
        return rng.integers(-3, 3, size=shape)
    if fill == "spd" and len(shape) == 3 and shape[1] == shape[2]:
        m = rng.standard_normal(shape)
        return m @ np.swapaxes(m, 1, 2) + np.eye(shape[1])
    return rng.standard_normal(shape)


@SETTINGS
@given(arrays=st.lists(st.tuples(ARRAYS, SHAPES, FILL), min_size=0, max_size=3),
       kind=st.sampled_from(["quadratic", "least_squares", "logistic"]),
       seed=st.integers(0, 3), corrupt=st.integers(0, 6))
def test_fuzz_npz_problem_data(tmp_path, capsys, arrays, kind, seed, corrupt):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    np.savez(buf, **{name: _array(fill, shape, rng) for name, shape, fill in arrays})
    raw = buf.getvalue()
    if corrupt == 0:  # a truncated archive
        raw = raw[: len(raw) // 2]
    data = tmp_path / "p.npz"
    data.write_bytes(raw)
    cfg = {"problem": {"kind": kind, "data": data.name}, "method": BASE["method"],
           "solver": BASE["solver"]}
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    check_outcome(tmp_path, [str(path)], capsys)


def test_fuzz_valid_problem_data_runs(tmp_path, capsys):
    """The NPZ path above can also succeed: a well-formed quadratic file runs."""
    rng = np.random.default_rng(0)
    m = rng.standard_normal((4, 3, 3))
    np.savez(tmp_path / "p.npz", Q=m @ np.swapaxes(m, 1, 2) + np.eye(3),
             b=rng.standard_normal((4, 3)))
    cfg = {"problem": {"kind": "quadratic", "data": "p.npz"}, "method": BASE["method"],
           "solver": BASE["solver"]}
    (tmp_path / "c.toml").write_text(to_toml(cfg))
    assert check_outcome(tmp_path, [str(tmp_path / "c.toml")], capsys) in (0, 1)
