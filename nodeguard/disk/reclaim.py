"""Reclaim log space when a filesystem is critical: what logrotate, kubelet and journald lack.

While a critical space condition holds on a filesystem holding the policies' logs or
the journal, nodeguard acts at once, in this order, and stops after the step that
brings free space back to the target (the condition's threshold plus hysteresis):

1. ``rotate``: a pass over the policies on that filesystem: logs over max_size are
   rotated now, with their usual retention and compression.
2. ``compress``: the same pass with ``delay_compress`` off: rotated files kept
   uncompressed for shippers are compressed now.
3. ``remove``: the same pass keeping only ``disk.reclaim.keep_rotated`` rotated files
   per log (the minimum retention): the oldest go first.
4. ``vacuum_journal``: archived journal files down to ``journal.retention.floor``
   (the journal concern's ``vacuum_to_floor``), when the journal is on that filesystem.

Every file step is the rotation engine's own pass (its public ``run_pass``) on a
derived config, so reclaim inherits its guarantees: live logs are never removed,
nothing outside the policies is touched, every file is re-checked before acting.
The steps reach the engine through :class:`ReclaimHooks`, so the daemon or a test
can supply another implementation. Bytes freed are measured per step on the
filesystem itself (statvfs before and after). A rotated file the pass leaves plain
(a process still writes it: compressing it would lose its next lines) is counted and
named in the step's detail, so a critical disk that stays critical says why.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from nodeguard.config.model import Config, Policy
from nodeguard.disk.filesystems import Filesystem, holds, static_prefix
from nodeguard.events import Event, Severity
from nodeguard.world import DiskUsage, World

STEPS = ("rotate", "compress", "remove", "vacuum_journal")
VACUUM_TIMEOUT = 120.0


@dataclass(frozen=True)
class HookResult:
    """What one step did: files acted on, whether all went well, a short detail."""

    files: int
    ok: bool
    detail: str = ""
    deferred: bool = False  # could not run now (a rotation pass holds the lock)
    left_plain: int = 0  # rotated files not compressed: a process still writes them


@dataclass(frozen=True)
class StepOutcome:
    step: str
    bytes_freed: int
    files: int
    ok: bool
    detail: str
    deferred: bool = False
    left_plain: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "step": self.step,
            "bytes_freed": self.bytes_freed,
            "files": self.files,
            "ok": self.ok,
            "detail": self.detail,
            "left_plain": self.left_plain,
        }


@dataclass(frozen=True)
class ReclaimOutcome:
    """One reclaim on one filesystem."""

    mountpoint: str
    target: float  # the free ratio aimed at
    free_before: float
    free_after: float
    steps: tuple[StepOutcome, ...]
    at: float

    @property
    def reached(self) -> bool:
        return self.free_after >= self.target

    @property
    def bytes_freed(self) -> int:
        return sum(s.bytes_freed for s in self.steps)

    @property
    def deferred(self) -> bool:
        return any(s.deferred for s in self.steps)

    def to_json(self) -> dict[str, object]:
        return {
            "mountpoint": self.mountpoint,
            "target_free": self.target,
            "free_before": self.free_before,
            "free_after": self.free_after,
            "reached": self.reached,
            "bytes_freed": self.bytes_freed,
            "steps": [s.to_json() for s in self.steps],
            "at": self.at,
        }

    @property
    def left_plain(self) -> int:
        """Rotated files left uncompressed by the last step that looked at them."""
        return max((s.left_plain for s in self.steps), default=0)

    def shortfall(self) -> str:
        done = ", ".join(f"{s.step} freed {s.bytes_freed} bytes" for s in self.steps) or "no step"
        held = "The space is held by something other than the policies' rotated logs and the "
        held += "journal."
        plain = max(self.steps, key=lambda s: s.left_plain, default=None)
        if plain is not None and plain.left_plain:
            held = (  # the step's detail: "N files; M rotated files left plain: why"
                f"{plain.detail.split('; ', 1)[-1]} (compressed by a later pass once "
                "their writers reopen their logs); the rest is held by something other than "
                "the policies' rotated logs and the journal."
            )
        return (
            f"Reclaim ran ({done}) and left {self.free_after:.1%} free, below the "
            f"{self.target:.0%} aimed at. {held}"
        )


class ReclaimHooks(Protocol):
    """The four steps, as the rotation engine (or a stand-in) performs them."""

    def rotate_over_limit(self, policies: Sequence[Policy]) -> HookResult: ...

    def compress_pending(self, policies: Sequence[Policy]) -> HookResult: ...

    def remove_rotated(self, policies: Sequence[Policy], keep: int) -> HookResult: ...

    def vacuum_journal(self, floor: int) -> HookResult: ...


class RotationHooks:
    """The steps through the rotation engine's public pass, under the pass lock."""

    def __init__(self, config: Config, world: World) -> None:
        self.config = config
        self.world = world

    def rotate_over_limit(self, policies: Sequence[Policy]) -> HookResult:
        return self._pass(policies)

    def compress_pending(self, policies: Sequence[Policy]) -> HookResult:
        eager = [replace(p, delay_compress=False) for p in policies if p.compress == "gzip"]
        return self._pass(eager) if eager else HookResult(0, True, "no policy compresses")

    def remove_rotated(self, policies: Sequence[Policy], keep: int) -> HookResult:
        return self._pass([replace(p, max_files=min(p.max_files, keep + 1)) for p in policies])

    def vacuum_journal(self, floor: int) -> HookResult:
        try:  # the journal concern's own vacuum, where it is installed
            retention: Any = importlib.import_module("nodeguard.journal.retention")
        except ImportError:
            retention = None
        if retention is not None and hasattr(retention, "vacuum_to_floor"):
            done = retention.vacuum_to_floor(self.config, self.world)
            ok = not any(e.severity >= Severity.ERROR for e in done.events)
            return HookResult(len(done.removed), ok, f"{len(done.removed)} archived files")
        argv = ["journalctl", f"--vacuum-size={floor}"]
        if self.config.journal.directory is not None:
            argv += ["--directory", str(self.config.journal.directory)]
        result = self.world.run(argv, VACUUM_TIMEOUT)
        return HookResult(0, result.returncode == 0, result.output[-300:])

    def _pass(self, policies: Sequence[Policy]) -> HookResult:
        from nodeguard.rotation.context import PassOptions
        from nodeguard.rotation.report import result_of
        from nodeguard.rotation.runner import StateUnusable, run_rotation_pass
        from nodeguard.state import LockBusy

        if not policies:
            return HookResult(0, True, "no policy on this filesystem")
        config = replace(self.config, policies=tuple(policies))
        try:
            report = run_rotation_pass(config, PassOptions(), self.world)
        except LockBusy as exc:
            return HookResult(0, False, f"deferred: {exc}", deferred=True)
        except StateUnusable as exc:
            return HookResult(0, False, f"state folder unusable: {exc}")
        events = report.events
        acted = [e for e in events if result_of(e) == "done" and e.kind in _ACTIONS]
        bad = [e for e in events if result_of(e) in ("failed", "refused")]
        plain = [e for e in events if e.kind == "compress" and result_of(e) == "skipped"]
        detail = f"{len(acted)} files" + (f", {len(bad)} failed or refused" if bad else "")
        if plain:
            detail += "; " + left_plain_text(plain)
        return HookResult(len(acted), not bad, detail, left_plain=len(plain))


