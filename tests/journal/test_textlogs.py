"""Text logs on hosts without systemd: the same rules, followed by inode, offsets saved."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from nodeguard.journal.follow import follow_once
from nodeguard.journal.model import JournalKind, JournalResult
from nodeguard.journal.textlogs import TAIL_START, guess_priority
from tests.journal.conftest import Clock, Collected, journal_config, world_at
from tests.journal.samples import SAMPLES
from tests.journal.seq import assert_exactly_once, seq_journal_settings, seqs

NOW = Clock(1_764_460_800_000_000)


def _lines(start: int, count: int) -> bytes:
    return b"".join(
        b"I1130 08:00:00.000000    2211 x.go:1] seq=%07d\n" % i for i in range(start, start + count)
    )


def _config(tmp_path: Path, files: list[dict[str, str]], **extra: Any) -> Any:
    settings = seq_journal_settings(batch=100)
    settings.update(extra)
    settings["text_logs"] = {"read": "always", "files": files}
    return journal_config(tmp_path, None, kernel=False, **settings)


def _run(config: Any) -> JournalResult:
    """One follow; the result's events are every event the sink got (no result cap)."""
    sink = Collected()
    result = follow_once(config, world_at(NOW), sink=sink)
    return replace(result, events=tuple(sink.events))


def _kubelet_log(tmp_path: Path) -> tuple[Path, Any]:
    logs = tmp_path / "log"
    logs.mkdir()
    path = logs / "kubelet.log"
    return path, _config(tmp_path, [{"path": str(path), "unit": "kubelet.service"}])


def test_lines_are_followed_once_and_a_partial_line_waits(tmp_path: Path) -> None:
    path, config = _kubelet_log(tmp_path)
    path.write_bytes(_lines(0, 50) + b"I1130 08:00:00.000000    2211 x.go:1] seq=00000")

    first, second = _run(config), _run(config)
    with path.open("ab") as log:
        log.write(b"50\n" + _lines(51, 10))
    third = _run(config)

    assert seqs(first.events) == list(range(50))
    assert seqs(second.events) == []
    assert seqs(third.events) == list(range(50, 61))


def test_rotation_by_rename_reads_the_old_file_to_its_end_first(tmp_path: Path) -> None:
    path, config = _kubelet_log(tmp_path)
    path.write_bytes(_lines(0, 20))
    seen = seqs(_run(config).events)
    with path.open("ab") as log:  # written after the last run, before the rotation
        log.write(_lines(20, 5))
    path.rename(path.with_name("kubelet.log.1"))
    path.write_bytes(_lines(25, 10))
    seen += seqs(_run(config).events)

    assert_exactly_once(seen, range(35))


def test_copytruncate_restarts_at_zero_and_says_so(tmp_path: Path) -> None:
    path, config = _kubelet_log(tmp_path)
    path.write_bytes(_lines(0, 20))
    _run(config)
    with path.open("r+b") as log:
        log.truncate(0)
        log.write(_lines(20, 3))

    result = _run(config)

    assert seqs(result.events) == [20, 21, 22]
    (reset,) = [e for e in result.events if e.kind is JournalKind.TEXT_LOG_RESET]
    assert "truncated" in reset.reason


def test_rotated_file_gone_is_reported_as_a_gap(tmp_path: Path) -> None:
    path, config = _kubelet_log(tmp_path)
    path.write_bytes(_lines(0, 5))
    _run(config)
    path.unlink()
    path.write_bytes(_lines(5, 10))  # larger than the old offset: not taken for truncation

    result = _run(config)

    assert seqs(result.events) == list(range(5, 15))
    (gap,) = [e for e in result.events if e.kind is JournalKind.TEXT_LOG_RESET]
    assert "rotated away" in gap.reason or "replaced" in gap.reason  # inode number reused


def test_a_log_others_can_write_is_not_read(tmp_path: Path) -> None:
    path, config = _kubelet_log(tmp_path)
    path.write_bytes(_lines(0, 5))
    path.chmod(0o666)

    result = _run(config)

    assert seqs(result.events) == []
    (refused,) = [e for e in result.events if e.kind is JournalKind.TEXT_LOG_RESET]
    assert "writable by others" in refused.reason


def test_a_symlink_in_place_of_the_log_is_not_followed(tmp_path: Path) -> None:
    path, config = _kubelet_log(tmp_path)
    target = tmp_path / "elsewhere.log"
    target.write_bytes(_lines(0, 5))
    path.symlink_to(target)

    result = _run(config)

    assert seqs(result.events) == []
    assert any("cannot open" in e.reason for e in result.events)


def test_a_new_large_log_is_read_from_its_tail(tmp_path: Path) -> None:
    path, config = _kubelet_log(tmp_path)
    line = len(_lines(0, 1))
    total = 3 * TAIL_START // line
    path.write_bytes(_lines(0, total))

    seen = seqs(_run(config).events)

    assert seen[-1] == total - 1
    assert len(seen) == TAIL_START // line  # whole lines only


def test_builtin_rules_apply_to_text_logs_when_no_journal_exists(tmp_path: Path) -> None:
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "kubelet.log").write_text(
        "".join(s.message + "\n" for s in SAMPLES if s.source == "kubelet")
    )
    (logs / "containerd.log").write_text(
        "".join(s.message + "\n" for s in SAMPLES if s.source == "containerd")
    )
    config = journal_config(tmp_path, tmp_path / "no-journal-here")  # defaults: read auto

    default_files = config.journal.text_logs.files
    assert [str(f.path) for f in default_files] == [
        "/var/log/kubelet.log",
        "/var/log/containerd.log",
    ]
    config = journal_config(
        tmp_path,
        tmp_path / "no-journal-here",
        text_logs={
            "files": [
                {"path": str(logs / "kubelet.log"), "unit": "kubelet.service"},
                {"path": str(logs / "containerd.log"), "unit": "containerd.service"},
            ]
        },
    )
    result = _run(config)

    assert any(e.kind is JournalKind.UNAVAILABLE for e in result.events)
    expected: dict[str, int] = {}
    for sample in SAMPLES:
        if sample.source in ("kubelet", "containerd"):
            for rule in sample.rules:
                expected[rule] = expected.get(rule, 0) + 1
    assert dict(result.metrics.matches) == expected
    assert result.metrics.entries[("kubelet.service", "3")] >= 1  # priority from klog's E


def test_priority_is_read_from_klog_and_logrus_lines() -> None:
    assert guess_priority(b"E1130 08:00:00.000000    1 x.go:1] boom") == b"3"
    assert guess_priority(b'time="2025-11-30T00:00:00Z" level=warning msg="x"') == b"4"
    assert guess_priority(b"plain text") == b""
    assert os.sep == "/"


def test_a_log_a_group_other_than_roots_can_write_is_not_read(tmp_path: Path) -> None:
    """Every member of that group could forge kubelet lines (the rule of secret files:
    only root's group is trusted)."""
    import grp

    path, config = _kubelet_log(tmp_path)
    path.write_bytes(_lines(0, 5))
    os.chown(path, 0, grp.getgrnam("nogroup").gr_gid)
    path.chmod(0o664)

    result = _run(config)

    assert seqs(result.events) == []
    (refused,) = [e for e in result.events if e.kind is JournalKind.TEXT_LOG_RESET]
    assert "writable by group" in refused.reason
