"""Attacks on a root rotator working in directories that other users can write.

Every case builds a victim tree outside the policy (root's 0600 shadow copy, files
named like the policy's logs, a file nobody may hard-link) and digests it before and
after: content, mode, owner, inode, mtime and atime (so reads show too). The attacker
is a process running as nobody. Two set-ups are attacked: ``owned``, a log directory
owned by nobody where nodeguard works as root (only its own checks protect root's
files), and ``shared-su``, a 0777 directory where nodeguard works as nobody (su).
Deterministic check-to-use attacks run from postrotate (between the scan and the next
file's actions); race cases run the attacker in a tight loop over many passes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeguard.config import schema
from nodeguard.progress import NO_PROGRESS
from nodeguard.rotation.engine import World
from nodeguard.rotation.report import DONE, FAILED, REFUSED, SKIPPED, Report
from tests.rotation.hostile_helpers import (
    LOG_DATA,
    NOBODY,
    NOGROUP,
    STAMP,
    Arena,
    MidPass,
    Race,
    Record,
    as_nobody,
    check_atime_is_updated,
    digest,
    exchange,
    ext4_arena,
    make_arena,
    policy,
    problems,
    records,
    records_about,
    remove_arena,
    run_passes,
    write_config,
)

REPO = Path(__file__).resolve().parents[2]
_METHOD = schema.POLICY.field("method")
METHODS = _METHOD.choices if _METHOD is not None else ("rename",)
OWNED, SHARED_SU = "owned", "shared-su"
WHERE = (OWNED, SHARED_SU)
RACE_PASSES = 100
SU_RACE_PASSES = 50  # each su pass forks twice (recovery, pass) while the attacker spins


@pytest.fixture(scope="session")
def _atime_works() -> None:
    check_atime_is_updated(Path("/tmp"))


@pytest.fixture
def arena(_atime_works: None) -> Iterator[Arena]:
    made = make_arena()
    try:
        yield made
    finally:
        remove_arena(made)


@contextlib.contextmanager
def victims_untouched(arena: Arena) -> Iterator[None]:
    """The victim tree is exactly as it was: nothing read, written, renamed or removed."""
    before = digest(arena.victim)
    yield
    after = digest(arena.victim)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    details = {k: (before.get(k), after.get(k)) for k in changed[:3]}
    assert not changed, f"victim entries changed: {changed}; first ones: {details}"


def make_logs(arena: Arena, where: str, *names: str, under: Path | None = None) -> Path:
    """The policy's log directory with ``names`` as nobody's logs.

    ``owned``: nobody owns it (0755) and nodeguard runs as root; ``shared-su``: root's
    0777 directory (not sticky, so the kernel's protected_symlinks cannot help).
    """
    logs = under or arena.logs
    logs.mkdir(exist_ok=True)
    os.chmod(logs, 0o755 if where == OWNED else 0o777)
    if where == OWNED:
        os.chown(logs, NOBODY, NOGROUP)
    for name in names:
        (logs / name).write_bytes(LOG_DATA)
        os.chown(logs / name, NOBODY, NOGROUP)
    return logs


def su(where: str) -> dict[str, Any]:
    return {"su": ["nobody", "nogroup"]} if where == SHARED_SU else {}


def results(reports: list[Report], path: Path | str) -> list[tuple[str, str]]:
    return [(r.action, r.result) for r in records_about(reports, path)]


def reasons(reports: list[Report], path: Path | str) -> str:
    """Every reason and error reported about ``path``, joined for substring checks."""
    return " | ".join(f"{r.reason} {r.error or ''}" for r in records_about(reports, path))


def assert_every_problem_explained(reports: list[Report]) -> None:
    for record in problems(reports):
        assert record.reason or record.error, record
        assert record.action != "su", record  # the pass as nobody must not die


def link_as_nobody(target: Path, name: Path) -> None:
    as_nobody(lambda: os.symlink(target, name))


def swap_for_link(path: Path, aside: Path, target: Path) -> None:
    os.rename(path, aside)
    os.symlink(target, path)


def swap_back(path: Path, aside: Path) -> None:
    os.unlink(path)
    os.rename(aside, path)


# --- refusals of a whole directory -----------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_world_writable_directory_without_su_is_refused_and_left_untouched(
    arena: Arena, method: str
) -> None:
    logs = make_logs(arena, SHARED_SU, "app.log")
    link_as_nobody(arena.victim / "shadow", logs / "evil.log")
    _, config = write_config(arena, policy([f"{logs}/*.log"], method=method))
    before = digest(logs, atime=False)
    with victims_untouched(arena):
        reports = run_passes(config)
    assert digest(logs, atime=False) == before
    for name in ("app.log", "evil.log"):
        assert results(reports, logs / name) == [("refuse", REFUSED)]
        assert "insecure permissions" in reasons(reports, logs / name)
        assert "set su:" in reasons(reports, logs / name)


def test_dry_run_over_a_hostile_tree_changes_nothing(arena: Arena) -> None:
    logs = make_logs(arena, OWNED, "app.log", f"app.log.{STAMP}")
    link_as_nobody(arena.victim / "shadow", logs / "shadow.log")
    link_as_nobody(arena.victim / "dir", logs / "old")
    as_nobody(lambda: os.link(arena.victim / "nobody.log", logs / "linked.log"))
    as_nobody(functools.partial(os.mkfifo, logs / "fifo.log"))
    path, _ = write_config(arena, policy([f"{logs}/*.log"], olddir="old", max_files=1))
    before = digest(logs, atime=False)
    with victims_untouched(arena):
        command = [sys.executable, "-m", "nodeguard", "-c", str(path), "--no-dropins"]
        done = subprocess.run(
            [*command, "rotate", "--dry-run", "--force", "--json"],
            capture_output=True,
            timeout=60,
            check=False,
            cwd=REPO,
        )
    assert digest(logs, atime=False) == before
    assert not arena.state.exists()  # no lock, no state, no journal
    refused = {f["path"] for f in json.loads(done.stdout)["files"] if f["result"] == REFUSED}
    assert f"{logs}/app.log" in refused


# --- symlinks ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("method", METHODS)
def test_log_that_is_a_symlink_to_a_victim_is_skipped_never_followed(
    arena: Arena, method: str, where: str
) -> None:
    logs = make_logs(arena, where, "app.log")
    link_as_nobody(arena.victim / "shadow", logs / "shadow.log")
    link_as_nobody(arena.victim / "app.log", logs / "other.log")
    link_as_nobody(arena.victim / "shadow", logs / "literal")
    paths = [f"{logs}/*.log", f"{logs}/literal"]
    _, config = write_config(arena, policy(paths, method=method, **su(where)))
    with victims_untouched(arena):
        reports = run_passes(config, 2)
    for name in ("shadow.log", "other.log", "literal"):
        assert set(results(reports, logs / name)) == {("skip", SKIPPED)}
        assert "is a symlink (never followed)" in reasons(reports, logs / name)
        assert (logs / name).is_symlink()
    assert ("rotate", DONE) in results(reports, logs / "app.log")


@pytest.mark.parametrize("where", WHERE)
def test_symlinked_directory_in_a_glob_component_is_never_entered(arena: Arena, where: str) -> None:
    make_logs(arena, where)
    make_logs(arena, where, "x.log", under=arena.logs / "a")
    link_as_nobody(arena.victim / "dir", arena.logs / "b")
    _, config = write_config(arena, policy([f"{arena.logs}/*/x.log"], **su(where)))
    with victims_untouched(arena):
        reports = run_passes(config, 2)
    assert results(reports, arena.logs / "b") == [("skip", SKIPPED)] * 2
    assert "symlink where a directory was expected" in reasons(reports, arena.logs / "b")
    assert ("rotate", DONE) in results(reports, arena.logs / "a/x.log")


def test_literal_directory_symlink_owned_by_the_attacker_is_refused(arena: Arena) -> None:
    home = make_logs(arena, OWNED, under=arena.root / "home")
    link_as_nobody(arena.victim / "dir", home / "logs")
    _, config = write_config(arena, policy([f"{home}/logs/*.log"]))
    with victims_untouched(arena):
        reports = run_passes(config)
    assert results(reports, home / "logs") == [("refuse", REFUSED)]
    assert "symlink that a non-root user could change" in reasons(reports, home / "logs")


def test_trusted_root_symlink_in_the_literal_path_is_followed(arena: Arena) -> None:
    trusted = arena.root / "trusted"
    trusted.mkdir(0o755)
    real = make_logs(arena, OWNED, "app.log", under=arena.root / "real")
    (trusted / "app").symlink_to(real)
    _, config = write_config(arena, policy([f"{trusted}/app/*.log"], compress="none"))
    reports = run_passes(config)
    assert results(reports, trusted / "app/app.log") == [("rotate", DONE)]
    assert (real / "app.log").stat().st_size == 0


def test_trusted_root_symlink_cannot_lead_through_a_directory_the_attacker_controls(
    arena: Arena,
) -> None:
    """/trusted/app -> /home/logs is root's link, but nobody owns /home: /home/logs may
    become a link to the victims, and following the whole chain would hand them over."""
    trusted = arena.root / "trusted"
    trusted.mkdir(0o755)
    home = make_logs(arena, OWNED, under=arena.root / "home")
    (trusted / "app").symlink_to(home / "logs")
    link_as_nobody(arena.victim / "dir", home / "logs")
    _, config = write_config(arena, policy([f"{trusted}/app/*.log"]))
    with victims_untouched(arena):
        reports = run_passes(config)
    assert not [r for r in records(reports[0]) if r.result == DONE]
    assert "symlink that a non-root user could change" in reasons(reports, home / "logs")


@pytest.mark.parametrize("method", METHODS)
def test_rotated_name_lookalike_symlinks_are_left_alone_and_reported(
    arena: Arena, method: str
) -> None:
    logs = make_logs(arena, OWNED, "app.log")
    lookalikes = [logs / f"app.log.{STAMP}", logs / "app.log.20250101-000000.gz"]
    link_as_nobody(arena.victim / "app.log", lookalikes[0])
    link_as_nobody(arena.victim / "shadow", lookalikes[1])
    _, config = write_config(arena, policy([f"{logs}/*.log"], method=method, max_files=1))
    with victims_untouched(arena):
        reports = run_passes(config, 2)
    for link in lookalikes:
        assert set(results(reports, link)) == {("skip", SKIPPED)}
        assert "not a regular file; left alone" in reasons(reports, link)
        assert link.is_symlink()


@pytest.mark.parametrize("where", WHERE)
def test_compressed_lookalike_symlink_does_not_get_the_plain_rotated_file_removed(
    arena: Arena, where: str
) -> None:
    """A plain rotated file beside its .gz is debris of an interrupted compression,
    unless that .gz is someone's link: then the plain file is the only copy."""
    logs = make_logs(arena, where, "app.log", f"app.log.{STAMP}")
    link_as_nobody(arena.victim / "shadow", logs / f"app.log.{STAMP}.gz")
    _, config = write_config(arena, policy([f"{logs}/*.log"], **su(where)))
    with victims_untouched(arena):
        reports = run_passes(config)
    assert (logs / f"app.log.{STAMP}").read_bytes() == LOG_DATA
    assert (logs / f"app.log.{STAMP}.gz").is_symlink()
    assert results(reports, logs / f"app.log.{STAMP}.gz") == [("skip", SKIPPED)]
    assert results(reports, logs / f"app.log.{STAMP}") == [("compress", FAILED)]


@pytest.mark.parametrize("where", WHERE)
def test_temp_debris_symlink_is_unlinked_without_following_it(arena: Arena, where: str) -> None:
    logs = make_logs(arena, where, "app.log")
    debris = [
        logs / f".app.log.{STAMP}.gz.nodeguard-tmp",
        logs / f".app.log.{STAMP}.nodeguard-tmp",
    ]
    link_as_nobody(arena.victim / "shadow", debris[0])
    link_as_nobody(arena.victim / "app.log", debris[1])
    _, config = write_config(arena, policy([f"{logs}/*.log"], **su(where)))
    with victims_untouched(arena):
        reports = run_passes(config)
    for link in debris:
        assert results(reports, link) == [("cleanup", DONE)]
        assert not os.path.lexists(link)


# --- hard links --------------------------------------------------------------------------


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("method", METHODS)
def test_hard_link_to_a_victim_is_refused(arena: Arena, method: str, where: str) -> None:
    logs = make_logs(arena, where)
    # root makes the shadow link (as a kernel without protected_hardlinks would let nobody)
    os.link(arena.victim / "shadow", logs / "shadow.log")
    as_nobody(lambda: os.link(arena.victim / "nobody.log", logs / "nobody.log"))
    _, config = write_config(arena, policy([f"{logs}/*.log"], method=method, **su(where)))
    with victims_untouched(arena):
        reports = run_passes(config)
    for name in ("shadow.log", "nobody.log"):
        assert results(reports, logs / name) == [("refuse", REFUSED)]
        assert "has 2 hard links" in reasons(reports, logs / name)


@pytest.mark.parametrize("where", WHERE)
def test_rotated_name_lookalike_hard_link_is_neither_compressed_nor_removed(
    arena: Arena, where: str
) -> None:
    logs = make_logs(arena, where, "app.log")
    lookalike = logs / f"app.log.{STAMP}"
    as_nobody(lambda: os.link(arena.victim / "nobody.log", lookalike))
    _, config = write_config(arena, policy([f"{logs}/*.log"], max_files=2, **su(where)))
    with victims_untouched(arena):
        reports = run_passes(config, 2)
    assert set(results(reports, lookalike)) == {("skip", SKIPPED)}
    assert "hard links" in reasons(reports, lookalike)
    assert lookalike.stat().st_ino == (arena.victim / "nobody.log").stat().st_ino


# --- olddir ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("method", METHODS)
def test_olddir_that_is_a_symlink_to_a_victim_directory_is_refused(
    arena: Arena, method: str, where: str
) -> None:
    logs = make_logs(arena, where, "app.log")
    link_as_nobody(arena.victim / "dir", logs / "old")
    home = make_logs(arena, OWNED, under=arena.root / "home")
    link_as_nobody(arena.victim / "dir", home / "old")
    relative = policy([f"{logs}/*.log"], method=method, olddir="old", **su(where))
    absolute = {**relative, "name": "absolute", "olddir": f"{home}/old"}
    before = digest(logs, atime=False)
    _, config = write_config(arena, relative)
    _, config_abs = write_config(arena, absolute)
    with victims_untouched(arena):
        reports = run_passes(config) + run_passes(config_abs)
    assert results(reports, logs / "app.log") == [("refuse", REFUSED)] * 2
    assert "symlinks are never followed" in reasons(reports[:1], logs / "app.log")
    assert "symlink that a non-root user could change" in reasons(reports[1:], logs / "app.log")
    assert digest(logs, atime=False) == before


@pytest.mark.parametrize("method", METHODS)
def test_rotated_name_lookalike_symlinks_in_olddir_are_left_alone(
    arena: Arena, method: str
) -> None:
    logs = make_logs(arena, OWNED, "app.log")
    old = make_logs(arena, OWNED, under=logs / "old")
    link_as_nobody(arena.victim / "app.log", old / f"app.log.{STAMP}")
    _, config = write_config(
        arena, policy([f"{logs}/*.log"], method=method, olddir="old", max_files=1)
    )
    with victims_untouched(arena):
        reports = run_passes(config, 2)
    assert set(results(reports, old / f"app.log.{STAMP}")) == {("skip", SKIPPED)}
    assert (old / f"app.log.{STAMP}").is_symlink()
    assert ("rotate", DONE) in results(reports, logs / "app.log")


# --- special files -------------------------------------------------------------------------


def nodeguard_cli(config_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """``nodeguard rotate --force`` in a subprocess with a timeout: a hang fails the test."""
    command = [sys.executable, "-m", "nodeguard", "-c", str(config_path), "--no-dropins"]
    return subprocess.run(
        [*command, "rotate", "--force", *args],
        capture_output=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env=env,
    )


@pytest.mark.parametrize("method", METHODS)
def test_fifos_matching_the_globs_do_not_hang_the_pass(arena: Arena, method: str) -> None:
    logs = make_logs(arena, OWNED, "real.log")
    for fifo in ("app.log", f"real.log.{STAMP}", "d"):  # a live log, a rotated one, a "dir"
        as_nobody(functools.partial(os.mkfifo, logs / fifo))
    path, _ = write_config(arena, policy([f"{logs}/*.log", f"{logs}/*/x.log"], method=method))
    with victims_untouched(arena):
        done = nodeguard_cli(path, "--json")
    body = json.loads(done.stdout)
    skipped = {f["path"]: f["reason"] for f in body["files"] if f["result"] == SKIPPED}
    assert "not a regular file (prw" in skipped[f"{logs}/app.log"]
    assert "not a regular file" in skipped[f"{logs}/real.log.{STAMP}"]
    assert stat.S_ISFIFO(os.lstat(logs / "app.log").st_mode)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("method", METHODS)
def test_device_nodes_matching_the_glob_are_skipped(arena: Arena, method: str) -> None:
    logs = make_logs(arena, OWNED, "real.log")
    os.mknod(logs / "null.log", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(logs / f"real.log.{STAMP}", stat.S_IFCHR | 0o666, os.makedev(1, 5))  # zero
    _, config = write_config(arena, policy([f"{logs}/*.log"], method=method, max_files=1))
    with victims_untouched(arena):
        reports = run_passes(config)
    assert results(reports, logs / "null.log") == [("skip", SKIPPED)]
    assert "not a regular file (crw" in reasons(reports, logs / "null.log")
    assert results(reports, logs / f"real.log.{STAMP}") == [("skip", SKIPPED)]
    assert stat.S_ISCHR(os.lstat(logs / "null.log").st_mode)
    assert stat.S_ISCHR(os.lstat(logs / f"real.log.{STAMP}").st_mode)


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_names_too_long_to_rotate_fail_with_a_clear_report(arena: Arena, method: str) -> None:
    longest, long_ = "a" * 251 + ".log", "b" * 235 + ".log"  # 255 and 239 bytes
    logs = make_logs(arena, OWNED, longest, long_)
    _, config = write_config(arena, policy([f"{logs}/*.log"], method=method))
    with victims_untouched(arena):
        reports = run_passes(config)
    assert results(reports, logs / longest) == [("rotate", FAILED)]
    assert "File name too long" in reasons(reports, logs / longest)
    assert (logs / longest).read_bytes() == LOG_DATA
    failed = [r for r in problems(reports) if r.result == FAILED]
    assert all("File name too long" in (r.error or "") for r in failed)
    kept = [p.stat().st_size for p in logs.iterdir() if p.name.startswith("b" * 235)]
    assert sum(kept) == len(LOG_DATA)  # rotated or not, nothing of it was lost


def _deep_tree(top: Path, levels: int, width: int) -> list[str]:
    """Directories nested below ``top`` by fds: the full path is longer than PATH_MAX."""
    names = [f"{i:03d}" + "d" * (width - 3) for i in range(levels)]
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for name in names:
        os.mkdir(name, 0o755, dir_fd=fd)
        os.chown(name, NOBODY, NOGROUP, dir_fd=fd)
        child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    log = os.open("app.log", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(log, LOG_DATA)
    os.fchown(log, NOBODY, NOGROUP)
    os.close(log)
    os.close(fd)
    return names


def _listing_at(top: Path, names: list[str]) -> dict[str, int]:
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for name in names:
        child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    try:
        return {n: os.stat(n, dir_fd=fd).st_size for n in os.listdir(fd)}
    finally:
        os.close(fd)


@pytest.mark.parametrize("method", METHODS)
def test_paths_longer_than_path_max_are_handled_through_directory_fds(
    arena: Arena, method: str
) -> None:
    logs = make_logs(arena, OWNED)
    names = _deep_tree(logs, levels=36, width=120)
    pattern = "/".join([str(logs), *names, "*.log"])
    assert len(pattern) > os.pathconf("/", "PC_PATH_MAX")
    _, config = write_config(arena, policy([pattern], method=method, compress="none"))
    with victims_untouched(arena):
        reports = run_passes(config)
    assert [(r.action, r.result) for r in records(reports[0])] == [("rotate", DONE)]
    listing = _listing_at(logs, names)
    (rotated,) = [n for n in listing if n.startswith("app.log.")]
    assert listing[rotated] + listing["app.log"] == len(LOG_DATA)


HOSTILE_NAMES = [
    "new\nline.log",
    "with space.log",
    "-rf --no-preserve-root.log",
    os.fsdecode(b"latin1-\xe9t\xe9.log"),
    "tab\tand\x1b[31mescape.log",
    "[hostile] rotate faked.log",
]


@pytest.mark.parametrize("method", METHODS)
def test_hostile_names_keep_text_and_json_reports_well_formed(arena: Arena, method: str) -> None:
    logs = make_logs(arena, OWNED, *HOSTILE_NAMES)
    path, _ = write_config(arena, policy([f"{logs}/*.log"], method=method, max_files=2))
    env = {**os.environ, "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8:strict"}  # as en_US
    runs = []
    with victims_untouched(arena):
        for args in ((), (), ("--json",)):
            runs.append(nodeguard_cli(path, *args, env=env))
            for name in HOSTILE_NAMES:  # a busy writer: every pass has blocks to move
                with open(logs / name, "ab") as log:
                    log.write(LOG_DATA)
    text, as_json = runs[0], runs[2]
    assert (text.returncode, as_json.returncode) == (0, 0), text.stderr + as_json.stderr
    output = text.stdout.decode("utf-8")  # strict: the output is valid UTF-8
    assert not [line for line in output.splitlines() if line.startswith(("line", "escape"))]
    assert "\x1b" not in output
    assert "new\\nline.log" in output and "latin1-\\xe9t\\xe9.log" in output
    body = json.loads(as_json.stdout)
    rotated = {os.fsencode(f["path"]) for f in body["files"] if f["action"] == "rotate"}
    assert rotated == {os.fsencode(logs / n) for n in HOSTILE_NAMES}
    for name in HOSTILE_NAMES:  # retention recognises the rotated files of every name
        prefix = os.fsencode(name) + b"."
        assert len([n for n in os.listdir(os.fsencode(logs)) if n.startswith(prefix)]) == 1


def test_postrotate_gets_the_path_as_an_argument_never_interpolated(arena: Arena) -> None:
    name = "x;touch pwned1;$(touch pwned2)`touch pwned3`&&touch pwned4 '\"|touch pwned5.log"
    logs = make_logs(arena, OWNED, name)
    out = arena.root / "out"
    out.mkdir()
    script = f'cd {out} && printf "%s" "$1" > quoted && echo $1 > unquoted'
    _, config = write_config(arena, policy([f"{logs}/*.log"], postrotate=script))
    with victims_untouched(arena):
        reports = run_passes(config, world=World())
    assert results(reports, logs / name)[0] == ("rotate", DONE)
    assert (out / "quoted").read_bytes() == os.fsencode(logs / name)
    assert sorted(os.listdir(out)) == ["quoted", "unquoted"]
    assert not [p for p in (REPO, logs) for n in os.listdir(p) if n.startswith("pwned")]


@pytest.mark.parametrize("method", METHODS)
def test_log_owned_by_the_attacker_is_rotated_as_that_user_under_su(
    arena: Arena, method: str
) -> None:
    logs = make_logs(arena, SHARED_SU, "app.log")
    _, config = write_config(arena, policy([f"{logs}/*.log"], method=method, **su(SHARED_SU)))
    with victims_untouched(arena):
        reports = run_passes(config, 2)
    assert results(reports, logs / "app.log")[0] == ("rotate", DONE)
    assert not problems(reports)  # lossless leaves a tail under one block: "unchanged"
    assert {(p.stat().st_uid, p.stat().st_gid) for p in logs.iterdir()} == {(NOBODY, NOGROUP)}
    assert any(p.name.endswith(".gz") for p in logs.iterdir())


# --- check-to-use windows, forced from postrotate ---------------------------------------


def swap_mid_pass(
    arena: Arena, where: str, method: str, replace: Callable[[Path], None]
) -> tuple[list[Report], Path]:
    """Rotate a.log; its postrotate (as nobody) replaces b.log, which was already scanned."""
    logs = make_logs(arena, where, "a.log", "b.log")
    keys = su(where)
    _, config = write_config(
        arena, policy([f"{logs}/*.log"], method=method, postrotate="attack", **keys)
    )
    target = logs / "b.log"

    def attack() -> None:
        os.rename(target, logs / "b.log.moved")  # nobody keeps its data; the name is reused
        replace(target)

    mid = MidPass(attack)
    with victims_untouched(arena):  # rename: planned logs are renamed together, after
        progress = mid if method == "rename" else NO_PROGRESS
        reports = run_passes(config, world=World(run=mid), progress=progress)
    assert results(reports, logs / "a.log")[0] == ("rotate", DONE)
    assert results(reports, target) == [("rotate", FAILED)]
    assert (logs / "b.log.moved").read_bytes() == LOG_DATA
    return reports, target


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("method", METHODS)
def test_live_log_swapped_for_a_symlink_between_check_and_use_is_left_alone(
    arena: Arena, method: str, where: str
) -> None:
    victim = arena.victim / ("app.log" if where == OWNED else "nobody.log")
    reports, target = swap_mid_pass(arena, where, method, lambda p: os.symlink(victim, p))
    assert os.readlink(target) == str(victim)
    expected = "changed since it was checked" if method == "rename" else "ELOOP"  # O_NOFOLLOW
    assert expected in reasons(reports, target)


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("method", METHODS)
def test_live_log_swapped_for_a_hard_link_between_check_and_use_is_left_alone(
    arena: Arena, method: str, where: str
) -> None:
    victim = arena.victim / "nobody.log"
    reports, target = swap_mid_pass(arena, where, method, lambda p: os.link(victim, p))
    assert target.stat().st_ino == victim.stat().st_ino
    assert "changed since it was checked" in reasons(reports, target)


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("method", METHODS)
def test_live_log_swapped_for_a_directory_between_check_and_use_is_left_alone(
    arena: Arena, method: str, where: str
) -> None:
    def to_directory(path: Path) -> None:
        path.mkdir()
        (path / "inside.log").write_bytes(LOG_DATA)

    _, target = swap_mid_pass(arena, where, method, to_directory)
    assert (target / "inside.log").read_bytes() == LOG_DATA


@pytest.mark.parametrize("method", METHODS)
def test_live_log_swapped_for_a_fifo_between_check_and_use_does_not_hang(
    arena: Arena, method: str
) -> None:
    reports, target = swap_mid_pass(arena, OWNED, method, os.mkfifo)
    assert stat.S_ISFIFO(os.lstat(target).st_mode)
    assert "changed since it was checked" in reasons(reports, target)


def link_into(kind: str, victim: Path, path: Path) -> None:
    """Replace ``path`` with a symlink or a hard link to ``victim``."""
    os.rename(path, path.with_name(path.name + ".moved"))
    (os.symlink if kind == "symlink" else os.link)(victim, path)


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_rotated_file_swapped_for_a_link_before_compression_is_never_read(
    arena: Arena, kind: str, where: str
) -> None:
    logs = make_logs(arena, where, "a.log", f"a.log.{STAMP}")
    sibling = logs / f"a.log.{STAMP}"
    victim = arena.victim / "nobody.log"
    attack = functools.partial(link_into, kind, victim, sibling)
    _, config = write_config(
        arena, policy([f"{logs}/*.log"], max_files=5, postrotate="x", **su(where))
    )
    with victims_untouched(arena):
        reports = run_passes(config, world=World(run=MidPass(attack)))
    assert results(reports, sibling) == [("compress", FAILED)]
    assert ("hard links" if kind == "hardlink" else "ELOOP") in reasons(reports, sibling)
    assert os.lstat(sibling).st_ino == os.lstat(victim).st_ino or sibling.is_symlink()
    assert not os.path.lexists(f"{sibling}.gz")


@pytest.mark.parametrize("where", WHERE)
def test_directory_replaced_by_a_symlink_mid_pass_is_not_followed(arena: Arena, where: str) -> None:
    make_logs(arena, where)
    for sub in ("a", "b"):
        make_logs(arena, where, "x.log", under=arena.logs / sub)
    b = arena.logs / "b"
    attack = functools.partial(swap_for_link, b, arena.logs / "b.moved", arena.victim / "dir")
    _, config = write_config(
        arena, policy([f"{arena.logs}/*/x.log"], postrotate="attack", **su(where))
    )
    with victims_untouched(arena):
        reports = run_passes(config, world=World(run=MidPass(attack)))
    assert results(reports, b) == [("skip", SKIPPED)]
    assert (arena.logs / "b.moved/x.log").read_bytes() == LOG_DATA


@pytest.mark.parametrize("method", METHODS)
def test_directory_swapped_while_in_use_keeps_working_through_its_fd(
    arena: Arena, method: str
) -> None:
    logs = make_logs(arena, OWNED)
    app = make_logs(arena, OWNED, "1.log", "2.log", under=logs / "app")
    attack = functools.partial(swap_for_link, app, logs / "app.moved", arena.victim / "dir")
    _, config = write_config(
        arena, policy([f"{app}/*.log"], method=method, compress="none", postrotate="x")
    )
    with victims_untouched(arena):
        reports = run_passes(config, world=World(run=MidPass(attack)))
    assert results(reports, app / "2.log") == [("rotate", DONE)]
    moved = os.listdir(logs / "app.moved")
    assert len([n for n in moved if n.startswith("2.log.")]) == 1


@pytest.mark.parametrize("method", METHODS)
def test_olddir_replaced_by_a_symlink_mid_pass_keeps_the_checked_directory(
    arena: Arena, method: str
) -> None:
    logs = make_logs(arena, OWNED, "a.log", "b.log")
    old = make_logs(arena, OWNED, under=logs / "old")
    attack = functools.partial(swap_for_link, old, logs / "old.moved", arena.victim / "dir")
    _, config = write_config(
        arena, policy([f"{logs}/*.log"], method=method, olddir="old", postrotate="x")
    )
    with victims_untouched(arena):
        reports = run_passes(config, world=World(run=MidPass(attack)))
    assert results(reports, logs / "b.log")[0] == ("rotate", DONE)
    moved = os.listdir(logs / "old.moved")
    assert len([n for n in moved if n.startswith("b.log.")]) == 1


def test_directory_made_insecure_mid_pass_is_refused_from_the_next_pass(arena: Arena) -> None:
    logs = make_logs(arena, OWNED, "a.log", "b.log")

    def attack() -> None:
        os.chmod(logs, 0o777)  # noqa: S103 - the attack
        os.rename(logs / "b.log", logs / "b.log.moved")
        os.symlink(arena.victim / "app.log", logs / "b.log")

    _, config = write_config(arena, policy([f"{logs}/*.log"], postrotate="x"))
    mid = MidPass(attack)  # fires once a.log is planned: before the folder's rename batch
    world = World(run=mid)
    with victims_untouched(arena):
        first = run_passes(config, world=world, progress=mid)
        second = run_passes(config, world=world)
    assert results(first, logs / "b.log") == [("rotate", FAILED)]
    assert results(second, logs / "a.log") == [("refuse", REFUSED)]
    assert "insecure permissions" in reasons(second, logs / "a.log")


CRASH_POINTS = {
    "rename": "rename.after-rename",
    "copytruncate": "copytruncate.before-rename",
    "lossless": "lossless.before-collapse",
}


@pytest.fixture
def collapse_arena(_atime_works: None) -> Iterator[Arena]:
    """An arena on ext4, where lossless really collapses (its crash point is reached)."""
    with ext4_arena() as made:
        yield made


@pytest.mark.parametrize("method", METHODS)
def test_recovery_after_a_crash_never_follows_a_directory_swapped_for_a_symlink(
    collapse_arena: Arena, method: str
) -> None:
    """The intent journal names paths; after a crash the attacker re-points one of them."""
    arena = collapse_arena
    make_logs(arena, OWNED)
    a, hidden = arena.logs / "a", arena.logs / ".a"
    make_logs(arena, OWNED, "app.log", under=a)
    path, _ = write_config(arena, policy([f"{arena.logs}/*/app.log"], method=method))
    crash = {**os.environ, "NODEGUARD_FAULT": f"{CRASH_POINTS.get(method, method)}:1"}
    with victims_untouched(arena):
        assert nodeguard_cli(path, env=crash).returncode == -signal.SIGKILL
        as_nobody(functools.partial(swap_for_link, a, hidden, arena.victim / "dir"))
        swapped = json.loads(nodeguard_cli(path, "--json").stdout)
        as_nobody(functools.partial(swap_back, a, hidden))
        restored = json.loads(nodeguard_cli(path, "--json").stdout)
    recover = [f for f in swapped["files"] if f["action"] == "recover"]
    assert [(f["path"], f["result"]) for f in recover] == [(f"{a}/app.log", FAILED)]
    assert "symlink that a non-root user could change" in recover[0]["reason"]
    assert ("recover", DONE) in [(f["action"], f["result"]) for f in restored["files"]]


# --- races: the attacker loops while nodeguard runs pass after pass ----------------------


def race_passes(where: str) -> int:
    return RACE_PASSES if where == OWNED else SU_RACE_PASSES


def race_setup(arena: Arena, where: str, **keys: Any) -> tuple[Path, Any]:
    logs = make_logs(arena, where, "app.log")
    _, config = write_config(arena, policy([f"{logs}/*.log"], **keys, **su(where)))
    return logs, config


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("method", METHODS)
def test_race_live_log_swapped_with_a_symlink_never_touches_the_victim(
    arena: Arena, method: str, where: str
) -> None:
    logs, config = race_setup(arena, where, method=method)
    spare = logs / ".spare"
    link_as_nobody(arena.victim / ("shadow" if where == OWNED else "nobody.log"), spare)
    with victims_untouched(arena), Race(lambda: exchange(spare, logs / "app.log")) as race:
        reports = run_passes(config, race_passes(where))
    assert race.rounds > RACE_PASSES
    assert_every_problem_explained(reports)
    assert ("skip", SKIPPED) in results(reports, logs / "app.log")


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("method", METHODS)
def test_race_hard_link_swapped_in_for_the_live_log_never_touches_the_victim(
    arena: Arena, method: str, where: str
) -> None:
    logs, config = race_setup(arena, where, method=method)
    spare = logs / ".spare"

    def step() -> None:
        with contextlib.suppress(FileExistsError):
            os.link(arena.victim / "nobody.log", spare)
        exchange(spare, logs / "app.log")

    with victims_untouched(arena), Race(step) as race:
        reports = run_passes(config, race_passes(where))
    assert race.rounds > RACE_PASSES
    assert_every_problem_explained(reports)
    assert "hard links" in reasons(reports, logs / "app.log")


@pytest.mark.parametrize("method", METHODS)
def test_race_rotated_files_swapped_for_links_never_touch_the_victim(
    arena: Arena, method: str
) -> None:
    logs, config = race_setup(arena, OWNED, method=method, max_files=3)
    links = [arena.victim / "shadow", arena.victim / "app.log"]

    def step() -> None:
        for name in os.listdir(logs):
            if name.startswith("app.log.2") and not os.path.islink(logs / name):
                if name.endswith("0"):
                    os.link(arena.victim / "nobody.log", logs / ".new")
                else:
                    os.symlink(links[len(name) % 2], logs / ".new")
                os.rename(logs / ".new", logs / name)

    def hit(reports: list[Report]) -> list[Record]:
        return [r for r in problems(reports) if r.path.startswith(f"{logs}/app.log.2")]

    reports: list[Report] = []
    with victims_untouched(arena), Race(step) as race:
        for _ in range(20):  # until the race was hit at least once (a busy machine may miss)
            reports += run_passes(config, RACE_PASSES)
            if hit(reports):
                break
    assert race.rounds > 0
    assert_every_problem_explained(reports)
    assert hit(reports)


@pytest.mark.parametrize("where", WHERE)
def test_race_directory_component_swapped_with_a_symlink_never_enters_the_victim(
    arena: Arena, where: str
) -> None:
    make_logs(arena, where)
    make_logs(arena, where, "x.log", under=arena.logs / "a")
    spare = arena.logs / ".spare"
    link_as_nobody(arena.victim / "dir", spare)
    _, config = write_config(arena, policy([f"{arena.logs}/*/x.log"], **su(where)))
    with victims_untouched(arena), Race(lambda: exchange(spare, arena.logs / "a")) as race:
        reports = run_passes(config, race_passes(where))
    assert race.rounds > RACE_PASSES
    assert_every_problem_explained(reports)
    assert ("skip", SKIPPED) in results(reports, arena.logs / "a")


@pytest.mark.parametrize("method", METHODS)
def test_race_olddir_swapped_with_a_symlink_never_writes_into_the_victim(
    arena: Arena, method: str
) -> None:
    logs, config = race_setup(arena, OWNED, method=method, olddir="old")
    make_logs(arena, OWNED, under=logs / "old")
    spare = logs / ".spare"
    link_as_nobody(arena.victim / "dir", spare)
    with victims_untouched(arena), Race(lambda: exchange(spare, logs / "old")) as race:
        reports = run_passes(config, RACE_PASSES)
    assert race.rounds > RACE_PASSES
    assert_every_problem_explained(reports)
    assert ("refuse", REFUSED) in results(reports, logs / "app.log")


@pytest.mark.parametrize("method", METHODS)
def test_race_live_log_swapped_with_a_fifo_never_hangs(arena: Arena, method: str) -> None:
    logs, config = race_setup(arena, OWNED, method=method)
    spare = logs / ".spare"
    as_nobody(lambda: os.mkfifo(spare))
    with victims_untouched(arena), Race(lambda: exchange(spare, logs / "app.log")) as race:
        reports = run_passes(config, RACE_PASSES)  # bounded: a blocked open fails the test
    assert race.rounds > RACE_PASSES
    assert_every_problem_explained(reports)
    assert ("skip", SKIPPED) in results(reports, logs / "app.log")
