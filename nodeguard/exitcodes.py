"""Exit codes, defined once for every command.

``check`` follows the Nagios plugin convention instead (0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN): monitoring systems read those numbers.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Exit(enum.IntEnum):
    OK = 0
    FAILED = 1  # some action failed or was refused; docker-config --check: file differs
    USAGE = 2  # bad config, bad input or usage: nothing was changed
    LOCKED = 3  # another pass holds the lock
    UNDELIVERED = 4  # run --once: not every alert delivered; kept in the spool for retry


# Which code a command with several outcomes (run --once) exits with: the most serious.
# UNDELIVERED is the mildest failure (a later run or the daemon retries by itself), so a
# rotation that failed (1) or a sink's configuration refused (2) is never hidden by it.
_PRECEDENCE = (Exit.OK, Exit.UNDELIVERED, Exit.FAILED, Exit.USAGE, Exit.LOCKED)


def worst(codes: Iterable[Exit]) -> Exit:
    """The most serious of ``codes`` (Exit.OK for none), by ``_PRECEDENCE``."""
    return max(codes, key=_PRECEDENCE.index, default=Exit.OK)


class Nagios(enum.IntEnum):
    """``nodeguard check``'s exit codes: the Nagios/Icinga plugin convention."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3
