"""A journal follower in its own process, for the SIGKILL tests.

    python -m tests.journal.follower_proc CONFIG OUT NOW_US [--once]

Follows the journal of CONFIG (live, or ``--once``) with the clock fixed at NOW_US. The
sink "acts" on each Seq match by appending ``PID SEQ`` to OUT with one write(2) (O_APPEND),
so what a SIGKILL interrupts is visible byte for byte; each batch then pauses 2 ms so the
test's kills land in the middle of the stream.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from nodeguard.config import load_config
from nodeguard.events import Event
from nodeguard.journal.follow import follow_live, follow_once
from nodeguard.world import World
from tests.journal.seq import seqs


def main(argv: Sequence[str]) -> int:
    config = load_config(Path(argv[0]), dropins=False)
    fd = os.open(argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    now = datetime.fromtimestamp(int(argv[2]) / 1e6, UTC)
    world = World(clock=lambda: now, stop=threading.Event())
    pid = os.getpid()

    def sink(events: Sequence[Event]) -> None:
        numbers = seqs(events)
        if numbers:
            os.write(fd, "".join(f"{pid} {n}\n" for n in numbers).encode())
        time.sleep(0.002)

    if "--once" in argv:
        follow_once(config, world, sink=sink)
        return 0
    threading.Thread(target=_stop_when_done, args=(world, config), daemon=True).start()
    follow_live(config, world, sink)
    return 0


def _stop_when_done(world: World, config: object) -> None:
    time.sleep(60)  # a safety net: the test kills or finishes long before
    world.stop.set()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
