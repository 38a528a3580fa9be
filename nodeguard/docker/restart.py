"""Restarting Docker so a new daemon.json takes effect.

dockerd does not reload log-driver or log-opts on SIGHUP; only a restart applies them,
and only to containers created afterwards. The command defaults to
``systemctl restart docker.service`` and is configurable (``docker.restart_command``),
which is also how the tests restart an isolated dockerd instead of the host's.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

TIMEOUT = 300.0  # dockerd stops each container (10 s grace) before it exits

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class RestartResult:
    """Whether the restart command succeeded, and what it printed."""

    ok: bool
    detail: str


def restart_problem(command: object) -> list[tuple[str, str]]:
    """Config check: ``restart_command`` must split into a non-empty argv."""
    if not isinstance(command, str):
        return []
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return [("restart_command", f"cannot be split into words: {exc}")]
    return [] if argv else [("restart_command", "must name a command")]


def restart_docker(command: str, runner: Runner = subprocess.run) -> RestartResult:
    """Run ``command`` (no shell) and report its outcome."""
    argv = shlex.split(command)
    try:
        result = runner(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=TIMEOUT,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return RestartResult(False, f"{argv[0]}: {exc}")
    output = " | ".join(str(result.stdout).strip().splitlines()[-5:])
    if result.returncode != 0:
        return RestartResult(False, f"{command!r} exited {result.returncode}: {output}")
    return RestartResult(True, output)
