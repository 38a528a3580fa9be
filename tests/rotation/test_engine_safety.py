"""Refusals leave their target untouched; su; logrotate conflicts; crash debris."""

from __future__ import annotations

import grp
import gzip
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeguard.rotation import naming
from tests.conftest import make_config, numbered_lines, records, rotate_json, tree_digest

NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = grp.getgrnam("nogroup").gr_gid
DATA = numbered_lines("s", 0, 100)  # 6400 bytes


def policy(logs: Path, **keys: Any) -> dict[str, Any]:
    return {"name": "app", "paths": [f"{logs}/*.log"], "max_size": "1Ki", **keys}


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the log directory, holding a file a link could point at."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.log").write_bytes(DATA)
    return path


def rotated(directory: Path, live: str = "app.log") -> list[str]:
    return sorted(n for n in os.listdir(directory) if (r := naming.parse(n)) and r.base == live)


def test_symlink_matched_by_the_glob_is_skipped_and_its_target_untouched(
    tmp_path: Path, logs: Path, outside: Path
) -> None:
    (logs / "app.log").symlink_to(outside / "secret.log")
    before, target = tree_digest(logs), tree_digest(outside)
    for paths in ([f"{logs}/*.log"], [f"{logs}/app.log"]):
        code, body = rotate_json(make_config(tmp_path, [policy(logs, paths=paths)]), "--force")
        assert code == 0
        assert records(body, logs / "app.log") == [("skip", "skipped")]
        assert "symlink" in body["files"][0]["reason"]
    assert (tree_digest(logs), tree_digest(outside)) == (before, target)


def test_symlinked_directory_matched_by_a_glob_is_not_followed(
    tmp_path: Path, logs: Path, outside: Path
) -> None:
    (logs / "svc").symlink_to(outside)
    (outside / "app.log").write_bytes(DATA)
    before, target = tree_digest(logs), tree_digest(outside)
    conf = make_config(tmp_path, [policy(logs, paths=[f"{logs}/*/app.log"])])
    code, body = rotate_json(conf)
    assert code == 0
    assert records(body, logs / "svc") == [("skip", "skipped")]
    assert (tree_digest(logs), tree_digest(outside)) == (before, target)


def test_rotated_name_that_is_a_symlink_is_never_removed_or_followed(
    tmp_path: Path, logs: Path, outside: Path
) -> None:
    (logs / "app.log").write_bytes(DATA)
    (logs / "app.log.20200101-000000").symlink_to(outside / "secret.log")
    target = tree_digest(outside)
    code, body = rotate_json(make_config(tmp_path, [policy(logs, max_files=1)]))
    assert code == 0
    assert records(body, logs / "app.log.20200101-000000") == [("skip", "skipped")]
    assert (logs / "app.log.20200101-000000").is_symlink()
    assert tree_digest(outside) == target


