"""The lossless primitive on real filesystems: ext4 (1 KiB and 4 KiB blocks), xfs, tmpfs.

Every test works on a loop-mounted image made by tests.fsimages, so the kernel's own
COLLAPSE_RANGE rules (alignment, errno, atomicity against O_APPEND writers) are what is
checked. Set NODEGUARD_LOSSLESS_ROUNDS to run the live-writer test longer.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.linemix import MIXES, Cuts, LineCount, make_line
from bench.linemix import WRITER as MIX_WRITER
from nodeguard.rotation.lossless import (
    CollapseUnsupported,
    Cut,
    LiveState,
    RecoveryConflict,
    aligned_line_end,
    check_collapse_supported,
    choose_cut,
    classify_live,
    collapse_prefix,
    fs_block_size,
    intent_record,
    lossless_move_prefix,
    recover_intent,
)
from nodeguard.rotation.sparse import hole_bytes
from nodeguard.state import IntentJournal
from tests.fsimages import (
    FsToolMissing,
    Mounted,
    ext4_image,
    fill,
    require_tool,
    tmpfs_mount,
    xfs_image,
)

ROUNDS = int(os.environ.get("NODEGUARD_LOSSLESS_ROUNDS", "60"))
# sparse images cost only what is written; a long run writes about 0.3 MB per rotation
IMAGE_MB = max(256, ROUNDS * 4)

WRITER = r"""
import os, random, signal, sys
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
rnd, n = random.Random(7), 0
while not stop:
    count = rnd.choice((1, 2, 3, 17, 40, 900))  # some writes span several blocks
    os.write(fd, b"".join(b"%d\n" % i for i in range(n, n + count)))
    n += count
