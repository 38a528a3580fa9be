#!/usr/bin/env python3
"""Which gzip encoder each compress_level should use: sizes and speeds on log text.

For every gzip level N it measures, per encoder (zlib 1-9, libdeflate 1-12, and ISA-L
0-3 and zlib-ng 1-9 where installed), the worst ratio over the corpora of the
encoder's output to what ``gzip -N`` (the real binary) writes, and the single-thread
speed over all corpora. The choice for levels 1-6: every encoder within BUDGET of
gzip -N on every corpus, fastest first (the fastest qualifying level of each backend);
for 7-9 (asked for size): those no larger than gzip -N (SIZE_LIMIT: rounding) on every
corpus. zlib's level N always qualifies, so every list has a zlib entry: a host with
zlib alone still keeps the promise. The ``PREFERENCES``
printed at the end is what nodeguard/rotation/compress.py holds. Corpora:
bench/corpora.py plus log files given as arguments (default: a few of /var/log).

    .venv/bin/python bench/gzip_levels.py [--markdown] [LOGFILE ...]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from corpora import HOST_LOGS, corpora

BUDGET = 1.10  # levels 1-6: at most 10% larger than gzip -N
SIZE_LEVELS = (7, 8, 9)  # asked for size: no larger than gzip -N (within rounding)
SIZE_LIMIT = 1.005
Encoder = tuple[str, int]
Compress = Callable[[bytes], bytes]


def gzip_reference(data: bytes, level: int) -> int:
    """The size ``gzip -N`` writes for ``data``."""
    gzip = shutil.which("gzip")
    if gzip is None:
        raise SystemExit("gzip_levels: needs the gzip binary (apt-get install gzip)")
    argv = [gzip, f"-{level}", "-n", "-c"]
    out = subprocess.run(argv, input=data, capture_output=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"gzip -{level} failed: {out.stderr.decode(errors='replace')}")
    return len(out.stdout)


def _streaming(module: object, level: int) -> Compress:
    def run(data: bytes) -> bytes:
        comp = module.compressobj(level, zlib.DEFLATED, 31)  # type: ignore[attr-defined]
        return bytes(comp.compress(data) + comp.flush())

    return run


def encoders() -> dict[Encoder, Compress]:
    """zlib's levels, plus libdeflate's, ISA-L's and zlib-ng's where installed."""
    found: dict[Encoder, Compress] = {("zlib", n): _streaming(zlib, n) for n in range(1, 10)}
    from nodeguard.rotation import deflate

    try:
        lib = deflate.load()
    except deflate.Unavailable as exc:
        print(f"libdeflate not measured: {exc}", file=sys.stderr)
    else:
        for n in deflate.LEVELS:
            found[("libdeflate", n)] = lambda data, n=n: bytes(lib.compressor(n).gzip(data))
    try:
        from isal import isal_zlib

        found.update({("isal", n): _streaming(isal_zlib, n) for n in range(4)})
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng

        found.update({("zlibng", n): _streaming(zlib_ng, n) for n in range(1, 10)})
    except ImportError:
        pass
    return found


def speed(run: Compress, data: dict[str, bytes]) -> float:
    """Single-thread MB/s over every corpus, best of two."""
    best = float("inf")
    for _ in range(2):
        start = time.process_time()
        for text in data.values():
            run(text)
        best = min(best, time.process_time() - start)
    return sum(map(len, data.values())) / max(best, 1e-9) / 1e6


def preferences(
    worst: dict[int, dict[Encoder, float]], mbps: dict[Encoder, float]
) -> dict[int, list[Encoder]]:
    """Per level: the qualifying encoders, fastest first, the fastest level of each backend."""
    table: dict[int, list[Encoder]] = {}
    for level in range(1, 10):
        limit = SIZE_LIMIT if level in SIZE_LEVELS else BUDGET
        ok = [e for e, r in worst[level].items() if r <= limit or e == ("zlib", level)]
        chosen: list[Encoder] = []
        for enc in sorted(ok, key=lambda e: -mbps[e]):
            if enc[0] not in {c[0] for c in chosen}:
                chosen.append(enc)
        table[level] = chosen
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("logs", nargs="*", default=list(HOST_LOGS), help="real log files")
    parser.add_argument("--markdown", action="store_true", help="also print docs tables")
    args = parser.parse_args(argv)
    data = corpora(args.logs)
    encs = encoders()
    reference = {
        (name, n): gzip_reference(text, n) for name, text in data.items() for n in range(1, 10)
    }
    sizes = {(name, e): len(run(text)) for name, text in data.items() for e, run in encs.items()}
    mbps = {e: speed(run, data) for e, run in encs.items()}
    worst = {
        level: {e: max(sizes[(n, e)] / reference[(n, level)] for n in data) for e in encs}
        for level in range(1, 10)
    }
    print("corpora:", ", ".join(f"{n} ({len(t) >> 10} KiB)" for n, t in data.items()))
    print(
        "gzip -6 keeps:",
        ", ".join(f"{n} {reference[(n, 6)] / len(t):.3f}" for n, t in data.items()),
    )
    print("MB/s, one thread:", " ".join(f"{b}-{n}:{mbps[(b, n)]:.0f}" for b, n in encs))
    for level in range(1, 10):
        cells = " ".join(f"{b}-{n}:{worst[level][(b, n)]:.3f}" for b, n in encs)
        print(f"level {level} worst ratio to gzip -{level}: {cells}")
    table = preferences(worst, mbps)
    if args.markdown:
        print(
            markdown(
                worst=worst, mbps=mbps, table=table, data=data, sizes=sizes, reference=reference
            )
        )
    print("PREFERENCES = {")
    for level, chosen in table.items():
        print(f"    {level}: {tuple(chosen)!r},")
    print("}")
    return 0


def markdown(
    *,
    worst: dict[int, dict[Encoder, float]],
    mbps: dict[Encoder, float],
    table: dict[int, list[Encoder]],
    data: dict[str, bytes],
    sizes: dict[tuple[str, Encoder], int],
    reference: dict[tuple[str, int], int],
) -> str:
    """The level table (chosen encoders: worst ratio, speed) and level 6 per corpus."""
    rows = ["| level | encoders, fastest first: worst ratio to gzip -N (MB/s) |", "|---|---|"]
    for level, chosen in table.items():
        cells = ", ".join(
            f"{b}-{n} {worst[level][(b, n)]:.3f} ({mbps[(b, n)]:.0f})" for b, n in chosen
        )
        rows.append(f"| {level} | {cells} |")
    six = table[6]
    rows += ["", "| corpus | gzip -6 keeps | " + " | ".join(f"{b}-{n}" for b, n in six) + " |"]
    rows.append("|---|---:|" + "---:|" * len(six))
    for name, text in data.items():
        ratios = " | ".join(f"{sizes[(name, e)] / reference[(name, 6)]:.3f}" for e in six)
        rows.append(f"| {name} | {reference[(name, 6)] / len(text):.3f} | {ratios} |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
