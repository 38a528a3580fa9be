"""Follow the journal (and text logs) through the rules, with a cursor that loses nothing.

Per batch: read at most ``journal.batch`` entries, turn matches into events, hand the
events to the sink, then save the cursor. A crash before the save repeats at most that
one batch on the next start (its events may be delivered twice); a crash before the sink
call repeats the batch's reading only. Nothing is ever skipped: the cursor never moves
past an entry whose events were not delivered.

``follow_once`` reads to the end (or ``limit`` entries) and returns; ``follow_live``
keeps reading until ``World.stop`` is set, waiting on the journal between batches. They
are the daemon's (and ``run --once``'s): the only writers of the cursor. ``view_once`` and
``view_live`` are the CLI's ``journal follow``: the same reading from the daemon's
position (read, never written) or a given time, with the position kept in memory, no
lock taken and nothing saved; ``scan`` applies the rules to a time range and saves
nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from nodeguard import faults
from nodeguard.config.model import Config
from nodeguard.config.sections.journal import JournalConfig
from nodeguard.events import Event, Severity
from nodeguard.journal import state as saved_state
from nodeguard.journal.model import Counts, JournalKind, JournalResult, journal_event
from nodeguard.journal.reader import INVALIDATE, Batch, JournalReader, JournalUnavailable
from nodeguard.journal.rules import Evaluator, RuleSet, RuleState, rule_state_from_json
from nodeguard.journal.state import FollowState
from nodeguard.journal.textlogs import TextLogReader
from nodeguard.progress import NO_PROGRESS, Progress
from nodeguard.state import check_state_dir, ensure_state_dir
from nodeguard.world import World

log = logging.getLogger("nodeguard.journal")

EventSink = Callable[[Sequence[Event]], None]
RESULT_EVENTS_MAX = 1000  # events kept in a JournalResult (all of them reach the sink)
TEXT_BATCH_BYTES = 4 * 1024 * 1024
WAIT_SLICE = 0.5  # seconds per journal wait, so a stop request is seen promptly
LIVE_MIN_CYCLE = 0.25  # seconds between two catch-ups of the live follower, at least
REOPEN_ENTRIES = 50_000  # entries read before the reader is reopened (bounds mapped memory)


class _Run:
    """One follow or scan: the readers, the rules' evaluator, counters, collected events."""

    def __init__(
        self,
        config: Config,
        world: World,
        sink: EventSink | None,
        save: bool,
        progress: Progress = NO_PROGRESS,
    ) -> None:
        self.cfg: JournalConfig = config.journal
        self.state_dir: Path = config.state_dir
        self.world, self.sink, self.save_state = world, sink, save
        self.progress = progress
        self.counts = Counts()
        self.events: list[Event] = []
        self._pending: list[Event] = []
        self.dropped = 0
        self.read = 0
        self.caught_up = True
        self.lag = 0.0
        self.reader: JournalReader | None = None
        self._since_open = 0
        self.text: TextLogReader | None = None
        self.saved = FollowState()
        self.rules = RuleSet(self.cfg)
        self.ev = Evaluator(self.cfg, self.rules, RuleState())
        self.since: datetime | None = None  # where reading starts without a cursor

    # -- setup --------------------------------------------------------------------------

    def load_state(self) -> None:
        saved, problem = saved_state.load(self.state_dir)
        if problem:
            self._reset(f"{problem}; restarting from the lookback")
        try:
            rule_state = rule_state_from_json(saved.rules, self.rules.rules)
        except ValueError as exc:
            self.note(JournalKind.READ_ERROR, Severity.WARNING, f"saved rule state: {exc}")
            rule_state = RuleState()
        self.saved = saved
        self.ev = Evaluator(self.cfg, self.rules, rule_state)

    def open(self, plan_text: str) -> None:
        """Open the journal; fall back to (or add) the text logs as configured."""
        unavailable = None
        try:
            self.reader = JournalReader(self.cfg)
        except JournalUnavailable as exc:
            unavailable = str(exc)
        except OSError as exc:
            unavailable = f"cannot open the journal: {exc.strerror or exc}"
        if plan_text == "always" or (plan_text == "auto" and self.reader is None):
            self.text = TextLogReader(self.cfg.text_logs.files, self.world.euid)
        if unavailable:
            # Expected on a host without systemd when the text logs take over: info then.
            fallback = self.text is not None
            why = f"{unavailable}; reading the text logs instead" if fallback else unavailable
            log.info("journal: %s", why)
            self.note(JournalKind.UNAVAILABLE, Severity.INFO if fallback else Severity.WARNING, why)

    def position(self, since: datetime | None) -> None:
        """After the saved (or in-memory) cursor; without one at ``since``, else the
        lookback. A reopen passes None and keeps the first call's ``since``."""
        self.since = since or self.since
        since = self.since
        if self.reader is None:
            return
        cursor = self.saved.cursor
        if cursor is not None and self.saved.source not in (None, self.reader.source):
            self._reset(f"the saved cursor belongs to another journal ({self.saved.source})")
            cursor = None
        start = since.timestamp() if since else self.world.timestamp() - self.cfg.lookback
        problem = self.reader.position(cursor, int(start * 1_000_000))
        if problem:
            self._reset(f"{problem}; restarting from the lookback")

    def _reset(self, why: str) -> None:
        self.counts.cursor_resets += 1
        log.info("journal: cursor reset: %s", why)
        self.note(JournalKind.CURSOR_RESET, Severity.WARNING, why)

    # -- reading ------------------------------------------------------------------------

    def journal_batches(self, limit: int | None) -> bool:
        """Read batches to the end, ``limit`` or a stop; False when a save failed."""
        if self.reader is None:
            return True
        while not self.world.stop.is_set():
            size = self.cfg.batch if limit is None else min(self.cfg.batch, limit - self.read)
            if size <= 0:
                self.caught_up = False
                break
            try:
                batch = self.reader.read(self.ev, self.counts, size)
            except OSError as exc:  # an unreadable journal file: report, resume next run
                self.note(JournalKind.READ_ERROR, Severity.ERROR, f"reading the journal: {exc}")
                self.flush()
                return True
            self.read += batch.read
            self._since_open += batch.read
            self.progress.update(entries_read=self.read)
            if not self.finish_batch(batch):
                return False
            if batch.at_end:
                break
            if self._since_open >= REOPEN_ENTRIES and not self.reopen():
                break
        return True

    def reopen(self) -> bool:
        """Close and reopen at the saved cursor: sd-journal keeps the windows it mapped
        (up to 64 x 8 MiB of journal file pages counted in RSS); a fresh reader starts
        with none, so memory stays bounded however much is read in one run."""
        if self.reader is not None:
            self.reader.close()
        self.reader = None
        self._since_open = 0
        try:
            self.reader = JournalReader(self.cfg)
        except (JournalUnavailable, OSError) as exc:
            self.note(JournalKind.UNAVAILABLE, Severity.WARNING, f"cannot reopen: {exc}")
            self.flush()
            return False
        self.position(None)
        return True

    def finish_batch(self, batch: Batch) -> bool:
        now = self.world.timestamp()
        self.caught_up = batch.at_end
        self.lag = 0.0 if batch.at_end else max(0.0, now - batch.realtime_us / 1e6)
        cursor = batch.cursor or self.saved.cursor
        source = self.reader.source if self.reader else self.saved.source
        return self.deliver(replace(self.saved, cursor=cursor, source=source), now)

    def text_batches(self) -> bool:
        if self.text is None:
            return True
        now = self.world.timestamp()
        batch = self.text.read(
            self.ev, self.counts, self.saved.text, int(now * 1e6), TEXT_BATCH_BYTES
        )
        self.read += batch.read
        self.progress.update(entries_read=self.read)
        self.events_in(batch.events)
        return self.deliver(replace(self.saved, text=batch.offsets), now)

    def deliver(self, new_state: FollowState, now: float) -> bool:
        """The batch's events to the sink, then the state saved: never the other order."""
        events = self.ev.end_batch(now)
        self.events_in(events)
        self.flush()
        if not self.save_state:
            self.saved = new_state
            return True
        new_state = replace(new_state, rules=self.ev.state().to_json())
        try:
            saved_state.save(self.state_dir, new_state)
        except OSError as exc:
            why = f"cannot save {self.state_dir / saved_state.STATE_NAME}: {exc.strerror or exc}"
            self.note(JournalKind.STATE_UNWRITABLE, Severity.ERROR, why)
            self.flush()
            return False
        self.saved = new_state
        faults.point("journal-cursor-saved")  # crash trials: the cursor moved, nothing sent
        return True

    # -- events -------------------------------------------------------------------------

    def note(self, kind: JournalKind, severity: Severity, reason: str) -> None:
        self.events_in([journal_event(kind, "journal", severity, reason, time=self.world.now())])

    def events_in(self, events: Sequence[Event]) -> None:
        self._pending.extend(events)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        if self.sink is not None:
            self.sink(pending)
        room = RESULT_EVENTS_MAX - len(self.events)
        self.events.extend(pending[: max(0, room)])
        self.dropped += max(0, len(pending) - max(0, room))

    def lag_event(self) -> None:
        if self.lag > self.cfg.lag_warning:
            self.note(
                JournalKind.LAG,
                Severity.WARNING,
                f"the reader is {self.lag:.0f}s behind the journal (more entries than it read)",
            )
            self.flush()

    def result(self) -> JournalResult:
        self.flush()
        conditions = self.ev.active()
        cond_rules = [r.reason for r in self.rules.rules if r.spec.kind == "condition"]
        metrics = self.counts.freeze(
            self.ev.matches, self.lag, (c.rule for c in conditions), cond_rules
        )
        return JournalResult(
            tuple(self.events), metrics, conditions, self.read, self.caught_up, self.dropped
        )

    def close(self) -> None:
        self.progress.done()
        if self.reader is not None:
            self.reader.close()