print(n, flush=True)
"""

KINDS = ("ext4-1k", "ext4-4k", "xfs")
EXPECTED_UNIT = {"ext4-1k": 1024, "ext4-4k": 4096, "xfs": 4096}  # what mkfs was asked for


@pytest.fixture(scope="module", params=KINDS)
def fs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mounted]:
    workdir = tmp_path_factory.mktemp(request.param)
    if request.param == "xfs":
        maker = xfs_image(workdir, size_mb=IMAGE_MB)
    else:
        block_size = EXPECTED_UNIT[request.param]
        maker = ext4_image(workdir, size_mb=IMAGE_MB, block_size=block_size)
    with maker as mounted:
        yield mounted


@pytest.fixture(scope="module")
def tmpfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with tmpfs_mount(tmp_path_factory.mktemp("tmpfs")) as mounted:
        yield mounted


@pytest.fixture
def workdir(fs: Mounted, request: pytest.FixtureRequest) -> Path:
    path = fs.path / str(request.node.name).replace("[", "_").replace("]", "")
    path.mkdir()
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_file(path: Path, data: bytes) -> int:
    path.write_bytes(data)
    return os.open(path, os.O_RDWR | os.O_APPEND)


def new_dst(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)


def collect(records: list[dict[str, Any]], **paths: str) -> Callable[[dict[str, Any]], str]:
    """A journal callback that keeps each record (with ``paths`` added) in memory."""

    def begin(facts: dict[str, Any]) -> str:
        records.append(intent_record(facts, **paths) if paths else facts)
        return str(len(records))

    return begin


def numbered(count: int) -> bytes:
    return b"".join(b"line %06d\n" % i for i in range(count))


def test_block_size_is_the_collapse_unit_on_ext4_and_xfs(
    fs: Mounted, workdir: Path, request: pytest.FixtureRequest
) -> None:
    data = numbered(3000)
    fd = make_file(workdir / "a.log", data)
    try:
        unit = fs_block_size(fd)
        assert unit == EXPECTED_UNIT[request.node.callspec.params["fs"]]
        with pytest.raises(OSError) as half:
            collapse_prefix(fd, unit // 2)
        assert half.value.errno == errno.EINVAL
        assert (workdir / "a.log").read_bytes() == data
        collapse_prefix(fd, unit)
        assert (workdir / "a.log").read_bytes() == data[unit:]
    finally:
        os.close(fd)


def test_collapse_cannot_reach_end_of_file(fs: Mounted, workdir: Path) -> None:
    data = b"x" * (3 * fs.block_size)
    fd = make_file(workdir / "a.log", data)
    try:
        with pytest.raises(OSError) as whole:
            collapse_prefix(fd, len(data))
        assert whole.value.errno == errno.EINVAL
        assert not isinstance(whole.value, CollapseUnsupported)
        assert (workdir / "a.log").read_bytes() == data
    finally:
        os.close(fd)


def _refusal(fs: Mounted, path: Path, case: str) -> int:
    """Try one collapse the kernel must refuse; return its errno."""
    if case == "append-only inode":
        subprocess.run([require_tool("chattr", "e2fsprogs"), "+a", str(path)], check=True)
    fd = os.open(path, os.O_RDONLY if case == "read-only fd" else os.O_RDWR | os.O_APPEND)
    try:
        collapse_prefix(fd, 0 if case == "zero length" else fs.block_size)
    except OSError as exc:
        return exc.errno or 0
    finally:
        os.close(fd)
        if case == "append-only inode":
            subprocess.run([require_tool("chattr", "e2fsprogs"), "-a", str(path)], check=True)
    return 0


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("read-only fd", errno.EBADF),
        ("zero length", errno.EINVAL),
        ("append-only inode", errno.EPERM),
    ],
)
def test_refused_collapse_leaves_the_file_unchanged(
    fs: Mounted, workdir: Path, case: str, expected: int
) -> None:
    data = numbered(5000)
    (workdir / "a.log").write_bytes(data)
    assert _refusal(fs, workdir / "a.log", case) == expected
    assert (workdir / "a.log").read_bytes() == data


def lines64(size: int) -> bytes:
    """``size`` bytes of 64-byte lines: every block boundary falls after a newline."""
    return b"".join(b"line %058d\n" % i for i in range(size // 64 + 1))[:size]


@pytest.mark.parametrize("extra", [1, 700])
def test_move_keeps_the_last_partial_block_live(fs: Mounted, workdir: Path, extra: int) -> None:
    bs = fs.block_size
    data = lines64(5 * bs + extra)
    src = make_file(workdir / "a.log", data)
    dst = new_dst(workdir / "a.log.1")
    try:
        moved = lossless_move_prefix(src, dst)
    finally:
        os.close(src)
        os.close(dst)
    assert moved == 5 * bs
    assert (workdir / "a.log.1").read_bytes() == data[:moved]
    assert (workdir / "a.log").read_bytes() == data[moved:]


def test_exact_multiple_of_the_block_keeps_one_whole_block(fs: Mounted, workdir: Path) -> None:
    bs = fs.block_size
    data = numbered(4 * bs // 12 + 1)[: 4 * bs]
    src = make_file(workdir / "a.log", data)
    dst = new_dst(workdir / "a.log.1")
    try:
        moved = lossless_move_prefix(src, dst)
    finally:
        os.close(src)
        os.close(dst)
    assert moved == 3 * bs
    assert (workdir / "a.log.1").read_bytes() + (workdir / "a.log").read_bytes() == data


def _move(path: Path, data: bytes) -> tuple[int, list[str]]:
    """Write ``data`` to ``path``, move its prefix to ``path.1``; (moved, split reasons)."""
    src = make_file(path, data)
    dst = new_dst(path.with_name(path.name + ".1"))
    splits: list[str] = []
    try:
        moved = lossless_move_prefix(src, dst, on_split=splits.append)
    finally:
        os.close(src)
        os.close(dst)
    assert path.with_name(path.name + ".1").read_bytes() + path.read_bytes() == data
    return moved, splits


def _with_newlines(size: int, at: list[int]) -> bytes:
    data = bytearray(b"x" * size)
    for offset in at:
        data[offset] = 0x0A
    return bytes(data)


def test_cut_falls_after_the_last_newline_that_ends_a_block(fs: Mounted, workdir: Path) -> None:
    bs = fs.block_size
    # newlines: ending block 2 (aligned), inside block 4, and the last byte (not movable)
    data = _with_newlines(5 * bs + 10, [2 * bs - 1, 3 * bs + 100, 5 * bs + 9])
    moved, splits = _move(workdir / "a.log", data)
    assert (moved, splits) == (2 * bs, [])
    assert (workdir / "a.log.1").read_bytes().endswith(b"\n")


def test_without_a_newline_at_any_block_end_the_split_is_reported(
    fs: Mounted, workdir: Path
) -> None:
    bs = fs.block_size
    data = _with_newlines(5 * bs + 10, [bs - 2, 3 * bs + 100, 5 * bs + 9])
    moved, splits = _move(workdir / "a.log", data)
    assert moved == 5 * bs
    (reason,) = splits
    assert f"no line ends at a {bs}-byte block boundary in the first {5 * bs} bytes" in reason
    assert "ends mid-line" in reason


def test_line_end_search_reaches_the_start_of_a_large_file(fs: Mounted, workdir: Path) -> None:
    bs = fs.block_size
    size = (6 << 20) + 7  # several read steps of the backward search
    src = make_file(workdir / "a.log", _with_newlines(size, [bs - 1]))
    try:
        assert aligned_line_end(src, size - 1, bs) == bs
        assert choose_cut(src, size, bs) == Cut(bs)
        assert aligned_line_end(src, bs - 1, bs) == 0
    finally:
        os.close(src)


@pytest.mark.parametrize("size_in_blocks", [0.0, 0.5, 1.0])
def test_file_of_at_most_one_block_is_left_alone(
    fs: Mounted, workdir: Path, size_in_blocks: float
) -> None:
    data = b"y" * int(size_in_blocks * fs.block_size)
    src = make_file(workdir / "a.log", data)
    dst = new_dst(workdir / "a.log.1")
    journaled: list[dict[str, Any]] = []
    try:
        moved = lossless_move_prefix(src, dst, journal=collect(journaled))
    finally:
        os.close(src)
        os.close(dst)
    assert (moved, journaled) == (0, [])
    assert (workdir / "a.log").read_bytes() == data
    assert (workdir / "a.log.1").stat().st_size == 0


def test_tmpfs_is_reported_unsupported_and_nothing_changes(tmpfs: Mounted) -> None:
    data = numbered(5000)
    src = make_file(tmpfs.path / "a.log", data)
    dst = new_dst(tmpfs.path / "a.log.1")
    journaled: list[dict[str, Any]] = []
    try:
        with pytest.raises(CollapseUnsupported) as caught:
            lossless_move_prefix(src, dst, journal=collect(journaled))
        with pytest.raises(CollapseUnsupported):
            collapse_prefix(src, 4096)
    finally:
        os.close(src)
        os.close(dst)
    assert caught.value.errno == errno.EOPNOTSUPP
    assert journaled == []
    assert sha((tmpfs.path / "a.log").read_bytes()) == sha(data)
    assert (tmpfs.path / "a.log.1").stat().st_size == 0


def test_ext4_without_extents_is_reported_unsupported(tmp_path: Path) -> None:
    with ext4_image(tmp_path, size_mb=32, options=["-O", "^extent,^64bit"]) as noext:
        data = numbered(5000)
        fd = make_file(noext.path / "a.log", data)
        try:
            with pytest.raises(CollapseUnsupported) as caught:
                check_collapse_supported(fd)
        finally:
            os.close(fd)
        assert caught.value.errno == errno.EOPNOTSUPP
        assert (noext.path / "a.log").read_bytes() == data


def test_bigalloc_cluster_alignment_is_found_and_refusals_end_their_intent(
    tmp_path: Path,
) -> None:
    options = ["-O", "bigalloc", "-C", "16384"]
    with ext4_image(tmp_path, size_mb=64, block_size=4096, options=options) as big:
        journal = IntentJournal(big.path / "intents")
        data = numbered(9000)  # 108000 bytes: six whole 16 KiB clusters
        src = make_file(big.path / "a.log", data)
        dst = new_dst(big.path / "a.log.1")
        try:
            moved = lossless_move_prefix(src, dst, journal=journal.begin, done=journal.end)
        finally:
            os.close(src)
            os.close(dst)
        assert moved == 6 * 16384
        assert (big.path / "a.log.1").read_bytes() == data[:moved]
        assert (big.path / "a.log").read_bytes() == data[moved:]
        pending = [record for _, record in journal.pending()]
        assert len(pending) == 1  # the refused 4 KiB and 8 KiB attempts were ended
        assert pending[0] is not None and pending[0]["length"] == moved


def test_enospc_while_copying_raises_before_the_journal_and_keeps_the_log(tmp_path: Path) -> None:
    with ext4_image(tmp_path, size_mb=32) as small:
        data = numbered(200_000)  # 2.4 MB
        src = make_file(small.path / "a.log", data)
        filler = fill(small, leave_bytes=256 << 10)
        dst = new_dst(small.path / "a.log.1")
        journaled: list[dict[str, Any]] = []
        try:
            with pytest.raises(OSError) as caught:
                lossless_move_prefix(src, dst, journal=collect(journaled))
        finally:
            os.close(src)
            os.close(dst)
        assert caught.value.errno == errno.ENOSPC
        assert journaled == []
        assert sha((small.path / "a.log").read_bytes()) == sha(data)
        filler.unlink()


def test_holes_in_the_prefix_stay_holes_in_the_rotated_copy(fs: Mounted, workdir: Path) -> None:
    path = workdir / "a.log"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, numbered(10_000), 4 << 20)  # 4 MiB hole, then text
    dst = new_dst(workdir / "a.log.1")
    expected = path.read_bytes()
    try:
        moved = lossless_move_prefix(fd, dst)
        assert hole_bytes(dst) >= 4 << 20
    finally:
        os.close(fd)
        os.close(dst)
    assert (workdir / "a.log.1").read_bytes() + path.read_bytes() == expected
    assert moved > 4 << 20


@pytest.mark.parametrize(
    "flags",
    [os.O_WRONLY | os.O_CREAT, os.O_RDWR | os.O_CREAT | os.O_APPEND],
    ids=["wronly", "append"],
)
def test_destination_must_be_empty_readable_and_not_append(
    fs: Mounted, workdir: Path, flags: int
) -> None:
    data = numbered(5000)
    src = make_file(workdir / "a.log", data)
    bad = os.open(workdir / "bad", flags, 0o600)
    full = os.open(workdir / "full", os.O_RDWR | os.O_CREAT, 0o600)
    os.write(full, b"old")
    try:
        for dst in (bad, full):
            with pytest.raises(ValueError, match="destination"):
                lossless_move_prefix(src, dst)
    finally:
        for fd in (src, bad, full):
            os.close(fd)
    assert (workdir / "a.log").read_bytes() == data
    assert (workdir / "full").read_bytes() == b"old"


def recorder(journal: IntentJournal, ids: list[str]) -> Callable[[dict[str, Any]], str]:
    """A journal callback that also remembers the ids it handed out."""

    def begin(facts: dict[str, Any]) -> str:
        ids.append(journal.begin(facts))
        return ids[-1]

    return begin


def _start_writer(live: Path) -> subprocess.Popen[bytes]:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(live)], stdout=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not live.exists() or live.stat().st_size < 64 << 10:
        if writer.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"writer did not start (exit {writer.returncode})")
        time.sleep(0.005)
    return writer


def _stop_writer(writer: subprocess.Popen[bytes]) -> int:
    writer.send_signal(signal.SIGTERM)
    out, _ = writer.communicate(timeout=30)
    if writer.returncode != 0:
        raise RuntimeError(f"writer failed with exit {writer.returncode}")
    return int(out)


@dataclass
class Sequence:
    """Checks that chunks fed in order hold the lines 0, 1, 2, ... exactly once each."""

    next: int = 0
    carry: bytes = b""

    def feed(self, data: bytes) -> None:
        text = self.carry + data
        cut = text.rfind(b"\n") + 1
        whole, self.carry = text[:cut], text[cut:]
        count = whole.count(b"\n")
        expected = b"".join(b"%d\n" % i for i in range(self.next, self.next + count))
        if whole != expected:
            at = next(i for i, (a, b) in enumerate(zip(whole, expected, strict=False)) if a != b)
            raise AssertionError(f"after line {self.next}: {whole[at - 40 : at + 40]!r}")
        self.next += count


def _rotate_many(
    live: Path, rounds: int, writer: subprocess.Popen[bytes], on_rotated: Callable[[Path], None]
) -> None:
    """Move prefixes out ``rounds`` times, each into a fresh rotated file, as the engine does."""
    journal = IntentJournal(live.parent / "intents")
    ids: list[str] = []
    src = os.open(live, os.O_RDWR | os.O_APPEND)
    try:
        for n in range(rounds):
            final = live.parent / f"a.log.{n:05d}"
            temp = live.parent / f".{final.name}.nodeguard-tmp"
            moved = 0
            while not moved:
                if writer.poll() is not None:
                    raise RuntimeError(f"writer died (exit {writer.returncode})")
                dst = new_dst(temp)
                try:
                    moved = lossless_move_prefix(src, dst, journal=recorder(journal, ids))
                finally:
                    os.close(dst)
                if not moved:
                    temp.unlink()
            os.rename(temp, final)
            journal.end(ids[-1])
            on_rotated(final)
    finally:
        os.close(src)


def test_concurrent_append_writer_loses_and_duplicates_nothing(fs: Mounted, workdir: Path) -> None:
    live, rotated = workdir / "a.log", list[Path]()
    writer = _start_writer(live)
    try:
        _rotate_many(live, ROUNDS, writer, rotated.append)
    finally:
        written = _stop_writer(writer)
    # checked once the writer has stopped: checking as fast as it writes would need its core
    seen = Sequence()
    for path in rotated:  # in rotation order, then the live file: every line once, in order
        data = path.read_bytes()
        assert data and len(data) % fs.block_size == 0
        seen.feed(data)
        path.unlink()
    seen.feed(live.read_bytes())
    assert (seen.next, seen.carry) == (written, b"")
    assert len(rotated) == ROUNDS
    assert IntentJournal(workdir / "intents").pending() == []
    assert not [p for p in workdir.iterdir() if p.name.endswith(".nodeguard-tmp")]


# --- whole lines under a live writer, for several line-length mixes ------------------------

REPO = Path(__file__).resolve().parents[2]
MIX_ROUNDS = int(os.environ.get("NODEGUARD_LOSSLESS_MIX_ROUNDS", "12"))
# a move waits for this much: fixed 75-byte lines reach a block end by 300 KiB on 4 KiB
# blocks; the longer mixes often have none in 1 MiB (docs/lossless.md has the odds)
MIX_MIN_SIZE = {"fixed75": 320 << 10, "mixed30-300": 1 << 20, "cri16k": 4 << 20}


def _start_mix_writer(live: Path, mix_name: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", MIX_WRITER, str(REPO), str(live), mix_name, str(24 << 20)]
    writer = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    if writer.stdout is None or writer.stdout.readline().strip() != "ready":
        writer.kill()
        raise RuntimeError(f"the {mix_name} writer did not start")
    return writer


def _wait_for_size(live: Path, size: int, writer: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while live.stat().st_size <= size:
        if writer.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"writer stalled (exit {writer.returncode})")
        time.sleep(0.002)


def _move_whole_lines(live: Path, final: Path) -> tuple[int, list[str]]:
    temp = final.with_name(f".{final.name}.nodeguard-tmp")
    src, dst = os.open(live, os.O_RDWR | os.O_APPEND), new_dst(temp)
    splits: list[str] = []
    try:
        moved = lossless_move_prefix(src, dst, on_split=splits.append)
    finally:
        os.close(src)
        os.close(dst)
    temp.rename(final)
    return moved, splits


@pytest.mark.parametrize("mix_name", MIXES)
def test_cuts_fall_between_lines_whenever_a_block_end_allows(
    fs: Mounted, workdir: Path, mix_name: str
) -> None:
    live, cuts = workdir / "a.log", Cuts()
    feed: list[bytes] = []
    writer = _start_mix_writer(live, mix_name)
    try:
        for n in range(MIX_ROUNDS):
            _wait_for_size(live, MIX_MIN_SIZE[mix_name], writer)
            final = workdir / f"a.log.{n:04d}"
            moved, splits = _move_whole_lines(live, final)
            data = final.read_bytes()
            assert moved == len(data) > 0 and moved % fs.block_size == 0
            assert bool(splits) == (not data.endswith(b"\n"))  # every split is reported
            cuts = cuts.add(data, fs.block_size)
            feed.append(data)
            final.unlink()  # the image holds what is being written, not every rotation
    finally:
        written = int(_stop_writer_text(writer))
    count = LineCount(mix_name, written)
    for data in [*feed, live.read_bytes()]:
        count.feed(data)
    assert count.finish() == (0, 0, 0)  # lost, duplicated, garbled
    assert cuts.rotated == MIX_ROUNDS
    assert cuts.avoidable == 0  # a split only where no block end followed a newline
    if mix_name == "fixed75":
        assert cuts.mid_line == 0
    assert make_line(mix_name, written - 1) in live.read_bytes()


def _stop_writer_text(writer: subprocess.Popen[str]) -> str:
    writer.send_signal(signal.SIGTERM)
    out, _ = writer.communicate(timeout=30)
    if writer.returncode != 0:
        raise RuntimeError(f"writer failed with exit {writer.returncode}")
    return out.strip()


# --- crash safety: each state built by real steps, then recover_intent --------------------

CHILD = r"""
import os, signal, sys
from pathlib import Path
from nodeguard.fsutil import rename_noreplace
from nodeguard.rotation.lossless import intent_record, lossless_move_prefix
from nodeguard.state import IntentJournal

