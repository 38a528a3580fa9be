"""The daemon loop: a private scheduler, one worker lane per group of parts, signals.

The main thread owns everything mutable: it schedules the parts (a private
``schedule.Scheduler``, never the module default), hands due parts to their lanes,
takes their outcomes back, logs and forwards their events, writes the status
document, and talks to systemd (READY, STATUS, WATCHDOG). It decides nothing about
logs, disks or alerts: each part's entry point does.

Signals only set flags and wake the loop: SIGHUP reloads the config (a bad one is
reported and the old one kept), SIGTERM/SIGINT stop it. A part still running after
``daemon.stop_timeout`` is abandoned (its intent records make that safe).
"""

from __future__ import annotations

import functools
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from nodeguard import __version__
from nodeguard.config import Config, ConfigError, load_config
from nodeguard.daemon import sd
from nodeguard.daemon.parts import Context, DaemonKind, Outcome, Part
from nodeguard.daemon.status import PartStatus, StatusBook, status_document
from nodeguard.events import Event, Severity, Source, log_event
from nodeguard.state import StateDirUnsafe, clean_stale_temps, ensure_state_dir
from nodeguard.world import World

log = logging.getLogger("nodeguard.daemon")

INBOX_CAP = 10_000  # events waiting for a consuming part; the oldest are dropped beyond
HUNG_AFTER_MIN = 3600.0  # a part running longer than both of these is hung
HUNG_INTERVALS = 10  # ... (in its own intervals)
STATUS_MIN_GAP = 2.0  # seconds between status writes, whatever happens
WARN = Severity.WARNING  # a new finding at this severity or worse runs the consumers now
TRIM_AFTER = 0.2  # seconds: a part that ran this long hands its freed heap back (malloc_trim)


def trim_heap() -> None:
    """Give the heap a busy part freed back to the system (glibc's malloc_trim, every
    arena): its peak (a pass, a disk cycle over 10,000 files) must not stay resident
    while the daemon idles. A no-op where glibc is not there."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _libc() -> Any:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


@dataclass(frozen=True)
class Started:
    """A lane began running ``part`` at ``at``."""

    part: Part
    at: float


@dataclass(frozen=True)
class Finished:
    """A lane's report: which part ran, when, for how long, and its outcome."""

    part: Part
    at: float
    duration: float
    outcome: Outcome
    error: str | None = None


class Lane:
    """A worker thread running its parts one at a time; a part already queued is not
    queued twice, so a slow part never piles up runs."""

    def __init__(self, name: str, run: Callable[[Part], None], stop: threading.Event) -> None:
        self.name = name
        self._run = run
        self._stop = stop
        self._queue: list[Part] = []
        self._cond = threading.Condition()
        self.current: tuple[Part, float] | None = None
        self.thread = threading.Thread(target=self._serve, name=f"lane-{name}", daemon=True)

    def request(self, part: Part) -> None:
        with self._cond:
            if part not in self._queue and (self.current is None or self.current[0] != part):
                self._queue.append(part)
                self._cond.notify()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
                part = self._queue.pop(0)
                self.current = (part, time.monotonic())
            try:
                self._run(part)
            finally:
                with self._cond:
                    self.current = None

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


