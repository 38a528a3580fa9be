"""Generated documents stay in step with the schema they come from."""

from __future__ import annotations

import re

from nodeguard.config import load_text
from nodeguard.config.docs import render_markdown
from nodeguard.config.schema import ROOT, Section
from tests.conftest import REPO, run_cli


def test_configuration_md_is_generated_from_the_schema() -> None:
    checked_in = (REPO / "docs" / "configuration.md").read_text("utf-8")
    assert checked_in == render_markdown(), (
        "docs/configuration.md is stale: run "
        "`.venv/bin/python -m nodeguard.config.docs > docs/configuration.md`"
    )


def _all_keys(section: Section) -> set[str]:
    keys = set()
    for field in section.fields:
        keys.add(field.key)
        if field.section is not None:
            keys |= _all_keys(field.section)
    return keys


def test_sample_config_is_valid_and_names_every_key() -> None:
    result = run_cli("config", "sample")
    assert result.code == 0
    config = load_text(result.out, "<sample>")
    assert [p.name for p in config.policies] == ["app"]
    written = set(re.findall(r"^\s*(?:#\s*)?(?:-\s+)?([a-z_]+):", result.out, re.MULTILINE))
    assert _all_keys(ROOT) - written == set()


def test_every_key_is_documented_in_configuration_md() -> None:
    text = render_markdown()
    for key in _all_keys(ROOT):
        assert f"`{key}`" in text or f".{key}`" in text, key
