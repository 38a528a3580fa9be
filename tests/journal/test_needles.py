"""The pre-filter's needles: every match of a pattern contains one of its needles."""

from __future__ import annotations

import re

import pytest

from nodeguard.journal.needles import needle_filter, needles


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (rb"Image garbage collection failed", {b"Image garbage collection failed"}),
        (rb"(?:optional )?required part", {b"required part"}),
        (
            rb"Error writing log message|Failed to log msg .* for logger",
            {b"Error writing log message", b"Failed to log msg "},
        ),
        (rb"[Nn]o space left on device", {b"o space left on device"}),
        (
            rb"XFS \([^)]+\): (?:.*Shutting down filesystem|Filesystem has been shut down)",
            {b"Shutting down filesystem", b"Filesystem has been shut down"},
        ),
        (rb"(?:abcde){2,} x", {b"abcde"}),  # a repeat at least once is required
    ],
)
def test_needles_are_required_literals(pattern: bytes, expected: set[bytes]) -> None:
    assert needles(pattern) == expected


@pytest.mark.parametrize(
    "pattern",
    [rb"(?i)no space left", rb"(?i:no space left)", rb"ab|cdefgh", rb"x.y", rb"(ab)\1zz"],
)
def test_no_needles_when_none_is_certain(pattern: bytes) -> None:
    assert needles(pattern) is None


def test_a_pattern_without_needles_disables_the_filter() -> None:
    assert needle_filter([rb"Buffer I/O error", rb"(?i)remounting"]) is None
    combined = needle_filter([rb"Buffer I/O error", rb"EXT4-fs error \(device [^)]+\)"])
    assert combined is not None
    for line in (b"Buffer I/O error on dev sdb1", b"EXT4-fs error (device sda1): x"):
        assert combined.search(line)
    assert not combined.search(b"EXT4-fs (sda1): mounted filesystem")
    assert re.compile(rb"EXT4-fs error \(device [^)]+\)").search(b"EXT4-fs error (device sda1)")
