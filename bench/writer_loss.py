#!/usr/bin/env python3
"""Lines lost or duplicated while a busy writer's log is rotated again and again.

A writer process appends numbered lines (one ``write()`` per line, O_APPEND) as fast
as it can while passes rotate its log with ``--force`` every ``--interval`` seconds.
Then every line number is counted across the live and rotated files (``.gz`` read
back), in age order: missing, duplicated, and garbled (torn or NUL-filled) lines.
Methods: nodeguard ``rename`` (postrotate sends SIGHUP and waits until the writer has
reopened), ``copytruncate`` and ``lossless``, and logrotate 3.21 ``copytruncate`` on
the same load. Each runs on a fresh ext4 loop image. See docs/performance.md.

    .venv/bin/python bench/writer_loss.py              # >= 1,000,000 lines, 100 rotations
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

REPO = Path(__file__).resolve().parent.parent
NODEGUARD = REPO / ".venv" / "bin" / "nodeguard"
LOGROTATE = "/usr/sbin/logrotate"
METHODS = ("rename", "copytruncate", "lossless", "logrotate-copytruncate")
LIVE = "app.log"

# The writer: one line per write(), O_APPEND; SIGHUP reopens, SIGTERM stops and prints
# how many lines it wrote.
WRITER = r"""
import os, signal, sys
flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
flag = {"reopen": False, "stop": False}
signal.signal(signal.SIGHUP, lambda *_: flag.__setitem__("reopen", True))
signal.signal(signal.SIGTERM, lambda *_: flag.__setitem__("stop", True))
fd = os.open(sys.argv[1], flags, 0o644)
n, write = 0, os.write
print("ready", flush=True)
while not flag["stop"]:
    if flag["reopen"]:
        flag["reopen"] = False
        os.close(fd)
        fd = os.open(sys.argv[1], flags, 0o644)
    write(fd, b"%d\n" % n)
    n += 1
os.close(fd)
print(n, flush=True)
"""

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


@dataclass(frozen=True)
class Result:
    method: str
    written: int
    passes: int
    rotated_files: int
    lost: int
    duplicated: int
    garbled: int
    seconds: float

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


def count_lines(files: list[Path], written: int) -> tuple[int, int, int]:
    """(lost, duplicated, garbled) over the concatenation of ``files``."""
    seen = bytearray(written)
    garbled = duplicated = 0
    carry = b""
    for path in files:
        data = path.read_bytes()
        lines = (carry + (gzip.decompress(data) if path.name.endswith(".gz") else data)).split(
            b"\n"
        )
        carry = lines.pop()
        for line in lines:
            if not line.isdigit() or int(line) >= written:
                garbled += 1
                continue
            n = int(line)
            if seen[n]:
                duplicated += 1
            else:
                seen[n] = 1
    garbled += bool(carry)
    return seen.count(0), duplicated, garbled


# --- one run -------------------------------------------------------------------------------


@contextlib.contextmanager
def writer(path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
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


def run_method(method: str, options: Options, workdir: Path) -> Result:
    """Run the writer and the rotations for one method on a fresh ext4 image."""
    from tests.fsimages import ext4_image

    with ext4_image(workdir / method, size_mb=options.image_mb) as fs:
        logs = fs.path / "logs"
        logs.mkdir(mode=0o755)
        started = time.monotonic()
        with writer(logs / LIVE) as proc:
            if method.startswith("logrotate"):
                config = logrotate_config(fs.path, logs)
            else:
                config = nodeguard_config(fs.path, logs, method, proc.pid)
            passes = 0
            while passes < options.rotations or _lines_so_far(logs) < options.min_lines:
                time.sleep(options.interval)
                rotate_once(method, config, fs.path)
                passes += 1
            written = stop(proc)
        seconds = time.monotonic() - started
        files = ordered_files(logs, method)
        lost, duplicated, garbled = count_lines(files, written)
        return Result(method, written, passes, len(files) - 1, lost, duplicated, garbled, seconds)


def _lines_so_far(logs: Path) -> int:
    """The newest line number in the live file: how far the writer has got."""
    try:
        with open(logs / LIVE, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 64))
            lines = handle.read().split(b"\n")
    except OSError:
        return 0
    numbers = [int(x) for x in lines[:-1] if x.isdigit()]
    return numbers[-1] + 1 if numbers else 0


# --- command line --------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    head = (
        "| method | lines written | passes | rotated files | lost | duplicated | garbled "
        "| lost % | seconds |"
    )
    rows = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rows.append(
            f"| {r.method} | {r.written:,} | {r.passes} | {r.rotated_files} | {r.lost:,} "
            f"| {r.duplicated:,} | {r.garbled:,} | {r.lost_pct:.3f} | {r.seconds:.1f} |"
        )
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Options]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few rotations: a smoke test")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    parser.add_argument("--rotations", type=int, default=None, help="passes (default 100)")
    parser.add_argument("--min-lines", type=int, default=None, help="default 1,000,000")
    parser.add_argument("--interval", type=float, default=None, help="seconds between passes")
    parser.add_argument("--workdir", type=Path, default=None, help="where images are made")
    args = parser.parse_args(argv)
    options = Options(
        rotations=args.rotations or (5 if args.quick else 100),
        min_lines=args.min_lines if args.min_lines is not None else (0 if args.quick else 10**6),
        interval=args.interval if args.interval is not None else (0.05 if args.quick else 0.1),
        image_mb=256 if args.quick else 2048,
    )
    unknown = set(args.methods.split(",")) - set(METHODS)
    if unknown:
        parser.error(f"unknown method(s): {', '.join(sorted(unknown))} (have {', '.join(METHODS)})")
    return args, options


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO))  # tests.fsimages and nodeguard, when run as a script
    args, options = parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="writer-loss-", dir=args.workdir) as tmp:
        for method in args.methods.split(","):
            results.append(run_method(method, options, Path(tmp)))
            print(f"done: {method}", file=sys.stderr)
    print(table(results))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BenchError as exc:
        print(f"writer_loss: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
