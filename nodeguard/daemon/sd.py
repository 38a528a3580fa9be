"""systemd integration: readiness, status and watchdog notifications, journald logging.

systemd-python is imported lazily and only here; where it is missing (or nodeguard
does not run under systemd) every function degrades to a no-op and logs go to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping

Notify = Callable[[str], None]

IDENTIFIER = "nodeguard"
_PRIORITIES = {  # logging level -> syslog priority
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
_EXTRA_FIELDS = (
    ("nodeguard_source", "NODEGUARD_SOURCE"),
    ("nodeguard_kind", "NODEGUARD_KIND"),
    ("nodeguard_subject", "NODEGUARD_SUBJECT"),
)


def notifier(environ: Mapping[str, str]) -> Notify:
    """sd_notify through systemd-python, or a no-op without it or without NOTIFY_SOCKET."""
    if not environ.get("NOTIFY_SOCKET"):
        return _no_op
    try:
        from systemd.daemon import notify as sd_notify
    except ImportError:
        return _no_op

    def notify(state: str) -> None:
        sd_notify(state)

    return notify


def _no_op(state: str) -> None:
    return None


def watchdog_period(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings systemd expects (WatchdogSec), or None."""
    usec, owner = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(usec) / 1e6


def under_journald(environ: Mapping[str, str]) -> bool:
    """True when stderr is connected to journald (systemd sets JOURNAL_STREAM to it)."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


class JournalHandler(logging.Handler):
    """Send records to journald with PRIORITY and the event's NODEGUARD_* fields."""

    def __init__(self, send: Callable[..., object]) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {
                "PRIORITY": str(_PRIORITIES.get(record.levelno, 6)),
                "SYSLOG_IDENTIFIER": IDENTIFIER,
                "LOGGER": record.name,
                "THREAD_NAME": record.threadName or "",
            }
            for attr, name in _EXTRA_FIELDS:
                value = getattr(record, attr, None)
                if value is not None:
                    fields[name] = str(value)
            if record.exc_info:
                fields["EXCEPTION_TEXT"] = logging.Formatter().formatException(record.exc_info)
            self._send(
                record.getMessage(),
                CODE_FILE=record.pathname,
                CODE_LINE=record.lineno,
                CODE_FUNC=record.funcName,
                **fields,
            )
        except Exception:
            self.handleError(record)


DAEMON_FORMAT = "%(asctime)s %(levelname)s %(message)s"
CLI_FORMAT = "nodeguard: %(levelname)s %(message)s"


def log_handler(environ: Mapping[str, str], fmt: str = DAEMON_FORMAT) -> logging.Handler:
    """journald with fields when stderr goes to the journal, else stderr text lines."""
    if under_journald(environ):
        try:
            from systemd.journal import send
        except ImportError:
            pass
        else:
            return JournalHandler(send)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    return handler


def setup_logging(
    environ: Mapping[str, str], level: str, fmt: str = DAEMON_FORMAT
) -> logging.Handler:
    """Route the ``nodeguard`` loggers to one handler (replacing any earlier one).

    The daemon calls it with its configured level (the CLI uses :func:`log_handler`
    with ``CLI_FORMAT``). stdout (reports, ``--json``) is never touched.
    """
    logger = logging.getLogger("nodeguard")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    handler = log_handler(environ, fmt)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return handler


def set_level(level: str) -> None:
    logging.getLogger("nodeguard").setLevel(level.upper())
