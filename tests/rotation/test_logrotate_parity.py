"""Side by side with real logrotate 3.21: the same trees, the same rounds, the same retained bytes.

logrotate's ``rotate 4`` keeps four rotated files; nodeguard's ``max_files: 5`` counts the
live file too, so both keep the same files. Each round appends known numbered lines to
both trees and runs both tools; afterwards every retained byte is compared.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import (
    make_config,
    nodeguard_history,
    numbered_lines,
    read_maybe_gz,
    rotate_json,
    tree_digest,
)

LOGROTATE = Path("/usr/sbin/logrotate")
LINE = 64
MI_LINES = 1024 * 1024 // LINE  # lines in exactly 1 MiB

# Lines appended per log in each round (64 bytes each).
ROUNDS: dict[str, list[int]] = {
    "busy.log": [25000, 25000, 20000, 30000, 25000, 18000],  # over 1 MiB every round
    "steady.log": [7000, 7000, 7000, 7000, 7000, 7000],  # rotates every third round
    "exact.log": [MI_LINES, MI_LINES - 1, 1, 100, MI_LINES - 100, 5],  # the boundary
    "quiet.log": [10, 10, 10, 10, 10, 10],  # never
}


@dataclass(frozen=True)
class Variant:
    name: str
    nodeguard: dict[str, object]
    logrotate: tuple[str, ...]


VARIANTS = [
    Variant("rename-gzip", {"method": "rename"}, ("compress", "create")),
    Variant("copytruncate", {"method": "copytruncate"}, ("compress", "copytruncate")),
    Variant("delaycompress", {"delay_compress": True}, ("compress", "delaycompress", "create")),
    Variant("nocompress", {"compress": "none"}, ("nocompress", "create")),
]


@pytest.fixture(scope="module")
def logrotate() -> Path:
    """The real logrotate; the test fails (never skips) without it."""
    if not LOGROTATE.exists():
        pytest.fail(f"{LOGROTATE} is missing: run `bash .ci/setup --test` (apt-get logrotate)")
    version = subprocess.run([LOGROTATE, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("logrotate 3.21"), version.stdout
    return LOGROTATE


def write_logrotate_conf(root: Path, logs: Path, directives: tuple[str, ...]) -> Path:
    body = "\n".join(f"    {d}" for d in ("size 1M", "rotate 4", "missingok", *directives))
    conf = root / "logrotate.conf"
    conf.write_text(f"{logs}/*.log {{\n{body}\n}}\n")
    return conf


def run_logrotate(binary: Path, root: Path, conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "-s", root / "logrotate.status", conf], capture_output=True, text=True, check=False
    )


_LR_RE = re.compile(r"^(?P<base>.+)\.(?P<n>\d+)(?:\.gz)?$")


def logrotate_history(directory: Path, live: str) -> tuple[list[str], bytes]:
    """logrotate's rotated files of ``live`` oldest first (highest number), then the live file."""
    numbered = []
    for name in os.listdir(directory):
        match = _LR_RE.match(name)
        if match and match.group("base") == live:
            numbered.append((int(match.group("n")), name))
    names = [n for _, n in sorted(numbered, reverse=True)]
    content = b"".join(read_maybe_gz(directory / n) for n in names)
    return names, content + (directory / live).read_bytes()


