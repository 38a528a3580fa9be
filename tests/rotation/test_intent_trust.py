"""Intent records are acted on only when they describe a step this configuration could
have taken: a configured policy, one of its live logs, a rotated name of that log in
its rotated folder, the temp name nodeguard makes for it (issue 7, item 3).

Each record here is well formed (it passes the schema) and sits in a safe state
folder, as if root had written it; each would make the old recovery delete, move or
truncate a file that is not the policy's. All must be quarantined and reported, and
every file must stay exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_config, numbered_lines, rotate_json, tree_digest

DATA = numbered_lines("t", 0, 100)  # 6400 bytes
STAMP = "20260101-000000"


def policy(logs: Path, **keys: Any) -> dict[str, Any]:
    return {"name": "app", "paths": [f"{logs}/*.log"], "max_size": "1Mi", **keys}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def base_record(kind: str, logs: Path) -> dict[str, Any]:
    live = logs / "app.log"
    st = live.stat()
    final = f"{logs}/app.log.{STAMP}"
    record: dict[str, Any] = {
        "kind": kind,
        "version": 1,
        "policy": "app",
        "live": str(live),
        "final": final,
        "dev": st.st_dev,
        "ino": st.st_ino,
    }
    if kind == "rename":
        return {**record, "mode": 0o644, "uid": 0, "gid": 0, "postrotate": False}
    temp = f"{logs}/.app.log.{STAMP}.nodeguard-tmp"
    if kind == "copytruncate":
        return {**record, "temp": temp, "length": 640}
    return {
        **record,
        "temp": temp,
        "length": 4096,
        "unit": 4096,
        "tail_length": 2304,
        "prefix_sha256": sha(DATA[:4096]),
        "tail_sha256": sha(DATA[4096:]),
        "phys_start": None,
        "phys_at_length": None,
    }


Attack = Callable[[Path, Path], dict[str, Any]]  # (logs, victim dir) -> record


def _copytruncate_temp_named_after_a_victim(logs: Path, victim: Path) -> dict[str, Any]:
    """Old recovery: unlink(basename(temp)) in dirname(final) -> deletes victim/secret."""
    rec = base_record("copytruncate", logs)
    return {**rec, "temp": "/nowhere/secret", "final": f"{victim}/app.log.{STAMP}"}


def _copytruncate_final_that_is_not_a_rotated_name(logs: Path, victim: Path) -> dict[str, Any]:
    """Old recovery: a "copy" the live file still starts with is removed as a duplicate."""
    return {**base_record("copytruncate", logs), "final": f"{logs}/prefix.log"}


def _lossless_temp_that_is_a_victim(logs: Path, victim: Path) -> dict[str, Any]:
    """Old recovery: the 'temp copy' (a victim with the right content) is moved in."""
    return {**base_record("lossless-collapse", logs), "temp": f"{victim}/copy"}


def _live_log_of_no_policy(logs: Path, victim: Path) -> dict[str, Any]:
    rec = base_record("copytruncate", logs)
    temp = f"{victim}/.secret.{STAMP}.nodeguard-tmp"
    return {**rec, "live": f"{victim}/secret", "final": f"{victim}/secret.{STAMP}", "temp": temp}


def _policy_that_does_not_exist(logs: Path, victim: Path) -> dict[str, Any]:
    return {**base_record("copytruncate", logs), "policy": "gone"}


def _rotated_name_of_another_log(logs: Path, victim: Path) -> dict[str, Any]:
    rec = base_record("copytruncate", logs)
    final = f"{logs}/other.log.{STAMP}"
    return {**rec, "final": final, "temp": f"{logs}/.other.log.{STAMP}.nodeguard-tmp"}


def _rename_into_another_folder(logs: Path, victim: Path) -> dict[str, Any]:
    return {**base_record("rename", logs), "final": f"{victim}/app.log.{STAMP}"}


def batch_record(logs: Path, *entries: dict[str, Any], **keys: Any) -> dict[str, Any]:
    """A ``rename-batch`` record of ``logs``: app.log's entry, then ``entries``."""
    live, folder = (logs / "app.log").stat(), logs.stat()
    first = {"live": "app.log", "final": f"app.log.{STAMP}", "dev": live.st_dev}
    first |= {"ino": live.st_ino, "mode": 0o644, "uid": 0, "gid": 0}
    return {
        "batch": "rename",
        "kind": "rename-batch",
        "version": 1,
        "policy": "app",
        "directory": str(logs),
        "rotated": str(logs),
        "dev": folder.st_dev,
        "ino": folder.st_ino,
        "postrotate": False,
        "entries": [first, *({**first, **e} for e in entries)],
        **keys,
    }


