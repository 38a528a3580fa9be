"""The size watch: between full passes, stat the policies' logs and rotate a burst at once.

Only names and ``lstat`` results (no file is opened), through the same symlink-proof
glob expansion the pass uses. A log at or over its policy's ``max_size`` (the pass's
own rule, :func:`~nodeguard.rotation.plan.rotate_reason`) triggers the rotation pass
for that policy alone. A log the pass did not rotate (refused, failed, covered by
logrotate) is not retried until it is replaced, shrinks, or the next full pass is due:
a file refused for a safety reason must not turn the watch into a pass every tick.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field

from nodeguard.config.model import Config, Policy
from nodeguard.daemon.parts import Context, Outcome
from nodeguard.events import Event
from nodeguard.rotation.report import RotationKind, result_of
from nodeguard.rotation.scan import ScanProblem


@dataclass(frozen=True)
class Crossing:
    """A live log at or over its policy's max_size."""

    policy: str
    path: str
    size: int
    identity: tuple[int, int]  # (st_dev, st_ino)


def crossings(config: Config) -> list[Crossing]:
    """Every live log over its limit, each file counted once (the first policy wins)."""
    seen: set[tuple[int, int]] = set()
    found: list[Crossing] = []
    for policy in config.policies:
        for crossing in _policy_crossings(policy):
            if crossing.identity not in seen:
                seen.add(crossing.identity)
                found.append(crossing)
    return found


def _policy_crossings(policy: Policy) -> list[Crossing]:
    from nodeguard.rotation import scan
    from nodeguard.rotation.plan import rotate_reason

    found: list[Crossing] = []
    for pattern in policy.paths:
        for match in scan.expand(pattern, _ignore):
            prefix = match.directory.path
            for name, st in match.files.items():
                if stat.S_ISREG(st.st_mode) and rotate_reason(policy, st.st_size, False):
                    ident = (st.st_dev, st.st_ino)
                    found.append(Crossing(policy.name, f"{prefix}/{name}", st.st_size, ident))
    return found


def _ignore(path: str, kind: ScanProblem, reason: str) -> None:
    """Problems while globbing are the full pass's to report, not the watch's."""


@dataclass
class SizeWatch:
    """The size-watch part; remembers logs the pass left over their limit."""

    left: dict[tuple[int, int], tuple[int, float]] = field(default_factory=dict)

    def run(self, ctx: Context) -> Outcome:
        from nodeguard.daemon.adapters import run_rotation
        from nodeguard.rotation.context import PassOptions

        now = ctx.world.timestamp()
        over = crossings(ctx.config)
        self.left = {c.identity: self.left[c.identity] for c in over if c.identity in self.left}
        found = [c for c in over if not self._waiting(c, ctx.config, now)]
        if not found:
            return Outcome(summary={"over_limit": 0})
        policies = tuple(dict.fromkeys(c.policy for c in found))
        outcome = run_rotation(ctx, PassOptions(dry_run=ctx.dry_run, policies=policies))
        rotated = {e.subject for e in outcome.events if _rotated(e)}
        for c in found:
            if c.path not in rotated:
                self.left[c.identity] = (c.size, now)
        summary = {**outcome.summary, "over_limit": len(found), "triggered_by": found[0].path}
        return Outcome(outcome.events, summary, outcome.text, outcome.data, outcome.exit)

    def _waiting(self, crossing: Crossing, config: Config, now: float) -> bool:
        """True while a log the pass left over its limit is unchanged and no pass is due."""
        left = self.left.get(crossing.identity)
        if left is None:
            return False
        size, since = left
        if crossing.size < size or now - since >= config.interval:
            del self.left[crossing.identity]
            return False
        return True


def _rotated(event: Event) -> bool:
    return event.kind == RotationKind.ROTATE and result_of(event) == "done"
