"""The size watch on real trees: stat only, the pass's rule, no retry storm on a refusal."""

from __future__ import annotations

import os
from pathlib import Path

from nodeguard.config import load_config
from nodeguard.daemon.parts import Context
from nodeguard.daemon.sizewatch import SizeWatch, crossings
from nodeguard.rotation.report import result_of
from nodeguard.world import World
from tests.conftest import numbered_lines, tree_digest
from tests.daemon.conftest import policy, write_config

BIG = numbered_lines("x", 0, 100)  # 6400 bytes


def test_crossings_are_regular_files_at_the_limit_each_counted_once(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "big.log").write_bytes(BIG)
    (logs / "exact.log").write_bytes(b"x" * 4096)  # >= max_size rotates, as the pass does
    (logs / "small.log").write_bytes(b"x" * 4095)
    (logs / "big.log.20240101-000000").write_bytes(BIG)  # rotated: not live
    os.symlink(logs / "big.log", logs / "link.log")  # never followed
    os.mkfifo(logs / "pipe.log")
    both = [policy(logs), {**policy(logs), "name": "again"}]
    config = load_config(write_config(tmp_path / "ng.yaml", tmp_path, policies=both), dropins=False)
    found = crossings(config)
    assert sorted((c.policy, c.path, c.size) for c in found) == [
        ("app", f"{logs}/big.log", 6400),
        ("app", f"{logs}/exact.log", 4096),
    ]


def test_the_watch_rotates_only_the_policy_that_crossed(tmp_path: Path) -> None:
    hot, cold = tmp_path / "hot", tmp_path / "cold"
    for d in (hot, cold):
        d.mkdir()
    (hot / "a.log").write_bytes(BIG)
    (cold / "b.log").write_bytes(b"small\n")
    (cold / "b.log.20240101-000000").write_bytes(b"1\n")
    (cold / "b.log.20240102-000000").write_bytes(b"2\n")
    (cold / "b.log.20240103-000000").write_bytes(b"3\n")  # beyond max_files: a pass removes it
    pols = [policy(hot, name="hot"), policy(cold, name="cold")]
    config = load_config(write_config(tmp_path / "ng.yaml", tmp_path, policies=pols), dropins=False)
    before = tree_digest(cold)
    outcome = SizeWatch().run(Context(config, World()))
    assert outcome.summary["over_limit"] == 1 and outcome.summary["rotated"] == 1
    assert outcome.summary["policies"] == ["hot"]
    assert (hot / "a.log").stat().st_size == 0
    assert tree_digest(cold) == before


def test_a_log_the_pass_refuses_is_not_retried_every_tick(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_bytes(BIG)
    os.link(logs / "a.log", tmp_path / "elsewhere")  # a hard link: the pass refuses it
    conf = write_config(tmp_path / "ng.yaml", tmp_path, policies=[policy(logs)])
    config = load_config(conf, dropins=False)
    watch = SizeWatch()
    first = watch.run(Context(config, World()))
    assert [result_of(e) for e in first.events if e.subject == f"{logs}/a.log"] == ["refused"]
    second = watch.run(Context(config, World()))
    assert second.events == () and second.summary == {"over_limit": 0}
    os.unlink(tmp_path / "elsewhere")
    os.truncate(logs / "a.log", 5000)  # it changed: the watch looks again
    third = watch.run(Context(config, World()))
    mine = [(e.kind, result_of(e)) for e in third.events if e.subject == f"{logs}/a.log"]
    assert mine == [("rotate", "done")]
