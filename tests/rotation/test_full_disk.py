"""A full disk is the normal case, not a crash (issue 7, item 9).

On a filesystem with no free block, where the state folder lives too, a pass must
still delete what retention allows (that frees the space), then rotate, and report
every step it could not do; when only the state folder's filesystem is full, the pass
still does its work and reports the state file it could not save. Never a traceback.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any

from nodeguard.rotation import naming
from tests.conftest import VENV_BIN, make_config
from tests.fsimages import ext4_image, fill, tmpfs_mount

MiB = 1 << 20
OLD = [f"app.log.2024010{d}-000000.gz" for d in (1, 2, 3)]


def noise(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)  # noqa: S311 - test data


def rotate(config: Path) -> tuple[int, dict[str, Any], str]:
    argv = [str(VENV_BIN / "nodeguard"), "-c", str(config), "--no-dropins", "rotate", "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout), done.stderr


def results(body: dict[str, Any], action: str) -> list[tuple[str, str, str]]:
    return [
        (Path(f["path"]).name, f["result"], f["error"] or "")
        for f in body["files"]
        if f["action"] == action
    ]


def make_logs(logs: Path) -> None:
    logs.mkdir()
    (logs / "app.log").write_bytes(noise(2 * MiB, 0))
    for seed, name in enumerate(OLD, 1):
        (logs / name).write_bytes(noise(MiB, seed))


def policy(logs: Path) -> dict[str, Any]:
    # max_files 3: the live file and two rotated ones; the rotation pushes two old ones out
    return {"name": "app", "paths": [f"{logs}/*.log"], "max_size": "1Mi", "max_files": 3}


def test_full_disk_holding_logs_and_state_frees_space_then_rotates(tmp_path: Path) -> None:
    with ext4_image(tmp_path / "ext4", size_mb=32) as fs:
        logs, state = fs.path / "logs", fs.path / "state"
        make_logs(logs)
        config = make_config(tmp_path, [policy(logs)], state_dir=state)
        state.mkdir(0o700)
        fill(fs, leave_bytes=0)
        assert fs.free_bytes() == 0
        code, body, _ = rotate(config)
        assert code == 1, body  # the first attempt at the rotation failed: reported
        removed = sorted(n for n, r, _ in results(body, "remove") if r == "done")
        assert removed == OLD[:2]
        rotations = results(body, "rotate")
        assert rotations[0][1:] == ("failed", rotations[0][2])
        assert "ENOSPC" in rotations[0][2]
        assert rotations[-1][1] == "done"  # retried once the removals made room
        names = sorted(os.listdir(logs))
        fresh = [n for n in names if (r := naming.parse(n)) and r.stamp > "2025"]
        assert len(fresh) == 1
        assert "app.log" in names and OLD[2] in names
        assert (logs / "app.log").stat().st_size == 0


def test_full_state_filesystem_still_removes_and_compresses_and_reports_the_state_write(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    make_logs(logs)
    plain = logs / "app.log.20240104-000000"
    plain.write_bytes(b"compress me\n" * 1000)
    with tmpfs_mount(tmp_path / "statefs", size_mb=1) as fs:
        state = fs.path / "state"
        config = make_config(tmp_path, [policy(logs)], state_dir=state)
        state.mkdir(0o700)
        fill(fs, leave_bytes=0)
        code, body, _ = rotate(config)
    assert code == 1, body
    (save,) = results(body, "save")
    assert save[:2] == ("state.json", "failed") and "ENOSPC" in save[2]
    rotations = results(body, "rotate")  # tried again after the removals: still no room
    assert rotations and all(r == "failed" and "ENOSPC" in e for _, r, e in rotations)
    # without the rotation, retention keeps the live file and two rotated files
    assert sorted(n for n, r, _ in results(body, "remove") if r == "done") == OLD[:2]
    assert ("app.log.20240104-000000", "done", "") in results(body, "compress")
    assert sorted(os.listdir(logs)) == ["app.log", OLD[2], plain.name + ".gz"]
