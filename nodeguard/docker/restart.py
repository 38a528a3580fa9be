"""Restarting Docker so a new daemon.json takes effect.

dockerd does not reload log-driver or log-opts on SIGHUP; only a restart applies them,
and only to containers created afterwards. The command defaults to
``systemctl restart docker.service`` and is configurable (``docker.restart_command``),
which is also how the tests restart an isolated dockerd instead of the host's.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from nodeguard.world import World

TIMEOUT = 300.0  # dockerd stops each container (10 s grace) before it exits


@dataclass(frozen=True)
class RestartResult:
    """Whether the restart command succeeded, and the tail of what it printed."""

    ok: bool
    detail: str


def restart_docker(command: str, world: World) -> RestartResult:
    """Run ``command`` (split like a shell would, run without one) and report its outcome."""
    argv = shlex.split(command)
    result = world.run(argv, TIMEOUT)
    output = " | ".join(result.output.strip().splitlines()[-5:])
    if result.returncode != 0:
        return RestartResult(False, f"{command!r} exited {result.returncode}: {output}")
    return RestartResult(True, output)
