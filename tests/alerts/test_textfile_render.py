"""The textfile is rendered without prometheus-client, byte for byte as it would render it."""

from __future__ import annotations

import math
import subprocess
import sys

from prometheus_client import generate_latest

from nodeguard.alerts.metrics import (
    Counters,
    FsMetrics,
    PassInfo,
    Snapshot,
    SnapshotCollector,
    registry_for,
    render_text,
)


def _snapshot() -> Snapshot:
    fs = FsMetrics(
        '/var/"odd"\\path\nx',
        "/dev/sda1",
        "ext4",
        1 << 40,
        123_456_789_012,
        10_000_000,
        9_999,
        1234567.25,
        math.inf,
        None,
        (("ns/pod/app", "container", 0.5), ("app (2,000 files)", "policy", 12345678.9)),
    )
    counters = Counters(
        events={"disk|reclaimed|warning": 3, "rotation|rotated|info": 10**12},
        errors={"disk": 1},
        bytes_freed={"rotation": 7 << 30},
        deliveries={"textfile|ok": 2, "bad-key": 1},
        passes={
            "disk": PassInfo(1_700_000_000.123, 0.000012, True),
            "journal": PassInfo(1.0, -0.0, False),
        },
    )
    return Snapshot((fs,), (), counters, {"alertmanager": 4})


def test_the_textfile_is_what_prometheus_client_would_write() -> None:
    for snap in (Snapshot(), _snapshot()):
        expected = generate_latest(registry_for(SnapshotCollector(snap)))
        assert render_text(snap) == expected


def test_the_daemon_imports_no_prometheus_client_ssl_http_server_or_openssl_hashlib() -> None:
    code = (
        "import sys\n"
        "from nodeguard.alerts.metrics import Snapshot, render_text\n"
        "import nodeguard.alerts.textfile, nodeguard.daemon.loop, nodeguard.daemon.wiring\n"
        "import nodeguard.disk.cycle, nodeguard.journal.follow, nodeguard.rotation.engine\n"
        "import nodeguard.rotation.recovery, nodeguard.rotation.lossless, nodeguard.alerts.model\n"
        "assert render_text(Snapshot()).startswith(b'# HELP')\n"
        "heavy = ('prometheus_client', 'ssl', 'http.server', '_hashlib')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_builtin_sha256_gives_hashlibs_digests() -> None:
    import hashlib

    from nodeguard.digest import sha256

    for data in (b"", b"abc", bytes(range(256)) * 1000):
        h = sha256()
        h.update(data)
        assert h.hexdigest() == sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
