"""The state directory: one lock, one JSON state file, and intent records.

Everything nodeguard remembers lives under ``state_dir``. The state file is a
cache of facts that can be rebuilt from the files on disk, so a corrupt one is
reported and replaced, never trusted and never a reason to delete anything.
Intent records are written before each step that must not be half-done after a
crash (``intents/<id>.json``) and removed when the step completes; the next
pass finishes or undoes whatever they describe.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeguard.fsutil import TMP_MARK, atomic_write, create_durable, read_fd_capped

STATE_VERSION = 1


class LockBusy(Exception):
    """Another nodeguard pass holds the lock."""


class StateCorrupt(Exception):
    """The state file could not be read; the message says where and why."""


class LockUnusable(OSError):
    """The lock file cannot be opened or is not a regular file (read-only folder, ...)."""

    def __str__(self) -> str:  # "PATH: why", not "[Errno 31] why: 'PATH'"
        return f"{self.filename}: {self.strerror}" if self.filename else str(self.strerror)


_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@contextlib.contextmanager
def pass_lock(state_dir: Path) -> Iterator[None]:
    """Hold ``state_dir/nodeguard.lock`` for one pass; raise LockBusy if taken.

    LockUnusable (an OSError) when the lock cannot be opened or is not a regular file.
    The holder's pid is written for the message of a second pass, best effort: on a
    full disk the lock still works without it.
    """
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = state_dir / "nodeguard.lock"
    fd = open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                raise LockBusy(f"{path} is held by pid {holder or '?'}") from None
            raise LockUnusable(exc.errno, f"cannot lock: {exc.strerror}", str(path)) from None
        with contextlib.suppress(OSError):  # ENOSPC: the flock is what counts
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def open_lock(path: Path) -> int:
    """Open (create 0600) the lock file ``path`` for flock; the caller closes the fd.

    LockUnusable (an OSError, message naming the path) when it cannot be opened or is
    not a regular file: a folder, a symlink (never followed) or a FIFO in its place, or
    a file with another name (a hard link), which the pid written into it would change.
    """
    try:
        fd = os.open(path, _LOCK_FLAGS, 0o600)
    except OSError as exc:
        why = "it is a symlink" if exc.errno == errno.ELOOP else exc.strerror
        raise LockUnusable(exc.errno, f"cannot open the lock: {why}", str(path)) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise LockUnusable(errno.EINVAL, "the lock is not a regular file", str(path))
    if st.st_nlink != 1:  # another name may be any file: the pid is never written into it
        os.close(fd)
        why = f"the lock has {st.st_nlink} hard links; never written"
        raise LockUnusable(errno.EMLINK, why, str(path))
    return fd


@dataclass
class StateFile:
    """A JSON document in the state directory, read leniently, written atomically."""

    path: Path

    def load(self) -> dict[str, Any]:
        """Return the stored document, or raise StateCorrupt naming the problem."""
        try:  # capped, typed, never through a symlink, never blocking on a FIFO
            text = read_capped(self.path).decode("utf-8")
        except FileNotFoundError:
            return {"version": STATE_VERSION}
        except OSError as exc:
            raise StateCorrupt(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise StateCorrupt(f"{self.path}: cannot read: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateCorrupt(f"{self.path}:{exc.lineno}:{exc.colno}: {exc.msg}") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise StateCorrupt(f"{self.path}: not a nodeguard state file (version mismatch)")
        return data

    def load_or_rebuild(self) -> tuple[dict[str, Any], str | None]:
        """Like load(), but a corrupt file yields a fresh document and the reason."""
        try:
            return self.load(), None
        except StateCorrupt as exc:
            return {"version": STATE_VERSION}, f"{exc}; state rebuilt from the files on disk"

    def save(self, data: dict[str, Any]) -> None:
        data = {**data, "version": STATE_VERSION}
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        atomic_write(self.path, text.encode(), mode=0o600)


@dataclass
class IntentJournal:
    """Records of steps in flight, so a crash can be finished or undone next pass."""

    directory: Path

    def begin(self, record: dict[str, Any]) -> str:
        """Durably record a step before it starts; return its id for end()."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        intent_id = os.urandom(16).hex()  # 32 hex digits, as uuid4().hex (no uuid import)
        body = json.dumps({**record, "id": intent_id}, sort_keys=True).encode()
        # Written under its final name (a fresh id, O_EXCL), not temp + rename: a crash
        # before this returns leaves no record or an empty one, which recovery removes
        # as torn (its step never began), so one fsync suffices on ext4/xfs.
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            create_durable(fd, f"{intent_id}.json", body, 0o600)
        finally:
            os.close(fd)
        return intent_id

    def end(self, intent_id: str) -> None:
        """The step completed (or was undone): forget it.

        Not fsynced: a record that survives a crash describes a finished step, which
        recovery recognises from the files and settles again without harm.
        """
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.directory / f"{intent_id}.json")

    def pending(self) -> list[tuple[str, dict[str, Any] | None]]:
        """Every unfinished record; an unreadable one (not a regular file, too large,
        not UTF-8 JSON, nested too deeply, not an object) is returned as None."""
        out: list[tuple[str, dict[str, Any] | None]] = []
        if not self.directory.is_dir():
            return out
        for path in sorted(self.directory.glob("*.json")):
            out.append((path.stem, read_record(path)))
        return out