@dataclass
class Daemon:
    """One ``nodeguard run``: the config in force, the parts, their lanes and status."""

    config: Config
    parts: tuple[Part, ...]
    world: World
    environ: Mapping[str, str]
    config_path: Path | None = None
    dropins: bool = True
    notify: sd.Notify = field(init=False)
    lanes: dict[str, Lane] = field(default_factory=dict, init=False)
    book: StatusBook = field(init=False)
    _done: queue.SimpleQueue[Started | Finished] = field(
        default_factory=queue.SimpleQueue, init=False
    )
    _wake: threading.Event = field(default_factory=threading.Event, init=False)
    _reload: bool = field(default=False, init=False)
    _inbox: dict[str, list[Event]] = field(default_factory=dict, init=False)
    _inbox_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _scheduler: Any = field(default=None, init=False)
    _last_ping: float = field(default=0.0, init=False)
    _last_status: float = field(default=0.0, init=False)
    _hung: set[str] = field(default_factory=set, init=False)
    _warned: dict[str, set[tuple[Source, str, str]]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        import os

        self.notify = sd.notifier(self.environ)
        now = self.world.timestamp()
        self.book = StatusBook(
            os.getpid(), __version__, self.world.hostname, now, self._report_every()
        )
        self._book_config(now)
        for part in self.parts:
            self.book.parts[part.name] = PartStatus(part.interval(self.config))
            self.lanes.setdefault(part.lane_name, Lane(part.lane_name, self._run, self.world.stop))
            if part.consumes:
                self._inbox[part.name] = []

    # --- the main loop ---------------------------------------------------------

    def serve(self) -> bool:
        """Run until SIGTERM/SIGINT; return True when every part finished in time.

        Raises StateDirUnsafe (before anything runs) when the state folder is unsafe.
        """
        ensure_state_dir(self.config.state_dir, self.world.euid)
        clean_stale_temps(self.config.state_dir, self.world.timestamp())
        self._install_signals()
        self._schedule()
        for lane in self.lanes.values():
            lane.thread.start()
        for part in self.parts:
            if part.in_once:  # the first pass also finishes what a crash interrupted
                self._due(part)
        self.book.state = "running"
        self._event(DaemonKind.STARTED, "nodeguard", Severity.INFO, self._started_text())
        self.notify(f"READY=1\nSTATUS={self.book.one_line()}")
        while not self.world.stop.is_set():
            self._tick()
            self._wake.wait(self._sleep_time())
            self._wake.clear()
        return self._shutdown()

    def _tick(self) -> None:
        if self._reload:
            self._reload = False
            self._reload_config()
        self._scheduler.run_pending()
        self._collect()
        self._watchdog()
        self._save_status()

    def _sleep_time(self) -> float:
        waits = [self._scheduler.idle_seconds or 0.0, self.book.report_every]
        period = sd.watchdog_period(self.environ, self.book.pid)
        if period is not None:
            waits.append(period / 4)
        return max(0.05, min(waits))

    # --- scheduling --------------------------------------------------------------

    def _schedule(self) -> None:
        """(Re)build the jobs. A reload keeps each part's next run, brought forward when
        its interval shrank: frequent reloads must never postpone the hourly pass."""
        import schedule

        previous = {next(iter(j.tags)): j.next_run for j in self._jobs()}
        self._scheduler = schedule.Scheduler()
        for part in self.parts:
            every = max(1, part.interval(self.config))
            job = self._scheduler.every(every).seconds.do(self._due, part).tag(part.name)
            kept = previous.get(part.name)
            if kept is not None and job.next_run is not None:
                job.next_run = min(kept, job.next_run)
        self._book_next_runs()

    def _jobs(self) -> list[Any]:
        return [] if self._scheduler is None else list(self._scheduler.get_jobs())

    def _due(self, part: Part) -> None:
        self.lanes[part.lane_name].request(part)

    def _book_next_runs(self) -> None:
        offset = self.world.timestamp() - time.time()
        for job in self._jobs():
            name = next(iter(job.tags))
            if job.next_run is not None:
                self.book.parts[name].next_run = job.next_run.timestamp() + offset

    # --- running a part (in its lane's thread) ----------------------------------

    def _run(self, part: Part) -> None:
        ctx = Context(self.config, self.world, inbox=self._take_inbox(part), serving=True)
        at, started = self.world.timestamp(), time.monotonic()
        self._done.put(Started(part, at))
        self._wake.set()
        try:
            outcome, error = part.run(ctx), None
        except Exception as exc:  # one part failing must not stop the others
            log.debug("part %s raised", part.name, exc_info=True)
            outcome, error = Outcome(), f"{type(exc).__name__}: {exc}"
        took = time.monotonic() - started
        if took >= TRIM_AFTER:
            trim_heap()
        self._done.put(Finished(part, at, took, outcome, error))
        self._wake.set()

    def _take_inbox(self, part: Part) -> tuple[Event, ...]:
        if not part.consumes:
            return ()
        with self._inbox_lock:
            box = self._inbox[part.name]
            taken, box[:] = tuple(box), []
        return taken

    def _collect(self) -> None:
        while True:
            try:
                done = self._done.get_nowait()
            except queue.Empty:
                return
            if isinstance(done, Started):
                self.book.started(done.part.name, done.at)
            else:
                self._finished(done)

    def _finished(self, done: Finished) -> None:
        events = done.outcome.events
        if done.error is not None:
            reason = f"part {done.part.name} failed: {done.error}; the other parts go on"
            events = (*events, self._make(DaemonKind.PART_FAILED, done.part.name, reason))
        for event in events:
            log_event(log, event)
        forward = done.outcome.forwarded if done.error is None else events
        self._forward(done.part, forward)
        self._hurry(done.part, done.outcome.urgent, events)
        summary = {**done.outcome.summary, "error": done.error}
        self.book.finished(done.part.name, done.at, done.duration, summary)
        self._hung.discard(done.part.name)
        self._book_next_runs()
        self._last_status = 0.0  # write soon
        self.notify(f"STATUS={self.book.one_line()}")

    def _forward(self, source: Part, events: tuple[Event, ...]) -> None:
        """Pass a part's events on to the parts that consume them (alert delivery)."""
        with self._inbox_lock:
            for name, box in self._inbox.items():
                if name != source.name:
                    box.extend(events)
                    del box[:-INBOX_CAP]

    def _hurry(self, source: Part, urgent: bool, events: tuple[Event, ...]) -> None:
        """Run the consumers now (not up to disk_interval later) when a part reports a
        finding at WARNING or worse that its previous run did not (source, kind,
        subject): a new alert goes out within seconds, while a state that persists (a
        journal that stays unavailable) does not make the disk part run every
        journal_interval. A part's ``feeds`` run after its urgent outcome (transitions
        queued). The lanes coalesce: a part already queued is not queued again."""
        keys = {(e.source, str(e.kind), e.subject) for e in events if e.severity >= WARN}
        fresh = bool(keys - self._warned.get(source.name, set()))
        self._warned[source.name] = keys
        for part in self.parts:
            consumer = part.consumes and part.name != source.name and fresh
            if consumer or (urgent and part.name in source.feeds):
                self._due(part)

    # --- reload, watchdog, status -------------------------------------------------

    def _reload_config(self) -> None:
        self.notify("RELOADING=1")
        now = self.world.timestamp()
        try:
            config = load_config(self.config_path, dropins=self.dropins)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload: %s", problem)
            self.book.reload = {"at": now, "ok": False, "problems": list(exc.problems)[:50]}
            reason = (
                f"configuration invalid ({len(exc.problems)} problem(s)); still running on the "
                "configuration loaded before"
            )
            self._event(DaemonKind.RELOAD_FAILED, "config", Severity.ERROR, reason)
        else:
            self._apply(config, now)
        self._last_status = 0.0
        self.notify(f"READY=1\nSTATUS={self.book.one_line()}")

    def _apply(self, config: Config, now: float) -> None:
        try:
            ensure_state_dir(config.state_dir, self.world.euid)
        except StateDirUnsafe as exc:
            log.error("reload: unsafe state directory: %s", exc)
            self.book.reload = {"at": now, "ok": False, "problems": [str(exc)]}
            reason = "unsafe state directory; still running on the configuration loaded before"
            self._event(DaemonKind.RELOAD_FAILED, "config", Severity.ERROR, reason)
            return
        self.config = config
        sd.set_level(config.daemon.log_level)
        self.book.reload = {"at": now, "ok": True, "problems": []}
        self._book_config(now)
        self._schedule()
        self._event(DaemonKind.RELOADED, "config", Severity.INFO, self._started_text())

    def _book_config(self, now: float) -> None:
        self.book.config_sources = self.config.sources
        self.book.config_loaded_at = now
        self.book.report_every = self._report_every()
        for part in self.parts:
            if part.name in self.book.parts:
                self.book.parts[part.name].interval = part.interval(self.config)

    def _report_every(self) -> float:
        return float(max(1, min(p.interval(self.config) for p in self.parts)))

    def _watchdog(self) -> None:
        """WATCHDOG=1 while no part is hung: a hung part gets the daemon restarted."""
        period = sd.watchdog_period(self.environ, self.book.pid)
        if period is None or self._stuck():
            return
        now = time.monotonic()
        if now - self._last_ping >= period / 4:
            self.notify("WATCHDOG=1")
            self._last_ping = now

    def _stuck(self) -> bool:
        now = time.monotonic()
        for lane in self.lanes.values():
            current = lane.current
            if current is None:
                continue
            part, since = current
            limit = max(HUNG_AFTER_MIN, HUNG_INTERVALS * part.interval(self.config))
            if now - since > limit:
                if part.name not in self._hung:
                    self._hung.add(part.name)
                    reason = f"running for {now - since:.0f}s (limit {limit:.0f}s): hung"
                    self._event(DaemonKind.PART_HUNG, part.name, Severity.CRITICAL, reason)
                return True
        return False

    def _save_status(self, force: bool = False) -> None:
        now = time.monotonic()
        due = now - self._last_status >= min(self.book.report_every, 30.0)
        if not (force or (due and now - self._last_status >= STATUS_MIN_GAP)):
            return
        self._last_status = now
        self.book.hung = sorted(self._hung)
        document = status_document(self.config.state_dir)
        try:
            document.save(self.book.as_data(self.world.timestamp()))
        except OSError as exc:
            log.warning("cannot write %s: %s", document.path, exc)

    # --- signals and stop -----------------------------------------------------------

    def _install_signals(self) -> None:
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._reload = True
        self._wake.set()

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.world.stop.set()
        self._wake.set()

    def _shutdown(self) -> bool:
        self.notify("STOPPING=1\nSTATUS=stopping")
        self.book.state = "stopping"
        for lane in self.lanes.values():
            lane.wake()
        deadline = time.monotonic() + self.config.daemon.stop_timeout
        for lane in self.lanes.values():
            lane.thread.join(max(0.0, deadline - time.monotonic()))
        self._collect()
        busy = [lane.current[0].name for lane in self.lanes.values() if lane.current]
        for name in busy:
            reason = "still running at stop: abandoned (its intent records make this safe)"
            self._event(DaemonKind.ABANDONED, name, Severity.WARNING, reason)
        self.book.state = "stopped"
        self._save_status(force=True)
        return not busy

    # --- helpers -------------------------------------------------------------------

    def _make(self, kind: DaemonKind, subject: str, reason: str) -> Event:
        return Event(Source.DAEMON, kind, subject, Severity.ERROR, reason)

    def _event(self, kind: DaemonKind, subject: str, severity: Severity, reason: str) -> None:
        event = Event(Source.DAEMON, kind, subject, severity, reason, time=self.world.now())
        log_event(log, event)
        self._forward_daemon(event)

    def _forward_daemon(self, event: Event) -> None:
        with self._inbox_lock:
            for box in self._inbox.values():
                box.append(event)
                del box[:-INBOX_CAP]

    def _started_text(self) -> str:
        every = ", ".join(f"{p.name} every {p.interval(self.config)}s" for p in self.parts)
        sources = ", ".join(self.config.sources) or "the embedded default"
        return f"nodeguard {__version__} running on {sources}: {every}"
