"""Docker's own rules for log-driver and log-opts, so a bad value never reaches dockerd.

Mirrors moby's daemon/logger (factory.go ValidateLogOpts, jsonfilelog and local New and
ValidateLogOpt) as shipped in Docker 20.10 to 28, checked against Debian 12's dockerd:

- an unknown key, a bad ``mode`` or ``max-buffer-size`` stops dockerd at start-up;
- a bad ``max-size``, ``max-file`` or ``compress`` lets dockerd start but makes every
  container that uses the default fail to start ("failed to initialize logging driver").

nodeguard refuses both. It adds one rule of its own: for json-file, ``max-file`` without
``max-size`` is refused, because Docker accepts it and never rotates (unbounded).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# go-units' size syntax ("10m", "10MB", "10 MiB", "1.5g"). FromHumanSize, used by
# json-file and local for max-size, is decimal (k = 1000); RAMInBytes, used for
# max-buffer-size, is binary (k = 1024).
_SIZE_RE = re.compile(r"^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = "kmgtp"
_INT64_MAX = 2**63 - 1

# Go's strconv.ParseBool and strconv.Atoi.
_GO_BOOLS = {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"}
_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_INT_RE = re.compile(r"^[+-]?\d+$")

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
    match = _SIZE_RE.match(value)
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


def max_size_bytes(driver: str, opts: dict[str, str]) -> int | None:
    """Bytes after which ``driver`` rotates, or None when it never rotates.

    json-file rotates only with max-size; local defaults to 20 MiB, and 0 means never.
    """
    raw = opts.get("max-size")
    if driver == "local" and raw is None:
        return LOCAL_DEFAULT_MAX_SIZE
    if driver not in FILE_DRIVERS or raw is None:
        return None
    try:
        nbytes = human_size(raw)
    except ValueError:
        return None
    return nbytes if nbytes > 0 else None


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
        if not _GO_INT_RE.match(opts["max-file"]):
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
