"""fsutil.atomic_write over what another user may have put at the target's name.

The metrics textfile lands in node_exporter's folder, which its service user owns: the
name may already be a symlink to any file. The rewrite replaces the link itself and
takes nothing from the file it points to (not its owner, not its mode).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from nodeguard.fsutil import atomic_write

NOBODY = 65534


def test_a_symlink_at_the_name_lends_neither_owner_nor_mode(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"theirs\n")
    os.chown(victim, NOBODY, NOBODY)
    victim.chmod(0o666)
    target = tmp_path / "nodeguard.prom"
    target.symlink_to(victim)

    atomic_write(target, b"metrics\n")

    st = os.lstat(target)
    assert stat.S_ISREG(st.st_mode)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (os.geteuid(), 0o644)
    assert victim.read_bytes() == b"theirs\n"


def test_a_regular_file_keeps_its_owner_and_mode(tmp_path: Path) -> None:
    target = tmp_path / "nodeguard.prom"
    target.write_bytes(b"old\n")
    os.chown(target, NOBODY, NOBODY)
    target.chmod(0o640)

    atomic_write(target, b"new\n")

    st = os.lstat(target)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o640)
    assert target.read_bytes() == b"new\n"
