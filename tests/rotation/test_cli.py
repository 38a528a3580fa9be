"""``nodeguard rotate`` end to end: dry run, idempotence, lock, state, selection, reports."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nodeguard.rotation import naming
from nodeguard.state import pass_lock
from tests.conftest import (
    VENV_BIN,
    make_config,
    numbered_lines,
    records,
    rotate_json,
    run_cli,
    tree_digest,
)

DATA = numbered_lines("c", 0, 100)  # 6400 bytes
RECORD_KEYS = {
    "policy",
    "path",
    "action",
    "result",
    "reason",
    "bytes_before",
    "bytes_after",
    "target",
    "error",
}


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """A log over max_size, one under, and one with more rotated files than max_files allows."""
    path = tmp_path / "logs"
    path.mkdir()
    (path / "big.log").write_bytes(DATA)
    (path / "small.log").write_bytes(b"small\n")
    (path / "old.log").write_bytes(b"old\n")
    for day in range(1, 6):
        (path / f"old.log.2024010{day}-000000.gz").write_bytes(gzip.compress(b"%d\n" % day))
    return path


def config(tmp_path: Path, logs: Path, **keys: Any) -> Path:
    pol = {"name": "app", "paths": [f"{logs}/*.log"], "max_size": "4Ki", "max_files": 3, **keys}
    return make_config(tmp_path, [pol])


def nodeguard(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VENV_BIN / "nodeguard", *map(str, args)], capture_output=True, text=True, check=False
    )


def test_dry_run_changes_nothing_and_prints_a_readable_plan(tmp_path: Path, logs: Path) -> None:
    conf = config(tmp_path, logs, postrotate=f"touch {tmp_path}/hook-ran")
    before = tree_digest(tmp_path)
    done = nodeguard("-c", conf, "--no-dropins", "rotate", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert tree_digest(tmp_path) == before
    assert not (tmp_path / "state").exists()
    out = done.stdout
    assert "dry run" in out
    assert f"would rotate {logs}/big.log" in out
    assert "size 6.2Ki >= max_size 4.0Ki" in out
    assert f"would compress {logs}/big.log." in out
    for day in (1, 2, 3):
        assert f"would remove {logs}/old.log.2024010{day}-000000.gz" in out
    assert "beyond max_files 3" in out
    assert "would be 1 rotated, 1 compressed, 3 removed" in out


def test_dry_run_plans_into_an_olddir_it_does_not_create(tmp_path: Path, logs: Path) -> None:
    conf = config(tmp_path, logs, olddir="old")
    before = tree_digest(tmp_path)
    code, body = rotate_json(conf, "--dry-run")
    assert code == 0
    (rotation,) = [f for f in body["files"] if f["action"] == "rotate"]
    assert rotation["result"] == "planned"
    assert rotation["target"].startswith(f"{logs}/old/big.log.")
    assert tree_digest(tmp_path) == before


def test_dry_run_report_matches_what_the_real_pass_then_does(tmp_path: Path, logs: Path) -> None:
    conf = config(tmp_path, logs)
    code, planned = rotate_json(conf, "--dry-run")
    assert (code, planned["dry_run"]) == (0, True)
    code, done = rotate_json(conf)
    assert (code, done["dry_run"]) == (0, False)

    def steps(body: dict[str, Any], result: str) -> list[tuple[str, str]]:
        return sorted(
            (f["action"], f["path"].split(".2")[0]) for f in body["files"] if f["result"] == result
        )

    assert steps(planned, "planned") == steps(done, "done")
    assert steps(done, "done") != []


def test_second_pass_right_after_changes_nothing(tmp_path: Path, logs: Path) -> None:
    conf = config(tmp_path, logs, delay_compress=True)
    code, first = rotate_json(conf)
    assert code == 0
    assert {f["action"] for f in first["files"]} >= {"rotate", "remove"}
    after_first = tree_digest(logs)
    code, second = rotate_json(conf)
    assert code == 0
    assert {(f["action"], f["result"]) for f in second["files"]} == {("keep", "unchanged")}
    assert len(second["files"]) == 3
    assert tree_digest(logs) == after_first


def test_pass_while_another_holds_the_lock_exits_3_and_changes_nothing(
    tmp_path: Path, logs: Path
) -> None:
    conf = config(tmp_path, logs)
    before = tree_digest(logs)
    with pass_lock(tmp_path / "state"):
        result = run_cli("-c", conf, "--no-dropins", "rotate")
        assert result.code == 3
        assert "another pass is running" in result.err
        assert f"held by pid {os.getpid()}" in result.err
        done = nodeguard("-c", conf, "--no-dropins", "run", "--once")
        assert done.returncode == 3
        assert "another pass is running" in done.stderr
    assert tree_digest(logs) == before
    assert run_cli("-c", conf, "--no-dropins", "rotate").code == 0


def test_corrupt_state_is_reported_rebuilt_and_never_a_reason_to_delete(
    tmp_path: Path, logs: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.json").write_bytes(b'{"version": 1, "rotation": {"logs": \x00garbage')
    conf = config(tmp_path, logs, max_files=10)
    rotated_before = tree_digest(logs / "old.log.20240101-000000.gz")
    code, body = rotate_json(conf)
    assert code == 0
    (note,) = body["notes"]
    assert f"{state}/state.json" in note and "rebuilt" in note
    removed = [f for f in body["files"] if f["action"] == "remove"]
    assert removed == []
    assert tree_digest(logs / "old.log.20240101-000000.gz") == rotated_before
    saved = json.loads((state / "state.json").read_text())
    assert (saved["kind"], saved["version"]) == ("rotation", 1)
    assert str(logs / "big.log") in saved["data"]["logs"]
    code, body = rotate_json(conf)
    assert (code, body["notes"]) == (0, [])


def test_policy_option_selects_policies_and_unknown_names_exit_2(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        d.mkdir()
        (d / "a.log").write_bytes(DATA)
    conf = make_config(
        tmp_path,
        [
            {"name": "one", "paths": [f"{one}/*.log"], "max_size": "1Ki"},
            {"name": "two", "paths": [f"{two}/*.log"], "max_size": "1Ki"},
        ],
    )
    before_two = tree_digest(two)
    result = run_cli("-c", conf, "--no-dropins", "rotate", "--policy", "nope", "--policy", "one")
    assert result.code == 2
    assert "no such policy: nope (have: one, two)" in result.err
    assert tree_digest(two) == before_two and len(os.listdir(one)) == 1
    code, body = rotate_json(conf, "--policy", "one")
    assert code == 0
    assert {f["policy"] for f in body["files"]} == {"one"}
    assert len(os.listdir(one)) == 2
    assert tree_digest(two) == before_two


def test_json_report_has_one_record_per_action_with_bytes_and_results(
    tmp_path: Path, logs: Path
) -> None:
    (logs / "sub").mkdir()
    os.symlink(logs / "big.log", logs / "link.log")
    code, body = rotate_json(config(tmp_path, logs, postrotate="exit 7"))
    assert code == 1
    assert set(body) == {"dry_run", "ok", "notes", "summary", "files"}
    assert body["ok"] is False
    for record in body["files"]:
        assert set(record) == RECORD_KEYS
        assert record["policy"] == "app"
    by_action = {(f["action"], f["path"]): f for f in body["files"]}
    big = by_action[("rotate", f"{logs}/big.log")]
    assert (big["result"], big["bytes_before"], big["bytes_after"], big["error"]) == (
        "done",
        6400,
        0,
        None,
    )
    assert naming.parse(Path(big["target"]).name) is not None
    compressed = by_action[("compress", big["target"])]
    assert compressed["result"] == "done" and 0 < compressed["bytes_after"] < 6400
    small = by_action[("keep", f"{logs}/small.log")]
    assert (small["result"], small["bytes_before"], small["bytes_after"]) == ("unchanged", 6, 6)
    assert by_action[("skip", f"{logs}/link.log")]["result"] == "skipped"
    hook = by_action[("postrotate", f"{logs}/big.log")]
    assert (hook["result"], hook["error"]) == ("failed", "exit 7: ")
    assert body["summary"]["rotate:done"] == 1
    assert body["summary"]["remove:done"] == 3


def test_exit_codes(tmp_path: Path, logs: Path) -> None:
    assert run_cli("-c", config(tmp_path, logs), "--no-dropins", "rotate").code == 0
    os.chmod(logs, 0o777)  # noqa: S103 (the insecure directory under test)
    assert run_cli("-c", config(tmp_path, logs), "--no-dropins", "rotate").code == 1
    assert run_cli("-c", tmp_path / "missing.yaml", "rotate").code == 2
    assert run_cli("-c", config(tmp_path, logs), "rotate", "--bogus").code == 2
    assert run_cli("-c", config(tmp_path, logs), "run", "--dry-run").code == 2  # needs --once
    with pass_lock(tmp_path / "state"):
        assert run_cli("-c", config(tmp_path, logs), "--no-dropins", "rotate").code == 3


def test_run_once_performs_the_same_pass(tmp_path: Path, logs: Path) -> None:
    done = nodeguard("-c", config(tmp_path, logs), "--no-dropins", "run", "--once", "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)["parts"]["rotation"]
    assert records(body, logs / "big.log") == [("rotate", "done")]
    assert (logs / "big.log").stat().st_size == 0
