"""Docker's own rules for log-driver and log-opts: one definition for every concern.

Mirrors moby's daemon/logger (factory.go ValidateLogOpts, jsonfilelog and local New and
ValidateLogOpt) as shipped in Docker 20.10 to 28, checked against Debian 12's dockerd:

- an unknown key, a bad ``mode`` or ``max-buffer-size`` stops dockerd at start-up;
- a bad ``max-size``, ``max-file`` or ``compress`` lets dockerd start but makes every
  container that uses the default fail to start ("failed to initialize logging driver").

The config schema refuses both in ``docker.log_opts`` (:func:`validate_log_config`). It
adds one rule of its own: for json-file, ``max-file`` without ``max-size`` is refused,
because Docker accepts it and never rotates (unbounded).

:func:`log_bound` answers "is this container's log bounded" from a container's own
LogConfig exactly as Docker's logger reads it when the container starts; both
``docker-config`` and ``containers`` ask it. It lives in ``config/`` so the schema can
use these rules without importing anything above it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

# go-units' size syntax ("10m", "10MB", "10 MiB", "1.5g"). FromHumanSize, used by
# json-file and local for max-size, is decimal (k = 1000); RAMInBytes, used for
# max-buffer-size, is binary (k = 1024).
# Go's RE2 \d is ASCII and its $ is the end of the text: [0-9] and fullmatch here.
_SIZE_RE = re.compile(r"([0-9]+(\.[0-9]+)*) ?([kKmMgGtTpP])?[iI]?[bB]?")
_UNITS = "kmgtp"
_INT64_MAX = 2**63 - 1

# Go's strconv.ParseBool and strconv.Atoi.
_GO_BOOLS = {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"}
_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_INT_RE = re.compile(r"[+-]?[0-9]{1,19}")

# Handled by the logger factory for every driver, before the driver's own validator.
_BUILTIN_OPTS = {"mode", "max-buffer-size"}
_CACHE_OPTS = {"cache-disabled", "cache-max-size", "cache-max-file", "cache-compress"}
_ATTR_OPTS = {"labels", "labels-regex", "env", "env-regex", "tag"}
DRIVER_OPTS: dict[str, set[str]] = {
    "json-file": {"max-size", "max-file", "compress"} | _ATTR_OPTS,
    # Docker 20.10 to 28 accept only these three for local (no labels/env/tag).
    "local": {"max-size", "max-file", "compress"},
}
FILE_DRIVERS = frozenset(DRIVER_OPTS)
KNOWN_DRIVERS = {
    "json-file",
    "local",
    "journald",
    "syslog",
    "none",
    "fluentd",
    "gelf",
    "awslogs",
    "splunk",
    "etwlogs",
    "gcplogs",
    "logentries",
}
LOCAL_DEFAULT_MAX_SIZE = 20 * 1024 * 1024
LOCAL_DEFAULT_MAX_FILE = 5


@dataclass(frozen=True)
class Problem:
    """One reason dockerd would refuse a log config; ``key`` is the log-opt at fault."""

    key: str | None
    message: str


def _size(value: str, base: int) -> int:
    match = _SIZE_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"invalid size: {value!r}")
    try:
        number = float(match.group(1))
    except ValueError:
        raise ValueError(f"invalid size: {value!r}") from None
    unit = (match.group(3) or "").lower()
    nbytes = int(number * base ** (_UNITS.index(unit) + 1 if unit else 0))
    if nbytes > _INT64_MAX:
        raise ValueError(f"size {value!r} does not fit in 64 bits")
    return nbytes


def human_size(value: str) -> int:
    """Parse a size as go-units FromHumanSize does (decimal: 10k = 10000 bytes).

    This is how json-file and local read ``max-size``.
    """
    return _size(value, 1000)


def docker_size(value: str) -> int:
    """Parse a size as go-units RAMInBytes does (binary: 10k = 10240 bytes)."""
    return _size(value, 1024)


def _go_int(text: str) -> bool:
    """Whether Go's strconv.Atoi reads ``text`` (a 64-bit int, optional sign, ASCII)."""
    return _GO_INT_RE.fullmatch(text) is not None and -(2**63) <= int(text) < 2**63


