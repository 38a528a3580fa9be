"""``run --once`` (the README's first command) and ``nodeguard status``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from nodeguard.daemon.status import STATUS_KIND, status_document
from nodeguard.state import StateDocument
from tests.conftest import numbered_lines, run_cli, tree_digest
from tests.daemon.conftest import policy, write_config

BIG = numbered_lines("x", 0, 100)


def node(tmp_path: Path) -> tuple[Path, Path]:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "big.log").write_bytes(BIG)
    (logs / "small.log").write_bytes(b"small\n")
    pod = tmp_path / "pods" / "default_web-1_0123" / "nginx"
    pod.mkdir(parents=True)
    (pod / "0.log").write_bytes(b"x" * 100)
    return logs, write_config(tmp_path / "ng.yaml", tmp_path, policies=[policy(logs)])


def test_run_once_dry_run_changes_nothing_and_shows_every_part(tmp_path: Path) -> None:
    logs, conf = node(tmp_path)
    before = tree_digest(tmp_path)
    result = run_cli("-c", conf, "--no-dropins", "run", "--once", "--dry-run")
    assert result.code == 0, result.err
    assert tree_digest(tmp_path) == before  # not even the state folder was created
    assert not (tmp_path / "state").exists()
    out = result.out
    assert out.startswith("dry run: nothing is changed and nothing is sent")
    assert "== rotation" in out and f"would rotate {logs}/big.log" in out
    assert "== containers" in out and "1 container(s)" in out
    assert "size-watch" not in out  # the pass covers it


def test_run_once_json_holds_one_document_per_part(tmp_path: Path) -> None:
    logs, conf = node(tmp_path)
    result = run_cli("-c", conf, "--no-dropins", "run", "--once", "--dry-run", "--json")
    assert result.code == 0
    body = json.loads(result.out)
    assert body["dry_run"] is True and body["ok"] is True
    parts = ["rotation", "containers", "journal", "journal-retention", "disk", "alerts"]
    assert list(body["parts"]) == parts
    files = {(f["path"], f["result"]) for f in body["parts"]["rotation"]["files"]}
    assert (f"{logs}/big.log", "planned") in files
    (row,) = body["parts"]["containers"]["containers"]
    assert (row["namespace"], row["pod"], row["container"]) == ("default", "web-1", "nginx")


def test_run_once_does_the_work_and_stores_state(tmp_path: Path) -> None:
    logs, conf = node(tmp_path)
    result = run_cli("-c", conf, "--no-dropins", "run", "--once")
    assert result.code == 0, result.err
    assert (logs / "big.log").stat().st_size == 0
    assert {"container-samples.json", "state.json"} <= set(os.listdir(tmp_path / "state"))


def test_dry_run_and_json_need_once(tmp_path: Path) -> None:
    _, conf = node(tmp_path)
    for flag in ("--dry-run", "--json"):
        result = run_cli("-c", conf, "--no-dropins", "run", flag)
        assert result.code == 2 and "need --once" in result.err


def _write_status(state: Path, **data: object) -> None:
    state.mkdir(mode=0o700, exist_ok=True)
    body = {"pid": 1, "state": "running", "report_every": 30, "parts": {}, **data}
    status_document(state).save(body)


def test_status_exit_codes_follow_the_age_of_the_last_report(tmp_path: Path) -> None:
    conf = write_config(tmp_path / "ng.yaml", tmp_path)
    state = tmp_path / "state"
    missing = run_cli("-c", conf, "status")
    assert missing.code == 1 and "the daemon has not run" in missing.out

    _write_status(state, updated_at=time.time() - 60)  # two intervals: fine
    assert run_cli("-c", conf, "status").code == 0
    _write_status(state, updated_at=time.time() - 91)  # over three intervals
    stale = run_cli("-c", conf, "status")
    assert stale.code == 1 and "NOT REPORTING" in stale.out
    body = json.loads(run_cli("-c", conf, "status", "--json").out)
    assert body["ok"] is False and 90 < body["age"] < 120


def test_status_renders_the_last_pass_and_each_part(tmp_path: Path) -> None:
    conf = write_config(tmp_path / "ng.yaml", tmp_path)
    now = time.time()
    rotation = {
        "interval": 3600,
        "runs": 2,
        "failures": 0,
        "last_start": now - 5,
        "last_duration": 1.25,
        "last_ok": True,
        "next_run": now + 3595,
        "summary": {"rotated": 3, "bytes_freed": 10 * 1024 * 1024},
    }
    journal = {"interval": 10, "last_ok": False, "last_start": now, "last_error": "boom"}
    journal["summary"] = {"lag_seconds": 2.5}
    parts = {"rotation": rotation, "journal": journal}
    totals = {"passes": 2, "files_rotated": 3, "bytes_freed": 10 * 1024 * 1024}
    _write_status(tmp_path / "state", updated_at=now, parts=parts, totals=totals)
    result = run_cli("-c", conf, "status")
    assert result.code == 0
    assert "2 passes, 3 files rotated, 10.0Mi freed" in result.out
    assert "rotation: last " in result.out and "(1.25s) ok" in result.out
    assert "bytes_freed 10.0Mi" in result.out and "rotated 3" in result.out
    assert "journal: last " in result.out and "FAILED: boom" in result.out
    assert "lag_seconds 2.5" in result.out


def test_a_corrupt_or_foreign_status_file_is_reported_never_a_traceback(tmp_path: Path) -> None:
    conf = write_config(tmp_path / "ng.yaml", tmp_path)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    for content in (b"\x00garbage", b'{"kind": "other", "version": 1, "data": {}}', b"[1]"):
        (state / "status.json").write_bytes(content)
        result = run_cli("-c", conf, "status")
        assert result.code == 1 and "status.json" in result.out, result
        assert result.err == ""
    StateDocument(state / "status.json", STATUS_KIND).save({"updated_at": "soon", "parts": 7})
    result = run_cli("-c", conf, "status")
    assert result.code == 1 and "Traceback" not in result.out + result.err
    os.unlink(state / "status.json")
    os.symlink("/etc/passwd", state / "status.json")
    result = run_cli("-c", conf, "status")
    assert result.code == 1 and "cannot read" in result.out


def test_a_status_from_the_future_or_with_a_huge_interval_is_not_ok(tmp_path: Path) -> None:
    """A daemon that stopped reporting must not look healthy because its last document
    says it was written in the future (clock stepped back, forged) or that it reports
    only once a year: the daemon writes at least every 30 s whatever its intervals."""
    conf = write_config(tmp_path / "ng.yaml", tmp_path)
    state = tmp_path / "state"
    _write_status(state, updated_at=time.time() + 10**9)
    future = run_cli("-c", conf, "status")
    assert future.code == 1 and "in the future" in future.out, future
    _write_status(state, updated_at=time.time() - 100_000, report_every=10**12)
    stale = run_cli("-c", conf, "status")
    assert stale.code == 1 and "NOT REPORTING" in stale.out, stale


def test_a_status_in_a_folder_others_can_write_is_not_trusted(tmp_path: Path) -> None:
    """The daemon refuses such a state folder and does not run; a status document someone
    planted there must not report it healthy."""
    conf = write_config(tmp_path / "ng.yaml", tmp_path)
    state = tmp_path / "state"
    _write_status(state, updated_at=time.time())
    state.chmod(0o777)
    result = run_cli("-c", conf, "status")
    assert result.code == 1 and "writable by group or others" in result.out, result
