#!/usr/bin/env python3
"""Which gzip encoder each compress_level should use: sizes and speeds on log text.

For every gzip level N it prints, per encoder (ISA-L 1-3, zlib 1-9), the worst ratio
over the corpora of the encoder's output to ``zlib -N``'s (what gzip -N writes), and
the mapping nodeguard.rotation.compress uses: the fastest encoder within BUDGET of
gzip -N for levels 1-6, zlib's own level for 7-9. Corpora: the bench's generated log
lines, the same lines in Docker json-file and CRI (kubelet) framing, and the log files
given as arguments (default: a few of this host's /var/log files).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rotate_vs_logrotate import log_text

BUDGET = 1.15
SIZE = 2 << 20
HOST_LOGS = ("/var/log/dpkg.log", "/var/log/apt/term.log", "/var/log/alternatives.log")
Encoder = tuple[str, int]


def framed(kind: str) -> bytes:
    """The generator's lines as a container runtime writes them (nanosecond stamps)."""
    rng, nanos, out = random.Random(3), 0, []
    for line in log_text(SIZE, seed=7).decode().splitlines():
        nanos += rng.randrange(10**6)
        stamp = f"2024-05-01T10:{nanos // 60_000_000_000 % 60:02d}:{nanos // 10**9 % 60:02d}"
        stamp += f".{nanos % 10**9:09d}Z"
        body = line.split(" ", 1)[1]
        if kind == "docker-json":
            out.append(json.dumps({"log": body + "\n", "stream": "stdout", "time": stamp}))
        else:
            out.append(f"{stamp} stdout F {body}")
    return ("\n".join(out) + "\n").encode()[:SIZE]


def corpora(paths: list[str]) -> dict[str, bytes]:
    found = {"bench": log_text(SIZE), "docker-json": framed("docker-json"), "cri": framed("cri")}
    for path in paths:
        if Path(path).is_file():
            found[Path(path).name] = Path(path).read_bytes()
    return found


def encoders() -> tuple[list[Encoder], dict[str, Any]]:
    """zlib's levels, plus ISA-L's and zlib-ng's where installed."""
    modules: dict[str, Any] = {"zlib": zlib}
    encs: list[Encoder] = []
    try:
        from isal import isal_zlib

        modules["isal"] = isal_zlib
        encs += [("isal", n) for n in (1, 2, 3)]
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng

        modules["zlibng"] = zlib_ng
        encs += [("zlibng", n) for n in range(1, 7)]
    except ImportError:
        pass
    return encs + [("zlib", n) for n in range(1, 10)], modules


def compress(enc: Encoder, data: bytes, modules: dict[str, Any]) -> bytes:
    comp = modules[enc[0]].compressobj(enc[1], zlib.DEFLATED, 31)
    return bytes(comp.compress(data) + comp.flush())


def speed(enc: Encoder, data: bytes, modules: dict[str, Any]) -> float:
    """Single-thread MB/s, best of three."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        compress(enc, data, modules)
        best = min(best, time.process_time() - start)
    return len(data) / max(best, 1e-9) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("logs", nargs="*", default=list(HOST_LOGS), help="real log files")
    args = parser.parse_args(argv)
    data = corpora(args.logs)
    encs, modules = encoders()
    sizes = {(name, e): len(compress(e, d, modules)) for name, d in data.items() for e in encs}
    mbps = {e: speed(e, data["bench"], modules) for e in encs}
    print(
        "gzip -6 keeps:",
        ", ".join(f"{n} {sizes[(n, ('zlib', 6))] / len(d):.3f}" for n, d in data.items()),
    )
    print(
        "MB/s (bench corpus, one thread):", " ".join(f"{b}-{n}:{mbps[(b, n)]:.0f}" for b, n in encs)
    )
    for level in range(1, 10):
        worst = {e: max(sizes[(n, e)] / sizes[(n, ("zlib", level))] for n in data) for e in encs}
        ok = [e for e in encs if worst[e] <= BUDGET]
        pick = max(ok, key=lambda e: mbps[e]) if level <= 6 else ("zlib", level)
        cells = " ".join(f"{b}-{n}:{worst[(b, n)]:.3f}" for b, n in encs)
        print(f"level {level}: {cells}  -> {pick[0]}-{pick[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