class LogState(enum.StrEnum):
    """What a container's LogConfig does to its log files, as Docker reads it."""

    BOUNDED = "bounded"  # Docker rotates: at most max_bytes on disk
    UNBOUNDED = "unbounded"  # a file driver that never rotates: grows until the disk fills
    REFUSED = "refused"  # Docker refuses these options: the container cannot start
    ELSEWHERE = "elsewhere"  # journald, syslog, none, ...: nothing under Docker's root


@dataclass(frozen=True)
class LogBound:
    """The answer of :func:`log_bound`; ``reason`` is Docker's error for REFUSED."""

    state: LogState
    max_bytes: int | None = None  # BOUNDED: max-size x max-file
    reason: str = ""

    @property
    def bounded(self) -> bool:
        """Whether the log cannot grow without limit (REFUSED: nothing is ever written)."""
        return self.state is not LogState.UNBOUNDED


def log_bound(driver: str, opts: Mapping[str, str]) -> LogBound:
    """How Docker's logger treats a container with this LogConfig when it starts.

    json-file rotates only with a positive ``max-size``; a missing one never rotates. A
    value the logger refuses (``max-size: "0"``, ``"10x"``, ``"-1"``, a bad max-file
    or compress) fails the container's start, so nothing is written. ``local`` defaults
    to 20 MiB x 5 and accepts ``max-size: "0"`` (it then rotates before every entry).
    """
    if driver not in FILE_DRIVERS:
        return LogBound(LogState.ELSEWHERE)
    error = logger_init_error(driver, opts)
    if error:
        return LogBound(LogState.REFUSED, reason=error)
    if driver == "local":
        size = human_size(opts["max-size"]) if "max-size" in opts else LOCAL_DEFAULT_MAX_SIZE
        files = int(opts.get("max-file", LOCAL_DEFAULT_MAX_FILE))
        return LogBound(LogState.BOUNDED, size * max(files, 1))
    if "max-size" not in opts:
        return LogBound(LogState.UNBOUNDED)
    return LogBound(LogState.BOUNDED, human_size(opts["max-size"]) * int(opts.get("max-file", 1)))


def logger_init_error(driver: str, opts: Mapping[str, str]) -> str | None:
    """The error Docker's json-file or local logger gives for ``opts`` (None: accepted).

    jsonfilelog.New and local's newConfig/validateConfig, in their order of checks.
    """
    try:
        has_size = _check_logger_size(driver, opts)
        max_files = _logger_max_files(driver, opts)
    except ValueError as exc:
        return str(exc)
    compress = opts.get("compress", "true" if driver == "local" else "false")
    if compress not in _GO_BOOLS:
        return f"invalid boolean value for compress: {compress!r}"
    if compress in _GO_TRUE and (max_files <= 1 or (driver == "json-file" and not has_size)):
        return "compress cannot be true when max-file is less than 2 or max-size is not set"
    return None


def _check_logger_size(driver: str, opts: Mapping[str, str]) -> bool:
    """Whether max-size is set; ValueError when the logger refuses it."""
    if "max-size" not in opts:
        return False
    if human_size(opts["max-size"]) <= 0 and driver == "json-file":
        raise ValueError("max-size must be a positive number")
    return True


def _logger_max_files(driver: str, opts: Mapping[str, str]) -> int:
    """max-file as the logger reads it; ValueError when it refuses it."""
    if "max-file" not in opts:
        return 1 if driver == "json-file" else LOCAL_DEFAULT_MAX_FILE
    if not _go_int(opts["max-file"]):
        raise ValueError(f"invalid value for max-file: {opts['max-file']!r}")
    max_files = int(opts["max-file"])
    if driver == "json-file" and max_files < 1:
        raise ValueError("max-file cannot be less than 1")
    if max_files < 0:
        raise ValueError("max-file must not be negative")
    return max_files


