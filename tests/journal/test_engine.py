"""Conditions, rate rules, the flood rule, the event cap and metrics, over real journal files;
rule configuration errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nodeguard.config import ConfigError
from nodeguard.config.sections.journal_rules import BUILTIN_RULES
from nodeguard.journal.follow import follow_once
from nodeguard.journal.model import JournalKind, JournalResult
from tests.journal.conftest import Clock, journal_config, world_at
from tests.journal.journalfiles import Stream, append
from tests.journal.seq import seq_entries

ALL_BUILTIN = [b.spec.reason for b in BUILTIN_RULES]


def _kubelet(stream: Stream, text: str, priority: int = 6) -> dict[str, str]:
    return stream.service("kubelet.service", "kubelet", text, priority=priority)


def _setup(tmp_path: Path) -> tuple[Path, Stream]:
    directory = tmp_path / "journal"
    directory.mkdir()
    return directory, Stream(step_us=1_000_000)


def _kinds(result: JournalResult, kind: JournalKind) -> list[Any]:
    return [e for e in result.events if e.kind is kind]


def test_condition_lasts_until_its_clearing_message_across_restarts(tmp_path: Path) -> None:
    directory, stream = _setup(tmp_path)
    rule = {
        "reason": "NodeNotReady",
        "pattern": "node not ready",
        "kind": "condition",
        "clear_pattern": "node ready again",
        "units": ["kubelet.service"],
    }
    config = journal_config(
        tmp_path, directory, rules=[rule], disable_rules=ALL_BUILTIN, lookback="1d"
    )
    append(directory / "system.journal", [_kubelet(stream, "node not ready")] * 1)
    append(directory / "system.journal", [_kubelet(stream, "node not ready, still")])
    clock = Clock(stream.realtime_us)

    first = follow_once(config, world_at(clock))
    append(directory / "system.journal", [_kubelet(stream, "node ready again")])
    second = follow_once(config, world_at(clock))

    assert len(_kinds(first, JournalKind.CONDITION_ACTIVE)) == 1
    assert [c.rule for c in first.conditions] == ["NodeNotReady"]
    assert first.metrics.conditions == {"NodeNotReady": 1}
    (cleared,) = _kinds(second, JournalKind.CONDITION_CLEARED)
    assert cleared.facts["cleared_by"] == "clear_pattern"
    assert second.conditions == () and second.metrics.conditions == {"NodeNotReady": 0}


def test_builtin_condition_times_out(tmp_path: Path) -> None:
    directory, stream = _setup(tmp_path)
    line = (
        'I1130 08:14:03.512907    2211 eviction_manager.go:366] "Eviction manager: '
        'attempting to reclaim" resourceName="ephemeral-storage"'
    )
    append(directory / "system.journal", [_kubelet(stream, line)])
    config = journal_config(tmp_path, directory, lookback="1d")
    clock = Clock(stream.realtime_us + 60_000_000)

    active = follow_once(config, world_at(clock))
    clock.now_us += 300_000_000  # EvictionPressure ends 5 minutes after its last match
    later = follow_once(config, world_at(clock))

    assert [c.rule for c in active.conditions] == ["EvictionPressure"]
    (cleared,) = _kinds(later, JournalKind.CONDITION_CLEARED)
    assert cleared.facts["cleared_by"] == "timeout" and later.conditions == ()


def test_rate_rule_fires_when_count_falls_within_the_window(tmp_path: Path) -> None:
    directory, stream = _setup(tmp_path)
    rule = {
        "reason": "ProbeStorm",
        "pattern": "Probe failed",
        "count": 3,
        "window": "10s",
        "units": ["kubelet.service"],
    }
    config = journal_config(
        tmp_path, directory, rules=[rule], disable_rules=ALL_BUILTIN, lookback="1d"
    )
    entries = [_kubelet(stream, "Probe failed")]  # t=1
    stream.realtime_us += 20_000_000
    entries += [_kubelet(stream, "Probe failed") for _ in range(2)]  # t=22,23: 2 in window
    append(directory / "system.journal", entries)
    clock = Clock(stream.realtime_us)
    quiet = follow_once(config, world_at(clock))
    append(directory / "system.journal", [_kubelet(stream, "Probe failed")])  # t=24: 3rd
    fired = follow_once(config, world_at(clock))

    assert _kinds(quiet, JournalKind.RATE) == []
    (rate,) = _kinds(fired, JournalKind.RATE)
    assert rate.facts["count"] == 3 and rate.facts["rule"] == "ProbeStorm"


def test_flood_is_reported_once_per_unit_and_window_even_across_runs(tmp_path: Path) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    stream = Stream(step_us=100_000)  # 10 entries a second
    config = journal_config(
        tmp_path,
        directory,
        disable_rules=ALL_BUILTIN,
        lookback="1d",
        flood={"window": "1m", "max_entries": 50, "max_bytes": None},
    )
    stream.realtime_us = (stream.realtime_us // 60_000_000 + 1) * 60_000_000  # a window start
    append(directory / "system.journal", seq_entries(stream, 0, 40))
    clock = Clock(stream.realtime_us)
    first = follow_once(config, world_at(clock))
    append(directory / "system.journal", seq_entries(stream, 40, 40))  # 80 in the window
    second = follow_once(config, world_at(clock))
    append(directory / "system.journal", seq_entries(stream, 80, 1200))  # t = 8 s .. 128 s
    third = follow_once(config, world_at(clock))

    assert _kinds(first, JournalKind.FLOOD) == []
    (flood,) = _kinds(second, JournalKind.FLOOD)
    assert flood.subject == "kubelet.service" and flood.facts["entries"] == 51
    # The first window already reported; the second (600 entries) and third (80) each once.
    assert len(_kinds(third, JournalKind.FLOOD)) == 2


def test_matches_beyond_the_cap_are_counted_in_one_summary(tmp_path: Path) -> None:
    directory, stream = _setup(tmp_path)
    line = 'E1130 08:14:03.512907    2211 kubelet.go:1] "x" err="no space left on device"'
    append(directory / "system.journal", [_kubelet(stream, line, 3) for _ in range(30)])
    config = journal_config(tmp_path, directory, lookback="1d", max_events_per_rule=5)

    result = follow_once(config, world_at(Clock(stream.realtime_us)))

    assert len(_kinds(result, JournalKind.MATCH)) == 5
    (summary,) = _kinds(result, JournalKind.SUPPRESSED)
    assert summary.facts == {**summary.facts, "rule": "NoSpaceLeftOnDevice", "count": 25}
    assert result.metrics.matches["NoSpaceLeftOnDevice"] == 30


def test_metrics_count_entries_and_bytes_per_unit_and_priority(tmp_path: Path) -> None:
    directory, stream = _setup(tmp_path)
    append(
        directory / "system.journal",
        [
            _kubelet(stream, "aaaa", 6),
            _kubelet(stream, "bbbbbb", 6),
            _kubelet(stream, "cc", 3),
            stream.kernel("EXT4-fs (sda1): Remounting filesystem read-only", priority=2),
            stream.service("cron.service", "CRON", "not watched"),
        ],
    )
    config = journal_config(tmp_path, directory, lookback="1d")

    metrics = follow_once(config, world_at(Clock(stream.realtime_us))).metrics

    assert dict(metrics.entries) == {
        ("kubelet.service", "6"): 2,
        ("kubelet.service", "3"): 1,
        ("kernel", "2"): 1,
    }
    assert metrics.bytes[("kubelet.service", "6")] == 10
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in metrics.samples()}
    assert (
        samples[
            ("nodeguard_journal_entries_total", (("priority", "6"), ("unit", "kubelet.service")))
        ]
        == 2
    )
    assert samples[("nodeguard_journal_matches_total", (("rule", "ReadonlyFilesystem"),))] == 1
    assert samples[("nodeguard_journal_condition_active", (("rule", "ReadonlyFilesystem"),))] == 1
    assert samples[("nodeguard_journal_reader_lag_seconds", ())] == 0
    total = metrics.plus(metrics)
    assert total.entries[("kubelet.service", "6")] == 4


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([{"reason": "Mine"}], "'Mine' is not a built-in rule: give a pattern"),
        ([{"reason": "X", "pattern": "a(b"}], "not a valid regular expression"),
        ([{"reason": "X", "pattern": "a", "kind": "condition"}], "needs clear_pattern or timeout"),
        ([{"reason": "X", "pattern": "a", "count": 4}], "needs a window"),
        ([{"reason": "bad name!", "pattern": "a"}], "use letters, digits"),
    ],
)
def test_bad_rules_are_config_errors(tmp_path: Path, rules: list[Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        journal_config(tmp_path, None, rules=rules)
    assert any(expected in p and "journal.rules[0]" in p for p in caught.value.problems)


def test_overriding_a_builtin_rule_keeps_what_is_not_given(tmp_path: Path) -> None:
    config = journal_config(
        tmp_path,
        None,
        rules=[{"reason": "ImageGCFailed", "severity": "critical"}],
        disable_rules=["BufferIOError"],
    )
    rules = {r.reason: r for r in config.journal.rules}
    builtin = next(b.spec for b in BUILTIN_RULES if b.spec.reason == "ImageGCFailed")
    assert rules["ImageGCFailed"].severity == "critical"
    assert rules["ImageGCFailed"].pattern == builtin.pattern
    assert rules["ImageGCFailed"].units == builtin.units
    assert "BufferIOError" not in rules


def test_a_saved_condition_from_the_future_still_times_out(tmp_path: Path) -> None:
    """A saved condition whose last match lies ahead of the clock (clock stepped back,
    forged state) or is a NaN string would never time out: its alert would fire forever.
    Times ahead count from now; a non-number is a malformed state (reported, dropped)."""
    import json

    from nodeguard.journal.state import STATE_NAME

    directory, stream = _setup(tmp_path)
    line = (
        'I1130 08:14:03.512907    2211 eviction_manager.go:366] "Eviction manager: '
        'attempting to reclaim" resourceName="ephemeral-storage"'
    )
    append(directory / "system.journal", [_kubelet(stream, line)])
    config = journal_config(tmp_path, directory, lookback="1d")
    clock = Clock(stream.realtime_us + 60_000_000)
    assert [c.rule for c in follow_once(config, world_at(clock)).conditions] == ["EvictionPressure"]
    path = config.state_dir / STATE_NAME
    doc = json.loads(path.read_text())
    saved = doc["data"]["rules"]["conditions"]["EvictionPressure"]
    saved["last"] = clock.now_us / 1e6 + 10 * 365 * 86400
    path.write_text(json.dumps(doc))
    clock.now_us += 60_000_000
    follow_once(config, world_at(clock))
    clock.now_us += 301_000_000  # EvictionPressure's 5 minutes, from the run that saw it
    later = follow_once(config, world_at(clock))
    (cleared,) = _kinds(later, JournalKind.CONDITION_CLEARED)
    assert cleared.facts["cleared_by"] == "timeout" and later.conditions == ()

    saved["last"] = "nan"
    path.write_text(json.dumps(doc))
    result = follow_once(config, world_at(clock))
    assert result.conditions == ()
    assert any("malformed" in e.reason for e in result.events), result.events
