"""The rename batch: a folder's due rename rotations under one intent record, one fsync.

Each crash trial runs ``nodeguard rotate`` as a subprocess over one folder of logs of
numbered lines and kills it inside the batch (at a fault point with a random hit count,
or by a real SIGKILL after a random delay while postrotate runs), then runs a normal
pass and checks: no line lost or doubled, every live file there, every log rotated
exactly once, postrotate run at least once per rotated log, no intent record left.
Everything happens on a real ext4 image.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nodeguard.fsutil import TMP_MARK
from nodeguard.rotation import naming
from nodeguard.rotation.intents import RenameBatchIntent, RenameIntent, parse
from tests.conftest import VENV_BIN, make_config, numbered_lines, rotate_json, tree_digest
from tests.fsimages import Mounted, ext4_image, require_tool

SEED = 20261201
LOGS = 24
POINTS = (  # (point, highest hit count: the batch reaches the per-entry points once per log)
    ("batch.after-record", 1),
    ("rename.before-rename", LOGS),
    ("rename.after-rename", LOGS),
    ("rename.after-create", LOGS),
    ("batch.between-entries", LOGS - 1),
    ("batch.before-sync", 1),
    ("batch.before-end", 1),
)


@pytest.fixture(scope="module")
def ext4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with ext4_image(tmp_path_factory.mktemp("batch"), size_mb=128) as fs:
        yield fs


@dataclass
class Folder:
    """One trial's folder of logs and what each was given."""

    root: Path
    logs: Path
    rotated_dir: Path
    config: Path
    written: dict[str, bytes]


def build(root: Path, rng: random.Random, *, count: int = LOGS) -> Folder:
    logs = root / "logs"
    olddir = rng.choice([None, "old"])
    rotated_dir = logs / olddir if olddir else logs
    rotated_dir.mkdir(parents=True)
    written = {}
    for k in range(count):
        name = f"app{k:03d}.log"
        written[name] = numbered_lines(name, 0, rng.randrange(300, 600))
        (logs / name).write_bytes(written[name])
    policy: dict[str, Any] = {
        "name": "batch",
        "paths": [f"{logs}/*.log"],
        "max_size": "16Ki",
        "max_files": 100,
        "method": "rename",
        "compress": "none",
        "olddir": olddir,
        "postrotate": f'echo "$1" >> {root}/postrotate.txt',
    }
    return Folder(root, logs, rotated_dir, make_config(root, [policy]), written)


