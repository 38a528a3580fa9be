"""SIGKILL trials: a pass killed anywhere loses no byte, duplicates none, leaves no debris.

Each trial builds logs of numbered lines (some with rotated files already there), runs
``nodeguard rotate`` as a subprocess that dies at a random fault point and hit count
(or, in some trials, from a real SIGKILL after a random delay), then runs a normal
pass. Every log's retained files in age order followed by its live file must be
exactly the bytes written, and no temporary file or intent record may remain.
Everything happens on a real ext4 image, so ``method: lossless`` really collapses.
"""

from __future__ import annotations

import gzip
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
from tests.conftest import VENV_BIN, make_config, numbered_lines
from tests.fsimages import Mounted, ext4_image

SEED = 20261127
TRIALS = 54
METHODS = ("rename", "copytruncate", "lossless")
COMMON_POINTS = (
    "compress.after-tmp",
    "compress.after-rename",
    "compress.after-unlink",
)
POINTS = {
    "rename": (  # the trial's logs share one folder: one batch
        "rename.before-rename",
        "rename.after-rename",
        "rename.after-create",
        "batch.after-record",
        "batch.between-entries",
        "batch.before-sync",
        "batch.before-end",
    ),
    "copytruncate": (
        "copytruncate.after-copy",
        "copytruncate.before-rename",
        "copytruncate.after-rename",
        "copytruncate.after-truncate",
        "rotate.before-end",
    ),
    "lossless": (
        "lossless.after-copy",
        "lossless.before-collapse",
        "lossless.after-collapse",
        "lossless.after-rename",
        "rotate.before-end",
    ),
}
ONCE = frozenset({"batch.after-record", "batch.before-sync", "batch.before-end"})  # per batch


@pytest.fixture(scope="module")
def ext4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with ext4_image(tmp_path_factory.mktemp("crash"), size_mb=128) as fs:
        yield fs


@dataclass
class Trial:
    """One trial's tree, config and the bytes each log was given."""

    root: Path
    logs: Path
    rotated_dir: Path
    config: Path
    written: dict[str, bytes]


def build_trial(root: Path, rng: random.Random, method: str) -> Trial:
    """Three logs of numbered lines; some already have a .gz and a plain rotated file."""
    logs = root / "logs"
    olddir = rng.choice([None, "old"])
    rotated_dir = logs / olddir if olddir else logs
    rotated_dir.mkdir(parents=True)
    written: dict[str, bytes] = {}
    for k in range(3):
        name, parts, start = f"app{k}.log", [], 0
        for age in range(rng.randrange(0, 3)):
            count = rng.randrange(50, 400)
            data = numbered_lines(name, start, count)
            rotated = f"{name}.2026010{age + 1}-000000"
            if age == 0 and rng.random() < 0.7:
                (rotated_dir / f"{rotated}.gz").write_bytes(gzip.compress(data))
            else:
                (rotated_dir / rotated).write_bytes(data)
            parts.append(data)
            start += count
        live = numbered_lines(name, start, rng.randrange(100, 3000))
        (logs / name).write_bytes(live)
        written[name] = b"".join(parts) + live
    policy: dict[str, Any] = {
        "name": "trial",
        "paths": [f"{logs}/*.log"],
        "max_size": "16Ki",
        "max_files": 1000,  # nothing is dropped: every byte must be accounted for
        "method": method,
        "compress": "gzip",
        "compress_level": 1,
        "delay_compress": rng.random() < 0.3,
        "olddir": olddir,
    }
    if method == "rename" and rng.random() < 0.5:
        policy["postrotate"] = f'echo "$1" >> {root}/postrotate.txt'
    config = make_config(root, [policy])
    return Trial(root, logs, rotated_dir, config, written)


def nodeguard(trial: Trial, fault: str | None = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "NODEGUARD_FAULT"}
    if fault:
        env["NODEGUARD_FAULT"] = fault
    argv = [str(VENV_BIN / "nodeguard"), "-c", str(trial.config), "--no-dropins", "rotate"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def crash_run(trial: Trial, rng: random.Random, method: str, index: int) -> int:
    """The interrupted pass: a fault point, or a plain SIGKILL after a random delay."""
    if index % 5 == 4:
        proc = nodeguard(trial)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
    else:
        point = rng.choice(POINTS[method] + COMMON_POINTS)
        hit = 1 if point in ONCE else rng.randint(1, 2 if point.startswith("batch.") else 3)
        proc = nodeguard(trial, f"{point}:{hit}")
    proc.communicate(timeout=60)
    return proc.returncode


def history(trial: Trial, live: str) -> bytes:
    """Retained files of ``live``, oldest first, then the live file."""
    rotated = [r for r in map(naming.parse, os.listdir(trial.rotated_dir)) if r and r.base == live]
    out = []
    for r in sorted(rotated, key=lambda r: r.key):
        data = (trial.rotated_dir / r.name).read_bytes()
        out.append(gzip.decompress(data) if r.compressed else data)
    return b"".join(out) + (trial.logs / live).read_bytes()


def debris(trial: Trial) -> list[str]:
    """Temporary files anywhere in the trial, and intent records left (pending or aside)."""
    left = [str(p) for p in trial.root.rglob(f"*{TMP_MARK}")]
    intents = trial.root / "state" / "intents"
    if intents.exists():
        left += [str(p) for p in intents.rglob("*") if p.is_file()]
    return left


def check(trial: Trial) -> None:
    for name, data in trial.written.items():
        got = history(trial, name)
        assert len(got) == len(data), f"{name}: {len(got)} bytes kept, {len(data)} written"
        assert got == data, f"{name}: content differs (lost, duplicated or reordered bytes)"
    assert debris(trial) == []


def recovery_pass(trial: Trial) -> None:
    proc = nodeguard(trial)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()


def test_sigkill_at_any_point_loses_and_duplicates_nothing(ext4: Mounted) -> None:
    crashed = 0
    for index in range(TRIALS):
        rng = random.Random(SEED * 1000 + index)  # noqa: S311 - seeded trials, not secrets
        method = METHODS[index % len(METHODS)]
        trial = build_trial(ext4.path / f"trial-{index}", rng, method)
        code = crash_run(trial, rng, method, index)
        crashed += code == -signal.SIGKILL
        if index % 7 == 3:  # recovery itself is killed too, then runs again
            proc = nodeguard(trial, "recover.before-end:1")
            proc.communicate(timeout=60)
        try:
            recovery_pass(trial)
            check(trial)
        except AssertionError as exc:
            raise AssertionError(f"trial {index} ({method}, exit {code}): {exc}") from exc
        shutil.rmtree(trial.root)
    assert crashed >= TRIALS * 2 // 3, f"only {crashed} of {TRIALS} trials were really killed"
