"""The CLI's logging: records go to stderr as ``nodeguard: LEVEL message``; stdout (the
report, ``--json``) carries none of them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

from tests.conftest import VENV_BIN


def _config(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    logs.chmod(0o777)  # an insecure folder: the pass refuses it, a warning is logged
    (logs / "a.log").write_bytes(b"x\n")
    body = {
        "state_dir": str(tmp_path / "state"),
        "logrotate_config": None,
        "policies": [{"name": "app", "paths": [f"{logs}/*.log"], "max_size": 1}],
        "journal": {"directory": str(tmp_path / "no-journal"), "text_logs": {"read": "never"}},
        "alerts": {"alertmanager": {"url": None}, "textfile": None, "journald": False},
    }
    path = tmp_path / "ng.yaml"
    path.write_text(yaml.safe_dump(body), "utf-8")
    return path


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    return subprocess.run(
        [str(VENV_BIN / "nodeguard"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_warnings_are_formatted_on_stderr_and_json_stays_clean(tmp_path: Path) -> None:
    conf = _config(tmp_path)
    done = _run("-c", conf, "--no-dropins", "run", "--once", "--dry-run", "--json")
    json.loads(done.stdout)  # nothing but the document
    lines = done.stderr.splitlines()
    assert lines, "a refused folder and a missing journal are logged"
    assert all(line.startswith("nodeguard: ") for line in lines), done.stderr
    assert any(line.startswith("nodeguard: WARNING ") and "insecure" in line for line in lines)
    assert not any(" INFO " in line for line in lines)  # info only with -v


def test_verbose_shows_info(tmp_path: Path) -> None:
    conf = _config(tmp_path)
    done = _run("-c", conf, "--no-dropins", "-v", "run", "--once", "--dry-run", "--json")
    json.loads(done.stdout)
    assert any(line.startswith("nodeguard: INFO ") for line in done.stderr.splitlines())
