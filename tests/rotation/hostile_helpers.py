"""Tools for the hostile-tree tests: victims, digests, attackers running as nobody.

The arena is a directory under /tmp that ``nobody`` can traverse (pytest's tmp_path
sits in a 0700 directory, which would make every ``su`` case pass for the wrong
reason). Victims get an old atime, so a read through any path shows in the digest.
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import hashlib
import os
import pickle
import pwd
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import yaml

from nodeguard.config import Config
from nodeguard.config.loader import load_text
from nodeguard.progress import NO_PROGRESS, Progress
from nodeguard.rotation.engine import PassOptions, World, run_pass
from nodeguard.rotation.report import DONE, Report, as_record, from_record
from nodeguard.state import IntentJournal
from tests.fsimages import ext4_image

NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = grp.getgrnam("nogroup").gr_gid
OLD_ATIME_NS = 978_307_200 * 10**9  # 2001-01-01: any read updates it (relatime)
OLD_MTIME_NS = 1_009_843_200 * 10**9  # 2002-01-01
STAMP = "20260101-000000"
VICTIM_DATA = b"victim: never read, written, truncated, renamed or deleted\n" * 70
SHADOW = b"root:$6$hostile$0123456789abcdef:19000:0:99999:7:::\n" * 80
LOG_DATA = b"an ordinary log line\n" * 200
PASS_TIMEOUT = 120.0

_NOATIME = os.O_RDONLY | os.O_NOFOLLOW | os.O_NOATIME | os.O_NONBLOCK | os.O_CLOEXEC
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)

# path inside the victim tree -> (content, mode, uid, gid); directories end in "/"
_VICTIMS: dict[str, tuple[bytes, int, int, int]] = {
    "dir/": (b"", 0o755, 0, 0),
    "shadow": (SHADOW, 0o600, 0, 0),
    "app.log": (VICTIM_DATA, 0o644, 0, 0),
    f"app.log.{STAMP}": (VICTIM_DATA, 0o644, 0, 0),
    "nobody.log": (VICTIM_DATA, 0o644, NOBODY, NOGROUP),  # nobody may hard-link this one
    **{
        f"dir/{name}": (VICTIM_DATA, 0o644, 0, 0)
        for name in ("app.log", "a.log", "b.log", "x.log", "1.log", "2.log", f"app.log.{STAMP}")
    },
}


@dataclass(frozen=True)
class Arena:
    """One test's world: victims outside every policy, and room for the policy's logs."""

    root: Path

    @property
    def victim(self) -> Path:
        return self.root / "victim"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state(self) -> Path:
        return self.root / "state"


def make_arena(root: Path | None = None) -> Arena:
    """A fresh arena with the victim tree built and aged (in ``root``, an empty folder
    nobody can reach, when given: e.g. a filesystem image's mount point)."""
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="nodeguard-hostile-", dir="/tmp"))
    os.chmod(root, 0o755)  # noqa: S103 - nobody must reach the arena, as on a real node
    arena = Arena(root)
    arena.victim.mkdir(0o755)
    for rel, (data, mode, uid, gid) in _VICTIMS.items():
        path = arena.victim / rel
        if rel.endswith("/"):
            path.mkdir(mode)
        else:
            path.write_bytes(data)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    age(arena.victim)
    return arena


def remove_arena(arena: Arena) -> None:
    shutil.rmtree(arena.root)  # fd-based: safe against links, fine with paths > PATH_MAX


@contextlib.contextmanager
def ext4_arena() -> Iterator[Arena]:
    """An arena on its own ext4 image, for cases that need collapse range (lossless):
    /tmp may be a tmpfs. The mount point is reachable by nobody, as /tmp's arenas are."""
    top = Path(tempfile.mkdtemp(prefix="nodeguard-hostile-ext4-", dir="/tmp"))
    os.chmod(top, 0o755)  # noqa: S103 - nobody must reach the arena
    try:
        with ext4_image(top, size_mb=64) as fs:
            arena = make_arena(fs.path)
            check_atime_is_updated(arena.root)
            try:
                yield arena
            finally:
                subprocess.run(["rm", "-rf", "--one-file-system", str(fs.path)], check=False)
    finally:
        shutil.rmtree(top)


def age(top: Path) -> None:
    """Give every entry under ``top`` the old atime and mtime (children before parents)."""
    for root, dirs, files in os.walk(top, topdown=False):
        for name in dirs + files:
            os.utime(Path(root, name), ns=(OLD_ATIME_NS, OLD_MTIME_NS), follow_symlinks=False)
    os.utime(top, ns=(OLD_ATIME_NS, OLD_MTIME_NS))