INTENT_READ_CAP = 64 * 1024  # a record is a few hundred bytes


def read_record(path: Path, cap: int = INTENT_READ_CAP) -> dict[str, Any] | None:
    """One JSON object from a small regular file, or None if it is anything else."""
    try:
        record = json.loads(read_capped(path, cap).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


# --- the state-file API: every file in state_dir goes through these ---------------

STATE_READ_CAP = 16 * 1024 * 1024  # a state document larger than this is corrupt
STALE_TEMP_AGE = 3600.0


class StateDirUnsafe(Exception):
    """The state folder (or a parent) could be changed by someone other than us, or an
    entry in it is not what nodeguard keeps there (a folder where a file belongs, ...)."""


def check_state_dir(path: Path, euid: int) -> None:
    """Refuse a state folder that others could tamper with.

    Every component from ``/`` down to ``path`` must be a real directory (no symlink in
    the final component), owned by root or ``euid``, and not writable by group or
    others, except a sticky folder such as /tmp whose next component we own. Raises
    StateDirUnsafe naming the component and the reason; a missing ``path`` is fine
    (it is created 0700 by :func:`ensure_state_dir`).
    """
    path = Path(os.path.abspath(path))
    parts = [Path("/"), *[Path(*path.parts[: i + 1]) for i in range(1, len(path.parts))]]
    for index, part in enumerate(parts):
        try:
            st = os.lstat(part)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StateDirUnsafe(f"{part}: cannot inspect: {exc.strerror}") from None
        _check_component(part, st, euid, parts[index + 1] if index + 1 < len(parts) else None)


def _check_component(part: Path, st: os.stat_result, euid: int, child: Path | None) -> None:
    if stat.S_ISLNK(st.st_mode) and child is not None and st.st_uid == 0:
        # A root-owned symlink in a parent (e.g. /var/run -> /run) is root's choice; the
        # folders it leads through must pass the same checks.
        check_state_dir(Path(os.path.realpath(part)), euid)
        return
    if not stat.S_ISDIR(st.st_mode):
        raise StateDirUnsafe(f"{part}: not a directory")
    if st.st_uid not in (0, euid):
        raise StateDirUnsafe(f"{part}: owned by uid {st.st_uid}, not root")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        sticky_parent = st.st_mode & stat.S_ISVTX and child is not None
        if sticky_parent and _owned_by(child, euid):
            return
        raise StateDirUnsafe(f"{part}: writable by group or others (mode {st.st_mode & 0o7777:o})")


def _owned_by(path: Path | None, euid: int) -> bool:
    """True when ``path`` is our directory, or missing (created then checked again)."""
    try:
        st = os.lstat(path) if path is not None else None
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return st is not None and stat.S_ISDIR(st.st_mode) and st.st_uid in (0, euid)


def check_state_entries(
    path: Path, euid: int, *, files: tuple[str, ...] = (), dirs: tuple[str, ...] = ()
) -> None:
    """Entries of the state folder, where present, must be what nodeguard keeps there:
    ``files`` regular files (not a symlink, FIFO or folder), ``dirs`` directories that
    only root (or ``euid``) can change. Raises StateDirUnsafe naming the entry."""
    for name, want_dir in [(n, False) for n in files] + [(n, True) for n in dirs]:
        entry = path / name
        try:
            st = os.lstat(entry)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StateDirUnsafe(f"{entry}: cannot inspect: {exc.strerror}") from None
        if want_dir:
            _check_component(entry, st, euid, None)
        elif not stat.S_ISREG(st.st_mode):
            kind = stat.filemode(st.st_mode)
            raise StateDirUnsafe(f"{entry}: not a regular file ({kind}); move it away")


def check_trusted_dir(path: Path, euid: int) -> None:
    """Refuse a folder whose content decides what root removes, unless only root (or
    ``euid``) can change it: the rules of :func:`check_state_dir`, and the folder itself
    may be a root-owned symlink in such a folder (a root moved to a data disk), whose
    target is then checked the same way. StateDirUnsafe names the component."""
    path = Path(os.path.abspath(path))
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode) and st.st_uid == 0:
        check_state_dir(path.parent, euid)
        path = Path(os.path.realpath(path))
    check_state_dir(path, euid)


