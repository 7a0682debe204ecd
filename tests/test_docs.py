"""The docs stay true: the config reference is the one the code generates, and README,
docs/reproduce.md and ``stflow reproduce --help`` name exactly the registered experiments."""

import re
from pathlib import Path

import pytest

from stflow.cli import main
from stflow.config import SCHEMA, config_markdown
from stflow.experiments import experiment_names

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"\bE\d+\b")


def test_config_reference_matches_schema():
    text = (ROOT / "docs" / "config.md").read_text()
    assert text == config_markdown(), "regenerate docs/config.md from config_markdown()"
    for section, keys in SCHEMA.items():
        assert f"## [{section}]" in text
        for key in keys:
            assert f"| `{key}` |" in text


def test_config_reference_says_where_paths_start():
    text = config_markdown()
    assert "relative to the config file's folder" in text
    assert "py:path/to/file.py:ATTR" in text and "PYTHONPATH" in text


def _quick_start(readme: str) -> str:
    """The README paragraph that introduces ``stflow reproduce`` (up to its code block)."""
    start = readme.index("## Quick start")
    return readme[start : readme.index("```", start)]


def test_readme_lists_the_registered_experiments_in_order():
    readme = (ROOT / "README.md").read_text()
    listed = NAME.findall(_quick_start(readme))
    assert listed == experiment_names(), (
        "README's quick start must list exactly the experiments of "
        "stflow.experiments.EXPERIMENTS, in order: update README.md")
    last = re.search(r"`results/E1/` \.\.\. `results/(E\d+)/`", readme)
    assert last and last.group(1) == experiment_names()[-1], "update results/E1/ ... in README"


def test_reproduce_doc_table_lists_the_registered_experiments_in_order():
    text = (ROOT / "docs" / "reproduce.md").read_text()
    rows = re.findall(r"^\| (E\d+) \|", text, flags=re.MULTILINE)
    assert rows == experiment_names(), (
        "the experiment table of docs/reproduce.md must have one row per registered "
        "experiment, in order")


@pytest.mark.parametrize("doc", ["README.md", "docs/reproduce.md"])
def test_docs_name_no_unregistered_experiment(doc):
    text = (ROOT / doc).read_text()
    unknown = sorted(set(NAME.findall(text)) - set(experiment_names()))
    assert not unknown, f"{doc} names experiments that do not exist: {unknown}"


def test_reproduce_help_names_the_registered_experiments(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert ", ".join(experiment_names()) in text
    unknown = sorted(set(NAME.findall(text)) - set(experiment_names()))
    assert unknown == []
