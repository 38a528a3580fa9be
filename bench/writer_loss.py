#!/usr/bin/env python3
"""Lines lost, duplicated or cut in two while a busy writer's log is rotated again and again.

A writer process appends numbered lines (O_APPEND) as fast as it can while passes rotate
its log with ``--force`` every ``--interval`` seconds. Then every line is checked across
the live and rotated files (``.gz`` read back), in age order: missing, duplicated, and
garbled (torn or NUL-filled) lines; and how the rotated files end: mid-line, and of
those, how many held a newline at a block boundary (a cut lossless could have made
between lines: should be 0). Methods: nodeguard ``rename`` (postrotate sends SIGHUP and
waits until the writer has reopened), ``copytruncate`` and ``lossless``, and logrotate
3.21 ``copytruncate`` on the same load. Line mixes (bench/linemix.py): ``numbers`` (one
short line per write, the default), ``fixed75``, ``mixed30-300``, ``cri16k``. Each run
gets a fresh loop image: ext4 with 4 KiB blocks (default), ext4 with 1 KiB blocks, xfs.
See docs/performance.md and docs/lossless.md.

    .venv/bin/python bench/writer_loss.py              # >= 1,000,000 lines, 100 rotations
    .venv/bin/python bench/writer_loss.py --lines      # lossless x 3 mixes x 3 filesystems
    .venv/bin/python bench/writer_loss.py --quick      # smoke test: a few seconds
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.fsimages, bench.linemix and nodeguard as a script
from bench.linemix import ALL_MIXES, MIXES, WRITER, Cuts, LineCount  # noqa: E402

NODEGUARD = REPO / ".venv" / "bin" / "nodeguard"
LOGROTATE = "/usr/sbin/logrotate"
METHODS = ("rename", "copytruncate", "lossless", "logrotate-copytruncate")
FILESYSTEMS = ("ext4-4k", "ext4-1k", "xfs")
LIVE = "app.log"

# postrotate for rename: make the writer reopen, and return only once it has (the new
# live file has data), so the rotated file is complete before it is compressed.
REOPEN = (
    "kill -HUP {pid} || exit 1; i=0; while [ $i -lt 5000 ]; do "
    '[ -s "$1" ] && exit 0; sleep 0.001; i=$((i+1)); done; exit 1'
)


@dataclass(frozen=True)
class Options:
    rotations: int
    min_lines: int
    interval: float
    image_mb: int
    rate: int | None = None  # writer bytes/s; None: unlimited for numbers, else RATE


RATE = 16 << 20  # the long-line mixes would fill any image within seconds unthrottled


@dataclass(frozen=True)
class Result:
    method: str
    mix: str
    filesystem: str
    written: int
    passes: int
    rotated_files: int
    lost: int
    duplicated: int
    garbled: int
    seconds: float
    mid_line: int = 0  # rotated files ending mid-line (the next file begins mid-line)
    avoidable: int = 0  # of those, files with a newline at a block boundary

    @property
    def lost_pct(self) -> float:
        return 100.0 * self.lost / self.written if self.written else 0.0


class BenchError(Exception):
    """A tool failed or the setup is impossible; the message says which."""


# --- the rotators ------------------------------------------------------------------------


def nodeguard_config(work: Path, logs: Path, method: str, writer_pid: int) -> Path:
    policy = [
        "  - name: bench",
        f"    paths: [{logs / LIVE}]",
        "    max_size: 1Ki",
        "    max_files: 100000",
        f"    method: {method}",
        "    compress: gzip",
        "    compress_level: 1",
    ]
    if method == "rename":
        policy.append(f"    postrotate: '{REOPEN.format(pid=writer_pid)}'")
    text = "\n".join([f"state_dir: {work / 'state'}", "logrotate_config: null", "policies:"])
    path = work / "nodeguard.yaml"
    path.write_text(text + "\n" + "\n".join(policy) + "\n")
    return path


def logrotate_config(work: Path, logs: Path) -> Path:
    path = work / "logrotate.conf"
    path.write_text(
        f"{logs / LIVE} {{\n    copytruncate\n    rotate 100000\n    compress\n"
        "    compressoptions -1\n    missingok\n}\n"
    )
    return path


def rotate_once(method: str, config: Path, work: Path) -> None:
    if method.startswith("logrotate"):
        argv = [LOGROTATE, "-f", "-s", str(work / "logrotate.state"), str(config)]
    else:
        argv = [str(NODEGUARD), "-c", str(config), "--no-dropins", "rotate", "--force"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stdout}{proc.stderr}")


# --- counting ------------------------------------------------------------------------------


def ordered_files(logs: Path, method: str) -> list[Path]:
    """Rotated files oldest first, then the live file."""
    if method.startswith("logrotate"):
        numbered = [(int(m.group(1)), p) for p in logs.iterdir() if (m := _LR.match(p.name))]
        rotated = [p for _, p in sorted(numbered, reverse=True)]
    else:
        from nodeguard.rotation import naming

        parsed = [r for r in map(naming.parse, os.listdir(logs)) if r and r.base == LIVE]
        rotated = [logs / r.name for r in sorted(parsed, key=lambda r: r.key)]
    return [*rotated, logs / LIVE]


_LR = re.compile(re.escape(LIVE) + r"\.(\d+)(?:\.gz)?$")


def check_files(files: list[Path], mix: str, written: int, unit: int) -> tuple[LineCount, Cuts]:
    """Count lines over ``files`` in order, and how each rotated file ends."""
    count, cuts = LineCount(mix, written), Cuts()
    for path in files:
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        count.feed(data)
        if path.name != LIVE:
            cuts = cuts.add(data, unit)
    return count, cuts


# --- one run -------------------------------------------------------------------------------


@contextlib.contextmanager
def writer(path: Path, mix: str, rate: int) -> Iterator[subprocess.Popen[str]]:
    argv = [sys.executable, "-c", WRITER, str(REPO), str(path), mix, str(rate)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            raise BenchError("the writer did not start")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return int(out.strip().splitlines()[-1])


def run_method(
    method: str, options: Options, workdir: Path, mix: str = "numbers", fs_kind: str = "ext4-4k"
) -> Result:
    """Run the writer and the rotations for one method on a fresh loop image."""
    with _image(fs_kind, workdir / f"{method}-{mix}-{fs_kind}", options.image_mb) as fs:
        logs = fs.path / "logs"
        logs.mkdir(mode=0o755)
        started = time.monotonic()
        rate = options.rate if options.rate is not None else (0 if mix == "numbers" else RATE)
        with writer(logs / LIVE, mix, rate) as proc:
            if method.startswith("logrotate"):
                config = logrotate_config(fs.path, logs)
            else:
                config = nodeguard_config(fs.path, logs, method, proc.pid)
            passes = 0
            while passes < options.rotations or _lines_so_far(logs, mix) < options.min_lines:
                time.sleep(options.interval)
                rotate_once(method, config, fs.path)
                passes += 1
            written = stop(proc)
        seconds = time.monotonic() - started
        files = ordered_files(logs, method)
        count, cuts = check_files(files, mix, written, fs.block_size)
        lost, duplicated, garbled = count.finish()
        return Result(
            method,
            mix,
            fs_kind,
            written,
            passes,
            len(files) - 1,
            lost,
            duplicated,
            garbled,
            seconds,
            cuts.mid_line,
            cuts.avoidable,
        )


def _image(kind: str, workdir: Path, size_mb: int) -> contextlib.AbstractContextManager[Any]:
    from tests.fsimages import ext4_image, xfs_image

    workdir.mkdir()
    if kind == "xfs":
        return xfs_image(workdir, size_mb=size_mb)
    return ext4_image(workdir, size_mb=size_mb, block_size=1024 if kind == "ext4-1k" else 4096)


def _lines_so_far(logs: Path, mix: str) -> int:
    """The newest line number in the live file: how far the writer has got."""
    from bench.linemix import line_number

    try:
        with open(logs / LIVE, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - (40 << 10)))
            lines = handle.read().split(b"\n")
    except OSError:
        return 0
    numbers = [n for x in lines[1:-1] if (n := line_number(mix, x)) is not None]
    return numbers[-1] + 1 if numbers else 0


# --- command line --------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    head = (
        "| method | lines | fs | lines written | passes | rotated files | lost | duplicated "
        "| garbled | lost % | ends mid-line | of which avoidable | seconds |"
    )
    rows = [head, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rows.append(
            f"| {r.method} | {r.mix} | {r.filesystem} | {r.written:,} | {r.passes} "
            f"| {r.rotated_files} | {r.lost:,} | {r.duplicated:,} | {r.garbled:,} "
            f"| {r.lost_pct:.3f} | {r.mid_line} | {r.avoidable} | {r.seconds:.1f} |"
        )
    return "\n".join(rows)


def _choices(parser: argparse.ArgumentParser, value: str, known: tuple[str, ...]) -> list[str]:
    chosen = value.split(",")
    unknown = set(chosen) - set(known)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))} (have {', '.join(known)})")
    return chosen


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Options]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few rotations: a smoke test")
    parser.add_argument("--lines", action="store_true", help="lossless, every mix and fs")
    parser.add_argument("--methods", default=None, help="comma-separated subset")
    parser.add_argument("--mixes", default=None, help=f"of {', '.join(ALL_MIXES)}")
    parser.add_argument("--filesystems", default=None, help=f"of {', '.join(FILESYSTEMS)}")
    parser.add_argument("--rotations", type=int, default=None, help="passes (default 100)")
    parser.add_argument("--min-lines", type=int, default=None, help="default 1,000,000")
    parser.add_argument("--interval", type=float, default=None, help="seconds between passes")
    parser.add_argument("--workdir", type=Path, default=None, help="where images are made")
    parser.add_argument(
        "--rate",
        type=int,
        default=None,
        help=f"writer bytes/s (0: no limit; default {RATE} but none for numbers)",
    )
    args = parser.parse_args(argv)
    options = Options(
        rotations=args.rotations or (5 if args.quick else 100),
        min_lines=args.min_lines
        if args.min_lines is not None
        else (0 if args.quick or args.lines else 10**6),
        interval=args.interval if args.interval is not None else (0.05 if args.quick else 0.1),
        image_mb=256 if args.quick else 2048,
        rate=args.rate,
    )
    lines = args.lines
    args.methods = _choices(
        parser, args.methods or ("lossless" if lines else ",".join(METHODS)), METHODS
    )
    args.mixes = _choices(
        parser, args.mixes or (",".join(MIXES) if lines else "numbers"), ALL_MIXES
    )
    fs_default = ",".join(FILESYSTEMS) if lines else "ext4-4k"
    args.filesystems = _choices(parser, args.filesystems or fs_default, FILESYSTEMS)
    return args, options


def main(argv: list[str] | None = None) -> int:
    args, options = parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="writer-loss-", dir=args.workdir) as tmp:
        for fs_kind in args.filesystems:
            for mix in args.mixes:
                for method in args.methods:
                    results.append(run_method(method, options, Path(tmp), mix, fs_kind))
                    print(f"done: {method} {mix} {fs_kind}", file=sys.stderr)
    print(table(results))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BenchError as exc:
        print(f"writer_loss: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