_ACTIONS = frozenset({"rotate", "compress", "remove"})
_WRITING = "open for writing by "


def left_plain_text(skipped: Sequence[Event]) -> str:
    """``2 rotated files left plain: still open for writing by pid 812 (myapp)``: the
    compressions a pass skipped, by why (a writer holds the file, or it changed while it
    was compressed), with the writers named (at most three)."""
    held = [e for e in skipped if _WRITING in e.reason]
    changed = len(skipped) - len(held)
    parts = []
    if held:
        parts.append(f"{_files(len(held))} left plain: still open for writing by {_who(held)}")
    if changed:
        parts.append(f"{_files(changed)} left plain: written to while being compressed")
    return "; ".join(parts)


def _files(count: int) -> str:
    return f"{count} rotated file{'s' if count != 1 else ''}"


def _who(events: Iterable[Event]) -> str:
    writers = dict.fromkeys(
        e.reason.split(_WRITING, 1)[1].split(";", 1)[0] for e in events if _WRITING in e.reason
    )
    names = list(writers)
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


def policies_on(fs: Filesystem, config: Config) -> list[Policy]:
    """The policies with a log folder on ``fs``."""
    return [p for p in config.policies if any(holds(fs, static_prefix(x)) for x in p.paths)]


def reclaim(
    fs: Filesystem,
    target: float,
    config: Config,
    world: World,
    hooks: ReclaimHooks,
) -> ReclaimOutcome:
    """Run the steps in order until free space reaches ``target`` (a ratio)."""
    policies = policies_on(fs, config)
    cfg = config.disk.reclaim
    steps: list[tuple[str, Callable[[], HookResult]]] = []
    if policies:
        steps += [
            ("rotate", lambda: hooks.rotate_over_limit(policies)),
            ("compress", lambda: hooks.compress_pending(policies)),
            ("remove", lambda: hooks.remove_rotated(policies, cfg.keep_rotated)),
        ]
    if "journal" in fs.roles:
        floor = config.journal.retention.floor
        steps.append(("vacuum_journal", lambda: hooks.vacuum_journal(floor)))
    usage = world.disk_usage(fs.probe)
    before = _ratio(usage)
    done: list[StepOutcome] = []
    for name, run in steps:
        if _ratio(usage) >= target:
            break
        result = run()
        after = world.disk_usage(fs.probe)
        freed = max(0, after.free - usage.free)
        done.append(
            StepOutcome(
                name,
                freed,
                result.files,
                result.ok,
                result.detail,
                result.deferred,
                result.left_plain,
            )
        )
        usage = after
        if result.deferred:
            break
    return ReclaimOutcome(
        fs.mountpoint, target, before, _ratio(usage), tuple(done), world.timestamp()
    )


def _ratio(usage: DiskUsage) -> float:
    return usage.free / usage.total if usage.total else 1.0
