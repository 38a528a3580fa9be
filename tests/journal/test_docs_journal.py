"""docs/journal.md lists every built-in rule with its source message and origin."""

from __future__ import annotations

from nodeguard.config.sections.journal_rules import BUILTIN_RULES
from tests.conftest import REPO


def test_every_builtin_rule_is_documented_with_its_source() -> None:
    text = (REPO / "docs" / "journal.md").read_text("utf-8")
    for rule in BUILTIN_RULES:
        row = next(
            (line for line in text.splitlines() if line.startswith(f"| `{rule.spec.reason}`")), ""
        )
        assert row, f"{rule.spec.reason} is not in docs/journal.md"
        for part in (rule.spec.pattern, rule.message, rule.origin, rule.component):
            assert part.replace("|", "\\|") in row, (rule.spec.reason, part)
