"""How a rotation is done: rename vs copytruncate, create, postrotate, olddir, missing files."""

from __future__ import annotations

import grp
import gzip
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeguard.rotation import naming
from tests.conftest import make_config, numbered_lines, records, rotate_json, run_cli, tree_digest

NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = grp.getgrnam("nogroup").gr_gid
ADM = grp.getgrnam("adm").gr_gid
DATA = numbered_lines("m", 0, 100)  # 6400 bytes


def policy(logs: Path, **keys: Any) -> dict[str, Any]:
    return {"name": "app", "paths": [f"{logs}/*.log"], "max_size": "1Ki", **keys}


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    (path / "app.log").write_bytes(DATA)
    return path


def only_rotated(directory: Path, live: str = "app.log") -> Path:
    (name,) = [n for n in os.listdir(directory) if (r := naming.parse(n)) and r.base == live]
    return directory / name


def test_rename_moves_the_inode_aside_and_creates_a_new_live_file(
    tmp_path: Path, logs: Path
) -> None:
    inode = (logs / "app.log").stat().st_ino
    code, _ = rotate_json(make_config(tmp_path, [policy(logs, compress="none")]))
    assert code == 0
    rotated = only_rotated(logs)
    assert rotated.stat().st_ino == inode
    assert rotated.read_bytes() == DATA
    assert (logs / "app.log").stat().st_ino != inode
    assert (logs / "app.log").stat().st_size == 0


def test_copytruncate_keeps_the_live_inode_and_copies_the_content(
    tmp_path: Path, logs: Path
) -> None:
    os.chown(logs / "app.log", NOBODY, ADM)
    os.chmod(logs / "app.log", 0o604)
    inode = (logs / "app.log").stat().st_ino
    with open(logs / "app.log", "ab") as writer:  # an O_APPEND writer that never reopens
        code, _ = rotate_json(make_config(tmp_path, [policy(logs, method="copytruncate")]))
        assert code == 0
        writer.write(b"after\n")
    live = (logs / "app.log").stat()
    assert live.st_ino == inode
    assert (logs / "app.log").read_bytes() == b"after\n"
    rotated = only_rotated(logs)
    assert gzip.decompress(rotated.read_bytes()) == DATA
    st = rotated.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, ADM, 0o604)


def test_create_sets_mode_owner_and_group_of_the_new_live_file(tmp_path: Path, logs: Path) -> None:
    create = {"mode": "0640", "owner": "nobody", "group": "adm"}
    assert rotate_json(make_config(tmp_path, [policy(logs, create=create)]))[0] == 0
    st = (logs / "app.log").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, NOBODY, ADM)


def test_without_create_the_new_live_file_copies_the_old_ones_access(
    tmp_path: Path, logs: Path
) -> None:
    os.chown(logs / "app.log", NOBODY, NOGROUP)
    os.chmod(logs / "app.log", 0o620)
    assert rotate_json(make_config(tmp_path, [policy(logs)]))[0] == 0
    st = (logs / "app.log").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o620, NOBODY, NOGROUP)
    gz = only_rotated(logs).stat()
    assert (stat.S_IMODE(gz.st_mode), gz.st_uid, gz.st_gid) == (0o620, NOBODY, NOGROUP)


def test_postrotate_runs_once_per_rotated_log_with_its_path(tmp_path: Path, logs: Path) -> None:
    (logs / "web.log").write_bytes(DATA)
    (logs / "small.log").write_bytes(b"x\n")
    out = tmp_path / "hook.out"
    hook = f'printf "%s\\n" "$1" >> {out}'
    conf = make_config(tmp_path, [policy(logs, postrotate=hook)])
    assert run_cli("-c", conf, "--no-dropins", "rotate", "--dry-run").code == 0
    assert not out.exists()
    assert rotate_json(conf)[0] == 0
    assert sorted(out.read_text().splitlines()) == [str(logs / "app.log"), str(logs / "web.log")]


def test_failing_postrotate_is_reported_and_exits_1(tmp_path: Path, logs: Path) -> None:
    conf = make_config(tmp_path, [policy(logs, postrotate="echo boom >&2; exit 3")])
    code, body = rotate_json(conf)
    assert code == 1
    assert body["ok"] is False
    assert records(body, logs / "app.log") == [("rotate", "done"), ("postrotate", "failed")]
    (hook,) = [f for f in body["files"] if f["action"] == "postrotate"]
    assert hook["error"] == "exit 3: boom"
    assert gzip.decompress(only_rotated(logs).read_bytes()) == DATA


def test_postrotate_that_hangs_is_stopped_at_its_timeout(tmp_path: Path, logs: Path) -> None:
    conf = make_config(
        tmp_path, [policy(logs, postrotate="exec sleep 30", postrotate_timeout="1s")]
    )
    code, body = rotate_json(conf)
    assert code == 1
    (hook,) = [f for f in body["files"] if f["action"] == "postrotate"]
    assert hook["result"] == "failed"
    assert "timed out after 1s" in hook["error"]


def test_missing_literal_path_is_fine_with_missing_ok(tmp_path: Path, logs: Path) -> None:
    conf = make_config(tmp_path, [policy(logs, paths=[f"{logs}/absent.log"])])
    code, body = rotate_json(conf)
    assert (code, body["files"]) == (0, [])


