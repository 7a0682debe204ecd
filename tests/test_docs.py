"""The docs stay true: the config reference is the one the code generates."""

from pathlib import Path

from stflow.config import SCHEMA, config_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_config_reference_matches_schema():
    text = (ROOT / "docs" / "config.md").read_text()
    assert text == config_markdown(), "regenerate docs/config.md from config_markdown()"
    for section, keys in SCHEMA.items():
        assert f"## [{section}]" in text
        for key in keys:
            assert f"| `{key}` |" in text
