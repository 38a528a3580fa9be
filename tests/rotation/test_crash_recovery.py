"""Each crash point's recovery, one at a time: what the next pass finishes, undoes or refuses.

The interrupted pass is a ``nodeguard rotate`` subprocess that SIGKILLs itself at a
named fault point; the next pass runs in-process and its report is checked.
"""

from __future__ import annotations

import grp
import gzip
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeguard.fsutil import TMP_MARK
from nodeguard.rotation import naming
from tests.conftest import (
    VENV_BIN,
    make_config,
    numbered_lines,
    rotate_json,
    run_cli,
    tree_digest,
)
from tests.fsimages import Mounted, ext4_image

DATA = numbered_lines("c", 0, 2000)  # 128000 bytes: 31 blocks and a tail


@pytest.fixture(scope="module")
def ext4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with ext4_image(tmp_path_factory.mktemp("recovery"), size_mb=64) as fs:
        yield fs


@pytest.fixture
def logs(ext4: Mounted, tmp_path: Path) -> Iterator[Path]:
    path = ext4.path / tmp_path.name
    path.mkdir()
    (path / "app.log").write_bytes(DATA)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=True)


def policy(logs: Path, **keys: Any) -> dict[str, Any]:
    return {"name": "app", "paths": [f"{logs}/*.log"], "max_size": "4Ki", "max_files": 100, **keys}


def killed_at(config: Path, fault: str) -> None:
    """Run a pass that SIGKILLs itself at ``fault``; insist that it died there."""
    env = {**os.environ, "NODEGUARD_FAULT": fault}
    argv = [str(VENV_BIN / "nodeguard"), "-c", str(config), "--no-dropins", "rotate"]
    proc = subprocess.run(argv, env=env, capture_output=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout.decode() + proc.stderr.decode()


def intents(state: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((state / "intents").glob("*.json"))]


def recover_records(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["result"], f["reason"]) for f in body["files"] if f["action"] == "recover"]


def history(logs: Path, live: str = "app.log") -> bytes:
    rotated = sorted(
        (r for r in map(naming.parse, os.listdir(logs)) if r and r.base == live),
        key=lambda r: r.key,
    )
    parts = [(logs / r.name).read_bytes() for r in rotated]
    parts = [gzip.decompress(p) if r.compressed else p for r, p in zip(rotated, parts, strict=True)]
    return b"".join(parts) + (logs / live).read_bytes()


def temps(logs: Path) -> list[str]:
    return sorted(p.name for p in logs.iterdir() if p.name.endswith(TMP_MARK))


def test_copytruncate_killed_between_rename_and_truncate_is_undone_without_duplicate(
    tmp_path: Path, logs: Path
) -> None:
    config = make_config(tmp_path, [policy(logs, method="copytruncate", compress="none")])
    inode = (logs / "app.log").stat().st_ino
    killed_at(config, "copytruncate.after-rename:1")
    assert len(intents(tmp_path / "state")) == 1
    assert (logs / "app.log").read_bytes() == DATA  # never truncated, and a full copy exists
    code, body = rotate_json(config)
    assert code == 0, body
    ((result, reason),) = recover_records(body)
    assert result == "done"
    assert "undone: the live file was never truncated" in reason
    assert history(logs) == DATA  # the copy was removed, then the pass rotated once more
    assert (logs / "app.log").stat().st_ino == inode
    assert intents(tmp_path / "state") == []


def test_copytruncate_killed_after_truncate_keeps_the_copy(tmp_path: Path, logs: Path) -> None:
    config = make_config(tmp_path, [policy(logs, method="copytruncate")])
    killed_at(config, "copytruncate.after-truncate:1")
    assert (logs / "app.log").stat().st_size == 0
    code, body = rotate_json(config)
    assert code == 0, body
    ((result, reason),) = recover_records(body)
    assert (result, reason.split(";")[1].strip()[:9]) == ("done", "completed")
    assert history(logs) == DATA
    assert temps(logs) == []


