"""The spool's bounds and backoff, secret-file checks, the lifecycle's hysteresis."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nodeguard.alerts import lifecycle
from nodeguard.alerts.http import SecretRefused, read_secret
from nodeguard.alerts.model import Condition, Notification, Status
from nodeguard.alerts.registry import SINKS, get_sink
from nodeguard.alerts.spool import Spool, load_spool, save_spool


def _note(n: int) -> Notification:
    return Notification(f"id{n}", f"k{n}", Status.FIRING, {"alertname": "A"}, {}, 1.0, None, 1.0)


def test_a_full_spool_drops_the_oldest_and_says_how_many(tmp_path: Path) -> None:
    spool, dropped = Spool().enqueue(["webhook"], [_note(n) for n in range(15)], limit=10)
    assert dropped == {"webhook": 5}
    assert [n.id for n in spool.queue("webhook").items] == [f"id{n}" for n in range(5, 15)]
    again, dropped = spool.enqueue(["webhook"], [_note(14)], limit=10)
    assert dropped == {} and len(again.queue("webhook").items) == 10  # same id: not twice
    save_spool(tmp_path, again)
    loaded, problems = load_spool(tmp_path, 10)
    assert problems == [] and loaded.queue("webhook").items == again.queue("webhook").items


def test_backoff_doubles_up_to_its_cap_and_resets_on_success() -> None:
    spool = Spool()
    waits = []
    for _ in range(6):
        spool = spool.failed("webhook", "down", 100.0, backoff=1, cap=20)
        waits.append(spool.queue("webhook").next_try - 100.0)
    assert waits == [2, 4, 8, 16, 20, 20]
    spool = spool.acknowledge("webhook", set(), 200.0)
    assert spool.queue("webhook").failures == 0 and spool.queue("webhook").next_try == 0


def test_a_tampered_spool_entry_is_dropped_and_reported(tmp_path: Path) -> None:
    spool, _ = Spool().enqueue(["webhook"], [_note(1), _note(2)], limit=10)
    save_spool(tmp_path, spool)
    path = tmp_path / "alert-spool.json"
    path.write_text(path.read_text().replace('"status":"firing"', '"status":"pending"', 1))
    loaded, problems = load_spool(tmp_path, 10)
    assert len(loaded.queue("webhook").items) == 1
    assert problems and "malformed" in problems[0]


def test_secret_files_others_could_read_or_change_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("abc\n")
    for mode, ok in ((0o600, True), (0o400, True), (0o640, True), (0o604, False), (0o620, False)):
        os.chmod(secret, mode)
        if ok:
            assert read_secret(secret, os.geteuid()) == "abc"
        else:
            with pytest.raises(SecretRefused):
                read_secret(secret, os.geteuid())
    os.chmod(secret, 0o640)
    os.chown(secret, 0, 4242)  # group 4242 may read: not root's group
    with pytest.raises(SecretRefused, match="readable by others"):
        read_secret(secret, os.geteuid())
    os.chown(secret, 4242, 0)
    os.chmod(secret, 0o600)
    with pytest.raises(SecretRefused, match="owned by uid 4242"):
        read_secret(secret, os.geteuid())
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(SecretRefused, match="not a regular file"):
        read_secret(fifo, os.geteuid())


def test_every_sink_in_the_table_has_the_one_send_shape() -> None:
    import inspect

    assert [s.name for s in SINKS] == ["alertmanager", "webhook", "journald", "textfile"]
    for spec in SINKS:
        params = list(inspect.signature(get_sink(spec.name).send).parameters)
        assert params[:3] == ["batch", "config", "world"], spec.name


def _cond(active: bool, clear: bool, for_: int = 60) -> Condition:
    return Condition("k", {"alertname": "A", "severity": "warning"}, {}, active, clear, for_)


def test_pending_then_firing_after_for_and_hysteresis_before_resolving() -> None:
    state, note = lifecycle.step(None, _cond(True, False), 0, clear_for=120)
    assert state is not None and state.status is Status.PENDING and note is None
    state, note = lifecycle.step(state, _cond(True, False), 59, clear_for=120)
    assert state is not None and state.status is Status.PENDING
    state, note = lifecycle.step(state, _cond(True, False), 60, clear_for=120)
    assert state is not None and state.status is Status.FIRING and note is not None
    state, note = lifecycle.step(state, _cond(False, False), 100, clear_for=120)  # the band
    assert state is not None and state.status is Status.FIRING and note is None
    state, note = lifecycle.step(state, _cond(False, True), 200, clear_for=120)
    assert state is not None and state.status is Status.FIRING
    state, note = lifecycle.step(state, _cond(False, True), 320, clear_for=120)
    assert state is not None and state.status is Status.RESOLVED
    assert note is not None and note.ends_at == 320 and note.starts_at == 60


def test_a_pending_alert_that_stops_holding_is_forgotten() -> None:
    state, _ = lifecycle.step(None, _cond(True, False), 0, clear_for=0)
    assert lifecycle.step(state, _cond(False, False), 30, clear_for=0) == (None, None)


def test_a_stored_time_outside_the_calendar_is_malformed() -> None:
    """A firing state whose start is -2**63 made every Alertmanager round fail in
    rfc3339 (OSError), so no alert at all reached Alertmanager again. Stored times must be
    between 1970 and 9999; anything else makes the state or notification malformed."""
    from nodeguard.alerts.model import AlertState

    state = {
        "key": "k",
        "labels": {"alertname": "X"},
        "annotations": {},
        "status": "firing",
        "active_since": 1_700_000_000.0,
        "fired_at": 1_700_000_000.0,
        "last_seen": 1_700_000_000.0,
    }
    assert AlertState.from_json(state) is not None
    for bad in (-(2**63), -1.0, 2**63, 1e17):
        assert AlertState.from_json({**state, "fired_at": bad}) is None, bad
        note = {**state, "id": "i", "starts_at": bad, "at": 1_700_000_000.0}
        assert Notification.from_json(note) is None, bad