def nodeguard(folder: Folder, fault: str | None = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "NODEGUARD_FAULT"}
    if fault:
        env["NODEGUARD_FAULT"] = fault
    argv = [str(VENV_BIN / "nodeguard"), "-c", str(folder.config), "--no-dropins", "rotate"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def rotated_of(folder: Folder, live: str) -> list[str]:
    names = [r for r in map(naming.parse, os.listdir(folder.rotated_dir)) if r and r.base == live]
    return [r.name for r in sorted(names, key=lambda r: r.key)]


def check(folder: Folder) -> None:
    """No line lost or doubled, every log rotated exactly once, postrotate for each, no
    record or temporary file left."""
    ran = (folder.root / "postrotate.txt").read_text().split()
    for name, data in folder.written.items():
        rotated = rotated_of(folder, name)
        assert len(rotated) == 1, f"{name}: rotated files {rotated}"
        assert (folder.rotated_dir / rotated[0]).read_bytes() == data, f"{name}: lost or doubled"
        assert (folder.logs / name).read_bytes() == b"", f"{name}: live file missing or not new"
        assert str(folder.logs / name) in ran, f"{name}: postrotate never ran"
    intents = folder.root / "state" / "intents"
    left = [str(p) for p in intents.rglob("*") if p.is_file()] if intents.exists() else []
    left += [str(p) for p in folder.root.rglob(f"*{TMP_MARK}")]
    assert left == []


def settle(folder: Folder) -> None:
    """The pass after the crash: recovery, then the logs the crash left unrotated."""
    proc = nodeguard(folder)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out.decode()


def test_every_crash_point_inside_the_batch_loses_and_doubles_nothing(ext4: Mounted) -> None:
    rng = random.Random(SEED)  # noqa: S311 - seeded trials, not secrets
    for index, (point, most) in enumerate(POINTS * 2):
        folder = build(ext4.path / f"point-{index}", rng)
        hit = rng.randint(1, most)
        proc = nodeguard(folder, f"{point}:{hit}")
        out, _ = proc.communicate(timeout=120)
        try:
            assert proc.returncode == -signal.SIGKILL, out.decode()
            settle(folder)
            check(folder)
        except AssertionError as exc:
            raise AssertionError(f"trial {index} ({point}:{hit}): {exc}") from exc
        shutil.rmtree(folder.root)


def test_sigkill_at_random_moments_of_the_batch_loses_and_doubles_nothing(ext4: Mounted) -> None:
    """Real SIGKILLs after a random delay, spread over a whole pass's duration (measured
    first on the same tree), so most land in the batch or its postrotates."""
    rng = random.Random(SEED + 1)  # noqa: S311
    probe = build(ext4.path / "probe", rng, count=60)
    started = time.monotonic()
    settle(probe)
    took = time.monotonic() - started
    check(probe)
    killed = 0
    for index in range(24):  # until 8 passes were really killed: a busy machine
        if killed == 8:  # finishes some before their kill, and those prove nothing new
            break
        folder = build(ext4.path / f"delay-{index}", rng, count=60)
        proc = nodeguard(folder)
        time.sleep(rng.uniform(0.3, 1.0) * took)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
        if proc.returncode == -signal.SIGKILL:
            killed += 1
        else:
            took *= 0.7  # the pass ran faster than the probe: aim earlier
        try:
            settle(folder)
            check(folder)
        except AssertionError as exc:
            raise AssertionError(f"trial {index} (exit {proc.returncode}): {exc}") from exc
        shutil.rmtree(folder.root)
    assert killed == 8, f"only {killed} passes of {index + 1} were really killed"


def test_a_folder_is_rotated_with_one_record_and_one_fsync(ext4: Mounted) -> None:
    """30 due logs: one intent record written and removed, and a handful of fsyncs for
    the whole pass (the record, the last new live file, the state file), not two per log."""
    strace = require_tool("strace", "strace")
    folder = build(ext4.path / "count", random.Random(SEED), count=30)  # noqa: S311
    trace = folder.root / "trace"
    argv = [strace, "-f", "-qq", "-o", str(trace), "-e", "trace=fsync,fdatasync,openat,unlink"]
    argv += [str(VENV_BIN / "nodeguard"), "-c", str(folder.config), "--no-dropins", "rotate"]
    done = subprocess.run(argv, capture_output=True, check=False, timeout=120)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    calls = trace.read_text().splitlines()
    fsyncs = [c for c in calls if "fsync(" in c]
    records = [c for c in calls if "openat(" in c and '.json", O_WRONLY|O_CREAT|O_EXCL' in c]
    assert len(records) == 1, records
    assert len(fsyncs) <= 4, fsyncs
    check(folder)


def test_a_batch_record_cut_short_by_a_crash_is_removed_as_torn(tmp_path: Path) -> None:
    """A record that spans pages can be cut between them by a crash during its write,
    before its fsync: its step never began, so it is removed, not quarantined."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(b"line\n")
    entries = tuple(
        RenameIntent("app", f"{logs}/l{n}.log", f"{logs}/l{n}.log.1", 1, n, 0o644, 0, 0, False)
        for n in range(100)
    )
    whole = RenameBatchIntent("app", str(logs), str(logs), 1, 1, False, entries).as_record()
    body = json.dumps({**whole, "id": "cut"}, sort_keys=True).encode()
    intents = tmp_path / "state" / "intents"
    intents.mkdir(parents=True)
    (intents / "cut.json").write_bytes(body[:4096])
    config = make_config(tmp_path, [{"name": "app", "paths": [f"{logs}/*.log"]}])
    before = tree_digest(logs)
    code, report = rotate_json(config)
    assert code == 0, report
    (cleanup,) = [f for f in report["files"] if f["action"] == "cleanup"]
    assert cleanup["reason"] == "torn intent record (its step never began)"
    assert list(intents.iterdir()) == []
    assert tree_digest(logs) == before


def test_a_batch_record_reads_back_as_the_renames_it_lists(tmp_path: Path) -> None:
    entries = tuple(
        RenameIntent("app", f"/l/a{n}.log", f"/o/a{n}.log.2026", 7, n, 0o640, 1, 2, True)
        for n in range(3)
    )
    intent = RenameBatchIntent("app", "/l", "/o", 7, 99, True, entries)
    record = json.loads(json.dumps({**intent.as_record(), "id": "x"}, sort_keys=True))
    assert parse(record) == intent
    assert json.dumps(record, sort_keys=True).startswith('{"batch": "rename"')