@pytest.mark.parametrize("where", ["absent.log", "absent-dir/absent.log"])
def test_missing_literal_path_fails_without_missing_ok(
    tmp_path: Path, logs: Path, where: str
) -> None:
    path = logs / where
    conf = make_config(tmp_path, [policy(logs, paths=[str(path)], missing_ok=False)])
    code, body = rotate_json(conf)
    assert code == 1
    assert records(body, path) == [("scan", "failed")]
    assert "does not exist" in body["files"][0]["reason"]


def test_empty_file_is_not_rotated_even_with_force(tmp_path: Path, logs: Path) -> None:
    (logs / "app.log").write_bytes(b"")
    conf = make_config(tmp_path, [policy(logs)])
    before = tree_digest(logs)
    code, body = rotate_json(conf, "--force")
    assert code == 0
    assert records(body, logs / "app.log") == [("keep", "unchanged")]
    assert tree_digest(logs) == before


def test_force_rotates_a_small_file_and_an_empty_one_without_not_if_empty(
    tmp_path: Path, logs: Path
) -> None:
    (logs / "app.log").write_bytes(b"small\n")
    (logs / "empty.log").write_bytes(b"")
    conf = make_config(tmp_path, [policy(logs, max_size="1Mi", not_if_empty=False)])
    assert rotate_json(conf)[0] == 0
    assert sorted(os.listdir(logs)) == ["app.log", "empty.log"]
    code, body = rotate_json(conf, "--force")
    assert code == 0
    assert records(body, logs / "app.log") == [("rotate", "done")]
    assert records(body, logs / "empty.log") == [("rotate", "done")]
    assert gzip.decompress(only_rotated(logs).read_bytes()) == b"small\n"
    assert gzip.decompress(only_rotated(logs, "empty.log").read_bytes()) == b""


def test_relative_olddir_is_created_beside_the_log_and_holds_rotated_files(
    tmp_path: Path, logs: Path
) -> None:
    os.chmod(logs, 0o750)  # noqa: S103 (the olddir must copy this mode)
    conf = make_config(tmp_path, [policy(logs, olddir="old")])
    assert rotate_json(conf)[0] == 0
    old = logs / "old"
    assert stat.S_IMODE(old.stat().st_mode) == 0o750
    assert gzip.decompress(only_rotated(old).read_bytes()) == DATA
    assert sorted(os.listdir(logs)) == ["app.log", "old"]


def test_absolute_olddir_holds_rotated_files(tmp_path: Path, logs: Path) -> None:
    old = tmp_path / "archive"
    old.mkdir()
    conf = make_config(tmp_path, [policy(logs, olddir=str(old), max_files=2)])
    for round_ in range(3):
        (logs / "app.log").write_bytes(numbered_lines(f"r{round_}", 0, 100))
        assert rotate_json(conf)[0] == 0
    assert gzip.decompress(only_rotated(old).read_bytes()) == numbered_lines("r2", 0, 100)


def test_symlinked_relative_olddir_is_refused(tmp_path: Path, logs: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (logs / "old").symlink_to(elsewhere)
    before, target_before = tree_digest(logs), tree_digest(elsewhere)
    code, body = rotate_json(make_config(tmp_path, [policy(logs, olddir="old")]))
    assert code == 1
    assert records(body, logs / "app.log") == [("refuse", "refused")]
    assert "symlinks are never followed" in body["files"][0]["reason"]
    assert (tree_digest(logs), tree_digest(elsewhere)) == (before, target_before)


def test_absolute_olddir_through_a_symlink_others_could_change_is_refused(
    tmp_path: Path, logs: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "old-link"
    link.symlink_to(elsewhere)
    os.lchown(link, NOBODY, NOGROUP)
    before, target_before = tree_digest(logs), tree_digest(elsewhere)
    code, body = rotate_json(make_config(tmp_path, [policy(logs, olddir=str(link))]))
    assert code == 1
    assert records(body, logs / "app.log") == [("refuse", "refused")]
    assert "symlink" in body["files"][0]["reason"]
    assert (tree_digest(logs), tree_digest(elsewhere)) == (before, target_before)


@pytest.fixture
def other_fs_dir() -> Iterator[Path]:
    """A directory on /dev/shm (tmpfs), another filesystem than the tests' /tmp."""
    path = Path(tempfile.mkdtemp(prefix="nodeguard-test-", dir="/dev/shm"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_olddir_on_another_filesystem_is_refused_for_rename(
    tmp_path: Path, logs: Path, other_fs_dir: Path
) -> None:
    assert other_fs_dir.stat().st_dev != logs.stat().st_dev
    before = tree_digest(logs)
    code, body = rotate_json(make_config(tmp_path, [policy(logs, olddir=str(other_fs_dir))]))
    assert code == 1
    assert "on another filesystem" in body["files"][0]["reason"]
    assert tree_digest(logs) == before
    assert os.listdir(other_fs_dir) == []
    conf = make_config(tmp_path, [policy(logs, olddir=str(other_fs_dir), method="copytruncate")])
    assert rotate_json(conf)[0] == 0
    assert gzip.decompress(only_rotated(other_fs_dir).read_bytes()) == DATA
