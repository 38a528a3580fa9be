#!/usr/bin/env python3
"""Numbered log lines of several length mixes, a writer for them, and line-cut checks.

Used by bench/writer_loss.py and tests/rotation/test_lossless.py to see whether
``method: lossless`` cuts files between lines. Every line carries its number and is
fully determined by it (``make_line(mix, n)``), so a checker finds lost, doubled and
torn lines exactly. Mixes:

- ``numbers``: just the number (2 to 9 bytes), one line per ``write()``;
- ``fixed75``: every line 75 bytes, 50 lines per ``write()``;
- ``mixed30-300``: 30 to 300 bytes (uniform), 1 to 50 lines per ``write()``;
- ``cri16k``: CRI (kubelet) lines with a JSON payload of 50 bytes to 16 KiB
  (log-uniform), one line per ``write()``, as containerd writes them.

``python bench/linemix.py`` prints how often no block boundary of a file falls right
after a newline (the only case where lossless must split a line), by simulation, for
each mix, block size and file size: the table in docs/lossless.md.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

MIXES = ("fixed75", "mixed30-300", "cri16k")
ALL_MIXES = ("numbers", *MIXES)  # numbers: just the number, one line per write()
_TABLE = 65_521  # line lengths are looked up by n modulo this prime
_FILLER = (b"abcdefghij klmnopqrstuvwxyz 0123456789 ABCDEFGHIJ-KLMNOPQRSTUVWXYZ " * 300)[:16_400]


@dataclass(frozen=True)
class Mix:
    """How long the lines are and how many one ``write()`` carries."""

    name: str
    lengths: tuple[int, ...]  # indexed by n % _TABLE; each includes the newline
    per_write: tuple[int, ...]  # the writer picks one of these at random per write()

    @property
    def mean_length(self) -> float:
        return sum(self.lengths) / len(self.lengths)


def _lengths(name: str) -> tuple[int, ...]:
    rng = random.Random(name)
    if name == "fixed75":
        return (75,) * _TABLE
    if name == "numbers":
        return (0,) * _TABLE  # make_line does not use it
    if name == "mixed30-300":
        return tuple(rng.randint(30, 300) for _ in range(_TABLE))
    if name == "cri16k":
        low, high = math.log(50), math.log(16_384)
        return tuple(int(math.exp(rng.uniform(low, high))) + 56 for _ in range(_TABLE))
    raise ValueError(f"unknown mix {name!r} (have {', '.join(MIXES)})")


_PER_WRITE = {"numbers": (1,), "fixed75": (50,), "mixed30-300": (1, 2, 5, 17, 50), "cri16k": (1,)}
_MIXES: dict[str, Mix] = {}


def mix(name: str) -> Mix:
    if name not in _MIXES:
        _MIXES[name] = Mix(name, _lengths(name), _PER_WRITE[name])
    return _MIXES[name]


def make_line(name: str, n: int) -> bytes:
    """Line number ``n`` of mix ``name``, newline included; the same bytes every time."""
    if name == "numbers":
        return b"%d\n" % n
    length = mix(name).lengths[n % _TABLE]
    if name == "cri16k":
        head = b'2024-05-01T10:00:00.%09dZ stdout F {"n":%d,"msg":"' % (n % 10**9, n)
        body = _FILLER[: max(0, length - len(head) - 3)]
        return head + body + b'"}\n'
    head = b"%d " % n
    return head + _FILLER[: max(0, length - len(head) - 1)] + b"\n"


def line_number(name: str, line: bytes) -> int | None:
    """The number a (newline-less) line carries, or None if it is not a line of ``name``."""
    try:
        if name == "cri16k":
            start = line.index(b'{"n":') + 5
            return int(line[start : line.index(b",", start)])
        if name == "numbers":
            return int(line) if line.isdigit() else None
        return int(line[: line.index(b" ")])
    except ValueError:
        return None


@dataclass
class LineCount:
    """Lost, doubled and torn lines over files fed in order (see :meth:`feed`)."""

    mix: str
    written: int
    carry: bytes = b""
    garbled: int = 0
    duplicated: int = 0

    def __post_init__(self) -> None:
        self.seen = bytearray(self.written)

    def feed(self, data: bytes) -> None:
        lines = (self.carry + data).split(b"\n")
        self.carry = lines.pop()
        for line in lines:
            n = line_number(self.mix, line)
            if n is None or not 0 <= n < self.written or line + b"\n" != make_line(self.mix, n):
                self.garbled += 1
            elif self.seen[n]:
                self.duplicated += 1
            else:
                self.seen[n] = 1

    def finish(self) -> tuple[int, int, int]:
        """(lost, duplicated, garbled); a torn last line counts as garbled."""
        return self.seen.count(0), self.duplicated, self.garbled + bool(self.carry)


@dataclass(frozen=True)
class Cuts:
    """How rotated files end: whole lines, or split with or without a choice."""

    rotated: int = 0
    mid_line: int = 0  # rotated files ending mid-line = live files that began mid-line
    avoidable: int = 0  # of those, files that held a line end at a block boundary

    def add(self, data: bytes, unit: int) -> Cuts:
        if not data or data.endswith(b"\n"):
            return Cuts(self.rotated + 1, self.mid_line, self.avoidable)
        avoidable = b"\n" in data[unit - 1 :: unit]
        return Cuts(self.rotated + 1, self.mid_line + 1, self.avoidable + avoidable)


WRITER = r"""
import os, random, signal, sys, time
sys.path.insert(0, sys.argv[1])
from bench.linemix import make_line, mix
path, name, rate = sys.argv[2], sys.argv[3], float(sys.argv[4])
flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
flag = {"reopen": False, "stop": False}
signal.signal(signal.SIGHUP, lambda *_: flag.__setitem__("reopen", True))
signal.signal(signal.SIGTERM, lambda *_: flag.__setitem__("stop", True))
fd = os.open(path, flags, 0o644)
rng, n, written, started = random.Random(11), 0, 0, time.monotonic()
per_write, write = mix(name).per_write, os.write
print("ready", flush=True)
while not flag["stop"]:
    if flag["reopen"]:
        flag["reopen"] = False
        os.close(fd)
        fd = os.open(path, flags, 0o644)
    count = rng.choice(per_write) if len(per_write) > 1 else per_write[0]
    data = b"".join([make_line(name, i) for i in range(n, n + count)])
    write(fd, data)
    n, written = n + count, written + len(data)
    if rate and written > rate * (time.monotonic() - started):
        time.sleep(0.002)
