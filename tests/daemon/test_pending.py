"""The durable inbox (pending-events.json) on a real state folder: what is recorded comes
back as the same events, bad entries are refused one by one with the reason, the cap
drops the oldest, and settle removes only what was evaluated."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from nodeguard.daemon.pending import NAME, PENDING_MAX, PendingEvents, alertable
from nodeguard.events import Event, Severity, Source
from nodeguard.journal.model import JournalKind


def match(n: int, severity: Severity = Severity.ERROR) -> Event:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    facts = {"rule": "EvictingPods", "n": n, "unit": "kubelet.service", "extra": [1, {"a": None}]}
    return Event(Source.JOURNAL, JournalKind.MATCH, "kubelet.service", severity, "evict", facts, at)


def store(tmp_path: Path) -> PendingEvents:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    return PendingEvents(state)


def test_recorded_events_come_back_equal_and_settle_removes_only_the_taken(
    tmp_path: Path,
) -> None:
    pending = store(tmp_path)
    events = [match(1), match(2, Severity.WARNING)]
    assert alertable([*events, match(3, Severity.INFO)]) == events
    pending.record(events)
    taken = pending.take()
    assert taken.events == tuple(events) and not taken.problems
    pending.record([match(3)])
    pending.settle(taken.ids)
    assert pending.take().events == (match(3),)
    assert (pending.doc.path.stat().st_mode & 0o777) == 0o600


def test_a_tampered_entry_is_refused_with_its_reason_and_the_rest_kept(tmp_path: Path) -> None:
    pending = store(tmp_path)
    pending.record([match(1), match(2)])
    path = pending.state_dir / NAME
    doc = json.loads(path.read_text())
    doc["data"]["events"][0]["source"] = "rotation"  # only the journal records
    doc["data"]["events"].append({"id": 99, "source": "journal", "kind": "rm -rf"})
    path.write_text(json.dumps(doc))
    taken = pending.take()
    assert [e.facts["n"] for e in taken.events] == [2]
    assert any("source rotation does not record" in p for p in taken.problems), taken.problems
    assert any("kind 'rm -rf' unknown" in p for p in taken.problems), taken.problems
    pending.settle(taken.ids)  # the refused entries go with the settled ones
    assert json.loads(path.read_text())["data"]["events"] == []


def test_a_corrupt_file_is_reported_and_the_next_record_replaces_it(tmp_path: Path) -> None:
    pending = store(tmp_path)
    (pending.state_dir / NAME).write_bytes(b'{"kind": "pending-events", "version": 1, "da')
    taken = pending.take()
    assert taken.events == () and taken.problems and NAME in taken.problems[0]
    pending.record([match(5)])
    assert pending.take().events == (match(5),)


def test_beyond_the_cap_the_oldest_are_dropped_and_counted(tmp_path: Path) -> None:
    pending = store(tmp_path)
    assert pending.record([match(n) for n in range(PENDING_MAX)]) == 0
    assert pending.record([match(PENDING_MAX), match(PENDING_MAX + 1)]) == 2
    numbers = [e.facts["n"] for e in pending.take().events]
    assert numbers[0] == 2 and numbers[-1] == PENDING_MAX + 1 and len(numbers) == PENDING_MAX