def ensure_state_dir(path: Path, euid: int) -> None:
    """Create the state folder 0700 if missing, then check it (StateDirUnsafe if unsafe)."""
    check_state_dir(path, euid)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise StateDirUnsafe(f"{path}: not a directory") from None
    check_state_dir(path, euid)


def read_capped(path: Path, cap: int = STATE_READ_CAP) -> bytes:
    """Read a regular file of at most ``cap`` bytes, never following a symlink.

    O_NONBLOCK keeps a FIFO from hanging us; the fstat check refuses anything but a
    regular file. Raises OSError (ELOOP, ENXIO, EFBIG, EISDIR ...) with a clear strerror.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if st.st_size > cap:
            raise OSError(errno.EFBIG, f"larger than {cap} bytes", str(path))
        return read_fd_capped(fd, cap)
    finally:
        os.close(fd)


MAX_INT_DIGITS = 20  # nodeguard stores nothing beyond 64 bits


class _Constant(Exception):
    """NaN, an infinity, or a number beyond a float's range in a state document: save()
    never writes one (allow_nan=False)."""


def _no_constant(name: str) -> Any:
    raise _Constant(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 reads as infinity
        raise _Constant(text[:40])
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:  # float(10**400) raises OverflowError
        raise _Constant(text[:40])
    return int(text)


@dataclass(frozen=True)
class Loaded:
    """A state document as read: its data (None when absent or unusable) and any problem."""

    data: dict[str, Any] | None
    problem: str | None = None


@dataclass(frozen=True)
class StateDocument:
    """One versioned JSON document in the state folder (``kind`` names its format).

    Reads are capped and type-checked; a corrupt, foreign or oversized file yields
    ``Loaded(None, problem)`` for the caller to report and rebuild from, never an
    exception. Writes are atomic with a unique temp name.
    """

    path: Path
    kind: str
    version: int = 1
    cap: int = STATE_READ_CAP

    def load(self) -> Loaded:
        try:
            raw = read_capped(self.path, self.cap)
        except FileNotFoundError:
            return Loaded(None)
        except OSError as exc:
            return Loaded(None, f"{self.path}: cannot read: {exc.strerror or exc}")
        try:
            return Loaded(self._parse(raw))
        except ValueError as exc:
            return Loaded(None, f"{self.path}{exc}")

    def _parse(self, raw: bytes) -> dict[str, Any]:
        """The document's data; ValueError (":line:col: why" or ": why") if unusable."""
        try:
            data = json.loads(
                raw.decode("utf-8"),
                parse_constant=_no_constant,
                parse_float=_finite_float,
                parse_int=_bounded_int,
            )
        except UnicodeDecodeError:
            raise ValueError(": not UTF-8") from None
        except _Constant as exc:
            raise ValueError(f": {exc.args[0]} is not a number nodeguard writes") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f":{exc.lineno}:{exc.colno}: {exc.msg}") from None
        except RecursionError:
            raise ValueError(": nested too deeply") from None
        if not isinstance(data, dict) or data.get("kind") != self.kind:
            raise ValueError(f": not a nodeguard {self.kind} document")
        if data.get("version") != self.version:
            raise ValueError(f": version {data.get('version')!r}, not {self.version}")
        body = data.get("data")
        if not isinstance(body, dict):
            raise ValueError(": no data mapping")
        return body

    def save(self, data: Mapping[str, Any]) -> None:
        """Write atomically (temp, fsync, rename, fsync folder), mode 0600."""
        doc = {"kind": self.kind, "version": self.version, "data": data}
        text = json.dumps(doc, separators=(",", ":"), sort_keys=True, allow_nan=False)
        atomic_write(self.path, text.encode() + b"\n", mode=0o600, owner=(os.geteuid(), 0))


def clean_stale_temps(directory: Path, now: float, max_age: float = STALE_TEMP_AGE) -> list[str]:
    """Remove temp files left in ``directory`` by crashed writers; return their names.

    A temp is stale when its writer's pid is gone or it is older than ``max_age``
    seconds. Only regular files with nodeguard's temp mark are touched.
    """
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(".") and name.endswith(TMP_MARK)):
            continue
        path = directory / name
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and (
                now - st.st_mtime > max_age or not _writer_alive(name)
            ):
                os.unlink(path)
                removed.append(name)
    return removed


def _writer_alive(name: str) -> bool:
    pid = name.rsplit(".", 2)[-2].split("-", 1)[0] if name.count(".") >= 3 else ""
    if not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True
    return os.path.exists(f"/proc/{pid}")
