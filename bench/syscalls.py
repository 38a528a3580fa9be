#!/usr/bin/env python3
"""System calls and fsyncs per file: nodeguard against logrotate 3.21, under ``strace -c``.

Builds the trees of bench/rotate_vs_logrotate.py's cases (smaller: ``--files``), runs
each tool under ``strace -f -c`` (children included: logrotate's gzip) on trees of N and
2N files, and prints per case and tool the calls each further file costs (the
difference over N: start-up and other fixed costs drop out, and are shown apart), fsyncs
(fsync + fdatasync) per rotated file, and the calls that dominate, with the ratio of
calls per file to logrotate's. Counts do not
depend on the machine's load, unlike times. See docs/performance.md.

    .venv/bin/python bench/syscalls.py [--cases a,b,c] [--files 100] [--small-files 1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rotate_vs_logrotate import BenchError, Case, Tools, Tree, build_tree, cases, log_text

STRACE = "strace"
FSYNCS = ("fsync", "fdatasync")
SHOWN = ("openat", "newfstatat", "fstatfs", "read", "write", "rename", "renameat2", "unlink")


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


def _tree(case: Case, tool: str, tools: Tools, work: Path) -> Tree:
    sample = work / f"sample-{case.size}"
    if not sample.exists():
        sample.write_bytes(log_text(case.size))
    compressor = ("gzip-6" if tool == "logrotate" else "libdeflate") if case.compress else "none"
    tree = Tree(tool, compressor, work / f"{case.key}-{case.files}" / tool)
    build_tree(tree, case, sample)
    if case.noop:  # as in the timing bench: the steady state of a periodic pass
        subprocess.run(tools.argv(tree), env=tools.env(tree), capture_output=True, check=True)
    return tree


def count(case: Case, tool: str, tools: Tools, work: Path) -> dict[str, int]:
    tree = _tree(case, tool, tools, work)
    try:
        return strace_counts(tools, tree, work / f"{case.key}-{case.files}-{tool}.strace")
    finally:
        shutil.rmtree(tree.root, ignore_errors=True)


def measure(case: Case, tools: Tools, work: Path) -> list[dict[str, object]]:
    """Per tool: calls per extra file (trees of N and 2N files), and the fixed part."""
    rows: list[dict[str, object]] = []
    big = dataclasses.replace(case, files=2 * case.files)
    for tool in ("logrotate", "nodeguard"):
        small_counts, big_counts = count(case, tool, tools, work), count(big, tool, tools, work)
        names = small_counts.keys() | big_counts.keys()
        per_file = {n: (big_counts.get(n, 0) - small_counts.get(n, 0)) / case.files for n in names}
        total_small = sum(small_counts.values())
        fixed = total_small - case.files * sum(per_file.values())
        rows.append(
            {
                "case": case.key,
                "tool": tool,
                "calls_per_file": sum(per_file.values()),
                "fixed_calls": fixed,
                "fsyncs_per_rotated": None
                if case.noop
                else sum(per_file.get(n, 0) for n in FSYNCS),
                "per_file": {n: round(v, 2) for n, v in sorted(per_file.items()) if v},
            }
        )
    return rows


def render(rows: list[dict[str, object]]) -> str:
    head = "| case | tool | calls / file | x | fixed calls | fsyncs / rotated file | "
    out = [head + " | ".join(f"{n}" for n in SHOWN) + " |"]
    out.append("|---|---|---:|---:|---:|---:|" + "---:|" * len(SHOWN))
    base: dict[str, float] = {}
    for row in rows:
        calls = float(row["calls_per_file"])  # type: ignore[arg-type]
        if row["tool"] == "logrotate":
            base[str(row["case"])] = calls
        ratio = calls / base[str(row["case"])] if base.get(str(row["case"])) else float("nan")
        fsyncs = row["fsyncs_per_rotated"]
        per_file: dict[str, float] = row["per_file"]  # type: ignore[assignment]
        cells = " | ".join(f"{per_file.get(n, 0.0):.2f}" for n in SHOWN)
        out.append(
            f"| {row['case']} | {row['tool']} | {calls:.1f} | {ratio:.2f} "
            f"| {float(row['fixed_calls']):.0f} "  # type: ignore[arg-type]
            f"| {'-' if fsyncs is None else f'{fsyncs:.2f}'} | {cells} |"
        )
    return "\n".join(out)


def details(rows: list[dict[str, object]]) -> str:
    return "\n".join(f"{r['case']} {r['tool']}: {r['per_file']}" for r in rows)


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
    print()
    print(details(rows))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BenchError as exc:
        print(f"syscalls: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