def check_atime_is_updated(directory: Path) -> None:
    """Fail loudly if reads do not update atime here: the digests rely on it."""
    probe = directory / "atime-probe"
    probe.write_bytes(b"probe")
    os.utime(probe, ns=(OLD_ATIME_NS, OLD_MTIME_NS))
    probe.read_bytes()
    updated = probe.stat().st_atime_ns != OLD_ATIME_NS
    probe.unlink()
    if not updated:
        raise AssertionError(f"{directory}: reads do not update atime (noatime?)")


# --- digests ---------------------------------------------------------------------------


Entry = tuple[object, ...]


def digest(top: Path, *, atime: bool = True) -> dict[str, Entry]:
    """Every entry under ``top`` without following links or touching atimes.

    Type, mode, owner, inode, size, mtime, atime and sha256 (files), link target
    (symlinks). Link count and ctime are left out: an attacker's hard link changes them.
    ``atime=False`` for the policy's own directories, which every scan lists.
    """
    out: dict[str, Entry] = {}
    fd = os.open(top, _NOATIME | os.O_DIRECTORY)
    try:
        out["."] = _meta(os.fstat(fd), atime)
        _walk(fd, "", out, atime)
    finally:
        os.close(fd)
    return out


def _meta(st: os.stat_result, atime: bool) -> Entry:
    meta = (st.st_mode, st.st_uid, st.st_gid, st.st_ino, st.st_size, st.st_mtime_ns)
    return (*meta, st.st_atime_ns) if atime else meta


def _walk(dir_fd: int, prefix: str, out: dict[str, Entry], atime: bool) -> None:
    for name in sorted(os.listdir(dir_fd)):
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        rel = prefix + name
        if stat.S_ISLNK(st.st_mode):
            out[rel] = (*_meta(st, atime), os.readlink(name, dir_fd=dir_fd))
        elif stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
            fd = os.open(name, _NOATIME, dir_fd=dir_fd)
            try:
                if stat.S_ISDIR(st.st_mode):
                    out[rel] = _meta(os.fstat(fd), atime)
                    _walk(fd, rel + "/", out, atime)
                else:
                    out[rel] = (*_meta(os.fstat(fd), atime), _sha256(fd))
            finally:
                os.close(fd)
        else:
            out[rel] = _meta(st, atime)


def _sha256(fd: int) -> str:
    h = hashlib.sha256()
    while chunk := os.read(fd, 1 << 16):
        h.update(chunk)
    return h.hexdigest()


# --- acting as the attacker ------------------------------------------------------------


def drop_to_nobody() -> None:
    if os.geteuid() == 0:
        os.setgroups([NOGROUP])
        os.setresgid(NOGROUP, NOGROUP, NOGROUP)
        os.setresuid(NOBODY, NOBODY, NOBODY)


def as_nobody(action: Callable[[], None]) -> None:
    """Run ``action`` in a child process as nobody:nogroup; raise if it failed."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            drop_to_nobody()
            action()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise AssertionError(f"the attacker's action failed (wait status {status})")


def exchange(a: Path, b: Path) -> None:
    """Swap two directory entries atomically (renameat2 RENAME_EXCHANGE)."""
    rc = _libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))


class Race:
    """A second process, as nobody, repeating ``step`` as fast as it can until stopped.

    ``rounds`` is how many steps ran; ``cleanup`` runs in the attacker once it stops.
    """

    def __init__(self, step: Callable[[], None], cleanup: Callable[[], None] | None = None):
        self.step, self.cleanup, self.rounds, self._pid, self._pipe = step, cleanup, 0, 0, -1

    def __enter__(self) -> Race:
        read_fd, write_fd = os.pipe()
        self._pid = os.fork()
        if self._pid == 0:
            os.close(read_fd)
            self._child(write_fd)
        os.close(write_fd)
        self._pipe = read_fd
        if os.read(read_fd, 1) != b"s":
            raise AssertionError("the attacker process did not start")
        return self

    def _child(self, write_fd: int) -> None:
        stop: list[bool] = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
        rounds, code = 0, 1
        try:
            drop_to_nobody()
            os.write(write_fd, b"s")
            while not stop:
                with contextlib.suppress(OSError):
                    self.step()
                rounds += 1
            if self.cleanup is not None:
                self.cleanup()
            os.write(write_fd, str(rounds).encode())
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        os.kill(self._pid, signal.SIGTERM)
        with os.fdopen(self._pipe, "rb") as pipe:
            text = pipe.read()
        _, status = os.waitpid(self._pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or not text.isdigit():
            raise AssertionError(f"the attacker process failed (wait status {status})")
        self.rounds = int(text)


class MidPass:
    """A stand-in for World.run: the first postrotate of a pass runs ``attack`` as nobody.

    postrotate runs right after a file is rotated, so the attack lands between the
    scan (which saw every file) and the actions on the files that come next.
    """

    def __init__(self, attack: Callable[[], None]) -> None:
        self.attack, self.fired = attack, False

    def __call__(self, argv: list[str], timeout: float) -> tuple[int, str]:
        self.update()
        return 0, ""

    def update(self, **counts: int) -> None:
        """As the pass's progress: fires when the first log is planned. A folder's
        rename rotations run together after every log of it is planned (one batch),
        so this is where a rename's check-to-use window is."""
        if not self.fired:
            self.fired = True
            as_nobody(self.attack)

    def done(self) -> None:
        pass


