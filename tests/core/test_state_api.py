"""The state-file API: capped, type-checked reads, unique atomic writes, safe folders."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from nodeguard.state import (
    StateDirUnsafe,
    StateDocument,
    check_state_dir,
    clean_stale_temps,
    ensure_state_dir,
)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    tmp_path.chmod(0o755)
    return path


def test_a_document_round_trips_and_reports_each_kind_of_corruption(state_dir: Path) -> None:
    doc = StateDocument(state_dir / "samples.json", "samples", version=2)
    assert doc.load().data is None and doc.load().problem is None
    doc.save({"a": [1, 2]})
    assert doc.load().data == {"a": [1, 2]}
    assert (state_dir / "samples.json").stat().st_mode & 0o777 == 0o600
    cases = {
        b"[1": ":1:3:",
        b"\xff\xfe": "not UTF-8",
        b'{"kind": "other", "version": 2, "data": {}}': "not a nodeguard samples document",
        b'{"kind": "samples", "version": 1, "data": {}}': "version 1, not 2",
        b'{"kind": "samples", "version": 2, "data": [1]}': "no data mapping",
        b"[" * 100_000: "nested too deeply",
    }
    for raw, message in cases.items():
        (state_dir / "samples.json").write_bytes(raw)
        loaded = doc.load()
        assert loaded.data is None
        assert loaded.problem is not None and message in loaded.problem, raw[:20]


def test_fifo_symlink_folder_and_oversized_state_files_are_refused_without_hanging(
    state_dir: Path, tmp_path: Path
) -> None:
    os.mkfifo(state_dir / "fifo.json")
    (tmp_path / "target.json").write_text('{"kind": "s", "version": 1, "data": {}}')
    os.symlink(tmp_path / "target.json", state_dir / "link.json")
    (state_dir / "dir.json").mkdir()
    (state_dir / "big.json").write_bytes(b" " * 2000)
    expected = {
        "fifo.json": "not a regular file",
        "link.json": "cannot read",
        "dir.json": "cannot read",
        "big.json": "larger than 1000 bytes",
    }
    for name, message in expected.items():
        loaded = StateDocument(state_dir / name, "s", cap=1000).load()
        assert loaded.data is None
        assert loaded.problem is not None and message in loaded.problem, name


def test_a_stale_temp_with_a_repeated_pid_never_blocks_a_write(state_dir: Path) -> None:
    doc = StateDocument(state_dir / "samples.json", "samples")
    # What a crash of an earlier process with our pid would have left.
    stale = state_dir / f".samples.json.{os.getpid()}.nodeguard-tmp"
    stale.write_text("torn")
    doc.save({"n": 1})
    doc.save({"n": 2})
    assert doc.load().data == {"n": 2}
    dead = state_dir / ".samples.json.999999999-0a0b0c0d.nodeguard-tmp"
    dead.write_text("torn")
    keep = state_dir / "unrelated.nodeguard-tmp"
    keep.write_text("not hidden: not ours")
    removed = clean_stale_temps(state_dir, time.time())
    assert dead.name in removed
    assert not dead.exists() and keep.exists()


def test_state_folders_others_can_write_are_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(StateDirUnsafe, match="writable by group or others"):
        check_state_dir(shared, os.geteuid())
    with pytest.raises(StateDirUnsafe, match="writable by group or others"):
        ensure_state_dir(shared / "nodeguard", os.geteuid())
    assert not (shared / "nodeguard").exists()
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    ensure_state_dir(sticky / "nodeguard", os.geteuid())
    assert (sticky / "nodeguard").stat().st_mode & 0o777 == 0o700
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(StateDirUnsafe, match="not a directory"):
        ensure_state_dir(afile, os.geteuid())


@pytest.mark.root
def test_a_state_folder_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(StateDirUnsafe, match="owned by uid 65534"):
        check_state_dir(theirs, 0)


def test_nan_and_infinity_make_a_document_corrupt(state_dir: Path) -> None:
    """save() never writes them (allow_nan=False): a document holding one was forged or
    damaged, and a NaN time or size would slip through every range check downstream. A
    number beyond a float's range (1e400 reads as infinity, a 400-digit integer makes
    float() raise OverflowError) is the same."""
    doc = StateDocument(state_dir / "samples.json", "samples")
    for constant in ("NaN", "Infinity", "-Infinity", "1e400", "-1e999", "1" + "0" * 400):
        raw = '{"kind": "samples", "version": 1, "data": {"t": [CONST]}}'.replace("CONST", constant)
        (state_dir / "samples.json").write_text(raw)
        loaded = doc.load()
        assert loaded.data is None, constant
        assert loaded.problem is not None and constant[:20] in loaded.problem, loaded.problem


@pytest.mark.parametrize("kind", ["fifo", "huge", "symlink"])
def test_the_plain_state_file_reads_capped_and_never_blocks(tmp_path: Path, kind: str) -> None:
    """``StateFile`` read its path whole, following links: a FIFO hung the reader."""
    import threading

    from nodeguard.state import STATE_READ_CAP, StateCorrupt, StateFile

    path = tmp_path / "state.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "huge":
        with path.open("wb") as handle:
            handle.truncate(STATE_READ_CAP + 1)
    else:
        path.symlink_to("/etc/passwd")
    outcome: list[BaseException | dict[str, object]] = []

    def load() -> None:
        try:
            outcome.append(StateFile(path).load())
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the reader so the test can end
        with open(path, "wb"):
            pass
        pytest.fail("StateFile.load() blocked on a FIFO")
    [result] = outcome
    assert isinstance(result, StateCorrupt), result
    assert str(path) in str(result)


def test_a_roots_symlink_above_the_state_folder_leads_only_through_roots_folders(
    tmp_path: Path,
) -> None:
    """A root-owned link in a parent (``/var/run -> /run``) is root's choice, but where it
    leads must be root's too: a folder another user owns on the way lets that user swap
    the state folder (and its intent records) after the check."""
    from nodeguard.state import StateDirUnsafe, check_state_dir

    theirs = tmp_path / "home" / "alice"
    (theirs / "lib" / "state").mkdir(parents=True, mode=0o700)
    (theirs / "lib").chmod(0o755)
    os.chown(theirs, 65534, 65534)
    link = tmp_path / "lib"
    link.symlink_to(theirs / "lib")

    with pytest.raises(StateDirUnsafe, match=f"{theirs}: owned by uid 65534"):
        check_state_dir(link / "state", 0)


def test_a_roots_symlink_to_roots_folders_is_fine(tmp_path: Path) -> None:
    from nodeguard.state import check_state_dir

    (tmp_path / "run" / "state").mkdir(parents=True, mode=0o700)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "run").symlink_to(tmp_path / "run")
    check_state_dir(tmp_path / "var" / "run" / "state", 0)
