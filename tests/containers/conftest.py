"""Fixtures: a fake node inside tmp_path and an in-process CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeguard import cli
from tests.containers.nodetree import Node, Runner


@pytest.fixture
def node(tmp_path: Path) -> Node:
    n = Node(tmp_path / "node")
    n.root.mkdir()
    return n


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Runner:
    """Run ``nodeguard -c CONFIG --no-dropins ARGS...`` in-process; (exit code, stdout)."""

    def run(config: Path, *args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = cli.main(["-c", str(config), "--no-dropins", *args])
        return code, capsys.readouterr().out

    return run
