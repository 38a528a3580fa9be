"""Replayed traces through the disk guard's own rules: lead time and false alerts.

bench/traces.py holds the traces (days of one-minute samples); nodeguard.disk.replay
runs the same forecast, rules and lifecycle as the daemon (here evaluating every 5
minutes to keep the suite fast; bench/forecast.py evaluates every minute).
"""

from __future__ import annotations

import pytest

from bench.forecast import node_mixin_rules, score
from bench.traces import all_traces
from nodeguard.config.sections.disk import DiskConfig
from nodeguard.disk.replay import replay

EVERY = 300
TRACES = {t.name: t for t in all_traces()}
STEADY = [n for n, t in TRACES.items() if not t.fills]
FILLING = [n for n, t in TRACES.items() if t.fills]


@pytest.mark.parametrize("name", STEADY)
def test_no_false_alert_on_a_disk_that_does_not_fill(name: str) -> None:
    trace = TRACES[name]
    episodes = replay(trace.points(), trace.total, DiskConfig(), every=EVERY)
    assert [e for e in episodes if e.fired >= trace.score_from] == []


@pytest.mark.parametrize("name", FILLING)
def test_the_alert_fires_long_before_full_and_stays(name: str) -> None:
    trace = TRACES[name]
    assert trace.full_at is not None
    result = score(
        trace, "nodeguard", replay(trace.points(), trace.total, DiskConfig(), every=EVERY)
    )
    assert result.lead_h is not None and result.lead_h >= 12
    assert result.critical_lead_h is not None and result.critical_lead_h >= 2
    assert result.blind_min == 0


def test_a_delete_hides_node_mixins_alert_but_not_ours() -> None:
    trace = TRACES["fill_with_delete"]
    ours = score(trace, "nodeguard", replay(trace.points(), trace.total, DiskConfig(), every=EVERY))
    theirs = score(trace, "node-mixin", node_mixin_rules(trace, every=EVERY))
    assert theirs.blind_min is not None and theirs.blind_min > 60
    assert ours.blind_min == 0
    assert ours.lead_h is not None and theirs.lead_h is not None
    assert ours.lead_h >= theirs.lead_h


def test_an_image_pull_alerts_node_mixin_but_not_us() -> None:
    trace = TRACES["image_pull"]
    theirs = score(trace, "node-mixin", node_mixin_rules(trace, every=EVERY))
    assert theirs.false_alerts >= 1
    ours = replay(trace.points(), trace.total, DiskConfig(), every=EVERY)
    assert [e for e in ours if e.fired >= trace.score_from] == []