def all_lines(directory: Path) -> Counter[bytes]:
    counted: Counter[bytes] = Counter()
    for name in os.listdir(directory):
        counted.update(read_maybe_gz(directory / name).splitlines(keepends=True))
    return counted


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_nodeguard_retains_exactly_what_logrotate_retains(
    tmp_path: Path, logrotate: Path, variant: Variant
) -> None:
    ng_root, lr_root = tmp_path / "ng", tmp_path / "lr"
    ng_logs, lr_logs = ng_root / "logs", lr_root / "logs"
    for logs in (ng_logs, lr_logs):
        logs.mkdir(parents=True)
    policy = {"name": "p", "paths": [f"{ng_logs}/*.log"], "max_size": "1Mi", "max_files": 5}
    ng_conf = make_config(ng_root, [{**policy, **variant.nodeguard}])
    lr_conf = write_logrotate_conf(lr_root, lr_logs, variant.logrotate)
    (ng_logs / "empty.log").touch()
    (lr_logs / "empty.log").touch()
    written = {name: 0 for name in ROUNDS}
    for round_ in range(len(ROUNDS["busy.log"])):
        for name, counts in ROUNDS.items():
            data = numbered_lines(name, written[name], counts[round_])
            written[name] += counts[round_]
            for logs in (ng_logs, lr_logs):
                with open(logs / name, "ab") as f:
                    f.write(data)
        code, body = rotate_json(ng_conf)
        assert code == 0, body
        done = run_logrotate(logrotate, lr_root, lr_conf)
        assert (done.returncode, done.stderr) == (0, "")
    for name in [*ROUNDS, "empty.log"]:
        ng_names, ng_content = nodeguard_history(ng_logs, name)
        lr_names, lr_content = logrotate_history(lr_logs, name)
        assert len(ng_names) == len(lr_names), (name, ng_names, lr_names)
        gz = [sum(n.endswith(".gz") for n in names) for names in (ng_names, lr_names)]
        assert gz[0] == gz[1], (name, ng_names, lr_names)
        assert ng_content == lr_content, name
    assert len(os.listdir(ng_logs)) == len(os.listdir(lr_logs))
    assert all_lines(ng_logs) == all_lines(lr_logs)
    # The run kept something of every log and dropped the oldest busy lines in both.
    busy = numbered_lines("busy.log", 0, 1)
    assert busy not in all_lines(ng_logs)
    assert len(nodeguard_history(ng_logs, "busy.log")[0]) == 4


def test_both_refuse_a_symlinked_log_and_an_insecure_directory(
    tmp_path: Path, logrotate: Path
) -> None:
    logs, bad, outside = tmp_path / "logs", tmp_path / "bad", tmp_path / "outside"
    for d in (logs, bad, outside):
        d.mkdir()
    big = numbered_lines("x", 0, MI_LINES + 10)
    (outside / "secret.log").write_bytes(big)
    (logs / "link.log").symlink_to(outside / "secret.log")
    (bad / "app.log").write_bytes(big)
    os.chmod(bad, 0o777)  # noqa: S103 (the insecure directory under test)
    before = tree_digest(tmp_path / "logs"), tree_digest(bad), tree_digest(outside)

    conf = tmp_path / "logrotate.conf"
    conf.write_text(f"{logs}/*.log {bad}/*.log {{\n    size 1M\n    rotate 4\n    compress\n}}\n")
    done = subprocess.run(
        [logrotate, "-v", "-s", tmp_path / "lr.status", conf],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert f"log {logs}/link.log is symbolic link" in done.stderr
    assert (
        f'skipping "{bad}/app.log" because parent directory has insecure permissions' in done.stderr
    )
    assert (tree_digest(logs), tree_digest(bad), tree_digest(outside)) == before

    ng_conf = make_config(
        tmp_path,
        [{"name": "p", "paths": [f"{logs}/*.log", f"{bad}/*.log"], "max_size": "1Mi"}],
    )
    code, body = rotate_json(ng_conf)
    assert code == 1
    results = {f["path"]: (f["action"], f["result"], f["reason"]) for f in body["files"]}
    assert results[f"{logs}/link.log"][:2] == ("skip", "skipped")
    assert "symlink" in results[f"{logs}/link.log"][2]
    assert results[f"{bad}/app.log"][:2] == ("refuse", "refused")
    assert "insecure permissions" in results[f"{bad}/app.log"][2]
    assert (tree_digest(logs), tree_digest(bad), tree_digest(outside)) == before
