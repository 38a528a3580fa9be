"""The World: everything nodeguard takes from outside the process, as one value.

Every concern's entry point receives a World, so a test can replay days in
milliseconds (``clock``), point ``/proc`` at a fixture tree, answer commands without
running them, or fake a disk's usage. Nothing in nodeguard calls ``datetime.now``,
``os.geteuid`` or ``subprocess`` directly outside this module's defaults.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, NamedTuple

OUTPUT_TAIL = 4096
NODE_NAME_ENV = "NODE_NAME"
# A Kubernetes node name is a DNS subdomain; hostnames are a subset of these characters.
_NODE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?")

log = logging.getLogger(__name__)


class CommandResult(NamedTuple):
    """A finished command: its exit status and the tail of its output."""

    returncode: int
    output: str


CommandRunner = Callable[[list[str], float], CommandResult]


class DiskUsage(NamedTuple):
    """Space and inodes of one filesystem, as statvfs sees them (bytes and counts)."""

    total: int
    used: int
    free: int  # available to unprivileged users, as df and node_exporter's "avail"
    inodes_total: int
    inodes_free: int


DiskProbe = Callable[[str], DiskUsage]


def utc_now() -> datetime:
    """The real clock, always timezone-aware UTC."""
    return datetime.now(UTC)


def run_command(argv: list[str], timeout: float) -> CommandResult:
    """Run ``argv`` without a shell; keep only the tail of its output.

    Output goes to a temp file, not a pipe, so a background child that inherits
    stdout cannot make us wait past the command's own exit, and memory stays bounded
    whatever the command prints. Where no temp file can be made (a full disk, no inodes
    left: when a reclaim runs), the command still runs, its output discarded.
    """
    import tempfile

    with contextlib.ExitStack() as stack:
        try:
            out = stack.enter_context(tempfile.TemporaryFile())
        except OSError as exc:
            code, failure = _run_into(argv, timeout, subprocess.DEVNULL)
            why = f"output not kept: {exc.filename}: {exc.strerror}"
            return CommandResult(code, failure or why)
        code, failure = _run_into(argv, timeout, out)
        if failure is not None:
            return CommandResult(code, failure)
        size = out.seek(0, os.SEEK_END)
        out.seek(max(0, size - OUTPUT_TAIL))
        tail = out.read().decode("utf-8", "replace").strip()
    return CommandResult(code, tail)


def _run_into(argv: list[str], timeout: float, out: IO[bytes] | int) -> tuple[int, str | None]:
    """The command's exit status, and why it could not run or finish (None if it did)."""
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f}s"
    except OSError as exc:
        return 127, f"cannot run {argv[0]}: {exc.strerror}"
    return done.returncode, None


def statvfs_usage(path: str) -> DiskUsage:
    """Usage of the filesystem holding ``path`` (df's view: avail, not free-to-root)."""
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    free_all = st.f_bfree * st.f_frsize
    return DiskUsage(
        total=total,
        used=total - free_all,
        free=st.f_bavail * st.f_frsize,
        inodes_total=st.f_files,
        inodes_free=st.f_favail,
    )


def node_name(environ: Mapping[str, str] = os.environ, kernel_name: str | None = None) -> str:
    """The node's name, as alerts label it (``node``): ``$NODE_NAME`` if set, else the hostname.

    The one place the name is resolved. In a Kubernetes pod the kernel hostname is the
    pod's, so the DaemonSet sets ``NODE_NAME`` from ``spec.nodeName`` (docs/fleet.md). A
    value that is not a valid node name is ignored with a warning, never trusted.
    """
    fallback = kernel_name if kernel_name is not None else os.uname().nodename
    value = environ.get(NODE_NAME_ENV)
    if value is None or value == "":
        return fallback
    if _NODE_NAME.fullmatch(value) is None:
        log.warning("ignoring %s=%r: not a node name; using %r", NODE_NAME_ENV, value, fallback)
        return fallback
    return value


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class World:
    """What the code takes from outside: clock, commands, identity, /proc, disks, stop."""

    clock: Callable[[], datetime] = utc_now
    run: CommandRunner = run_command
    euid: int = field(default_factory=os.geteuid)
    proc_root: Path = Path("/proc")
    disk_usage: DiskProbe = statvfs_usage
    workers: int = field(default_factory=_default_workers)
    stop: threading.Event = field(default_factory=threading.Event)
    hostname: str = field(default_factory=node_name)  # the node's name: see node_name()

    def now(self) -> datetime:
        return self.clock()

    def timestamp(self) -> float:
        """The clock as POSIX seconds (for samples and rates)."""
        return self.clock().timestamp()
