"""Every example converges with a clear margin, the README snippets print what README says,
and every path in a config (``py:`` compressor files included) starts at the config's folder.
"""

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

from stflow.config import load_config, resolve_config, run_config
from stflow.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
#: Run configs (a study_*.toml is a study file: tests/test_study.py runs those).
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.toml")
                  if not p.name.startswith("study_"))
#: A converged example ends this many times below its tolerance, at least.
MARGIN = 10.0


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def test_the_examples_are_there():
    names = {p.name for p in EXAMPLES}
    assert {"quickstart.toml", "breast_cancer.toml", "my_csv.toml",
            "my_compressor.toml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_converges_with_margin(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths in the config must not depend on the working dir
    config = load_config(path)
    _, sol = run_config(config)
    tolerance = config["solver"]["tolerance"]
    assert sol.status == "converged", (path.name, sol.message)
    target = config["solver"].get("target_accuracy")
    if target is not None:  # a learning example: no x*, judged by accuracy
        acc = sol.records["mean_agent_test_accuracy"]
        steps = sol.records["step"]
        first = int(steps[np.argmax(acc >= target)])
        assert first <= steps[-1] / 2 and acc[-1] >= target, (
            f"{path.name} first reaches mean agent accuracy {target:g} at round {first} of "
            f"{steps[-1]} and ends at {acc[-1]:.4f}: it must reach it within the first half "
            "of the run and stay above it at the end")
        return
    assert sol.final_relative_error <= tolerance / MARGIN, (
        f"{path.name} ends at {sol.final_relative_error:.2e}, not {MARGIN:g}x below its "
        f"tolerance {tolerance:g}: lengthen the horizon or raise the gains")


def test_readme_snippet_prints_what_the_readme_says():
    readme = (ROOT / "README.md").read_text()
    (snippet,) = [b for b in _python_blocks(readme) if "solve(" in b]
    claim = re.search(r"this prints `([^`]+)`", readme)
    assert claim, "README must say what its Python snippet prints"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, "README.md", "exec"), {})
    printed = out.getvalue().strip()
    assert printed == claim.group(1)
    status, error, _bits = printed.split()
    assert status == "converged" and float(error) <= 1e-8 / MARGIN


def test_reproduce_doc_snippet_runs():
    text = (ROOT / "docs" / "reproduce.md").read_text()
    (snippet,) = [b for b in _python_blocks(text) if "dataset_problem" in b]
    namespace: dict = {}
    exec(compile(snippet, "docs/reproduce.md", "exec"), namespace)
    problem, split = namespace["problem"], namespace["split"]
    assert problem.n_agents == 10
    # 569 rows, 20 % held out: round(0.2 * 569) = 114 test rows
    assert split.X_test.shape[0] == 114


# --- one base for every path: the config file's folder ------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("py:comp.py:make", "py:/cfg/dir/comp.py:make"),
        ("py:lib/comp.py:make:tau=0.1", "py:/cfg/dir/lib/comp.py:make:tau=0.1"),
        ("py:../shared/comp.py:make", "py:/cfg/shared/comp.py:make"),
        ("topk:k=4|py:comp.py:make", "topk:k=4|py:/cfg/dir/comp.py:make"),
        ("py:comp.py:make | quantize:bits=4", "py:/cfg/dir/comp.py:make | quantize:bits=4"),
        ("py:/cfg/abs/comp.py:make", "py:/cfg/abs/comp.py:make"),
        ("py:my_module:make", "py:my_module:make"),  # a module on PYTHONPATH: as it is
        ("py:pkg.sub:make:k=2", "py:pkg.sub:make:k=2"),
        ("topk:k=2", "topk:k=2"),
    ],
)
def test_py_compressor_files_are_relative_to_the_config(tmp_path, spec, expected):
    # "/cfg" stands for tmp_path; the files exist (a missing one is refused, below)
    for name in ("dir/comp.py", "dir/lib/comp.py", "shared/comp.py", "abs/comp.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    spec = spec.replace("/cfg/", f"{tmp_path}/")
    cfg = resolve_config({"compressor": {"spec": spec}}, base_dir=tmp_path / "dir")
    assert cfg["compressor"]["spec"] == expected.replace("/cfg/", f"{tmp_path}/")
    # without a config file there is no base: the spec is left alone
    assert resolve_config({"compressor": {"spec": spec}})["compressor"]["spec"] == spec
    if "comp.py" in spec:
        with pytest.raises(InputError, match=r"file '\S*comp.py' not found: give a path "
                                             r"relative to '\S*' \(the config file's folder\)"):
            resolve_config({"compressor": {"spec": spec.replace("comp.py", "nosuch/comp.py")}},
                           base_dir=tmp_path / "dir")


def test_py_compressor_file_next_to_the_config_loads_from_any_folder(tmp_path, monkeypatch):
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "halve.py").write_text(
        "def make(dim, c=0.5):\n"
        "    def compress(Z, t):\n"
        "        return c * Z\n"
        "    compress.linear = True\n"
        "    return compress\n"
    )
    (folder / "run.toml").write_text(
        '[problem]\nagents = 4\ndim = 3\n[compressor]\nspec = "py:halve.py:make:c=0.5"\n'
        "[solver]\nhorizon = 0.01\nrecord_every = 5\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("..") / "cfg" / "run.toml")
    assert config["compressor"]["spec"] == f"py:{(folder / 'halve.py').resolve()}:make:c=0.5"
    _, sol = run_config(config)
    assert sol.steps == 10


def test_py_compressor_path_with_a_colon_is_an_input_error():
    with pytest.raises(InputError, match=r"spec.*contains ':' or '\|'"):
        resolve_config({"compressor": {"spec": "py:comp.py:make"}}, base_dir="/a:b")
