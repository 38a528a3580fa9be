"""The tree is clean under the project's linters: ruff (check and format) and strict mypy."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, VENV_BIN

LINTED = [p for p in ("nodeguard", "tests", "bench") if (REPO / p).exists()]


@pytest.mark.parametrize(
    "argv",
    [
        ["ruff", "check", *LINTED],
        ["ruff", "format", "--check", *LINTED],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_linter_passes(argv: list[str]) -> None:
    tool = VENV_BIN / argv[0]
    if not tool.exists():
        pytest.fail(f"{tool} is missing: run `bash .ci/setup --test`")
    done = subprocess.run(
        [str(tool), *argv[1:]], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_linted_folder_exists() -> None:
    assert {"nodeguard", "tests"} <= set(LINTED)
    assert Path(REPO / "pyproject.toml").exists()
