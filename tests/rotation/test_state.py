"""The state directory: the pass lock, the state file and intent records."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from nodeguard.state import IntentJournal, LockBusy, StateCorrupt, StateFile, pass_lock


def test_lock_is_exclusive_names_the_holder_and_is_released(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with pass_lock(state):
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        lock = state / "nodeguard.lock"
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        assert lock.read_text() == f"{os.getpid()}\n"
        with pytest.raises(LockBusy, match=f"held by pid {os.getpid()}"), pass_lock(state):
            pytest.fail("a second holder got the lock")
    with pass_lock(state):
        pass


def test_lock_file_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me\n")
    (state / "nodeguard.lock").symlink_to(victim)
    with pytest.raises(OSError), pass_lock(state):
        pytest.fail("locked through a symlink")
    assert victim.read_bytes() == b"keep me\n"


def test_missing_state_file_reads_as_a_fresh_document(tmp_path: Path) -> None:
    assert StateFile(tmp_path / "state.json").load() == {"version": 1}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "state.json:1:2: Expecting property name"),
        (b"[1, 2]", "not a nodeguard state file"),
        (b'{"version": 99}', "version mismatch"),
        (b"\xff\xfe", "cannot read"),
    ],
)
def test_corrupt_state_is_named_and_rebuilt(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateCorrupt, match=message):
        StateFile(path).load()
    data, problem = StateFile(path).load_or_rebuild()
    assert data == {"version": 1}
    assert problem is not None and message in problem and "rebuilt" in problem
    assert path.read_bytes() == content  # reading never rewrites


def test_state_is_saved_atomically_private_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    StateFile(path).save({"rotation": {"logs": {"/var/log/a.log": 1}}})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "rotation": {"logs": {"/var/log/a.log": 1}},
        "version": 1,
    }
    assert StateFile(path).load_or_rebuild() == (json.loads(path.read_text()), None)
    assert os.listdir(tmp_path) == ["state.json"]


def test_intents_are_durable_until_ended(tmp_path: Path) -> None:
    journal = IntentJournal(tmp_path / "intents")
    assert journal.pending() == []
    first = journal.begin({"step": "rename", "path": "/var/log/a.log"})
    second = journal.begin({"step": "compress"})
    (tmp_path / "intents" / "broken.json").write_text("{")
    pending = dict(journal.pending())
    assert pending[first] == {"step": "rename", "path": "/var/log/a.log", "id": first}
    assert pending[second] == {"step": "compress", "id": second}
    assert pending["broken"] is None
    journal.end(first)
    journal.end(first)  # ending twice is harmless
    assert sorted(dict(journal.pending())) == sorted([second, "broken"])