@pytest.mark.parametrize(
    ("point", "verdict"),
    [
        ("lossless.before-collapse:1", "undone"),
        ("lossless.after-collapse:1", "completed"),
        ("lossless.after-rename:1", "completed"),
    ],
)
def test_lossless_killed_around_the_collapse_is_finished_or_undone(
    tmp_path: Path, logs: Path, point: str, verdict: str
) -> None:
    config = make_config(tmp_path, [policy(logs, method="lossless")])
    killed_at(config, point)
    code, body = rotate_json(config)
    assert code == 0, body
    ((result, reason),) = recover_records(body)
    assert result == "done"
    assert f"interrupted by a crash; {verdict}" in reason
    assert history(logs) == DATA
    assert temps(logs) == []
    assert intents(tmp_path / "state") == []


def test_rename_killed_before_create_makes_the_live_file_and_reruns_postrotate(
    tmp_path: Path, logs: Path
) -> None:
    os.chmod(logs / "app.log", 0o640)
    marker = tmp_path / "postrotate.txt"
    keys = {"postrotate": f'echo "$1" >> {marker}', "max_size": "1Mi"}
    config = make_config(tmp_path, [policy(logs, **keys)])
    forced = [str(VENV_BIN / "nodeguard"), "-c", str(config), "--no-dropins", "rotate", "--force"]
    env = {**os.environ, "NODEGUARD_FAULT": "rename.after-rename:1"}
    died = subprocess.run(forced, env=env, capture_output=True, check=False)
    assert died.returncode == -signal.SIGKILL
    assert not (logs / "app.log").exists()
    assert not marker.exists()
    code, body = rotate_json(config)
    assert code == 0, body
    ((result, reason),) = recover_records(body)
    assert result == "done"
    assert "created the new live file, ran postrotate" in reason
    assert marker.read_text() == f"{logs / 'app.log'}\n"
    assert stat.S_IMODE((logs / "app.log").stat().st_mode) == 0o640
    assert history(logs) == DATA


def test_compression_killed_after_the_gz_rename_removes_the_plain_copy_once(
    tmp_path: Path, logs: Path
) -> None:
    config = make_config(tmp_path, [policy(logs, method="lossless")])
    killed_at(config, "compress.after-rename:1")
    plain = [n for n in os.listdir(logs) if (r := naming.parse(n)) and not r.compressed]
    assert len(plain) == 1
    assert (logs / (plain[0] + ".gz")).exists()
    code, body = rotate_json(config)
    assert code == 0, body
    assert history(logs) == DATA


def write_intent(state: Path, name: str, text: str) -> Path:
    path = state / "intents" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_malformed_intent_records_are_quarantined_and_nothing_is_acted_on(
    tmp_path: Path, logs: Path
) -> None:
    rotated = logs / "app.log.20260101-000000"
    rotated.write_bytes(DATA[:640])
    state = tmp_path / "state"
    copy = {
        "kind": "copytruncate",
        "version": 1,
        "policy": "app",
        "live": str(logs / "app.log"),
        "temp": "relative/temp",  # not absolute: malformed
        "final": str(rotated),
        "dev": 1,
        "ino": 2,
        "length": 640,
    }
    write_intent(state, "garbage", "{not json")
    write_intent(state, "kind", json.dumps({"kind": "format-disk", "live": "/"}))
    write_intent(state, "relative", json.dumps(copy))
    write_intent(state, "types", json.dumps({**copy, "temp": f"{logs}/t", "length": "640"}))
    config = make_config(tmp_path, [policy(logs, max_size="1Mi", compress="none")])
    before = tree_digest(logs)
    code, body = rotate_json(config)
    assert code == 1
    reasons = [reason for result, reason in recover_records(body) if result == "failed"]
    assert len(reasons) == 4
    assert all(r.startswith("malformed intent record") for r in reasons)
    assert any("temp: not an absolute path" in r for r in reasons)
    assert any("length: wrong type" in r for r in reasons)
    assert tree_digest(logs) == before
    assert sorted(p.name for p in (state / "intents" / "malformed").iterdir()) == [
        "garbage.json",
        "kind.json",
        "relative.json",
        "types.json",
    ]
    assert intents(state) == []
    assert rotate_json(config)[0] == 0  # reported once; the next pass is clean