def _batch_rotating_into_another_folder(logs: Path, victim: Path) -> dict[str, Any]:
    """One good entry, then one whose folder is the victim's: nothing may move at all."""
    return batch_record(logs, {"live": "prefix.log"}, rotated=str(victim))


def _batch_entry_of_a_log_of_no_policy(logs: Path, victim: Path) -> dict[str, Any]:
    return batch_record(logs, directory=str(victim), rotated=str(victim))


def _batch_entry_final_that_is_not_a_rotated_name(logs: Path, victim: Path) -> dict[str, Any]:
    """The second entry would rename prefix.log over a name that is not a rotated one."""
    return batch_record(logs, {"live": "prefix.log", "final": "prefix.log.bak"})


def _batch_of_a_policy_that_does_not_exist(logs: Path, victim: Path) -> dict[str, Any]:
    return batch_record(logs, policy="gone")


ATTACKS: list[tuple[Attack, str]] = [
    (_batch_rotating_into_another_folder, "final"),
    (_batch_entry_of_a_log_of_no_policy, "live"),
    (_batch_entry_final_that_is_not_a_rotated_name, "entries[1]: final"),
    (_batch_of_a_policy_that_does_not_exist, "policy"),
    (_copytruncate_temp_named_after_a_victim, "temp"),
    (_copytruncate_final_that_is_not_a_rotated_name, "final"),
    (_lossless_temp_that_is_a_victim, "temp"),
    (_live_log_of_no_policy, "live"),
    (_policy_that_does_not_exist, "policy"),
    (_rotated_name_of_another_log, "final"),
    (_rename_into_another_folder, "final"),
]


@pytest.mark.parametrize(("attack", "key"), ATTACKS, ids=lambda a: getattr(a, "__name__", ""))
def test_records_this_configuration_could_not_have_made_are_quarantined(
    tmp_path: Path, attack: Attack, key: str
) -> None:
    logs, victim = tmp_path / "logs", tmp_path / "victim"
    logs.mkdir()
    victim.mkdir()
    (logs / "app.log").write_bytes(DATA)
    (logs / "prefix.log").write_bytes(DATA[:640])  # what the live file starts with
    (victim / "secret").write_bytes(b"root's secret\n")
    (victim / "copy").write_bytes(DATA[:4096])  # the content a lossless temp would hold
    (victim / f"app.log.{STAMP}").write_bytes(b"not a rotated file of the policy\n")
    os.link(logs / "app.log", victim / "app.log.hardlink")  # keeps the inode identical
    record = attack(logs, victim)
    intents = tmp_path / "state" / "intents"
    intents.mkdir(parents=True)
    (intents / "planted.json").write_text(json.dumps({**record, "id": "planted"}))
    config = make_config(tmp_path, [policy(logs, compress="none")])
    before = tree_digest(logs), tree_digest(victim)
    code, body = rotate_json(config)
    assert code == 1, body
    (recover,) = [f for f in body["files"] if f["action"] == "recover"]
    assert recover["result"] == "failed"
    assert recover["reason"].startswith("untrusted intent record")
    assert f"{key}:" in recover["reason"]
    assert "nothing was done because of it" in recover["reason"]
    assert (tree_digest(logs), tree_digest(victim)) == before
    assert os.listdir(intents / "malformed") == ["planted.json"]


