"""Names in ``nodeguard disk``'s text are shown escaped.

The top consumers of a filesystem's growth are named by path: the policies' log files,
in folders their users own, and pod log folders. A name holding a newline forged a line
of the report, an escape sequence reached the operator's terminal.
"""

from __future__ import annotations

from pathlib import Path

from nodeguard.disk.cycle import disk_cycle
from nodeguard.disk.render import render_text
from tests.disk.cfg import load
from tests.disk.fakes import GIB, Clock, Probe, fake_world

EVIL = "x\x1b[2J\nFORGED LINE\udcff.log"


def test_consumer_names_are_escaped_in_the_text_report(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    evil = Path(f"{logs}/{EVIL}")
    evil.write_bytes(b"")
    config = load(
        tmp_path,
        policies=[{"name": "app", "paths": [f"{logs}/*.log"], "max_size": "1Gi"}],
        disk={"consumers_interval": "1m"},
    )
    clock, probe = Clock(), Probe(free=30 * GIB)
    world = fake_world(clock, probe)
    for _ in range(3 * 12):  # 3h, one evaluation every 5 minutes, the file growing
        result = disk_cycle(config, world)
        with evil.open("ab") as handle:
            handle.write(b"y" * 100_000)
        clock.t += 300
        probe.free -= 200_000_000
    result = disk_cycle(config, world, dry_run=True)
    assert any(r.top for r in result.filesystems), "the log is a top consumer"

    text = render_text(result, chart=False)

    assert "x\\x1b[2J\\nFORGED LINE\\xff.log" in text
    assert "\x1b" not in text
    assert not any(line.startswith("FORGED") for line in text.splitlines())
    text.encode("utf-8")  # no lone surrogate left to fail a strict UTF-8 stdout
