"""config/ sits at the bottom: it imports nothing of nodeguard above it (issue 8).

The schema once imported the docker package for its log-opts rule; now the rule lives
in config/dockerrules.py and docker and containers import it from there.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

CONFIG = REPO / "nodeguard" / "config"


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CONFIG.rglob("*.py")), ids=lambda p: p.name)
def test_config_imports_only_config(path: Path) -> None:
    above = [
        n
        for n in _imports(path)
        if n.startswith("nodeguard") and not n.startswith("nodeguard.config")
    ]
    assert above == [], f"{path.relative_to(REPO)} imports {above}"


def test_docker_and_containers_share_the_log_rule_from_config() -> None:
    for user in ("docker/daemonjson.py", "containers/docker_logs.py"):
        assert "nodeguard.config.dockerrules" in _imports(REPO / "nodeguard" / user)
    assert not (REPO / "nodeguard" / "docker" / "rules.py").exists()
