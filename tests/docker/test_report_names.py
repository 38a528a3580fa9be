"""docker-config's text shows container names escaped (they come from Docker's files).

A name holding a newline or an escape sequence would forge a line or drive the
terminal; one holding a lone surrogate (``\\udcff`` in config.v2.json) ended
``docker-config --apply`` in a UnicodeEncodeError under a UTF-8 locale, after the write.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import VENV_BIN
from tests.containers.nodetree import Node, docker_id
from tests.docker.conftest import write_nodeguard_config

EVIL = "evil\x1b[2J\nFORGED\udcff"


def test_stale_container_names_are_escaped(tmp_path: Path) -> None:
    node = Node(tmp_path / "node")
    node.docker_container(docker_id(1), EVIL, log_type="journald")
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text("{}\n")
    config = write_nodeguard_config(
        tmp_path, daemon_json, docker_root=node.docker, extra="validate_with_dockerd: false"
    )
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    env["PYTHONIOENCODING"] = "utf-8:strict"  # what a host's en_US.UTF-8 locale gives
    done = subprocess.run(
        [
            str(VENV_BIN / "nodeguard"),
            "-c",
            str(config),
            "--no-dropins",
            "docker-config",
            "--apply",
        ],
        capture_output=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    text = done.stdout.decode("utf-8")
    assert "evil\\x1b[2J\\nFORGED\\xff" in text
    assert "\x1b" not in text
    assert not any(line.startswith("FORGED") for line in text.splitlines())


def test_a_refusal_is_said_once_on_stderr(tmp_path: Path) -> None:
    """The command's output is its rendered events; their log records used to repeat
    each refusal on stderr (``nodeguard: ERROR PATH: PATH: ...`` then the message)."""
    daemon_json = tmp_path / "daemon.json"
    os.mkfifo(daemon_json)
    config = write_nodeguard_config(tmp_path, daemon_json)
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    done = subprocess.run(
        [
            str(VENV_BIN / "nodeguard"),
            "-c",
            str(config),
            "--no-dropins",
            "docker-config",
            "--check",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 2
    said = [line for line in done.stderr.splitlines() if "is not a regular file" in line]
    assert said == [
        f"nodeguard: {daemon_json}: is not a regular file; nodeguard edits only a regular file"
    ]
