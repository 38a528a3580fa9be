"""The rename batch at its edges: names whose JSON is long, a folder gone after a crash.

Each interrupted pass is a real ``nodeguard rotate`` subprocess that SIGKILLs itself at a
batch fault point; the next pass must settle the record it left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nodeguard.rotation import naming
from nodeguard.rotation.batch import Due, _chunks, _entries, _record
from nodeguard.rotation.intents import BATCH_BUDGET
from nodeguard.state import INTENT_READ_CAP
from tests.conftest import VENV_BIN, make_config, numbered_lines, rotate_json
from tests.fsimages import ext4_image, fill, require_tool, tmpfs_mount

# Legal file names whose JSON is longer than their length: every backslash and quote is
# escaped to two characters, a character beyond the BMP to a surrogate pair (12).
LONG_JSON_NAMES = ("\\" * 200, '"' * 200, "\U0001f600" * 50, "\\" * 100 + "\U0001f600" * 20)


def killed_at(config: Path, fault: str) -> None:
    env = {**os.environ, "NODEGUARD_FAULT": fault}
    argv = [str(VENV_BIN / "nodeguard"), "-c", str(config), "--no-dropins", "rotate"]
    proc = subprocess.run(argv, env=env, capture_output=True, check=False, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stdout.decode() + proc.stderr.decode()


def policy(logs: Path, **keys: Any) -> dict[str, Any]:
    return {
        "name": "app",
        "paths": [f"{logs}/*.log"],
        "max_size": "1Ki",
        "max_files": 100,
        "method": "rename",
        "compress": "none",
        **keys,
    }


def intents_left(state: Path) -> list[str]:
    top = state / "intents"
    return sorted(str(p.relative_to(top)) for p in top.rglob("*.json")) if top.exists() else []


@pytest.mark.parametrize("stem", LONG_JSON_NAMES, ids=["backslash", "quote", "emoji", "mixed"])
def test_batch_records_of_names_with_long_json_stay_readable(tmp_path: Path, stem: str) -> None:
    """Every record the batch writes must fit the 64 KiB that recovery reads, whatever
    the names: a record it cannot read is quarantined and its renames never settled."""
    logs = tmp_path / "logs"
    logs.mkdir()
    names = [f"{stem}{k:03d}.log" for k in range(300)]
    for name in names:
        (logs / name).write_bytes(numbered_lines(name[-7:], 0, 40))
    config = make_config(tmp_path, [policy(logs)])
    killed_at(config, "batch.before-sync:1")
    sizes = [p.stat().st_size for p in (tmp_path / "state" / "intents").glob("*.json")]
    assert sizes and max(sizes) <= INTENT_READ_CAP, sizes
    code, body = rotate_json(config)
    assert code == 0, [f for f in body.get("files", body) if f.get("result") != "done"]
    for name in names:
        assert (logs / name).stat().st_size == 0, f"{name!r}: live file missing or not new"
    assert intents_left(tmp_path / "state") == []


@pytest.mark.parametrize("stem", LONG_JSON_NAMES, ids=["backslash", "quote", "emoji", "mixed"])
def test_chunks_bound_the_json_of_every_record(tmp_path: Path, stem: str) -> None:
    """The chunking's estimate is an upper bound of the record's real JSON length."""
    from nodeguard.config.loader import load_config
    from nodeguard.rotation import scan
    from nodeguard.rotation.methods import LiveLog
    from nodeguard.rotation.plan import Step

    logs = tmp_path / ('\\"\U0001f600' * 20)
    logs.mkdir()
    config = load_config(make_config(tmp_path, [policy(logs)]), dropins=False)
    found = scan.open_path(str(logs), lambda *a: None)
    assert found is not None
    dues = []
    for k in range(200):
        name = f"{stem}{k:03d}.log"
        (logs / name).write_bytes(b"x")
        st = os.stat(name, dir_fd=found.fd, follow_symlinks=False)
        log = LiveLog(found, found, name, st)
        step = Step("rotate", name, "due", target=f"{name}.20261201-000000")
        dues.append(Due(log, [], [step]))
    policy_model = config.policies[0]
    for chunk in _chunks(_entries(policy_model, dues)):
        record = _record(policy_model, chunk).as_record()
        body = json.dumps({**record, "id": "0" * 32}, sort_keys=True).encode()
        assert len(body) <= BATCH_BUDGET, (len(body), len(chunk))
    os.close(found.fd)


def test_a_batch_whose_folder_was_removed_after_the_crash_is_settled(tmp_path: Path) -> None:
    """docs/crash-safety.md: a folder that is gone holds none of the recorded files; the
    record ends (a pod's log folder is removed with its pod) instead of failing forever."""
    logs = tmp_path / "pods" / "ns_pod_uid" / "app"
    logs.mkdir(parents=True)
    for k in range(5):
        (logs / f"a{k}.log").write_bytes(numbered_lines(f"a{k}", 0, 40))
    config = make_config(tmp_path, [policy(tmp_path / "pods" / "*" / "app")])
    killed_at(config, "rename.after-rename:3")
    assert intents_left(tmp_path / "state") != []
    shutil.rmtree(tmp_path / "pods" / "ns_pod_uid")
    code, body = rotate_json(config)
    assert code == 0, body
    recovered = [f for f in body["files"] if f["action"] == "recover"]
    assert len(recovered) == 5 and {f["result"] for f in recovered} == {"done"}, recovered
    assert intents_left(tmp_path / "state") == []


def test_rotated_names_are_rotated_names(tmp_path: Path) -> None:
    """Sanity for the names above: each is a live name whose rotated name parses."""
    for stem in LONG_JSON_NAMES:
        parsed = naming.parse(f"{stem}000.log.20261201-000000")
        assert parsed is not None and parsed.base == f"{stem}000.log"


def test_no_free_inode_for_the_new_live_files_is_settled_once_retention_frees_some(
    tmp_path: Path,
) -> None:
    """A folder of due logs on a filesystem with no free inode: each rename works, each
    new live file fails (ENOSPC). Retention then frees inodes and the rotation is tried
    again: by the end of the pass every live file exists again, postrotate ran for
    each, and no record is left (the writers were told to reopen)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,nr_inodes=64", "tmpfs", mnt], check=True)
    try:
        logs = mnt / "logs"
        logs.mkdir()
        names = [f"app{k}.log" for k in range(3)]
        for name in names:
            (logs / name).write_bytes(numbered_lines(name, 0, 40))
            for day in (1, 2, 3):
                (logs / f"{name}.2024010{day}-000000").write_bytes(b"old\n")
        for k in range(1000):  # every inode left
            try:
                (mnt / f"f{k}").touch()
            except OSError:
                break
        ran = tmp_path / "postrotate.txt"
        hook = f'echo "$1" >> {ran}'
        config = make_config(tmp_path, [policy(logs, max_files=2, postrotate=hook)])
        code, body = rotate_json(config)
        for name in names:
            assert (logs / name).exists(), f"{name}: live file missing after the pass: {body}"
            rotated = [r for r in map(naming.parse, os.listdir(logs)) if r and r.base == name]
            assert len(rotated) == 1, rotated  # max_files 2: the live file and this one
            assert (logs / rotated[0].name).read_bytes() == numbered_lines(name, 0, 40)
        assert body["summary"] == {"rotate:failed": 3, "remove:done": 9, "rotate:done": 3}, body
        assert code == 1  # the failed first tries are reported
        assert sorted(set(ran.read_text().split())) == sorted(str(logs / n) for n in names)
        assert intents_left(tmp_path / "state") == []
    finally:
        subprocess.run(["umount", "-l", mnt], check=False)


ODD_NAMES = (b"new\nline.log", b"\xff\xfe-latin1-\xe9.log", b"tab\there.log", b"plain.log")


@pytest.mark.parametrize("point", ["rename.after-rename:2", "batch.before-sync:1"])
def test_names_with_newlines_and_non_utf8_bytes_survive_a_crash_in_the_batch(
    tmp_path: Path, point: str
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    raw = os.fsencode(logs)
    for name in ODD_NAMES:
        with open(raw + b"/" + name, "wb") as handle:
            handle.write(numbered_lines("x", 0, 40))
    ran = tmp_path / "postrotate.txt"
    config = make_config(tmp_path, [policy(logs, postrotate=f'printf "%s\\\\0" "$1" >> {ran}')])
    killed_at(config, point)
    for args in ((), ("--json",)):
        argv = [str(VENV_BIN / "nodeguard"), "-c", str(config), "--no-dropins", "rotate", *args]
        done = subprocess.run(argv, capture_output=True, check=False, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert b"Traceback" not in done.stderr
    listing = os.listdir(raw)
    for name in ODD_NAMES:
        assert os.stat(raw + b"/" + name).st_size == 0, name
        rotated = [n for n in listing if n.startswith(name + b".") and n != name]
        assert len(rotated) == 1, (name, rotated)
        assert Path(os.fsdecode(raw + b"/" + rotated[0])).read_bytes() == numbered_lines("x", 0, 40)
    hooks = set(ran.read_bytes().split(b"\0"))
    assert {raw + b"/" + n for n in ODD_NAMES} <= hooks
    assert intents_left(tmp_path / "state") == []


def _traced_pass(config: Path, trace: Path) -> list[str]:
    strace = require_tool("strace", "strace")
    argv = [strace, "-f", "-qq", "-o", str(trace), "-e", "trace=fsync,renameat2,unlinkat"]
    argv += [str(VENV_BIN / "nodeguard"), "-c", str(config), "--no-dropins", "rotate"]
    done = subprocess.run(argv, capture_output=True, check=False, timeout=120)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    return trace.read_text().splitlines()


def test_ext4_without_a_journal_gets_an_fsync_per_new_live_file(tmp_path: Path) -> None:
    """Without a journal, ext4 writes back no other inode on an fsync (only the file's
    and its new entry's folder): one fsync cannot persist every new live file's owner
    and mode, so each is fsynced, then the folder, as on any unordered filesystem."""
    with ext4_image(tmp_path / "img", size_mb=32, options=("-O", "^has_journal")) as fs:
        logs = fs.path / "logs"
        logs.mkdir()
        for k in range(10):
            (logs / f"a{k}.log").write_bytes(numbered_lines(f"a{k}", 0, 40))
        calls = _traced_pass(make_config(tmp_path, [policy(logs)]), tmp_path / "trace")
        fsyncs = [c for c in calls if "fsync(" in c]
        assert len(fsyncs) >= 11, fsyncs


def test_ext4_without_a_journal_persists_the_gz_before_the_plain_file_goes(
    tmp_path: Path,
) -> None:
    """Without a journal nothing orders the .gz's rename before the plain file's unlink:
    the folder is fsynced between them, or a power cut can keep the unlink and lose the
    rename (the next pass would then remove the .gz's temporary file as debris)."""
    with ext4_image(tmp_path / "img", size_mb=32, options=("-O", "^has_journal")) as fs:
        logs = fs.path / "logs"
        logs.mkdir()
        (logs / "a.log.20240101-000000").write_bytes(numbered_lines("a", 0, 400))
        (logs / "a.log").write_bytes(b"")
        config = make_config(tmp_path, [policy(logs, compress="gzip")])
        calls = _traced_pass(config, tmp_path / "trace")
        moves = [c for c in calls if "renameat2(" in c or "unlinkat(" in c or "fsync(" in c]
        rename = next(i for i, c in enumerate(moves) if ".gz" in c and "renameat2(" in c)
        unlink = next(i for i, c in enumerate(moves) if '000000"' in c and "unlinkat(" in c)
        assert any("fsync(" in c for c in moves[rename:unlink]), moves[rename : unlink + 1]


def test_a_folder_of_more_logs_than_one_record_holds_survives_a_crash_in_a_later_record(
    tmp_path: Path,
) -> None:
    """2100 due logs: several records (2000 entries and 56 KiB at most each); killed
    inside a later one, the next pass settles it and rotates nothing twice."""
    logs = tmp_path / "logs"
    logs.mkdir()
    count = 2100
    for k in range(count):
        (logs / f"l{k:04d}.log").write_bytes(b"%05d\n" % k * 300)
    config = make_config(tmp_path, [policy(logs)])
    killed_at(config, "rename.after-rename:2050")
    records = [json.loads(p.read_bytes()) for p in (tmp_path / "state" / "intents").glob("*.json")]
    assert len(records) == 1 and 0 < len(records[0]["entries"]) <= 2000
    code, body = rotate_json(config)
    assert code == 0, [f for f in body["files"] if f["result"] != "done"][:5]
    listing = os.listdir(logs)
    assert len(listing) == 2 * count
    for k in range(count):
        assert (logs / f"l{k:04d}.log").stat().st_size == 0
    assert intents_left(tmp_path / "state") == []


def test_a_batch_record_cut_short_by_a_full_state_disk_is_a_lack_of_space(tmp_path: Path) -> None:
    """A record of many pages on a state filesystem with a few pages left is written
    short: that is ENOSPC (the rotations wait for space, the retry after retention
    applies), not an I/O error, and nothing is renamed."""
    with tmpfs_mount(tmp_path / "state-fs", size_mb=1) as fs:
        logs = tmp_path / "logs"
        logs.mkdir()
        for k in range(200):
            (logs / f"app-{k:03d}-{'x' * 60}.log").write_bytes(numbered_lines("x", 0, 40))
        config = make_config(tmp_path, [policy(logs)], state_dir=fs.path / "state")
        (fs.path / "state" / "intents").mkdir(parents=True)
        fill(fs, leave_bytes=8192)
        code, body = rotate_json(config)
        errors = {f["error"] for f in body["files"] if f["action"] == "rotate"}
        assert errors == {"No space left on device (ENOSPC)"}, errors
        assert code == 1
        assert len(os.listdir(logs)) == 200  # nothing renamed


def test_a_create_owner_removed_from_the_host_fails_those_logs_without_a_traceback(
    tmp_path: Path,
) -> None:
    """The loader checks that ``create.owner`` exists; a user deleted afterwards (the
    daemon keeps its config) must fail the rotation of those logs, not the pass."""
    from dataclasses import replace

    from nodeguard.config.loader import load_config
    from nodeguard.rotation.context import PassOptions
    from nodeguard.rotation.report import RotationKind
    from nodeguard.rotation.runner import run_rotation_pass
    from nodeguard.world import World

    logs = tmp_path / "logs"
    logs.mkdir()
    for k in range(3):
        (logs / f"l{k}.log").write_bytes(numbered_lines("x", 0, 40))
    conf = make_config(tmp_path, [policy(logs, create={"owner": "root", "group": "root"})])
    config = load_config(conf, dropins=False)
    [app] = config.policies
    assert app.create is not None
    gone = replace(app, create=replace(app.create, owner="nodeguard-user-deleted-since"))
    config = replace(config, policies=(gone,))
    before = {p.name: p.read_bytes() for p in logs.iterdir()}

    report = run_rotation_pass(config, PassOptions(), World())

    failed = [e for e in report.events if e.kind is RotationKind.ROTATE]
    assert len(failed) == 3 and all(e.facts["result"] == "failed" for e in failed)
    assert all("nodeguard-user-deleted-since" in e.reason for e in failed), failed
    assert {p.name: p.read_bytes() for p in logs.iterdir()} == before
    assert intents_left(tmp_path / "state") == []


def test_an_su_user_removed_from_the_host_skips_that_policy_without_a_traceback(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    from nodeguard.config.loader import load_config
    from nodeguard.rotation.context import PassOptions
    from nodeguard.rotation.report import RotationKind
    from nodeguard.rotation.runner import run_rotation_pass
    from nodeguard.world import World

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "l.log").write_bytes(numbered_lines("x", 0, 40))
    conf = make_config(tmp_path, [policy(logs, su=["root", "root"])])
    config = load_config(conf, dropins=False)
    [app] = config.policies
    config = replace(config, policies=(replace(app, su=("nodeguard-su-deleted", "root")),))
    before = (logs / "l.log").read_bytes()

    report = run_rotation_pass(config, PassOptions(), World())

    [event] = [e for e in report.events if e.kind is RotationKind.SU]
    assert event.facts["result"] == "failed" and "nodeguard-su-deleted" in event.reason
    assert (logs / "l.log").read_bytes() == before and os.listdir(logs) == ["l.log"]
