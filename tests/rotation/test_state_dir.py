"""The state folder is trusted only when only root can change it, and every oddity in it
is a clear error before anything is changed (issue 7, items 3 and 17).

Each refusal must exit 2, name the entry and the reason on stderr, print no traceback,
and leave the logs exactly as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, make_config, numbered_lines, tree_digest
from tests.fsimages import tmpfs_mount
from tests.rotation.hostile_helpers import (
    NOBODY,
    NOGROUP,
    as_nobody,
    make_arena,
    remove_arena,
)

DATA = numbered_lines("s", 0, 100)
TIMEOUT = 60


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    (path / "app.log").write_bytes(DATA)
    return path


def conf_for(tmp_path: Path, logs: Path, state: Path) -> Path:
    pol = {"name": "app", "paths": [f"{logs}/*.log"], "max_size": "1Ki", "max_files": 3}
    return make_config(tmp_path, [pol], state_dir=state)


def rotate(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(VENV_BIN / "nodeguard"), "-c", str(conf), "--no-dropins", "rotate", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=TIMEOUT)


def assert_refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert "nothing was changed" in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


# --- who may change the state folder ------------------------------------------------------


def _world_writable(path: Path) -> None:
    path.mkdir()
    os.chmod(path, 0o777)  # noqa: S103 - the unsafe folder under test


def _sticky_like_tmp(path: Path) -> None:
    path.mkdir()
    os.chmod(path, 0o1777)  # noqa: S103 - the unsafe folder under test


def _group_writable(path: Path) -> None:
    path.mkdir()
    os.chmod(path, 0o770)  # noqa: S103 - the unsafe folder under test


def _owned_by_nobody(path: Path) -> None:
    path.mkdir(0o700)
    os.chown(path, NOBODY, NOGROUP)


def _parent_world_writable(path: Path) -> None:
    path.parent.mkdir()
    os.chmod(path.parent, 0o777)  # noqa: S103 - the unsafe folder under test
    path.mkdir(0o700)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_world_writable, ("writable by group or others",)),
        (_sticky_like_tmp, ("writable by group or others",)),
        (_group_writable, ("writable by group or others",)),
        (_owned_by_nobody, (f"owned by uid {NOBODY}",)),
        (_parent_world_writable, ("shared", "writable by group or others")),
    ],
    ids=["0777", "1777", "0770", "nobody", "parent-0777"],
)
def test_state_folder_others_could_change_is_refused_and_nothing_changes(
    tmp_path: Path, logs: Path, make: Callable[[Path], None], words: tuple[str, ...]
) -> None:
    state = tmp_path / "shared" / "state" if make is _parent_world_writable else tmp_path / "st"
    make(state)
    before = tree_digest(logs), tree_digest(state)
    done = rotate(conf_for(tmp_path, logs, state))
    assert_refused(done, "state_dir", *words)
    assert (tree_digest(logs), tree_digest(state)) == before


def test_state_dir_slash_tmp_is_refused(tmp_path: Path, logs: Path) -> None:
    done = rotate(conf_for(tmp_path, logs, Path("/tmp")))
    assert_refused(done, "/tmp", "writable by group or others")
    assert not Path("/tmp/nodeguard.lock").exists()


def test_record_planted_by_another_user_in_a_shared_state_folder_deletes_nothing(
    tmp_path: Path, logs: Path
) -> None:
    """The issue's attack: a 1777 state folder, a well-formed record written by nobody."""
    arena = make_arena()  # a folder nobody can reach, as on a real node
    state = arena.state
    _sticky_like_tmp(state)
    victim = logs / "victim.txt"
    victim.write_bytes(b"root's file\n")
    record = {
        "kind": "copytruncate",
        "version": 1,
        "policy": "app",
        "live": str(logs / "app.log"),
        "temp": f"/anywhere/{victim.name}",
        "final": str(logs / "whatever"),
        "dev": 1,
        "ino": 1,
        "length": 1,
    }

    def plant() -> None:
        (state / "intents").mkdir()
        (state / "intents" / "evil.json").write_text(json.dumps(record))

    try:
        as_nobody(plant)
        done = rotate(conf_for(tmp_path, logs, state))
    finally:
        remove_arena(arena)
    assert_refused(done, "writable by group or others")
    assert victim.read_bytes() == b"root's file\n"
    assert (logs / "app.log").read_bytes() == DATA


