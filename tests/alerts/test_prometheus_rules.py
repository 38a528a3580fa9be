"""packaging/prometheus: the shipped alert rules pass promtool and use real metric names."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from nodeguard.alerts.metrics import Snapshot, render_text
from tests.conftest import REPO

RULES = REPO / "packaging" / "prometheus"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: apt-get install prometheus (see .ci/setup)")
    return found


@pytest.mark.parametrize(
    "argv",
    [["check", "rules", "nodeguard-rules.yml"], ["test", "rules", "nodeguard-rules.test.yml"]],
    ids=["check", "test"],
)
def test_promtool_accepts_and_tests_the_rules(argv: list[str]) -> None:
    done = subprocess.run(
        [_promtool(), *argv], cwd=RULES, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_metric_in_the_rules_is_one_nodeguard_exports() -> None:
    exported = set(re.findall(r"^# TYPE (\S+)", render_text(Snapshot()).decode(), re.MULTILINE))
    exported |= {f"{name}_total" for name in exported}
    used = set(re.findall(r"\bnodeguard_[a-z_]+", (RULES / "nodeguard-rules.yml").read_text()))
    assert used and used <= exported, used - exported
