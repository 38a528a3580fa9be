"""Exit codes, defined once for every command.

``check`` follows the Nagios plugin convention instead (0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN): monitoring systems read those numbers.
"""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    OK = 0
    FAILED = 1  # some action failed or was refused; docker-config --check: file differs
    USAGE = 2  # bad config, bad input or usage: nothing was changed
    LOCKED = 3  # another pass holds the lock


class Nagios(enum.IntEnum):
    """``nodeguard check``'s exit codes: the Nagios/Icinga plugin convention."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3
