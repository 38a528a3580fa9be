"""Names of rotated files.

A rotated file is named like kubelet's: ``<live name>.<YYYYMMDD-hhmmss>`` in UTC,
plus ``-<n>`` when two rotations of one log fall in the same second, plus
``.gz`` once compressed. Timestamps never need renaming when a new file is
rotated (logrotate's ``.1``, ``.2`` shift does), so one rotation is one rename.
Sort order is (timestamp, n), which :func:`parse` exposes as ``key``.
Temporary files are ``.<final name>.nodeguard-tmp``: hidden, so no glob such as
``*.log`` matches them, and recognisable, so the next pass removes leftovers.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from nodeguard.fsutil import TMP_MARK

STAMP_FORMAT = "%Y%m%d-%H%M%S"
# DOTALL and \Z: a name may hold a newline; ASCII: only 0-9 are digits in a stamp.
_FLAGS = re.DOTALL | re.ASCII
_ROTATED_RE = re.compile(
    r"^(?P<base>.+)\.(?P<stamp>\d{8}-\d{6})(?:-(?P<seq>\d+))?(?P<gz>\.gz)?\Z", _FLAGS
)
_TMP_RE = re.compile(r"^\.(?P<target>.+)" + re.escape(TMP_MARK) + r"\Z", _FLAGS)


@dataclass(frozen=True)
class RotatedName:
    """A parsed rotated file name."""

    name: str
    base: str
    stamp: str
    seq: int
    compressed: bool

    @property
    def key(self) -> tuple[str, int]:
        """Age order: a larger key is newer."""
        return (self.stamp, self.seq)

    @property
    def plain_name(self) -> str:
        return self.name[: -len(".gz")] if self.compressed else self.name


def parse(name: str) -> RotatedName | None:
    """Parse a rotated file name, or None if ``name`` is not one."""
    match = _ROTATED_RE.match(name)
    if match is None:
        return None
    return RotatedName(
        name=name,
        base=match.group("base"),
        stamp=match.group("stamp"),
        seq=int(match.group("seq") or 0),
        compressed=bool(match.group("gz")),
    )


def temp_target(name: str) -> str | None:
    """For a temporary file name, the final name it was meant to become."""
    match = _TMP_RE.match(name) if name[:1] == "." else None  # every temp name is hidden
    return match.group("target") if match else None


def temp_name(final: str) -> str:
    return f".{final}{TMP_MARK}"


def is_rotated_or_temp(name: str) -> bool:
    """Names the rotator itself produced; never treated as live logs."""
    # The patterns alone (no RotatedName built): this runs once per file a glob matches.
    return _ROTATED_RE.match(name) is not None or (
        name[:1] == "." and _TMP_RE.match(name) is not None
    )


@functools.lru_cache(maxsize=4)
def _stamp(now: datetime) -> str:
    """The timestamp of rotated names: one pass has one ``now``, formatted once."""
    return now.astimezone(UTC).strftime(STAMP_FORMAT)


def new_name(base: str, now: datetime, taken: Iterable[str]) -> str:
    """A fresh rotated name for ``base`` at ``now`` that sorts after every taken one."""
    stamp = _stamp(now)
    newest = max(
        (r.key for r in map(parse, taken) if r is not None and r.base == base),
        default=None,
    )
    if newest is not None and newest[0] > stamp:
        stamp = newest[0]  # clock went backwards: keep age order by name
    seq = newest[1] + 1 if newest is not None and newest[0] == stamp else 0
    return f"{base}.{stamp}" + (f"-{seq}" if seq else "")