def test_dry_run_leaves_a_pending_intent_and_the_files_alone(tmp_path: Path, logs: Path) -> None:
    config = make_config(tmp_path, [policy(logs, method="copytruncate")])
    killed_at(config, "copytruncate.after-rename:1")
    state_before, logs_before = tree_digest(tmp_path / "state"), tree_digest(logs)
    result = run_cli("-c", config, "--no-dropins", "rotate", "--dry-run")
    assert result.code == 0, result.out + result.err
    assert tree_digest(tmp_path / "state") == state_before
    assert tree_digest(logs) == logs_before


def test_lossless_intent_whose_temp_copy_changed_is_left_for_the_admin(
    tmp_path: Path, logs: Path
) -> None:
    config = make_config(tmp_path, [policy(logs, method="lossless")])
    killed_at(config, "lossless.after-collapse:1")
    (temp,) = temps(logs)
    with open(logs / temp, "ab") as handle:
        handle.write(b"tampered\n")
    code, body = rotate_json(config)
    assert code == 1
    ((result, reason),) = recover_records(body)
    assert result == "failed"
    assert "left for the admin" in reason
    assert temps(logs) == [temp]  # the only copy of the moved prefix is never cleaned up
    assert len(intents(tmp_path / "state")) == 1


def test_torn_intent_write_is_removed(tmp_path: Path, logs: Path) -> None:
    torn = tmp_path / "state" / "intents" / f".abc.json.123{TMP_MARK}"
    torn.parent.mkdir(parents=True)
    torn.write_text('{"kind": "ren')
    config = make_config(tmp_path, [policy(logs, max_size="1Mi")])
    code, body = rotate_json(config)
    assert code == 0, body
    assert not torn.exists()
    assert [f["action"] for f in body["files"] if f["path"] == str(torn)] == ["cleanup"]


def test_empty_intent_record_is_a_torn_write_and_is_removed(tmp_path: Path, logs: Path) -> None:
    # Records are created under their final name and filled in one write before their
    # step begins: a kill between the create and the write leaves an empty file.
    torn = tmp_path / "state" / "intents" / "0123abcd.json"
    torn.parent.mkdir(parents=True)
    torn.touch()
    before = tree_digest(logs)
    code, body = rotate_json(make_config(tmp_path, [policy(logs, max_size="1Mi")]))
    assert code == 0, body
    assert not torn.exists()
    assert not (torn.parent / "malformed").exists()
    assert [f["action"] for f in body["files"] if f["path"] == str(torn)] == ["cleanup"]
    assert tree_digest(logs) == before


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory user nobody can reach (pytest's tmp_path is root-only)."""
    top = Path(tempfile.mkdtemp(prefix="nodeguard-crash-", dir="/tmp"))
    os.chmod(top, 0o755)  # noqa: S103 - nobody must reach it
    try:
        yield top
    finally:
        shutil.rmtree(top)


def test_su_policy_journals_in_its_own_directory_and_is_recovered_as_that_user(
    tmp_path: Path, public_dir: Path
) -> None:
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    logs = public_dir / "logs"
    logs.mkdir()
    os.chmod(logs, 0o777)  # noqa: S103 - a directory su is for
    (logs / "app.log").write_bytes(DATA)
    os.chown(logs / "app.log", nobody, nogroup)
    su = {"method": "copytruncate", "su": ["nobody", "nogroup"], "compress": "none"}
    config = make_config(tmp_path, [policy(logs, **su)])
    argv = [str(VENV_BIN / "nodeguard"), "-c", str(config), "--no-dropins", "rotate"]
    env = {**os.environ, "NODEGUARD_FAULT": "copytruncate.after-rename:1"}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stdout  # the pass as nobody died; the parent says so
    assert "died" in proc.stdout
    su_dir = tmp_path / "state" / "intents" / f"su-{nobody}-{nogroup}"
    (record,) = su_dir.glob("*.json")
    assert (record.stat().st_uid, stat.S_IMODE(su_dir.stat().st_mode)) == (nobody, 0o700)
    assert intents(tmp_path / "state") == []  # nothing in root's own journal
    code, body = rotate_json(config)
    assert code == 0, body
    ((result, reason),) = recover_records(body)
    assert (result, "undone: the live file was never truncated" in reason) == ("done", True)
    assert history(logs) == DATA
    assert list(su_dir.iterdir()) == []