# --- policies and passes ---------------------------------------------------------------


def policy(paths: Iterable[str | Path], **keys: Any) -> dict[str, Any]:
    """A policy that acts on every pass: tiny max_size, empty files rotate too."""
    base: dict[str, Any] = {
        "name": "hostile",
        "paths": [str(p) for p in paths],
        "max_size": 1,
        "max_files": 3,
        "not_if_empty": False,
    }
    return {**base, **keys}


def write_config(arena: Arena, *policies: dict[str, Any]) -> tuple[Path, Config]:
    """Write the config file (for the CLI) and load it through the real schema."""
    body = {"state_dir": str(arena.state), "logrotate_config": None, "policies": list(policies)}
    path = arena.root / "nodeguard.yaml"
    text = yaml.safe_dump(body, sort_keys=False)
    path.write_text(text, "utf-8")
    return path, load_text(text, str(path))


def run_passes(
    config: Config,
    count: int = 1,
    *,
    world: World | None = None,
    force: bool = True,
    progress: Progress = NO_PROGRESS,
) -> list[Report]:
    """Run ``count`` in-process passes in a forked child; fail if they take too long.

    The child bounds the time (a hang on a FIFO or device would otherwise hang the
    suite) and keeps the test process's own state out of the engine's way.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _pass_child(config, count, world, PassOptions(force=force, progress=progress), write_fd)
    os.close(write_fd)
    try:
        data = _read_until(read_fd, PASS_TIMEOUT)
    finally:
        os.close(read_fd)
        if data is None:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if data is None:
        raise AssertionError(f"the passes did not finish within {PASS_TIMEOUT:.0f}s (hang?)")
    result = pickle.loads(data)  # noqa: S301 - our own child's output
    if isinstance(result, str):
        raise AssertionError(f"the pass raised (wait status {status}):\n{result}")
    return [
        Report(dry_run, [from_record(r) for r in flat], notes) for dry_run, flat, notes in result
    ]


def _pass_child(
    config: Config, count: int, world: World | None, options: PassOptions, write_fd: int
) -> None:
    intents = IntentJournal(config.state_dir / "intents")  # as the CLI runs a pass
    try:
        reports = [run_pass(config, options, world, intents=intents) for _ in range(count)]
        # events hold read-only mappings, which do not pickle: send them as flat records
        payload: object = [(r.dry_run, [as_record(e) for e in r.events], r.notes) for r in reports]
    except BaseException:
        payload = traceback.format_exc()
    data = pickle.dumps(payload)
    view = memoryview(data)
    while view:
        view = view[os.write(write_fd, view) :]
    os._exit(0)


def _read_until(fd: int, timeout: float) -> bytes | None:
    """Everything from ``fd`` until EOF, or None if the writer is still going at ``timeout``."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
    return None


class Record(NamedTuple):
    """One event of a report, as the flat record ``--json`` prints, for assertions."""

    policy: str
    path: str
    action: str
    result: str
    reason: str
    bytes_before: int | None
    bytes_after: int | None
    target: str | None
    error: str | None


def records(report: Report) -> list[Record]:
    return [Record(**as_record(e)) for e in report.events]


def records_about(reports: Iterable[Report], path: str | Path) -> list[Record]:
    return [r for report in reports for r in records(report) if r.path == str(path)]


def problems(reports: Iterable[Report]) -> list[Record]:
    """Every record that is not a success: each must carry a reason."""
    return [r for report in reports for r in records(report) if r.result not in (DONE, "unchanged")]
