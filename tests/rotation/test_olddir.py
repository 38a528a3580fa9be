"""A relative olddir is opened and created one folder at a time, never through a symlink,
and a folder that cannot hold it is that log's refusal, never the end of the pass
(issue 7, items 8 and 12)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_config, numbered_lines, records, rotate_json, tree_digest
from tests.fsimages import ext4_image, tmpfs_mount
from tests.rotation.hostile_helpers import NOBODY, NOGROUP, make_arena, remove_arena

DATA = numbered_lines("o", 0, 100)
METHODS = ["rename", "copytruncate", "lossless"]


def policy(paths: list[str], **keys: Any) -> dict[str, Any]:
    return {"name": "p", "paths": paths, "max_size": "1Ki", "compress": "none", **keys}


def make_logs(path: Path, *names: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in names:
        (path / name).write_bytes(DATA)
    return path


@pytest.mark.parametrize("method", METHODS)
def test_intermediate_symlink_in_a_relative_olddir_is_never_followed(
    tmp_path: Path, method: str
) -> None:
    logs = make_logs(tmp_path / "logs", "app.log")
    outside = tmp_path / "outside"
    (outside / "old").mkdir(parents=True)
    (logs / "sub").symlink_to("../outside")
    os.lchown(logs / "sub", NOBODY, NOGROUP)  # another user's link
    before = tree_digest(outside), tree_digest(logs)
    conf = make_config(tmp_path, [policy([f"{logs}/*.log"], olddir="sub/old", method=method)])
    code, body = rotate_json(conf)
    assert code == 1, body
    assert records(body, logs / "app.log") == [("refuse", "refused")]
    assert "symlinks are never followed" in body["files"][0]["reason"]
    assert (tree_digest(outside), tree_digest(logs)) == before


def test_missing_folders_of_a_relative_olddir_are_made_one_by_one(tmp_path: Path) -> None:
    logs = make_logs(tmp_path / "logs", "app.log")
    os.chmod(logs, 0o750)  # noqa: S103 - group may read and enter, as /var/log folders
    conf = make_config(tmp_path, [policy([f"{logs}/*.log"], olddir="a/b/c")])
    code, body = rotate_json(conf)
    assert code == 0, body
    assert [f for f in os.listdir(logs / "a" / "b" / "c") if f.startswith("app.log.")]
    for folder in (logs / "a", logs / "a" / "b", logs / "a" / "b" / "c"):
        assert (folder.stat().st_mode & 0o777) == 0o750


def test_olddir_under_an_insecure_intermediate_folder_is_refused(tmp_path: Path) -> None:
    logs = make_logs(tmp_path / "logs", "app.log")
    (logs / "shared").mkdir()
    os.chmod(logs / "shared", 0o777)  # noqa: S103 - the case under test
    conf = make_config(tmp_path, [policy([f"{logs}/*.log"], olddir="shared/old")])
    code, body = rotate_json(conf)
    assert code == 1, body
    assert "insecure permissions" in body["files"][0]["reason"]
    assert not (logs / "shared" / "old").exists()


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(path)], check=True)


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("case", ["missing", "read-only", "immutable"])
def test_olddir_that_cannot_be_made_is_that_logs_refusal_and_the_pass_goes_on(
    tmp_path: Path, case: str
) -> None:
    bystander = make_logs(tmp_path / "other", "other.log")
    with contextlib.ExitStack() as stack:
        if case == "read-only":
            fs = stack.enter_context(tmpfs_mount(tmp_path / "ro", size_mb=4))
            logs = make_logs(fs.path / "logs", "app.log")
            stack.enter_context(read_only(fs.path))
        elif case == "immutable":
            fs = stack.enter_context(ext4_image(tmp_path / "ext4", size_mb=16))
            logs = make_logs(fs.path / "logs", "app.log")
            stack.enter_context(immutable(logs))
        else:
            logs = make_logs(tmp_path / "logs", "app.log")
            (logs / "old").write_bytes(b"a file where a folder should be\n")
        before = tree_digest(logs)
        olddir = "old/sub" if case == "missing" else "old"
        policies = [
            policy([f"{logs}/*.log"], olddir=olddir),
            {**policy([f"{bystander}/*.log"]), "name": "other"},
        ]
        code, body = rotate_json(make_config(tmp_path, policies))
        assert tree_digest(logs) == before
    assert code == 1, body
    (refusal,) = [f for f in body["files"] if f["path"] == f"{logs}/app.log"]
    assert refusal["result"] == "refused"
    assert "Traceback" not in refusal["reason"]
    assert records(body, bystander / "other.log") == [("rotate", "done")]


def test_olddir_failure_under_su_is_a_one_line_reason(tmp_path: Path) -> None:
    arena = make_arena()
    try:
        with tmpfs_mount(arena.root / "ro", size_mb=4) as fs:
            logs = make_logs(fs.path / "logs", "app.log")
            os.chmod(logs, 0o777)  # noqa: S103 - a folder su is for
            os.chown(logs / "app.log", NOBODY, NOGROUP)
            su = {"su": ["nobody", "nogroup"], "olddir": "old"}
            conf = make_config(tmp_path, [policy([f"{logs}/*.log"], **su)])
            with read_only(fs.path):
                code, body = rotate_json(conf)
    finally:
        remove_arena(arena)
    assert code == 1, body
    (record,) = body["files"]
    assert record["action"] == "refuse"
    assert "Read-only file system" in record["reason"]
    assert "\n" not in record["reason"] + (record["error"] or "")
