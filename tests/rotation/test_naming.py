"""Rotated file names: parsing, age order, same-second suffixes, clock going backwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from nodeguard.rotation import naming

T0 = datetime(2024, 3, 9, 23, 59, 58, tzinfo=UTC)


def test_parse_reads_stamp_sequence_and_compression() -> None:
    parsed = naming.parse("app.log.20240309-235958-2.gz")
    assert parsed is not None
    assert (parsed.base, parsed.stamp, parsed.seq, parsed.compressed) == (
        "app.log",
        "20240309-235958",
        2,
        True,
    )
    assert parsed.plain_name == "app.log.20240309-235958-2"
    plain = naming.parse("app.log.20240309-235958")
    assert plain is not None and (plain.seq, plain.compressed) == (0, False)


def test_parse_rejects_names_that_are_not_rotated_files() -> None:
    for name in ["app.log", "app.log.1", "app.log.1.gz", "app.log.2024-03-09", ".20240309-235958"]:
        assert naming.parse(name) is None, name


def test_new_name_is_utc_kubelet_style() -> None:
    local = T0.astimezone(timezone(timedelta(hours=5)))
    assert naming.new_name("app.log", local, []) == "app.log.20240309-235958"


def test_same_second_rotations_get_increasing_suffixes_that_sort_after() -> None:
    taken: list[str] = []
    for _ in range(12):
        taken.append(naming.new_name("app.log", T0, taken))
    assert taken[:3] == [
        "app.log.20240309-235958",
        "app.log.20240309-235958-1",
        "app.log.20240309-235958-2",
    ]
    assert taken[-1] == "app.log.20240309-235958-11"
    parsed = [p for p in map(naming.parse, taken) if p is not None]
    for mixed in (parsed[::-1], parsed[1::2] + parsed[::2], sorted(parsed, key=lambda p: p.name)):
        assert [p.name for p in sorted(mixed, key=lambda p: p.key)] == taken


def test_compressed_names_count_as_taken() -> None:
    taken = ["app.log.20240309-235958.gz", "app.log.20240309-235958-1.gz"]
    assert naming.new_name("app.log", T0, taken) == "app.log.20240309-235958-2"


def test_other_logs_in_the_directory_do_not_affect_the_name() -> None:
    taken = ["web.log.20240309-235958", "app.log.old.20240309-235958"]
    assert naming.new_name("app.log", T0, taken) == "app.log.20240309-235958"


def test_clock_going_backwards_still_sorts_the_new_file_newest() -> None:
    taken = ["app.log.20240310-000005", "app.log.20240310-000005-1.gz"]
    name = naming.new_name("app.log", T0, taken)
    assert name == "app.log.20240310-000005-2"
    keys = [p.key for p in map(naming.parse, [*taken, name]) if p is not None]
    assert max(keys) == keys[-1]


def test_later_times_sort_later_across_day_and_year_boundaries() -> None:
    times = [T0 + timedelta(seconds=s) for s in (0, 1, 2, 86400, 366 * 86400)]
    names = [naming.new_name("a", t, []) for t in times]
    assert sorted(names) == names


def test_temp_names_are_hidden_and_map_back_to_their_target() -> None:
    tmp = naming.temp_name("app.log.20240309-235958.gz")
    assert tmp == ".app.log.20240309-235958.gz.nodeguard-tmp"
    assert naming.temp_target(tmp) == "app.log.20240309-235958.gz"
    assert naming.temp_target("app.log") is None
    assert naming.is_rotated_or_temp(tmp)
    assert naming.is_rotated_or_temp("app.log.20240309-235958")
    assert not naming.is_rotated_or_temp("app.log")
