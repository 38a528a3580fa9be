"""Parsing of sizes and durations as written in the config file.

Sizes follow Kubernetes quantities: plain bytes (``1048576``), binary suffixes
(``Ki``, ``Mi``, ``Gi``, ``Ti``: powers of 1024) and decimal suffixes (``k``,
``M``, ``G``, ``T``: powers of 1000). Docker's lower-case ``m`` and ``g``
are refused as ambiguous (milli in Kubernetes, mebi in Docker), with a hint.
Durations are an integer followed by ``s``, ``m``, ``h``, ``d`` or ``w``.
"""

from __future__ import annotations

import re

SIZE_UNITS: dict[str, int] = {
    "": 1,
    "B": 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}

_AMBIGUOUS = {"m": "Mi", "g": "Gi", "mb": "Mi", "gb": "Gi", "kb": "Ki", "MB": "M", "GB": "G"}

DURATION_UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

# ASCII only: Python's \d and \s also match full-width and other scripts' digits and
# spaces, which int() would then happily read.
_SIZE_RE = re.compile(r"[ \t]*([0-9]{1,30})[ \t]*([A-Za-z]*)[ \t]*")
_DURATION_RE = re.compile(r"[ \t]*([0-9]{1,30})[ \t]*([smhdw])[ \t]*")

# Sanity bounds whatever the key: a size must fit in a file offset (int64), and a
# duration of a century is already meaningless for log retention.
MAX_SIZE = 2**63 - 1
MAX_DURATION = 100 * 365 * 86400


def parse_size(value: object) -> int:
    """Return the number of bytes for a size such as ``10Mi`` or ``1048576``.

    Raises ValueError with a readable reason for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value!r} is not a size (negative)")
        return _bounded_size(value, value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a size")
    match = _SIZE_RE.fullmatch(value)
    if match is not None and match.group(2) in _AMBIGUOUS:
        hint = match.group(1) + _AMBIGUOUS[match.group(2)]
        raise ValueError(f'"{value}" is not a size (ambiguous unit; did you mean {hint}?)')
    if match is None or match.group(2) not in SIZE_UNITS:
        raise ValueError(f'"{value}" is not a size')
    return _bounded_size(int(match.group(1)) * SIZE_UNITS[match.group(2)], value)


def _bounded_size(nbytes: int, value: object) -> int:
    if nbytes > MAX_SIZE:
        raise ValueError(f"{value!r} is too large for a size (more than 8 EiB)")
    return nbytes


def parse_duration(value: object) -> int:
    """Return the number of seconds for a duration such as ``30s`` or ``14d``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value!r} is not a duration (negative)")
        return _bounded_duration(value, value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration")
    match = _DURATION_RE.fullmatch(value)
    if match is None:
        raise ValueError(f'"{value}" is not a duration (use e.g. 30s, 5m, 1h, 14d)')
    return _bounded_duration(int(match.group(1)) * DURATION_UNITS[match.group(2)], value)


def _bounded_duration(seconds: int, value: object) -> int:
    if seconds > MAX_DURATION:
        raise ValueError(f"{value!r} is too long for a duration (more than 100 years)")
    return seconds


def format_size(nbytes: int) -> str:
    """Render bytes compactly for humans (``10.0Mi``)."""
    value = float(nbytes)
    for unit in ("B", "Ki", "Mi", "Gi", "Ti"):
        if abs(value) < 1024 or unit == "Ti":
            return f"{int(value)}B" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def format_duration(seconds: int) -> str:
    """Render seconds in the largest unit that divides them (``30d``, ``90m``)."""
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % DURATION_UNITS[unit] == 0:
            return f"{seconds // DURATION_UNITS[unit]}{unit}"
    return f"{seconds}s"