def test_intents_folder_others_can_write_is_refused(tmp_path: Path, logs: Path) -> None:
    state = tmp_path / "st"
    (state / "intents").mkdir(parents=True)
    os.chmod(state / "intents", 0o777)  # noqa: S103 - the unsafe folder under test
    done = rotate(conf_for(tmp_path, logs, state))
    assert_refused(done, "intents", "writable by group or others")
    assert (logs / "app.log").read_bytes() == DATA


# --- odd entries where the state folder's files belong --------------------------------


def _state_dir_is_a_file(state: Path) -> None:
    state.write_bytes(b"not a folder\n")


def _lock_is_a_folder(state: Path) -> None:
    (state / "nodeguard.lock").mkdir(parents=True)


def _lock_is_a_fifo(state: Path) -> None:
    state.mkdir()
    os.mkfifo(state / "nodeguard.lock")


def _state_json_is_a_folder(state: Path) -> None:
    (state / "state.json").mkdir(parents=True)


def _state_json_is_a_fifo(state: Path) -> None:
    state.mkdir()
    os.mkfifo(state / "state.json")


def _state_json_is_a_symlink(state: Path) -> None:
    state.mkdir()
    (state / "state.json").symlink_to("/etc/hostname")


def _intents_is_a_file(state: Path) -> None:
    state.mkdir()
    (state / "intents").write_bytes(b"{}")


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_state_dir_is_a_file, ("not a directory",)),
        (_lock_is_a_folder, ("nodeguard.lock", "not a regular file")),
        (_lock_is_a_fifo, ("nodeguard.lock", "not a regular file")),
        (_state_json_is_a_folder, ("state.json", "not a regular file")),
        (_state_json_is_a_fifo, ("state.json", "not a regular file")),
        (_state_json_is_a_symlink, ("state.json", "not a regular file")),
        (_intents_is_a_file, ("intents", "not a directory")),
    ],
    ids=[
        "state-dir-file",
        "lock-dir",
        "lock-fifo",
        "json-dir",
        "json-fifo",
        "json-link",
        "intents-file",
    ],
)
def test_odd_state_entries_are_a_clear_error_before_anything_changes(
    tmp_path: Path, logs: Path, make: Callable[[Path], None], words: tuple[str, ...]
) -> None:
    state = tmp_path / "st"
    make(state)
    before = tree_digest(logs), tree_digest(state)
    done = rotate(conf_for(tmp_path, logs, state))  # a FIFO must not hang it (timeout)
    assert_refused(done, *words)
    assert (tree_digest(logs), tree_digest(state)) == before


def test_read_only_state_filesystem_is_a_clear_error(tmp_path: Path, logs: Path) -> None:
    with tmpfs_mount(tmp_path / "ro", size_mb=1) as fs:
        state = fs.path / "state"
        state.mkdir(0o700)
        subprocess.run(["mount", "-o", "remount,ro", str(fs.path)], check=True)
        try:
            done = rotate(conf_for(tmp_path, logs, state))
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(fs.path)], check=True)
    assert_refused(done, "Read-only file system")
    assert (logs / "app.log").read_bytes() == DATA


# --- unreadable intent records --------------------------------------------------------------


def test_unreadable_intent_records_are_quarantined_without_hanging_or_crashing(
    tmp_path: Path, logs: Path
) -> None:
    state = tmp_path / "st"
    intents = state / "intents"
    intents.mkdir(parents=True)
    os.mkfifo(intents / "fifo.json")
    (intents / "folder.json").mkdir()
    (intents / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (intents / "latin1.json").write_bytes(b'{"kind": "rename", "live": "/caf\xe9"}')
    (intents / "huge.json").write_bytes(b" " * (20 << 20) + b"{}")
    (intents / "list.json").write_text("[1, 2]")
    done = rotate(conf_for(tmp_path, logs, state), "--json")  # a FIFO must not hang it
    body = json.loads(done.stdout)
    assert done.returncode == 1, body  # quarantined records are failures to look at
    quarantined = {
        Path(f["path"]).name: f["reason"]
        for f in body["files"]
        if f["action"] == "recover" and f["result"] == "failed"
    }
    names = ["deep", "fifo", "folder", "huge", "latin1", "list"]
    assert sorted(quarantined) == [f"{n}.json" for n in names]
    assert all("nothing was done because of it" in r for r in quarantined.values())
    assert sorted(os.listdir(intents / "malformed")) == sorted(quarantined)
    assert next(f for f in body["files"] if f["action"] == "rotate")["result"] == "done"
    shutil.rmtree(intents / "malformed")