def test_hard_linked_file_is_refused_unless_allowed(
    tmp_path: Path, logs: Path, outside: Path
) -> None:
    os.link(outside / "secret.log", logs / "app.log")
    before, target = tree_digest(logs), tree_digest(outside)
    code, body = rotate_json(make_config(tmp_path, [policy(logs)]))
    assert code == 1
    assert records(body, logs / "app.log") == [("refuse", "refused")]
    assert "2 hard links" in body["files"][0]["reason"]
    assert (tree_digest(logs), tree_digest(outside)) == (before, target)
    conf = make_config(tmp_path, [policy(logs, allow_hardlinks=True, method="copytruncate")])
    assert rotate_json(conf)[0] == 0
    (name,) = rotated(logs)
    assert gzip.decompress((logs / name).read_bytes()) == DATA


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o775])
def test_directory_others_can_write_is_refused(tmp_path: Path, logs: Path, mode: int) -> None:
    (logs / "app.log").write_bytes(DATA)
    os.chmod(logs, mode)
    before = tree_digest(logs)
    code, body = rotate_json(make_config(tmp_path, [policy(logs)]))
    assert code == 1
    assert records(body, logs / "app.log") == [("refuse", "refused")]
    reason = body["files"][0]["reason"]
    assert "insecure permissions" in reason and stat.filemode(stat.S_IFDIR | mode) in reason
    assert "su" in reason
    assert tree_digest(logs) == before


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory other users can reach (pytest's tmp_path is root-only): /tmp/ng-*/logs."""
    top = Path(tempfile.mkdtemp(prefix="nodeguard-test-", dir="/tmp"))
    os.chmod(top, 0o755)  # noqa: S103 (nobody must reach the logs)
    try:
        yield top
    finally:
        shutil.rmtree(top)


def test_su_rotates_in_a_world_writable_directory_as_that_user(
    tmp_path: Path, public_dir: Path
) -> None:
    logs = public_dir / "logs"
    logs.mkdir()
    os.chmod(logs, 0o777)  # noqa: S103 (the shared directory under test)
    (logs / "app.log").write_bytes(DATA)
    os.chown(logs / "app.log", NOBODY, NOGROUP)
    conf = make_config(tmp_path, [policy(logs, su=["nobody", "nogroup"])])
    code, body = rotate_json(conf)
    assert code == 0, body
    (name,) = rotated(logs)
    assert gzip.decompress((logs / name).read_bytes()) == DATA
    for path in (logs / name, logs / "app.log"):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (NOBODY, NOGROUP)


def test_su_user_without_rights_reports_the_error_and_changes_nothing(
    tmp_path: Path, public_dir: Path
) -> None:
    logs = public_dir / "logs"
    logs.mkdir()
    os.chmod(logs, 0o1777)  # noqa: S103 (sticky: nobody may not rename root's file)
    (logs / "app.log").write_bytes(DATA)
    before = tree_digest(logs)
    code, body = rotate_json(make_config(tmp_path, [policy(logs, su=["nobody", "nogroup"])]))
    assert code == 1
    assert records(body, logs / "app.log")[0] == ("rotate", "failed")
    assert "EPERM" in body["files"][0]["error"]
    assert tree_digest(logs) == before


def write_logrotate_conf(tmp_path: Path, covered: Path) -> Path:
    include_dir = tmp_path / "logrotate.d"
    include_dir.mkdir()
    (include_dir / "app").write_text(
        f"{covered} {{\n  size 1M\n  postrotate\n    /bin/true {covered.parent}/x.log\n"
        "  endscript\n}\n"
    )
    main = tmp_path / "logrotate.conf"
    main.write_text(f"weekly\nrotate 4\ninclude {include_dir}\n")
    return main


def test_files_logrotate_covers_are_skipped_unless_taken_over(tmp_path: Path, logs: Path) -> None:
    (logs / "app.log").write_bytes(DATA)
    (logs / "x.log").write_bytes(DATA)
    lr_conf = write_logrotate_conf(tmp_path, logs / "app.log")
    conf = make_config(tmp_path, [policy(logs)], logrotate_config=lr_conf)
    before = tree_digest(logs / "app.log")
    code, body = rotate_json(conf)
    assert code == 0
    assert records(body, logs / "app.log") == [("skip", "skipped")]
    reason = body["files"][0]["reason"]
    assert f"covered by logrotate ({tmp_path}/logrotate.d/app)" in reason
    assert "take_over_logrotate" in reason
    assert records(body, logs / "x.log") == [("rotate", "done")]  # named only in a script
    assert tree_digest(logs / "app.log") == before
    conf = make_config(tmp_path, [policy(logs, take_over_logrotate=True)], logrotate_config=lr_conf)
    code, body = rotate_json(conf)
    assert (code, records(body, logs / "app.log")) == (0, [("rotate", "done")])


def test_interrupted_compression_debris_is_removed_and_compression_retried(
    tmp_path: Path, logs: Path
) -> None:
    (logs / "app.log").write_bytes(b"live\n")
    plain = "app.log.20240101-000000"
    (logs / plain).write_bytes(DATA)
    (logs / naming.temp_name(plain + ".gz")).write_bytes(gzip.compress(DATA)[:50])
    code, body = rotate_json(make_config(tmp_path, [policy(logs)]))
    assert code == 0
    assert ("cleanup", "done") in records(body, logs / naming.temp_name(plain + ".gz"))
    assert sorted(os.listdir(logs)) == ["app.log", plain + ".gz"]
    assert gzip.decompress((logs / (plain + ".gz")).read_bytes()) == DATA


def test_plain_file_beside_its_complete_gz_is_removed(tmp_path: Path, logs: Path) -> None:
    (logs / "app.log").write_bytes(b"live\n")
    plain = "app.log.20240101-000000"
    (logs / plain).write_bytes(DATA)
    (logs / (plain + ".gz")).write_bytes(gzip.compress(DATA))
    gz_before = tree_digest(logs / (plain + ".gz"))
    code, body = rotate_json(make_config(tmp_path, [policy(logs)]))
    assert code == 0
    assert records(body, logs / plain) == [("cleanup", "done")]
    assert sorted(os.listdir(logs)) == ["app.log", plain + ".gz"]
    assert tree_digest(logs / (plain + ".gz")) == gz_before


def test_fifo_matched_by_the_glob_is_skipped_without_blocking(tmp_path: Path, logs: Path) -> None:
    os.mkfifo(logs / "app.log")
    code, body = rotate_json(make_config(tmp_path, [policy(logs)]), "--force")
    assert code == 0
    assert records(body, logs / "app.log") == [("skip", "skipped")]
    assert "not a regular file" in body["files"][0]["reason"]


def test_a_file_two_policies_match_is_handled_by_the_first_only(tmp_path: Path, logs: Path) -> None:
    (logs / "app.log").write_bytes(DATA)
    for day in (1, 2, 3):
        (logs / f"app.log.2024010{day}-000000.gz").write_bytes(gzip.compress(b"%d\n" % day))
    # The second policy would keep fewer files; after the first rotated the log by
    # rename, the new live file must still count as handled.
    strict = {"name": "strict", "paths": [f"{logs}/app.log"], "max_size": "1", "max_files": 2}
    code, body = rotate_json(make_config(tmp_path, [policy(logs), strict]))
    assert code == 0
    about_log = [
        (f["policy"], f["action"]) for f in body["files"] if f["path"] == str(logs / "app.log")
    ]
    assert about_log == [("app", "rotate"), ("strict", "skip")]
    assert len(rotated(logs)) == 4
