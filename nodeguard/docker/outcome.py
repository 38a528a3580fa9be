"""What ``docker-config`` reports: its event kinds, options, result and exit codes."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from nodeguard.docker.dockerd import Verdict
from nodeguard.events import Event
from nodeguard.exitcodes import Exit


class Mode(enum.StrEnum):
    """What docker-config is asked to do."""

    CHECK = "check"
    DIFF = "diff"
    APPLY = "apply"


class DockerKind(enum.StrEnum):
    """Every outcome of docker-config (events of Source.DOCKER)."""

    MATCHES = "matches"  # --check: daemon.json has nodeguard's settings
    DIFFERS = "differs"  # --check: it has not (facts: changes)
    DIFF = "diff"  # --diff: the change as a unified diff (facts: diff, changes)
    NO_CHANGES = "no-changes"  # --diff: nothing to change
    UP_TO_DATE = "up-to-date"  # --apply: nothing to change, nothing written
    UPDATED = "updated"  # --apply: written (facts: changes, backup)
    RESTARTED = "restarted"
    RESTART_NEEDED = "restart-needed"  # written, Docker not restarted
    RESTART_FAILED = "restart-failed"
    UNUSABLE = "unusable"  # daemon.json (or dockerd's verdict) refuses the change
    NOT_MANAGED = "not-managed"  # docker.manage is false: --apply refused
    NO_VERDICT = "no-verdict"  # dockerd gave no answer: nothing written
    CHANGED_MEANWHILE = "changed-meanwhile"  # the file changed while read: nothing written
    WRITE_FAILED = "write-failed"
    CONTAINERS = "containers"  # summary of existing containers (facts: total, stale)
    CONTAINER_STALE = "container-stale"  # keeps its old LogConfig (facts: tag, state ...)
    CONTAINER_UNREADABLE = "container-unreadable"


# docker-config's documented exit codes. --check and --diff exit 1 when the file
# differs, as diff(1) does; that is the number of Exit.FAILED too, so the two are
# told apart by the result's events (DIFFERS/DIFF vs a failure kind), never by it.
EXIT_DIFFERS = Exit.FAILED
_EXITS: dict[str, Exit] = {
    DockerKind.DIFFERS: EXIT_DIFFERS,
    DockerKind.DIFF: EXIT_DIFFERS,
    DockerKind.UNUSABLE: Exit.USAGE,
    DockerKind.NOT_MANAGED: Exit.USAGE,
    DockerKind.NO_VERDICT: Exit.FAILED,
    DockerKind.CHANGED_MEANWHILE: Exit.FAILED,
    DockerKind.WRITE_FAILED: Exit.FAILED,
    DockerKind.RESTART_FAILED: Exit.FAILED,
}

Validator = Callable[[bytes], Verdict]


@dataclass(frozen=True)
class DockerOptions:
    """How to run docker-config; ``validator`` None asks this host's dockerd (if the
    config wants validation and one is installed)."""

    mode: Mode = Mode.CHECK
    restart: bool = False
    validator: Validator | None = None


@dataclass(frozen=True)
class DockerResult:
    """The events of one docker-config run, in the order they happened."""

    mode: Mode
    events: tuple[Event, ...]

    @property
    def exit(self) -> Exit:
        return exit_for(e.kind for e in self.events)

    def kinds(self) -> list[str]:
        return [str(e.kind) for e in self.events]


def exit_for(kinds: Iterable[enum.StrEnum]) -> Exit:
    """The exit code of a run with events of these kinds (the most serious wins)."""
    codes = [_EXITS.get(str(k), Exit.OK) for k in kinds]
    return max(codes, default=Exit.OK, key=_RANK.index)


_RANK = [Exit.OK, Exit.FAILED, Exit.USAGE, Exit.LOCKED]
