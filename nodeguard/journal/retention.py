"""Journal retention: disk use as ``journalctl --disk-usage`` reports it, vacuuming by
``max_use``/``max_age`` and down to a floor when the disk guard finds the disk critical.

Removal is always journalctl's own ``--vacuum-size``/``--vacuum-time`` (run through
``World.run``), which deletes archived files only (``name@seqnum-id-seqnum-time.journal``
and ``*.journal~``), oldest first, never an active file. ``--dry-run`` plans with the
same algorithm (systemd's ``journal_directory_vacuum``) without running it. journald
itself only enforces its limits when it rotates and never gives space back when the disk
fills for other reasons (systemd #8772); this is how nodeguard does.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeguard.config.model import Config
from nodeguard.events import Event, Severity
from nodeguard.journal.model import JournalKind, journal_event
from nodeguard.world import World

SYSTEM_ROOTS = (Path("/var/log/journal"), Path("/run/log/journal"))
MACHINE_ID = Path("/etc/machine-id")
VACUUM_TIMEOUT = 300.0
_ARCHIVED = re.compile(r"@([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{16})\.journal$")
_CORRUPT = re.compile(r"@([0-9a-f]{16})-([0-9a-f]{16})\.journal~$")
_ID128 = re.compile(r"[0-9a-f]{32}")
_UNITS = ("E", "P", "T", "G", "M", "K")


@dataclass(frozen=True)
class JournalFile:
    """One journal file: its disk use (allocated blocks) and whether it is archived."""

    path: str
    usage: int
    archived: bool
    realtime_us: int  # archived: the time vacuum orders and ages it by (0 for active)
    seqnum_id: str = ""
    seqnum: int = 0


@dataclass(frozen=True)
class Usage:
    """The journal's files and their disk use."""

    files: tuple[JournalFile, ...]

    @property
    def total(self) -> int:
        return sum(f.usage for f in self.files)

    @property
    def archived(self) -> int:
        return sum(f.usage for f in self.files if f.archived)

    def text(self) -> str:
        """The sentence ``journalctl --disk-usage`` prints."""
        return (
            f"Archived and active journals take up {format_bytes(self.total)} in the file system."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_bytes": self.total,
            "archived_bytes": self.archived,
            "active_bytes": self.total - self.archived,
            "files": [
                {"path": f.path, "bytes": f.usage, "archived": f.archived} for f in self.files
            ],
        }


@dataclass(frozen=True)
class VacuumResult:
    """What a vacuum removed (or, dry, would remove), and its events."""

    before: Usage
    after: Usage
    removed: tuple[JournalFile, ...]
    events: tuple[Event, ...]
    dry_run: bool = False

    @property
    def freed(self) -> int:
        return sum(f.usage for f in self.removed)


