"""Reclaim in a log folder another user owns: it removes only the policy's rotated files.

The attacker (nobody) owns the log folder and plants, under rotated names, a symlink
to a root file, a hard link to one, a FIFO, a folder, and a rotated-looking file of a log
the policy does not name; then the disk turns critical. Reclaim's steps (the rotation
engine's pass with retention cut to ``keep_rotated``) must remove only the real rotated
files of the policy's log and leave every planted entry and its target as it was.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from nodeguard.disk.reclaim import RotationHooks
from nodeguard.world import World
from tests.disk.cfg import load

NOBODY = 65534
SECRET = b"root-only secret\n" * 64


def _digest(path: Path) -> tuple[bytes, int, int, int, float]:
    st = path.stat()
    return (
        hashlib.sha256(path.read_bytes()).digest(),
        st.st_nlink,
        st.st_mode,
        st.st_uid,
        st.st_mtime,
    )


def _hostile_tree(tmp_path: Path) -> tuple[Path, list[Path], list[Path]]:
    victims = tmp_path / "victims"
    victims.mkdir()
    shadow, linked = victims / "shadow", victims / "linked"
    for victim in (shadow, linked):
        victim.write_bytes(SECRET)
        victim.chmod(0o600)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(b"live\n")
    real = [logs / f"app.log.2026010{d}-000000" for d in (1, 2, 3)]
    for path in real:
        path.write_bytes(b"rotated\n" * 100)
    (logs / "app.log.20250101-000000").symlink_to(shadow)
    os.link(linked, logs / "app.log.20250102-000000")  # the tree, not protected_hardlinks
    os.mkfifo(logs / "app.log.20250103-000000")
    (logs / "app.log.20250104-000000").mkdir()
    (logs / "other.log.20250105-000000").write_bytes(b"not this policy's\n")
    for entry in logs.iterdir():
        os.chown(entry, NOBODY, NOBODY, follow_symlinks=False)
    os.chown(logs, NOBODY, NOBODY)
    return logs, [shadow, linked], real


def test_reclaim_removes_only_the_policys_rotated_files(tmp_path: Path) -> None:
    logs, victims, real = _hostile_tree(tmp_path)
    config = load(
        tmp_path,
        policies=[{"name": "app", "paths": [f"{logs}/app.log"], "max_size": "1Gi"}],
    )
    before = {v: _digest(v) for v in victims}
    planted = sorted(p.name for p in logs.iterdir() if p not in real)

    hooks = RotationHooks(config, World())
    hooks.compress_pending(config.policies)
    result = hooks.remove_rotated(config.policies, keep=0)

    assert {v: _digest(v) for v in victims} == before
    assert sorted(p.name for p in logs.iterdir()) == planted
    assert (logs / "app.log").read_bytes() == b"live\n"
    assert (logs / "app.log.20250101-000000").is_symlink()
    assert result.files == len(real)