def test_copytruncate_temp_that_is_not_the_copy_is_left_for_the_admin(tmp_path: Path) -> None:
    """A valid record, but its temp is now a hard link to another file: never unlinked."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(DATA)
    (logs / "keep.txt").write_bytes(DATA[:640])
    record = base_record("copytruncate", logs)
    os.link(logs / "keep.txt", record["temp"])
    intents = tmp_path / "state" / "intents"
    intents.mkdir(parents=True)
    (intents / "x.json").write_text(json.dumps({**record, "id": "x"}))
    before = tree_digest(logs)
    code, body = rotate_json(make_config(tmp_path, [policy(logs, compress="none")]))
    assert code == 1, body
    (recover,) = [f for f in body["files"] if f["action"] == "recover"]
    assert recover["result"] == "failed"
    assert "left for the admin" in recover["reason"]
    assert tree_digest(logs) == before


MALFORMED_BATCHES: list[tuple[dict[str, Any], str]] = [
    ({"entries": []}, "entries: not a list"),
    ({"entries": "app.log"}, "entries: not a list"),
    ({"directory": "relative/logs"}, "directory: not an absolute folder path"),
    ({"postrotate": "yes"}, "postrotate: wrong type"),
    ({"batch": "copy"}, "batch:"),
    ({"version": 2}, "version 2"),
]


@pytest.mark.parametrize(("change", "why"), MALFORMED_BATCHES, ids=lambda c: str(c)[:30])
def test_malformed_batch_records_are_quarantined(
    tmp_path: Path, change: dict[str, Any], why: str
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(DATA)
    record = {**batch_record(logs), **change, "id": "planted"}
    intents = tmp_path / "state" / "intents"
    intents.mkdir(parents=True)
    (intents / "planted.json").write_text(json.dumps(record))
    before = tree_digest(logs)
    code, body = rotate_json(make_config(tmp_path, [policy(logs, compress="none")]))
    assert code == 1, body
    (recover,) = [f for f in body["files"] if f["action"] == "recover"]
    assert recover["reason"].startswith("malformed intent record"), recover
    assert why in recover["reason"]
    assert tree_digest(logs) == before
    assert os.listdir(intents / "malformed") == ["planted.json"]


@pytest.mark.parametrize(
    "entry",
    [
        {"live": "../app.log"},
        {"live": "sub/app.log"},
        {"final": ""},
        {"ino": -1},
        {"mode": "0644"},
        {"uid": True},
    ],
    ids=str,
)
def test_batch_entries_are_checked_one_by_one(tmp_path: Path, entry: dict[str, Any]) -> None:
    """A bad second entry quarantines the whole record: its good first entry is not acted on."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(DATA)
    intents = tmp_path / "state" / "intents"
    intents.mkdir(parents=True)
    (intents / "x.json").write_text(json.dumps({**batch_record(logs, entry), "id": "x"}))
    before = tree_digest(logs)
    code, body = rotate_json(make_config(tmp_path, [policy(logs, compress="none")]))
    assert code == 1, body
    (recover,) = [f for f in body["files"] if f["action"] == "recover"]
    assert recover["reason"].startswith("malformed intent record"), recover
    assert "entries[1]." in recover["reason"]
    assert tree_digest(logs) == before


def test_a_batch_record_larger_than_the_cap_is_quarantined_unread(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(DATA)
    intents = tmp_path / "state" / "intents"
    intents.mkdir(parents=True)
    many = [{"live": f"l{n}.log", "final": f"l{n}.log.{STAMP}"} for n in range(1, 1500)]
    (intents / "big.json").write_text(json.dumps({**batch_record(logs, *many), "id": "big"}))
    assert (intents / "big.json").stat().st_size > 64 * 1024
    before = tree_digest(logs)
    code, body = rotate_json(make_config(tmp_path, [policy(logs, compress="none")]))
    assert code == 1, body
    (recover,) = [f for f in body["files"] if f["action"] == "recover"]
    assert recover["reason"].startswith("malformed intent record"), recover
    assert tree_digest(logs) == before
