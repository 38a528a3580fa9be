"""Rotated files belong to exactly one live log (issue 7, items 1 and 2).

Two logs whose rotated files would land in one folder under one name (three pods'
``0.log`` with an absolute olddir) would delete each other's rotated files as "beyond
max_files" and each other's temps as leftovers: such logs are refused, all of them,
before anything is done. A plain rotated file is removed as compression debris only
when its ``.gz`` is proven to hold it.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_config, numbered_lines, records, rotate_json, tree_digest

DATA = numbered_lines("n", 0, 100)
OLD = "0.log.20240101-000000"


def policy(name: str, paths: list[str], **keys: Any) -> dict[str, Any]:
    return {"name": name, "paths": paths, "max_size": "1Ki", "max_files": 2, **keys}


def pods(tmp_path: Path, count: int = 3) -> list[Path]:
    logs = []
    for n in range(count):
        cdir = tmp_path / "pods" / f"ns_pod{n}_uid" / "c"
        cdir.mkdir(parents=True)
        (cdir / "0.log").write_bytes(DATA)
        logs.append(cdir / "0.log")
    return logs


@pytest.mark.parametrize("dry_run", [False, True])
def test_logs_sharing_a_name_in_one_absolute_olddir_are_all_refused(
    tmp_path: Path, dry_run: bool
) -> None:
    logs = pods(tmp_path)
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / OLD).write_bytes(b"whose is it?\n")
    (archive / f".{OLD}.gz.nodeguard-tmp").write_bytes(b"someone's compression\n")
    pol = policy("pods", [f"{tmp_path}/pods/*/*/*.log"], olddir=str(archive), method="copytruncate")
    before = tree_digest(tmp_path / "pods"), tree_digest(archive)
    code, body = rotate_json(make_config(tmp_path, [pol]), *(["--dry-run"] if dry_run else []))
    assert code == 1, body
    for log in logs:
        assert records(body, log) == [("refuse", "refused")]
        (record,) = [f for f in body["files"] if f["path"] == str(log)]
        assert f"share {archive}" in record["reason"]
        others = [str(o) for o in logs if o != log]
        assert all(o in record["reason"] for o in others)
    assert [f for f in body["files"] if f["action"] not in ("refuse",)] == []
    assert (tree_digest(tmp_path / "pods"), tree_digest(archive)) == before


def test_a_log_and_another_policys_olddir_log_of_the_same_name_are_both_refused(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "app.log").write_bytes(DATA)
    (b / "app.log").write_bytes(DATA)
    policies = [
        policy("in-place", [f"{a}/*.log"]),
        policy("into-a", [f"{b}/*.log"], olddir=str(a)),
    ]
    code, body = rotate_json(make_config(tmp_path, policies))
    assert code == 1, body
    assert records(body, a / "app.log") == [("refuse", "refused")]
    assert records(body, b / "app.log") == [("refuse", "refused")]


def test_logs_with_distinct_names_share_an_absolute_olddir(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for sub in ("x", "y"):
        (logs / sub).mkdir(parents=True)
        (logs / sub / f"{sub}.log").write_bytes(DATA)
    archive = tmp_path / "archive"
    archive.mkdir()
    pol = policy("p", [f"{logs}/*/*.log"], olddir=str(archive))
    both = [policy("q", [f"{logs}/x/x.log"]), pol]  # one log matched twice: not a clash
    code, body = rotate_json(make_config(tmp_path, both))
    assert code == 0, body
    assert records(body, logs / "x" / "x.log")[0] == ("rotate", "done")
    assert records(body, logs / "y" / "y.log")[0] == ("rotate", "done")


# --- compression debris -----------------------------------------------------------------


def plain_and_gz(logs: Path, gz: bytes) -> Path:
    logs.mkdir()
    (logs / "app.log").write_bytes(b"live\n")
    plain = logs / "app.log.20240101-000000"
    plain.write_bytes(numbered_lines("r", 0, 9200))  # 575 KiB
    Path(f"{plain}.gz").write_bytes(gz)
    return plain


def _truncated(data: bytes) -> bytes:
    full = gzip.compress(data)
    return full[: len(full) // 2]


def _same_length_other_crc(data: bytes) -> bytes:
    other = bytearray(data)
    other[0] ^= 1
    return gzip.compress(bytes(other))


@pytest.mark.parametrize(
    "make_gz",
    [lambda d: b"", _truncated, _same_length_other_crc, lambda d: gzip.compress(d[:-1])],
    ids=["empty", "truncated", "other-crc", "shorter"],
)
def test_plain_rotated_file_is_kept_unless_its_gz_is_proven_to_hold_it(
    tmp_path: Path, make_gz: Any
) -> None:
    data = numbered_lines("r", 0, 9200)
    plain = plain_and_gz(tmp_path / "logs", make_gz(data))
    before = tree_digest(tmp_path / "logs")
    pol = policy("p", [f"{tmp_path}/logs/*.log"], max_files=5, max_size="1Mi")
    code, body = rotate_json(make_config(tmp_path, [pol]))
    assert code == 1, body
    (conflict,) = [f for f in body["files"] if f["path"] == str(plain)]
    assert (conflict["action"], conflict["result"]) == ("check", "failed")
    assert "does not hold this file" in conflict["reason"] and "both kept" in conflict["reason"]
    assert tree_digest(tmp_path / "logs") == before


def test_plain_rotated_file_whose_gz_holds_it_is_removed(tmp_path: Path) -> None:
    data = numbered_lines("r", 0, 9200)
    # two gzip members, as `cat a.gz b.gz` makes: still exactly the plain file's bytes
    members = gzip.compress(data[:1000]) + gzip.compress(data[1000:])
    plain = plain_and_gz(tmp_path / "logs", members)
    pol = policy("p", [f"{tmp_path}/logs/*.log"], max_files=5, max_size="1Mi")
    code, body = rotate_json(make_config(tmp_path, [pol]))
    assert code == 0, body
    assert records(body, plain) == [("cleanup", "done")]
    assert not plain.exists()
    assert zlib.crc32(gzip.decompress(Path(f"{plain}.gz").read_bytes())) == zlib.crc32(data)
    assert sorted(os.listdir(tmp_path / "logs")) == ["app.log", f"{plain.name}.gz"]


def test_a_log_two_globs_of_one_policy_match_is_handled_once(tmp_path: Path) -> None:
    """The second glob must not clean up the first one's compression in flight."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(DATA * 200)
    (logs / "app.log.20240101-000000").write_bytes(DATA * 200)
    pol = policy("p", [f"{logs}/*.log", f"{logs}/*", f"{logs}/app.log"], max_files=5)
    code, body = rotate_json(make_config(tmp_path, [pol]))
    assert code == 0, body
    assert [f["result"] for f in body["files"] if f["action"] == "rotate"] == ["done"]
    assert sorted(f["result"] for f in body["files"] if f["action"] == "compress") == [
        "done",
        "done",
    ]
    assert [f["action"] for f in body["files"] if f["action"] == "cleanup"] == []