def _start(
    config: Config,
    world: World,
    sink: EventSink | None,
    save: bool,
    progress: Progress = NO_PROGRESS,
) -> _Run:
    run = _Run(config, world, sink, save, progress)
    if save:
        ensure_state_dir(config.state_dir, world.euid)
        run.load_state()
    run.open(config.journal.text_logs.read)
    return run


def follow_once(
    config: Config,
    world: World,
    *,
    sink: EventSink | None = None,
    limit: int | None = None,
    progress: Progress = NO_PROGRESS,
) -> JournalResult:
    """From the saved cursor (or the lookback) to the end, or ``limit`` entries.

    Takes the follower lock (LockBusy when another follower runs) and the state folder
    check (StateDirUnsafe). ``sink`` receives each batch's events before its cursor is
    saved; the result holds them too (up to RESULT_EVENTS_MAX). ``progress`` gets the
    entries read so far after each batch.
    """
    with saved_state.follow_lock(_ready(config, world)):
        run = _start(config, world, sink, save=True, progress=progress)
        try:
            run.position(None)
            if run.journal_batches(limit) and run.text_batches():
                run.lag_event()
            log.info("journal: read %d entries, %d events", run.read, len(run.events))
            return run.result()
        finally:
            run.close()


def follow_live(
    config: Config,
    world: World,
    sink: EventSink,
    *,
    on_batch: Callable[[JournalResult], None] | None = None,
) -> JournalResult:
    """Follow until ``world.stop`` is set; ``on_batch`` gets the running totals after each
    catch-up (events are only in the sink). Returns the totals at the stop."""
    with saved_state.follow_lock(_ready(config, world)):
        run = _start(config, world, sink, save=True)
        try:
            run.position(None)
            _live_loop(run, on_batch)
            return run.result()
        finally:
            run.close()