os.close(fd)
print(n, flush=True)
"""
"""The writer: argv REPO PATH MIX BYTES_PER_SECOND (0 = as fast as it can); prints
"ready", then the number of lines written once SIGTERM stops it. SIGHUP reopens PATH."""


# --- how often no block boundary follows a newline (simulation) -----------------------------


def first_aligned_end(name: str, unit: int, rng: random.Random, horizon: int) -> int:
    """Bytes up to the first line end that is also a block end, in a file of the mix that
    starts at a line start (a random one); ``horizon`` + 1 if there is none before it."""
    lengths, n, pos = mix(name).lengths, rng.randrange(_TABLE), 0
    while pos <= horizon:
        pos += lengths[n % _TABLE]
        if pos % unit == 0:
            return pos
        n += 1
    return horizon + 1


def split_probabilities(name: str, unit: int, sizes: list[int], trials: int) -> list[float]:
    """Per size: the share of files of that many bytes (starting at a line start) whose
    movable prefix (the largest multiple of ``unit`` below the size) holds no line end at
    a block boundary, so lossless must split a line."""
    rng = random.Random(f"{name}/{unit}")
    limits = [(size - 1) // unit * unit for size in sizes]
    firsts = [first_aligned_end(name, unit, rng, max(limits)) for _ in range(trials)]
    return [sum(first > limit for first in firsts) / trials for limit in limits]


def probability_table(
    names: Iterable[str], units: Iterable[int], sizes: Iterable[int], trials: int
) -> str:
    sizes = list(sizes)
    head = "| mix (mean line) | block | " + " | ".join(_size(s) for s in sizes) + " |"
    rows = [head, "|---|---:|" + "---:|" * len(sizes)]
    for name in names:
        for unit in units:
            cells = [f"{p:.3f}" for p in split_probabilities(name, unit, sizes, trials)]
            label = f"{name} ({mix(name).mean_length:.0f} B)"
            rows.append(f"| {label} | {unit} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _size(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=400)
    args = parser.parse_args(argv)
    sizes = (64 << 10, 256 << 10, 1 << 20, 10 << 20, 100 << 20)
    print(probability_table(MIXES, (1024, 4096), sizes, args.trials))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
