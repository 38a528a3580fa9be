"""Retention decisions for one log, as a pure function (plan_log)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from nodeguard.config.model import Policy
from nodeguard.rotation import naming
from nodeguard.rotation.plan import Sibling, Step, plan_log

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
MI = 1024**2
POLICY = Policy(name="p", paths=("/var/log/a.log",), max_size=MI, max_files=5)


def sibling(age_s: int, *, gz: bool = True, seq: int = 0, size: int = 100) -> Sibling:
    when = NOW - timedelta(seconds=age_s)
    name = naming.new_name("a.log", when, []) + (f"-{seq}" if seq else "") + (".gz" if gz else "")
    parsed = naming.parse(name)
    assert parsed is not None
    return Sibling(parsed, size, when.timestamp())


def actions(steps: list[Step]) -> list[tuple[str, str]]:
    return [(s.action, s.name) for s in steps]


def test_size_exactly_at_max_size_rotates() -> None:
    steps = plan_log(replace(POLICY, compress="none"), "a.log", MI, [], NOW)
    assert actions(steps) == [("rotate", "a.log")]
    assert steps[0].target == "a.log.20240501-120000"
    assert steps[0].size == MI
    assert "size 1.0Mi >= max_size 1.0Mi" in steps[0].reason


def test_one_byte_under_max_size_does_nothing() -> None:
    assert plan_log(POLICY, "a.log", MI - 1, [], NOW) == []


def test_rotation_compresses_the_fresh_file() -> None:
    steps = plan_log(POLICY, "a.log", 2 * MI, [], NOW)
    assert actions(steps) == [("rotate", "a.log"), ("compress", "a.log.20240501-120000")]
    assert steps[1].target == "a.log.20240501-120000.gz"


def test_max_files_counts_the_live_file() -> None:
    old = [sibling(3600 * h) for h in (1, 2, 3, 4)]
    steps = plan_log(POLICY, "a.log", 2 * MI, old, NOW)
    # 5 files = live + 4 rotated: the fresh one pushes out the oldest.
    assert actions(steps) == [
        ("rotate", "a.log"),
        ("remove", old[3].name.name),
        ("compress", "a.log.20240501-120000"),
    ]
    assert "beyond max_files 5 (live file + 4 rotated)" in steps[1].reason


def test_too_many_rotated_files_are_removed_oldest_first_without_rotating() -> None:
    old = [sibling(3600 * h) for h in range(1, 8)]
    steps = plan_log(POLICY, "a.log", 10, old, NOW)
    assert actions(steps) == [("remove", s.name.name) for s in old[4:]]


def test_max_files_1_keeps_only_the_live_file() -> None:
    policy = replace(POLICY, max_files=1)
    steps = plan_log(policy, "a.log", 2 * MI, [sibling(60)], NOW)
    assert actions(steps) == [
        ("rotate", "a.log"),
        ("remove", "a.log.20240501-120000"),
        ("remove", sibling(60).name.name),
    ]


def test_max_age_removes_old_files_but_never_the_fresh_one() -> None:
    policy = replace(POLICY, max_age=86400)
    young, old = sibling(3600), sibling(2 * 86400)
    steps = plan_log(policy, "a.log", 2 * MI, [young, old], NOW)
    assert actions(steps) == [
        ("rotate", "a.log"),
        ("remove", old.name.name),
        ("compress", "a.log.20240501-120000"),
    ]
    assert "older than max_age 1d" in steps[1].reason


def test_max_age_boundary_keeps_a_file_exactly_max_age_old() -> None:
    policy = replace(POLICY, max_age=86400)
    assert plan_log(policy, "a.log", 0, [sibling(86400)], NOW) == []
    assert actions(plan_log(policy, "a.log", 0, [sibling(86401)], NOW)) == [
        ("remove", sibling(86401).name.name)
    ]


def test_delay_compress_keeps_the_newest_rotated_file_plain() -> None:
    policy = replace(POLICY, delay_compress=True)
    previous = sibling(3600, gz=False)
    steps = plan_log(policy, "a.log", 2 * MI, [previous, sibling(7200)], NOW)
    assert actions(steps) == [("rotate", "a.log"), ("compress", previous.name.name)]
    assert plan_log(policy, "a.log", 10, [previous], NOW) == []


def test_delay_compress_compresses_all_plain_files_when_the_newest_is_compressed() -> None:
    policy = replace(POLICY, delay_compress=True)
    plain_old = sibling(7200, gz=False)
    steps = plan_log(policy, "a.log", 10, [sibling(3600), plain_old], NOW)
    assert actions(steps) == [("compress", plain_old.name.name)]


def test_compress_none_never_compresses() -> None:
    policy = replace(POLICY, compress="none")
    steps = plan_log(policy, "a.log", 2 * MI, [sibling(60, gz=False)], NOW)
    assert actions(steps) == [("rotate", "a.log")]


def test_not_if_empty_wins_over_force() -> None:
    assert plan_log(POLICY, "a.log", 0, [], NOW, force=True) == []
    forced = plan_log(
        replace(POLICY, not_if_empty=False, compress="none"), "a.log", 0, [], NOW, force=True
    )
    assert actions(forced) == [("rotate", "a.log")]
    assert forced[0].reason == "forced"


def test_force_rotates_a_small_file() -> None:
    steps = plan_log(replace(POLICY, compress="none"), "a.log", 1, [], NOW, force=True)
    assert actions(steps) == [("rotate", "a.log")]


def test_empty_file_is_rotated_at_max_size_zero_only_without_not_if_empty() -> None:
    policy = replace(POLICY, max_size=1, not_if_empty=False, compress="none")
    assert plan_log(policy, "a.log", 0, [], NOW) == []


def test_same_second_rotation_sorts_after_and_pushes_out_the_oldest() -> None:
    policy = replace(POLICY, max_files=3, compress="none")
    same = sibling(0, gz=False)
    older = sibling(10, gz=False)
    steps = plan_log(policy, "a.log", 2 * MI, [same, older], NOW)
    assert actions(steps) == [("rotate", "a.log"), ("remove", older.name.name)]
    assert steps[0].target == "a.log.20240501-120000-1"
