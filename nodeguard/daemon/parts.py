"""The daemon's parts: what runs, how often, and through which entry point.

A :class:`Part` is one row of an explicit table (no module scanning): a name, its
interval (read from the config, so a reload changes it), and a callable that takes a
:class:`Context` and returns an :class:`Outcome` (the events it produced, figures for
the status document, and its rendering for ``run --once``). The loop only schedules
parts and passes their events on; every decision stays in the concern's own code.

Parts on the same ``lane`` never run at the same time (the rotation pass and the size
watch share one: both take the pass lock). A part with ``consumes`` set receives the
events the other parts produced since it last ran (alert delivery), and is run at once
(not on its schedule) when a part reports a new finding at WARNING or worse; a part's
``feeds`` are run at once after its urgent Outcome (the disk part queued alert
transitions: delivery). A part already queued is
not queued twice, so a burst of events costs one extra run.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nodeguard.config.model import Config
from nodeguard.events import Event, Severity
from nodeguard.exitcodes import Exit
from nodeguard.progress import NO_PROGRESS, Progress
from nodeguard.world import World


class DaemonKind(enum.StrEnum):
    """What the daemon itself reports (Source.DAEMON)."""

    STARTED = "started"
    RELOADED = "reloaded"
    RELOAD_FAILED = "reload-failed"
    PART_FAILED = "part-failed"
    PART_HUNG = "part-hung"
    LOCK_BUSY = "lock-busy"
    PASS = "pass"  # noqa: S105 (a rotation pass's summary, not a password)
    STOPPING = "stopping"
    ABANDONED = "abandoned"
    PENDING = "pending"  # the durable inbox (pending-events.json) unreadable or unwritable


@dataclass(frozen=True)
class Context:
    """What one run of a part gets: the config in force, the World, the mode, its inbox."""

    config: Config
    world: World
    dry_run: bool = False
    inbox: tuple[Event, ...] = ()
    render: bool = False  # run --once: fill Outcome.text and .data (the daemon does not)
    serving: bool = False  # the running daemon (it serves /metrics); run --once does not
    progress: Progress = field(default=NO_PROGRESS, compare=False)  # run --once on a tty


@dataclass(frozen=True)
class Outcome:
    """One run of a part: its events, figures for ``nodeguard status``, its rendering."""

    events: tuple[Event, ...] = ()
    summary: Mapping[str, Any] = field(default_factory=dict)  # JSON-able figures
    text: str = ""  # run --once, text
    data: Any = None  # run --once --json
    exit: Exit = Exit.OK
    forward: tuple[Event, ...] | None = None  # for the consuming parts (None: all events)
    urgent: bool = False  # the parts this one feeds should run now, not on their schedule

    @property
    def forwarded(self) -> tuple[Event, ...]:
        """The events handed to the consuming parts' inboxes (the others are durable)."""
        return self.events if self.forward is None else self.forward

    @classmethod
    def of(cls, events: Iterable[Event]) -> Outcome:
        """An outcome from a concern's events alone (rendered one line each)."""
        batch = tuple(events)
        failed = any(e.severity >= Severity.ERROR for e in batch)
        return cls(
            events=batch,
            summary={"events": len(batch)},
            text=render_events(batch),
            data=[e.as_dict() for e in batch],
            exit=Exit.FAILED if failed else Exit.OK,
        )


PartFn = Callable[[Context], Outcome]


@dataclass(frozen=True)
class Part:
    """One scheduled concern."""

    name: str
    interval: Callable[[Config], int]
    run: PartFn
    lane: str = ""  # parts sharing a lane run one at a time; "" = a lane of its own
    in_once: bool = True  # run by ``run --once`` (the size watch is not: the pass covers it)
    consumes: bool = False  # receives the other parts' events in its Context.inbox
    feeds: tuple[str, ...] = ()  # parts run at once after an urgent Outcome of this one
    doc: str = ""

    @property
    def lane_name(self) -> str:
        return self.lane or self.name


def render_events(events: Iterable[Event]) -> str:
    """One line per event: severity, subject, reason."""
    lines = [f"{e.severity.name.lower()}: {e.subject}: {e.reason}" for e in events]
    return "\n".join(lines) + "\n" if lines else "nothing to report\n"


def table() -> tuple[Part, ...]:
    """The daemon's parts, in ``run --once`` order. Each concern is one line here.

    Built once per daemon, so a part with memory (the size watch) keeps it across
    reloads.
    """
    import functools

    from nodeguard.daemon import adapters, wiring
    from nodeguard.daemon.sizewatch import SizeWatch

    alert_path = wiring.AlertPath()  # the disk part hands its latest result to delivery

    return (
        Part(
            "rotation",
            lambda c: c.interval,
            adapters.rotation_pass,
            lane="rotation",
            doc="the full rotation pass over every policy",
        ),
        Part(
            "size-watch",
            lambda c: c.daemon.size_watch_interval,
            SizeWatch().run,
            lane="rotation",
            in_once=False,
            doc="stat the policies' logs; rotate at once a log over its max_size",
        ),
        Part(
            "containers",
            lambda c: c.interval,
            adapters.containers,
            doc="container logs: growth samples, unbounded containers, orphans",
        ),
        Part(
            "journal",
            lambda c: c.daemon.journal_interval,
            functools.partial(wiring.journal, on_metrics=alert_path.add_journal_metrics),
            lane="journal",
            doc="journald (or text logs) from the saved cursor through the rules",
        ),
        Part(
            "journal-retention",
            lambda c: c.interval,
            wiring.journal_retention,
            lane="journal",
            doc="the journal's disk use; archived files beyond max_use / max_age vacuumed",
        ),
        Part(
            "disk",
            lambda c: c.daemon.disk_interval,
            alert_path.disk,
            consumes=True,
            feeds=("alerts",),
            doc="filesystems: usage, forecast, reclaim when critical, alert evaluation "
            "(the other parts' events included)",
        ),
        Part(
            "alerts",
            lambda c: c.daemon.alerts_interval,
            alert_path.deliver,
            doc="alert delivery: Alertmanager, webhook, journald, textfile; /metrics",
        ),
    )
