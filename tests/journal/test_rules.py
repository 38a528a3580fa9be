"""The built-in rules against real journal files holding each component's real lines."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from nodeguard.config.sections.journal_rules import BUILTIN_RULES
from nodeguard.journal.follow import follow_once
from nodeguard.journal.model import JournalKind
from tests.journal.conftest import Clock, journal_config, sample_entry, world_at
from tests.journal.journalfiles import Stream, append
from tests.journal.samples import CID, SAMPLES


def test_every_builtin_rule_has_a_sample_line() -> None:
    covered = set().union(*(s.rules for s in SAMPLES))
    assert {b.spec.reason for b in BUILTIN_RULES} - covered == set()


def test_kubelet_rules_have_structured_and_older_samples() -> None:
    forms: dict[str, set[str]] = {}
    for sample in SAMPLES:
        for rule in sample.rules:
            forms.setdefault(rule, set()).add(sample.form)
    for rule in ("EvictionPressure", "EvictingPods", "ImageGCFailed", "ContainerLogRotateFailed"):
        assert {"klog structured", "klog unstructured"} <= forms[rule], rule
    assert {"logrus", "logrus (Docker 20.10)"} <= forms["DockerLogWriteFailed"]


def _journal_with_samples(directory: Path, stream: Stream) -> None:
    """Every sample from its component, over three boots, plus lines that must not match."""
    entries = []
    for i, sample in enumerate(SAMPLES):
        if i in (8, 20):
            stream.new_boot()
        entries.append(sample_entry(stream, sample))
    # The same disk-trouble texts from places nodeguard does not watch, or may not trust.
    entries += [
        stream.service("cron.service", "CRON", "write /var/spool/x: no space left on device"),
        stream.service(
            "kubelet-helper.service",
            "helper",
            "Image garbage collection failed multiple times in a row",
        ),
        stream.syslog(
            "conmon",
            f"conmon {CID[:20]} <nwarn>: write_k8s_log failed",
            unit="session-3.scope",
            uid=1000,
        ),
        stream.syslog(
            "kubelet",
            "Eviction manager: attempting to reclaim ephemeral-storage",
            unit="user@1000.service",
            uid=1000,
        ),
    ]
    append(directory / "system.journal", entries)


def test_builtin_rules_fire_exactly_on_their_lines(tmp_path: Path) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    stream = Stream()
    _journal_with_samples(directory, stream)
    config = journal_config(tmp_path, directory, lookback="1d")
    result = follow_once(config, world_at(Clock(stream.realtime_us + 1_000_000)))

    expected = Counter(rule for s in SAMPLES for rule in s.rules)
    assert dict(result.metrics.matches) == dict(expected)
    assert result.entries_read == len(SAMPLES)  # the unwatched and forged lines are not read
    kinds = Counter(e.kind for e in result.events)
    assert kinds[JournalKind.CONDITION_ACTIVE] == 3  # EvictionPressure, ReadonlyFs, XfsShutdown
    matched = {(e.facts["rule"], e.facts["message"]) for e in result.events if "rule" in e.facts}
    for sample in SAMPLES:
        for rule in sample.rules:
            if rule not in {"EvictionPressure", "XfsShutdown"}:
                assert (rule, sample.message) in matched, (rule, sample.message)


def test_match_event_names_rule_unit_message_cursor_and_time(tmp_path: Path) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    stream = Stream()
    sample = next(s for s in SAMPLES if s.rules == {"EvictionFailed"})
    append(directory / "system.journal", [sample_entry(stream, sample)])
    config = journal_config(tmp_path, directory, lookback="1h")
    result = follow_once(config, world_at(Clock(stream.realtime_us + 5_000_000)))

    (event,) = [e for e in result.events if e.kind is JournalKind.MATCH]
    assert event.facts["rule"] == "EvictionFailed"
    assert event.facts["unit"] == "kubelet.service"
    assert event.facts["message"] == sample.message
    assert event.facts["cursor"].startswith("s=")
    assert event.facts["time"] == "2025-11-30T00:00:00.001000+00:00"
    assert event.severity.name == "ERROR"


def test_a_journal_folder_others_can_write_is_not_read(tmp_path: Path) -> None:
    """journal-remote copies ``_UID`` and every other field from what it is sent: anyone
    who can drop a journal file into the folder can forge a uid-0 kubelet line."""
    directory = tmp_path / "journal"
    directory.mkdir()
    stream = Stream()
    _journal_with_samples(directory, stream)
    directory.chmod(0o777)
    config = journal_config(tmp_path, directory, lookback="1d")
    result = follow_once(config, world_at(Clock(stream.realtime_us + 1_000_000)))
    assert result.entries_read == 0 and not result.metrics.matches
    assert any("writable by others" in e.reason for e in result.events), result.events