def validate_log_config(driver: str, opts: dict[str, str]) -> list[str]:
    """Return every reason dockerd would refuse this log-driver / log-opts pair."""
    return [p.message for p in log_config_problems(driver, opts)]


def log_config_problems(driver: str, opts: Mapping[str, object]) -> list[Problem]:
    """Like :func:`validate_log_config`, with the log-opt each problem is about."""
    if driver not in KNOWN_DRIVERS:
        return [
            Problem(
                None,
                f"unknown log-driver {driver!r} (nodeguard manages only Docker's "
                "built-in drivers; set docker.manage: false for plugin drivers)",
            )
        ]
    problems = [
        Problem(key, f"log-opt {key!r} must be a string, not {type(v).__name__}")
        for key, v in opts.items()
        if not isinstance(v, str)
    ]
    if problems or driver == "none":
        return problems
    strings = {k: str(v) for k, v in opts.items()}
    problems += _builtin_problems(strings)
    allowed = DRIVER_OPTS.get(driver)
    if allowed is None:
        return problems
    problems += [
        Problem(key, f"unknown log-opt {key!r} for log-driver {driver}")
        for key in strings
        if key not in allowed | _BUILTIN_OPTS | _CACHE_OPTS
    ]
    problems += _size_problems(strings)
    problems += _file_problems(driver, strings)
    return problems


def _builtin_problems(opts: dict[str, str]) -> list[Problem]:
    problems: list[Problem] = []
    mode = opts.get("mode", "")
    if mode not in {"", "blocking", "non-blocking"}:
        problems.append(Problem("mode", f"mode {mode!r} is not blocking or non-blocking"))
    if "max-buffer-size" in opts:
        if mode != "non-blocking":
            problems.append(Problem("max-buffer-size", "max-buffer-size needs mode non-blocking"))
        try:
            docker_size(opts["max-buffer-size"])
        except ValueError as exc:
            problems.append(Problem("max-buffer-size", f"max-buffer-size: {exc}"))
    for key in ("cache-disabled", "cache-compress"):
        if key in opts and opts[key] not in _GO_BOOLS:
            problems.append(Problem(key, f"{key}: {opts[key]!r} is not a boolean"))
    return problems


def _size_problems(opts: dict[str, str]) -> list[Problem]:
    if "max-size" not in opts:
        return []
    try:
        if human_size(opts["max-size"]) <= 0:
            return [Problem("max-size", "max-size must be greater than 0")]
    except ValueError as exc:
        return [Problem("max-size", f"max-size: {exc}")]
    return []


def _file_problems(driver: str, opts: dict[str, str]) -> list[Problem]:
    problems: list[Problem] = []
    max_file = LOCAL_DEFAULT_MAX_FILE if driver == "local" else 1
    if "max-file" in opts:
        if not _go_int(opts["max-file"]):
            return [Problem("max-file", f"max-file: {opts['max-file']!r} is not an integer")]
        max_file = int(opts["max-file"])
        if max_file < 1:
            return [Problem("max-file", "max-file cannot be less than 1")]
        if driver == "json-file" and "max-size" not in opts:
            problems.append(Problem("max-file", "max-file is only valid together with max-size"))
    compress = opts.get("compress", "true" if driver == "local" else "false")
    if compress not in _GO_BOOLS:
        problems.append(Problem("compress", f"compress: {compress!r} is not a boolean"))
    elif compress in _GO_TRUE and (max_file < 2 or ("max-size" not in opts and driver != "local")):
        problems.append(
            Problem("compress", "compress needs max-file of 2 or more (and max-size for json-file)")
        )
    return problems
