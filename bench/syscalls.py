#!/usr/bin/env python3
"""System calls and fsyncs per file: nodeguard against logrotate 3.21, under ``strace -c``.

Builds the trees of bench/rotate_vs_logrotate.py's cases (smaller: ``--files``), runs
each tool once under ``strace -f -c`` (children included: logrotate's gzip), and prints
per case and tool: system calls per live file, fsyncs (fsync + fdatasync) per rotated
file, and the calls that dominate, each with its ratio to logrotate's. Counts do not
depend on the machine's load, unlike times. See docs/performance.md.

    .venv/bin/python bench/syscalls.py [--cases a,b,c] [--files 100] [--small-files 1000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rotate_vs_logrotate import BenchError, Case, Tools, Tree, build_tree, cases, log_text

STRACE = "strace"
FSYNCS = ("fsync", "fdatasync")
SHOWN = ("openat", "newfstatat", "statx", "read", "write", "rename", "renameat2", "unlink")


def strace_counts(tools: Tools, tree: Tree, out: Path) -> dict[str, int]:
    """Run the tool once under ``strace -f -c``; calls per system call name."""
    strace = shutil.which(STRACE)
    if strace is None:
        raise BenchError("strace not found: apt-get install strace")
    argv = [strace, "-f", "-c", "-o", str(out), "--", *tools.argv(tree)]
    done = subprocess.run(argv, env=tools.env(tree), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr[-2000:]}")
    return parse_summary(out.read_text())


def parse_summary(text: str) -> dict[str, int]:
    """strace -c's table: ``% time seconds usecs/call calls [errors] syscall``."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[0][0].isdigit() or fields[-1] == "total":
            continue
        counts[fields[-1]] = int(fields[3])
    return counts


def _trees(case: Case, tools: Tools, work: Path) -> Iterator[Tree]:
    sample = work / f"sample-{case.size}"
    if not sample.exists():
        sample.write_bytes(log_text(case.size))
    for tool in ("logrotate", "nodeguard"):
        compressor = (
            ("gzip-6" if tool == "logrotate" else "libdeflate") if case.compress else "none"
        )
        tree = Tree(tool, compressor, work / case.key / tool)
        build_tree(tree, case, sample)
        if case.noop:  # as in the timing bench: the steady state of a periodic pass
            subprocess.run(tools.argv(tree), env=tools.env(tree), capture_output=True, check=True)
        yield tree


def measure(case: Case, tools: Tools, work: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    rotated = 0 if case.noop else case.files
    for tree in _trees(case, tools, work):
        counts = strace_counts(tools, tree, work / f"{case.key}-{tree.tool}.strace")
        rows.append(
            {
                "case": case.key,
                "tool": tree.tool,
                "files": case.files,
                "calls_per_file": sum(counts.values()) / case.files,
                "fsyncs_per_rotated": sum(counts.get(n, 0) for n in FSYNCS) / rotated
                if rotated
                else None,
                "fsyncs": sum(counts.get(n, 0) for n in FSYNCS),
                **{f"{n}_per_file": counts.get(n, 0) / case.files for n in SHOWN},
            }
        )
        shutil.rmtree(tree.root, ignore_errors=True)
    return rows


def render(rows: list[dict[str, object]]) -> str:
    head = "| case | tool | calls / file | x | fsyncs / rotated file | " + " | ".join(
        f"{n} / file" for n in SHOWN
    )
    out = [head + " |", "|---|---|---:|---:|---:|" + "---:|" * len(SHOWN)]
    base: dict[str, float] = {}
    for row in rows:
        calls = float(row["calls_per_file"])  # type: ignore[arg-type]
        if row["tool"] == "logrotate":
            base[str(row["case"])] = calls
        ratio = calls / base[str(row["case"])] if str(row["case"]) in base else float("nan")
        fsyncs = row["fsyncs_per_rotated"]
        cells = " | ".join(f"{float(row[f'{n}_per_file']):.2f}" for n in SHOWN)  # type: ignore[arg-type]
        out.append(
            f"| {row['case']} | {row['tool']} | {calls:.1f} | {ratio:.2f} | "
            f"{'-' if fsyncs is None else f'{fsyncs:.2f}'} | {cells} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", default="a,b,c")
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--small-files", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args(argv)
    venv = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"
    tools = Tools(str(venv) if venv.exists() else sys.executable, "/usr/sbin/logrotate", "")
    chosen = argparse.Namespace(
        files=args.files, size=2 << 20, small_files=args.small_files, cases=args.cases.split(",")
    )
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="nodeguard-syscalls-", dir=args.dir) as tmp:
        for case in cases(chosen):
            rows += measure(case, tools, Path(tmp))
    print(render(rows))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BenchError as exc:
        print(f"syscalls: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
