"""Run nodeguard's journald sink against a journal socket of our own, then print what came.

Run by tests/alerts/test_journald.py under ``unshare --mount``: a tmpfs hides the
host's /run in this private mount namespace, this script binds
/run/systemd/journal/socket there, and the real systemd-python sends to it with
journald's native protocol. The received entries are printed as JSON.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

from nodeguard.alerts import journald
from nodeguard.alerts.metrics import Snapshot
from nodeguard.alerts.model import Notification
from nodeguard.alerts.registry import Batch
from nodeguard.config import load_config
from nodeguard.world import World


def parse(datagram: bytes) -> dict[str, str]:
    """journald's native protocol: KEY=value lines, or KEY, a 64-bit length and raw data."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(datagram):
        end = datagram.index(b"\n", i)
        line = datagram[i:end]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
            i = end + 1
        else:
            (size,) = struct.unpack("<Q", datagram[end + 1 : end + 9])
            fields[line.decode()] = datagram[end + 9 : end + 9 + size].decode()
            i = end + 9 + size + 1
    return fields


def main() -> int:
    config = load_config(Path(sys.argv[1]), dropins=False)
    notes = [Notification.from_json(n) for n in json.loads(Path(sys.argv[2]).read_text())]
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True)
    os.makedirs("/run/systemd/journal")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(journald.SOCKET)
    batch = Batch(tuple(n for n in notes if n), (), Snapshot(), 0.0, "node-a", False)
    journald.send(batch, config, World())
    sock.settimeout(2)
    entries = []
    for _ in batch.notifications:
        entries.append(parse(sock.recv(1 << 20)))
    print(json.dumps(entries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
