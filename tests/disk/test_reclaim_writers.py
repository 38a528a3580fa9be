"""Reclaim's compress step and a process still writing the newest rotated file.

``delay_compress`` keeps the newest rotated file plain because its writer may not have
reopened the live log yet (a ``rename`` policy whose postrotate only signals the
application). Reclaim's compress step turns ``delay_compress`` off, so it compresses
that file and unlinks it while the writer still appends to it: every line written
after the gzip read the file is lost. The rotation engine's compress step does not look
at /proc writers (it does so only for the in-place methods): owner rotation/steps.py.
"""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

from nodeguard.disk.filesystems import discover, holds
from nodeguard.disk.reclaim import RotationHooks, reclaim
from nodeguard.world import World
from tests.disk.cfg import load

ROTATED = "app.log.20260101-000000"


def test_reclaim_never_compresses_a_rotated_file_still_being_written(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(b"new live\n")
    (logs / ROTATED).write_bytes(b"early line\n" * 100)
    policy = {
        "name": "app",
        "paths": [f"{logs}/*.log"],
        "max_size": "1Gi",
        "method": "rename",
        "compress": "gzip",
        "delay_compress": True,
    }
    config = load(tmp_path, policies=[policy])
    # The application has not reopened yet: it appends to the renamed file.
    writer = subprocess.Popen(
        ["/bin/sh", "-c", f"exec 3>>'{logs / ROTATED}'; echo ready; read x; echo late >&3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
        RotationHooks(config, World()).compress_pending(config.policies)
    finally:
        writer.communicate(b"\n", timeout=30)
    kept = b""
    if (logs / ROTATED).exists():
        kept += (logs / ROTATED).read_bytes()
    if (logs / f"{ROTATED}.gz").exists():
        kept += gzip.decompress((logs / f"{ROTATED}.gz").read_bytes())
    assert b"late\n" in kept


def test_reclaim_says_how_many_rotated_files_it_left_plain_and_why(tmp_path: Path) -> None:
    """A critical disk where reclaim's compress step frees nothing because a process still
    writes the rotated file: the step's result, its event and the shortfall say so."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(b"new live\n")
    for name in (ROTATED, "app.log.20260102-000000"):
        (logs / name).write_bytes(b"early line\n" * 100)
    policy = {
        "name": "app",
        "paths": [f"{logs}/*.log"],
        "max_size": "1Gi",
        "method": "rename",
        "compress": "gzip",
        "delay_compress": True,
    }
    config = load(tmp_path, policies=[policy], disk={"reclaim": {"keep_rotated": 5}})
    (fs,) = [f for f in discover(config)[0] if holds(f, str(logs))]
    held = " ".join(
        f"exec {3 + n}>>'{logs / name}';"
        for n, name in enumerate(sorted(p.name for p in logs.iterdir() if p.name != "app.log"))
    )
    writer = subprocess.Popen(
        ["/bin/sh", "-c", f"{held} echo ready; read x"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
        world = World()
        outcome = reclaim(fs, 1.01, config, world, RotationHooks(config, world))  # unreachable
    finally:
        writer.communicate(b"\n", timeout=30)

    steps = {s.step: s for s in outcome.steps}
    compress = steps["compress"]
    assert compress.ok and compress.left_plain == 2, compress
    why = f"2 rotated files left plain: still open for writing by pid {writer.pid} (sh)"
    assert why in compress.detail, compress.detail
    assert compress.to_json()["left_plain"] == 2
    # The ordinary pass (delay_compress on) already left the older one plain:
    assert steps["rotate"].left_plain == 1 and "1 rotated file left plain" in steps["rotate"].detail
    assert outcome.left_plain == 2
    assert "2 rotated files left plain: still open for writing" in outcome.shortfall()
    assert sorted(p.name for p in logs.iterdir() if p.suffix == ".gz") == []
