"""Real journal files for the tests: Journal Export Format written through
/lib/systemd/systemd-journal-remote (Debian's systemd-journal-remote package).

Entries get increasing realtime and, per boot, increasing monotonic timestamps (entries
that share a _BOOT_ID are ordered by __MONOTONIC_TIMESTAMP: a smaller value would sort
before a reader's position and be missed). Running journal-remote again on the same file
appends to it, which a waiting reader sees: a live journal without journald.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REMOTE = Path("/lib/systemd/systemd-journal-remote")
EPOCH_US = 1_764_460_800_000_000  # 2025-11-30T00:00:00Z
CONMON_CID = "4b3c5d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c"

Fields = Mapping[str, str]


def require_journal_remote() -> Path:
    """The real tool, or a failed test saying what to install (never a skip)."""
    if not os.access(REMOTE, os.X_OK):
        pytest.fail(f"{REMOTE} is missing: apt-get install systemd-journal-remote (.ci/setup)")
    return REMOTE


def export(entries: Iterable[Fields]) -> bytes:
    """Journal Export Format: KEY=value lines, a blank line after each entry (values with a
    newline in the binary form: KEY, newline, little-endian 64-bit length, data)."""
    out = bytearray()
    for entry in entries:
        text = []
        for key, value in entry.items():
            if "\n" in value:
                data = value.encode()
                out += "".join(text).encode()
                text = []
                out += key.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
            else:
                text.append(f"{key}={value}\n")
        text.append("\n")
        out += "".join(text).encode()
    return bytes(out)


def append(journal: Path, entries: Iterable[Fields]) -> None:
    """Write (or append) ``entries`` into the journal file ``journal`` (*.journal)."""
    tool = require_journal_remote()
    done = subprocess.run(
        [str(tool), f"--output={journal}", "-"],
        input=export(entries),
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"systemd-journal-remote failed ({done.returncode}): {done.stderr[-2000:]!r}")


@dataclass
class Stream:
    """A host's entries over time: realtime and monotonic clocks, boots, a hostname."""

    realtime_us: int = EPOCH_US
    step_us: int = 1000
    hostname: str = "node-1"
    boot_id: str = field(default_factory=lambda: secrets.token_hex(16))
    monotonic_us: int = 5_000_000
    machine_id: str = field(default_factory=lambda: secrets.token_hex(16))

    def new_boot(self, gap_us: int = 60_000_000) -> None:
        self.boot_id = secrets.token_hex(16)
        self.monotonic_us = 3_000_000
        self.realtime_us += gap_us

    def _tick(self) -> dict[str, str]:
        self.realtime_us += self.step_us
        self.monotonic_us += self.step_us
        return {
            "__REALTIME_TIMESTAMP": str(self.realtime_us),
            "__MONOTONIC_TIMESTAMP": str(self.monotonic_us),
            "_BOOT_ID": self.boot_id,
            "_MACHINE_ID": self.machine_id,
            "_HOSTNAME": self.hostname,
        }

    def service(
        self, unit: str, ident: str, message: str, *, priority: int = 6, uid: int = 0
    ) -> dict[str, str]:
        """A line a service wrote to stdout/stderr (kubelet, containerd, dockerd)."""
        return {
            **self._tick(),
            "_TRANSPORT": "stdout",
            "_SYSTEMD_UNIT": unit,
            "_SYSTEMD_SLICE": "system.slice",
            "SYSLOG_IDENTIFIER": ident,
            "SYSLOG_FACILITY": "3",
            "_UID": str(uid),
            "_GID": str(uid),
            "_PID": "1234",
            "_COMM": ident,
            "PRIORITY": str(priority),
            "MESSAGE": message,
        }

    def syslog(
        self, ident: str, message: str, *, unit: str, priority: int = 6, uid: int = 0
    ) -> dict[str, str]:
        """A syslog(3) line (conmon: identifier conmon, in its own scope unit)."""
        return {
            **self._tick(),
            "_TRANSPORT": "syslog",
            "_SYSTEMD_UNIT": unit,
            "SYSLOG_IDENTIFIER": ident,
            "SYSLOG_FACILITY": "1",
            "SYSLOG_PID": "4321",
            "_UID": str(uid),
            "_GID": str(uid),
            "_PID": "4321",
            "_COMM": ident,
            "PRIORITY": str(priority),
            "MESSAGE": message,
        }

    def kernel(self, message: str, *, priority: int = 3) -> dict[str, str]:
        """A kernel message as journald stores it from /dev/kmsg."""
        return {
            **self._tick(),
            "_TRANSPORT": "kernel",
            "SYSLOG_IDENTIFIER": "kernel",
            "SYSLOG_FACILITY": "0",
            "PRIORITY": str(priority),
            "MESSAGE": message,
        }