live, temp, final, intents, point = sys.argv[1:]
journal = IntentJournal(Path(intents))

def die(at):
    if at == point:
        os.kill(os.getpid(), signal.SIGKILL)

def begin(facts):
    die("after-copy")
    intent = journal.begin(intent_record(facts, live=live, temp=temp, final=final))
    die("after-journal")
    return intent

src = os.open(live, os.O_RDWR | os.O_APPEND)
dst = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
moved = lossless_move_prefix(src, dst, journal=begin, done=journal.end)
die("after-collapse")
d = os.open(os.path.dirname(final), os.O_RDONLY | os.O_DIRECTORY)
rename_noreplace(d, os.path.basename(temp), d, os.path.basename(final))
os.fsync(d)
die("after-rename")
sys.exit(3)  # never reached: every test names a kill point
"""

KILL_POINTS = {
    "after-copy": None,  # no intent yet: the temp copy is debris the pass sweeps away
    "after-journal": "undone",
    "after-collapse": "completed",
    "after-rename": "completed",
}


def _killed_child(live: Path, point: str) -> tuple[Path, Path, IntentJournal]:
    final = live.with_name("a.log.20250101-000000")
    temp = live.with_name(f".{final.name}.nodeguard-tmp")
    journal = IntentJournal(live.parent / "intents")
    argv = [sys.executable, "-c", CHILD, str(live), str(temp), str(final), str(journal.directory)]
    child = subprocess.run([*argv, point], capture_output=True, text=True, timeout=60, check=False)
    if child.returncode != -signal.SIGKILL:
        raise RuntimeError(f"child exit {child.returncode}: {child.stderr}")
    return temp, final, journal


def _recover_all(journal: IntentJournal) -> list[str]:
    done = []
    for intent_id, record in journal.pending():
        assert record is not None
        done.append(recover_intent(record))
        journal.end(intent_id)
    return done


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_at_each_step_then_recovery_loses_and_duplicates_nothing(
    fs: Mounted, workdir: Path, point: str
) -> None:
    live = workdir / "a.log"
    writer = _start_writer(live)
    try:
        temp, final, journal = _killed_child(live, point)
        if point == "after-copy":
            assert journal.pending() == []
            prefix = temp.read_bytes()
            assert live.read_bytes()[: len(prefix)] == prefix  # so deleting it loses nothing
            temp.unlink()
        outcomes = _recover_all(journal)
    finally:
        written = _stop_writer(writer)
    expected = KILL_POINTS[point]
    assert [o.split(":")[0] for o in outcomes] == ([expected] if expected else [])
    assert not temp.exists()
    assert final.exists() == (expected == "completed")
    joined = (final.read_bytes() if final.exists() else b"") + live.read_bytes()
    assert [int(x) for x in joined.split(b"\n")[:-1]] == list(range(written))
    assert journal.pending() == []


class SimulatedCrash(Exception):
    """Stands for a SIGKILL inside this process, so the test can inspect the state."""


def _journal_then_crash(records: list[dict[str, Any]], **paths: str) -> Callable[..., str]:
    def begin(facts: dict[str, Any]) -> str:
        records.append(intent_record(facts, **paths))
        raise SimulatedCrash

    return begin


def _periodic_paths(workdir: Path) -> tuple[Path, Path, Path, bytes]:
    live, temp, final = workdir / "a.log", workdir / ".a.log.1.nodeguard-tmp", workdir / "a.log.1"
    line = b"heartbeat ok " + b"." * 50 + b"\n"  # 64 bytes: every block looks the same
    return live, temp, final, line * 1000


def _paths(live: Path, temp: Path, final: Path) -> dict[str, str]:
    return {"live": str(live), "temp": str(temp), "final": str(final)}


def test_periodic_content_before_the_collapse_is_undone_by_the_extent_map(
    fs: Mounted, workdir: Path
) -> None:
    live, temp, final, data = _periodic_paths(workdir)
    src, dst = make_file(live, data), new_dst(temp)
    records: list[dict[str, Any]] = []
    try:
        with pytest.raises(SimulatedCrash):
            lossless_move_prefix(
                src, dst, journal=_journal_then_crash(records, **_paths(live, temp, final))
            )
    finally:
        os.close(src)
        os.close(dst)
    assert classify_live_path(live, records[0]).verdict == "intact"
    outcome = recover_intent(records[0])
    assert outcome.startswith("undone") and "extent map" in outcome
    assert (live.read_bytes(), temp.exists(), final.exists()) == (data, False, False)


def test_periodic_content_after_the_collapse_is_completed_by_the_extent_map(
    fs: Mounted, workdir: Path
) -> None:
    live, temp, final, data = _periodic_paths(workdir)
    src, dst = make_file(live, data), new_dst(temp)
    records: list[dict[str, Any]] = []
    try:
        moved = lossless_move_prefix(
            src,
            dst,
            journal=collect(records, **_paths(live, temp, final)),
        )
        os.write(src, data)  # the writer goes on: both layouts now match the content
    finally:
        os.close(src)
        os.close(dst)
    outcome = recover_intent(records[0])
    assert outcome.startswith("completed") and "extent map" in outcome
    assert not temp.exists()
    assert final.read_bytes() + live.read_bytes() == data + data
    assert final.stat().st_size == moved


def classify_live_path(live: Path, record: dict[str, Any]) -> LiveState:
    fd = os.open(live, os.O_RDONLY)
    try:
        return classify_live(fd, record)
    finally:
        os.close(fd)


def _collapsed_but_not_renamed(
    workdir: Path, data: bytes
) -> tuple[dict[str, Any], Path, Path, Path]:
    """Run the real steps up to the rename (the "after-collapse" state); return the record."""
    live, temp, final = workdir / "a.log", workdir / ".a.log.1.nodeguard-tmp", workdir / "a.log.1"
    src, dst = make_file(live, data), new_dst(temp)
    records: list[dict[str, Any]] = []
    try:
        lossless_move_prefix(
            src,
            dst,
            journal=collect(records, **_paths(live, temp, final)),
        )
    finally:
        os.close(src)
        os.close(dst)
    return records[0], live, temp, final


def test_replaced_live_file_keeps_the_moved_prefix_as_the_rotated_file(
    fs: Mounted, workdir: Path
) -> None:
    data = numbered(20_000)
    record, live, temp, final = _collapsed_but_not_renamed(workdir, data)
    tail = live.read_bytes()
    live.unlink()
    live.write_bytes(b"a new file under the old name\n")
    outcome = recover_intent(record)
    assert outcome.startswith("kept") and "replaced" in outcome
    assert final.read_bytes() + tail == data
    assert not temp.exists()
    assert live.read_bytes() == b"a new file under the old name\n"


def test_changed_temp_copy_is_a_conflict_and_nothing_is_touched(fs: Mounted, workdir: Path) -> None:
    record, _live, temp, final = _collapsed_but_not_renamed(workdir, numbered(20_000))
    with open(temp, "r+b") as handle:
        handle.write(b"X")
    before = {p.name: sha(p.read_bytes()) for p in workdir.iterdir() if p.is_file()}
    with pytest.raises(RecoveryConflict, match="not the recorded prefix"):
        recover_intent(record)
    assert {p.name: sha(p.read_bytes()) for p in workdir.iterdir() if p.is_file()} == before
    assert not final.exists()


def test_final_name_taken_by_another_file_is_a_conflict(fs: Mounted, workdir: Path) -> None:
    record, _live, temp, final = _collapsed_but_not_renamed(workdir, numbered(20_000))
    final.write_bytes(b"somebody else's file\n")
    prefix = temp.read_bytes()
    with pytest.raises(RecoveryConflict, match="another file"):
        recover_intent(record)
    assert temp.read_bytes() == prefix
    assert final.read_bytes() == b"somebody else's file\n"


def test_temp_and_final_naming_one_file_drops_the_temp_name(fs: Mounted, workdir: Path) -> None:
    data = numbered(20_000)
    record, live, temp, final = _collapsed_but_not_renamed(workdir, data)
    os.link(temp, final)
    outcome = recover_intent(record)
    assert outcome.startswith("completed")
    assert not temp.exists()
    assert final.read_bytes() + live.read_bytes() == data


def test_unreadable_live_file_is_unknown_and_the_prefix_is_kept(fs: Mounted, workdir: Path) -> None:
    data = numbered(20_000)
    record, live, _temp, final = _collapsed_but_not_renamed(workdir, data)
    tail = live.read_bytes()
    live.rename(workdir / "moved-away.log")
    live.symlink_to(workdir / "moved-away.log")  # O_NOFOLLOW must refuse it
    outcome = recover_intent(record)
    assert outcome.startswith("kept")
    assert final.read_bytes() + tail == data
    assert (workdir / "moved-away.log").read_bytes() == tail


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "rename"}, "not a lossless-collapse"),
        ({"temp": "relative/name"}, "absolute"),
        ({"final": "/"}, "absolute"),
    ],
)
def test_malformed_record_is_rejected_before_anything_is_touched(
    fs: Mounted, workdir: Path, change: dict[str, str], message: str
) -> None:
    record, _live, _temp, _final = _collapsed_but_not_renamed(workdir, numbered(20_000))
    before = {p.name: sha(p.read_bytes()) for p in workdir.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match=message):
        recover_intent({**record, **change})
    missing = {k: v for k, v in record.items() if k != "prefix_sha256"}
    with pytest.raises(ValueError, match="prefix_sha256"):
        recover_intent(missing)
    assert {p.name: sha(p.read_bytes()) for p in workdir.iterdir() if p.is_file()} == before


# --- tests.fsimages itself: loud failures and no leftovers ---------------------------------


def _attached(image: Path) -> bool:
    listing = subprocess.run(
        ["losetup", "-l", "-n", "-O", "BACK-FILE"], capture_output=True, text=True, check=True
    )
    return any(line.strip().startswith(str(image)) for line in listing.stdout.splitlines())


def test_fsimages_unmounts_and_detaches_when_the_test_body_fails(tmp_path: Path) -> None:
    seen: list[Mounted] = []
    with pytest.raises(RuntimeError, match="test body failed"), ext4_image(tmp_path) as mounted:
        seen.append(mounted)
        (mounted.path / "a.log").write_bytes(b"x")
        assert os.path.ismount(mounted.path) and mounted.image is not None
        assert _attached(mounted.image)
        raise RuntimeError("test body failed")
    assert not os.path.ismount(seen[0].path)
    assert seen[0].image is not None and not seen[0].image.exists()
    assert not _attached(seen[0].image)


def test_fsimages_missing_tool_is_an_error_naming_the_package(tmp_path: Path) -> None:
    with pytest.raises(FsToolMissing, match="apt-get install nosuch-progs"):
        require_tool("mkfs.nosuch", "nosuch-progs")
    assert not list(tmp_path.iterdir())


def test_fsimages_fill_leaves_about_the_requested_space(tmp_path: Path) -> None:
    with ext4_image(tmp_path, size_mb=32) as small:
        filler = fill(small, leave_bytes=1 << 20)
        assert 0 < small.free_bytes() <= 1 << 20
        with pytest.raises(OSError) as caught:
            (small.path / "big").write_bytes(b"y" * (2 << 20))
        assert caught.value.errno == errno.ENOSPC
        filler.unlink()