def _live_loop(run: _Run, on_batch: Callable[[JournalResult], None] | None) -> None:
    stop = run.world.stop
    while not stop.is_set():
        started = time.monotonic()
        if not (run.journal_batches(None) and run.text_batches()):
            stop.wait(5.0)  # the state cannot be saved: retry later, never skip ahead
            continue
        run.lag_event()
        if on_batch is not None:
            on_batch(run.result())
            run.events.clear()
        # Appends that arrive while caught up are gathered for at least LIVE_MIN_CYCLE, so a
        # trickle of entries does not cost one fsync'ed state save each.
        stop.wait(max(0.0, LIVE_MIN_CYCLE - (time.monotonic() - started)))
        if run.reader is None:
            stop.wait(1.0)
        elif not stop.is_set():
            _wait(run)


def _wait(run: _Run) -> None:
    """Wait for the journal to change; INVALIDATE (files added or removed) is counted, and
    sd-journal keeps its position across it."""
    if run.reader is None:
        return
    try:
        if run.reader.wait(WAIT_SLICE) == INVALIDATE:
            run.counts.invalidations += 1
    except OSError as exc:
        run.note(JournalKind.READ_ERROR, Severity.ERROR, f"waiting on the journal: {exc}")
        run.flush()
        run.world.stop.wait(5.0)
        run.reopen()


def scan(
    config: Config,
    world: World,
    since: datetime,
    *,
    sink: EventSink | None = None,
    progress: Progress = NO_PROGRESS,
) -> JournalResult:
    """The rules over the journal from ``since`` to now; no state is read or changed."""
    run = _start(config, world, sink, save=False, progress=progress)
    try:
        run.position(since)
        run.journal_batches(None)
        run.text_batches()
        return run.result()
    finally:
        run.close()


def view_once(
    config: Config,
    world: World,
    since: datetime | None = None,
    *,
    sink: EventSink | None = None,
    progress: Progress = NO_PROGRESS,
) -> JournalResult:
    """The CLI's ``journal follow --once``: from ``since``, else from the daemon's saved
    position (cursor, rule and text-log state: read, never written), else the lookback,
    to the end. No lock, nothing saved: the daemon still sees every entry.
    StateDirUnsafe when the daemon's state would be read from an unsafe folder."""
    run = _viewer(config, world, since, sink, progress)
    try:
        run.position(since)
        if run.journal_batches(None) and run.text_batches():
            run.lag_event()
        return run.result()
    finally:
        run.close()


def view_live(
    config: Config, world: World, sink: EventSink, since: datetime | None = None
) -> JournalResult:
    """The CLI's ``journal follow``: as :func:`view_once`, then live until ``world.stop``,
    the position kept in memory."""
    run = _viewer(config, world, since, sink, NO_PROGRESS)
    try:
        run.position(since)
        _live_loop(run, None)
        return run.result()
    finally:
        run.close()


def _viewer(
    config: Config, world: World, since: datetime | None, sink: EventSink | None, progress: Progress
) -> _Run:
    run = _Run(config, world, sink, save=False, progress=progress)
    if since is None:
        check_state_dir(config.state_dir, world.euid)  # never created here
        run.load_state()
    run.open(config.journal.text_logs.read)
    return run


def _ready(config: Config, world: World) -> Path:
    ensure_state_dir(config.state_dir, world.euid)
    return config.state_dir
