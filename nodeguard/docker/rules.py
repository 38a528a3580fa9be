"""Docker's own rules for log-driver and log-opts, so a bad value never reaches dockerd.

Mirrors moby's daemon/logger/jsonfilelog and local drivers' ValidateLogOpt and
go-units RAMInBytes: dockerd refuses to start on a value these reject.
"""

from __future__ import annotations

import re

# go-units RAMInBytes: "10m", "10MB", "10 MiB", "1.5g" (binary multiples).
_DOCKER_SIZE_RE = re.compile(r"^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_DOCKER_MULT = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}

_COMMON_OPTS = {"tag", "labels", "labels-regex", "env", "env-regex", "mode", "max-buffer-size"}
DRIVER_OPTS: dict[str, set[str]] = {
    "json-file": {"max-size", "max-file", "compress"} | _COMMON_OPTS,
    "local": {"max-size", "max-file", "compress"} | _COMMON_OPTS,
}
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


def docker_size(value: str) -> int:
    """Parse a size the way dockerd does (binary multiples); raise ValueError otherwise."""
    match = _DOCKER_SIZE_RE.match(value)
    if match is None:
        raise ValueError(f"invalid size: {value!r}")
    return int(float(match.group(1)) * _DOCKER_MULT[(match.group(3) or "").lower()])


def validate_log_config(driver: str, opts: dict[str, str]) -> list[str]:
    """Return every reason dockerd would refuse this log-driver / log-opts pair."""
    if driver not in KNOWN_DRIVERS:
        return [f"unknown log-driver {driver!r}"]
    allowed = DRIVER_OPTS.get(driver)
    errors = [
        f"log-opt {key!r} is not a string" for key, v in opts.items() if not isinstance(v, str)
    ]
    if errors or allowed is None:
        return errors
    errors += [
        f"unknown log-opt {key!r} for log-driver {driver}" for key in opts if key not in allowed
    ]
    errors += _size_and_files(opts)
    if opts.get("compress", "false") not in {
        "true",
        "false",
        "1",
        "0",
        "t",
        "f",
        "TRUE",
        "FALSE",
        "True",
        "False",
    }:
        errors.append(f"compress: {opts['compress']!r} is not a boolean")
    return errors


def _size_and_files(opts: dict[str, str]) -> list[str]:
    errors: list[str] = []
    if "max-size" in opts:
        try:
            if docker_size(opts["max-size"]) <= 0:
                errors.append("max-size must be greater than 0")
        except ValueError as exc:
            errors.append(f"max-size: {exc}")
    if "max-file" in opts:
        if not re.fullmatch(r"-?\d+", opts["max-file"]):
            errors.append(f"max-file: {opts['max-file']!r} is not an integer")
        elif int(opts["max-file"]) < 1:
            errors.append("max-file cannot be less than 1")
        elif int(opts["max-file"]) > 1 and "max-size" not in opts:
            errors.append("max-file is only valid together with max-size")
    return errors
