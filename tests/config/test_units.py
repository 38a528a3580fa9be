"""Sizes and durations as written in the config file."""

from __future__ import annotations

import pytest

from nodeguard.config.units import format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1048576", 1048576),
        (1048576, 1048576),
        (0, 0),
        ("10B", 10),
        ("1Ki", 1024),
        ("10Mi", 10 * 1024**2),
        ("2Gi", 2 * 1024**3),
        ("1Ti", 1024**4),
        ("10k", 10_000),
        ("10K", 10_000),
        ("10M", 10_000_000),
        ("3G", 3_000_000_000),
        ("1T", 10**12),
        (" 5 Mi ", 5 * 1024**2),
    ],
)
def test_size_units_mean_what_kubernetes_means(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [("10m", "10Mi"), ("10g", "10Gi"), ("10mb", "10Mi"), ("10MB", "10M"), ("1kb", "1Ki")],
)
def test_ambiguous_size_units_are_refused_with_a_hint(text: str, hint: str) -> None:
    with pytest.raises(ValueError, match="ambiguous") as info:
        parse_size(text)
    assert f"did you mean {hint}?" in str(info.value)


@pytest.mark.parametrize("text", ["10Q", "1.5Mi", "-1", "", "Mi", "10 Mi B", "ten"])
def test_malformed_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


@pytest.mark.parametrize("value", [True, False, -1, 1.5, None, ["1Mi"]])
def test_non_string_sizes_other_than_natural_numbers_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("14d", 14 * 86400),
        ("2w", 14 * 86400),
        (90, 90),
        (" 7 d ", 7 * 86400),
    ],
)
def test_durations_parse_to_seconds(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("value", ["1y", "1.5h", "-1s", "h", "", "10", True, -5, 2.5, None])
def test_malformed_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)


def test_format_size_is_compact_and_binary() -> None:
    assert [format_size(n) for n in (0, 1023, 1024, 10 * 1024**2, 3 * 1024**4)] == [
        "0B",
        "1023B",
        "1.0Ki",
        "10.0Mi",
        "3.0Ti",
    ]


@pytest.mark.parametrize("text", ["99999999999Ti", 2**63, "9999999999999999999"])
def test_sizes_beyond_a_file_offset_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="too large for a size"):
        parse_size(text)


@pytest.mark.parametrize("text", ["5300w", 10**10, "99999999999d"])
def test_durations_beyond_a_century_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="too long for a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["10Mi\n", "\uff11\uff10Mi", "1\u00a0Mi"])
def test_sizes_are_ascii_on_one_line(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)