def format_bytes(size: int) -> str:
    """systemd's FORMAT_BYTES: IEC units with one digit below the point, "B" below 1K."""
    for index, suffix in enumerate(_UNITS):
        factor = 1024 ** (len(_UNITS) - index)
        if size >= factor:
            if index < len(_UNITS) - 1:
                tenth = (size // (factor // 1024) * 10 // 1024) % 10
            else:
                tenth = (size * 10 // factor) % 10
            return f"{size // factor}.{tenth}{suffix}"
    return f"{size}B"


# --- which files ---------------------------------------------------------------------------


def journal_directories(config: Config) -> list[Path]:
    """The folders journalctl reads: the configured one and its machine-id subfolders, or
    this machine's folders under /var/log/journal and /run/log/journal."""
    directory = config.journal.directory
    if directory is not None:
        return [directory, *_id128_children(directory)]
    machine_id = _machine_id()
    found = [root / machine_id for root in SYSTEM_ROOTS if machine_id]
    return [d for d in found if d.is_dir()]


def _id128_children(directory: Path) -> list[Path]:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [directory / n for n in names if _ID128.fullmatch(n) and (directory / n).is_dir()]


def _machine_id() -> str:
    try:
        text = MACHINE_ID.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return text if _ID128.fullmatch(text) else ""


def usage_of(directories: list[Path]) -> Usage:
    files: list[JournalFile] = []
    for directory in directories:
        files += _files_in(directory)
    return Usage(tuple(sorted(files, key=lambda f: f.path)))


def _files_in(directory: Path) -> list[JournalFile]:
    out: list[JournalFile] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return out
    for name in names:
        if not (name.endswith(".journal") or name.endswith(".journal~")):
            continue
        try:
            st = os.lstat(directory / name)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.append(_describe(str(directory / name), name, st))
    return out


def _describe(path: str, name: str, st: os.stat_result) -> JournalFile:
    usage = st.st_blocks * 512
    archived = _ARCHIVED.search(name)
    if archived:
        seqnum_id, seqnum, realtime = archived.groups()
        return JournalFile(
            path, usage, True, _oldest(int(realtime, 16), st), seqnum_id, int(seqnum, 16)
        )
    corrupt = _CORRUPT.search(name)
    if corrupt:
        return JournalFile(path, usage, True, _oldest(int(corrupt.group(1), 16), st))
    return JournalFile(path, usage, False, 0)


def _oldest(realtime_us: int, st: os.stat_result) -> int:
    """As journald's vacuum: the file may be older than its name says (patch_realtime)."""
    times = [st.st_ctime_ns // 1000, st.st_atime_ns // 1000, st.st_mtime_ns // 1000]
    return min([realtime_us, *(t for t in times if t > 0)])


# --- entry points --------------------------------------------------------------------------


def journal_usage(config: Config, world: World) -> Usage:
    """The journal's files and disk use (the total is what ``journalctl --disk-usage`` says)."""
    return usage_of(journal_directories(config))


def enforce_retention(config: Config, world: World, *, dry_run: bool = False) -> VacuumResult:
    """Vacuum archived files beyond ``retention.max_use``/``max_age`` (nothing when unset)."""
    retention = config.journal.retention
    return _vacuum(config, world, retention.max_use, retention.max_age, dry_run)


def vacuum_to_floor(config: Config, world: World, *, dry_run: bool = False) -> VacuumResult:
    """For the disk guard, when the journal's filesystem is critical: vacuum archived files
    down to ``retention.floor`` (active files stay; journald archives them in time)."""
    return _vacuum(config, world, config.journal.retention.floor, None, dry_run)


def _vacuum(
    config: Config, world: World, max_use: int | None, max_age: int | None, dry_run: bool
) -> VacuumResult:
    directories = journal_directories(config)
    before = usage_of(directories)
    if max_use is None and max_age is None:
        return VacuumResult(before, before, (), (), dry_run)
    if dry_run:
        planned = plan_vacuum(before, directories, max_use, max_age, world.timestamp())
        after = Usage(tuple(f for f in before.files if f not in planned))
        return VacuumResult(before, after, planned, (_vacuum_event(planned, True),), True)
    argv = ["journalctl"]
    if config.journal.directory is not None:
        argv += ["-D", str(config.journal.directory)]
    if max_use is not None:
        argv.append(f"--vacuum-size={max_use}")
    if max_age is not None:
        argv.append(f"--vacuum-time={max_age}s")
    done = world.run(argv, VACUUM_TIMEOUT)
    after = usage_of(directories)
    kept = {f.path for f in after.files}
    removed = tuple(f for f in before.files if f.path not in kept)
    if done.returncode != 0:
        event = journal_event(
            JournalKind.VACUUM_FAILED,
            "journal",
            Severity.ERROR,
            f"{' '.join(argv)} failed ({done.returncode}): {done.output[-500:]}",
            facts={"argv": argv, "returncode": done.returncode, "output": done.output},
        )
        return VacuumResult(before, after, removed, (event,))
    return VacuumResult(before, after, removed, (_vacuum_event(removed, False),))


def _vacuum_event(removed: tuple[JournalFile, ...], dry: bool) -> Event:
    freed = sum(f.usage for f in removed)
    verb = "would remove" if dry else "removed"
    return journal_event(
        JournalKind.VACUUMED,
        "journal",
        Severity.INFO,
        f"vacuum {verb} {len(removed)} archived journal files ({format_bytes(freed)})",
        facts={"removed": [f.path for f in removed], "freed_bytes": freed, "dry_run": dry},
    )


def plan_vacuum(
    usage: Usage,
    directories: list[Path],
    max_use: int | None,
    max_age: int | None,
    now: float,
) -> tuple[JournalFile, ...]:
    """The archived files journalctl's vacuum would delete, folder by folder, in its order.

    As Debian 12's journalctl (252.39, with systemd PR #26932) and systemd 254+: the size
    limit applies to all files of a folder, active ones included; only archived ones go.
    """
    planned: list[JournalFile] = []
    limit_us = int((now - max_age) * 1_000_000) if max_age is not None else None
    for directory in directories:
        prefix = f"{directory}/"
        here = [f for f in usage.files if _directly_in(f.path, prefix)]
        archived = sorted((f for f in here if f.archived), key=_vacuum_order)
        total = sum(f.usage for f in here)  # active files count too (systemd PR #26932)
        for item in archived:
            young = limit_us is None or item.realtime_us >= limit_us
            small = max_use is None or total <= max_use
            if young and small:
                break
            planned.append(item)
            total -= item.usage
    return tuple(planned)


def _directly_in(path: str, prefix: str) -> bool:
    return path.startswith(prefix) and "/" not in path[len(prefix) :]


def _vacuum_order(item: JournalFile) -> tuple[int, str, int, str]:
    # journald compares seqnums within one seqnum id, else by time; sorting by time first
    # and seqnum second gives that order for the files one journald wrote.
    return (item.realtime_us, item.seqnum_id, item.seqnum, item.path)
