#!/usr/bin/env python3
"""One rotation pass of nodeguard against Debian's logrotate 3.21 on identical trees.

Each case builds the same tree of log-like files once per tool, in separate
folders of one disk filesystem, runs every tool once as a subprocess, and prints
wall time, CPU time, peak RSS and the ratios nodeguard/logrotate; then it checks
the outputs on disk (every nodeguard ``.gz`` is read back by ``zcat``) and
compares the compressed totals. See bench/README.md and docs/performance.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FILES_PER_DIR = 100
SMALL_FILE_SIZE = 2048
LOGROTATE = "/usr/sbin/logrotate"
GNU_TIME = "/usr/bin/time"
COMPRESSORS = ("libdeflate", "zlib", "isal", "zlibng")  # NODEGUARD_COMPRESSOR values
_SIZE_RE = re.compile(r"^(\d+)(Ki|Mi|Gi|)$")
_SUFFIX = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}


class BenchError(Exception):
    """Something the bench cannot go on without (missing or failing tool): exit 1."""


class UsageError(BenchError):
    """A bad argument: exit 2, before anything is written."""


# --- log-like content -------------------------------------------------------------------

_LEVELS = ("INFO",) * 6 + ("DEBUG",) * 3 + ("WARN", "ERROR")
_PATHS = ("/api/v1/items", "/api/v1/users", "/healthz", "/api/v2/orders", "/metrics", "/login")
_METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
_STATUS = (200, 200, 200, 200, 201, 204, 304, 404, 500)
_COMPONENTS = ("http", "db", "cache", "scheduler", "auth", "worker")
_TABLES = ("orders", "users", "items", "events")
_OUTCOMES = ("ok", "ok", "ok", "retry", "failed: connection reset by peer")


def _message(rng: random.Random, request: int) -> str:
    kind = rng.randrange(10)
    if kind < 5:
        return (
            f"{rng.choice(_METHODS)} {rng.choice(_PATHS)}/{rng.randrange(2000)} "
            f"status={rng.choice(_STATUS)} bytes={rng.randrange(100, 9000)} "
            f"dur={rng.randrange(1, 300)}ms req={request:08x}"
        )
    if kind < 7:
        return (
            f"query took {rng.randrange(1, 400)}ms rows={rng.randrange(100)} "
            f"table={rng.choice(_TABLES)}"
        )
    if kind < 9:
        return f"cache {rng.choice(('hit', 'hit', 'miss'))} key=session:{rng.randrange(5000)}"
    return (
        f"worker {rng.randrange(8)} finished job {request} in {rng.randrange(1, 9000)}ms "
        f"({rng.choice(_OUTCOMES)})"
    )


def log_text(size: int, seed: int = 1) -> bytes:
    """``size`` bytes of numbered, timestamped application log lines (gzip -6 keeps ~17%)."""
    rng = random.Random(seed)
    lines: list[str] = []
    total, seq, t_ms = 0, 0, 3_600_000
    while total < size:
        t_ms += rng.randrange(3)
        hour, rest = divmod(t_ms, 3_600_000)
        minute, rest = divmod(rest, 60_000)
        line = (
            f"2024-05-01T{hour % 24:02d}:{minute:02d}:{rest // 1000:02d}.{rest % 1000:03d}Z "
            f"{rng.choice(_LEVELS):<5} [{rng.choice(_COMPONENTS)}-{rng.randrange(4)}] "
            f"#{seq} {_message(rng, 100_000 + seq // 3)}\n"
        )
        lines.append(line)
        total += len(line)
        seq += 1
    return "".join(lines).encode()[:size]


# --- cases, trees and configs -----------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One scenario: the tree to build and how both tools are told to rotate it."""

    key: str
    title: str
    files: int
    size: int
    compress: bool
    method: str  # rename (logrotate: create) | copytruncate
    noop: bool = False  # nothing to rotate: one untimed pass, then the timed one


@dataclass(frozen=True)
class Tree:
    """A built tree for one tool: its root, log folder glob and config files."""

    tool: str  # logrotate | nodeguard
    compressor: str  # gzip-6 (logrotate) | auto | libdeflate | zlib | isal | zlibng | none
    root: Path

    @property
    def glob(self) -> str:
        return f"{self.root}/logs/*/*.log"

    @property
    def config(self) -> Path:
        return self.root / ("logrotate.conf" if self.tool == "logrotate" else "nodeguard.yaml")


def build_tree(tree: Tree, case: Case, sample: Path) -> None:
    """Write ``case.files`` copies of the sample, FILES_PER_DIR per folder, plus configs."""
    src = os.open(sample, os.O_RDONLY)
    try:
        for index in range(case.files):
            folder = tree.root / "logs" / f"d{index // FILES_PER_DIR:03d}"
            if index % FILES_PER_DIR == 0:
                folder.mkdir(parents=True, mode=0o755)
            _copy_file(src, case.size, folder / f"app-{index:05d}.log")
    finally:
        os.close(src)
    tree.config.write_text(
        logrotate_conf(tree, case) if tree.tool == "logrotate" else nodeguard_conf(tree, case)
    )


def _copy_file(src: int, size: int, dst: Path) -> None:
    out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        offset = 0
        while offset < size:
            copied = os.copy_file_range(src, out, size - offset, offset, offset)
            if copied == 0:
                raise BenchError(f"sample shorter than {size} bytes")
            offset += copied
    finally:
        os.close(out)


def logrotate_conf(tree: Tree, case: Case) -> str:
    """logrotate's equivalent of the nodeguard policy (size 1M, 4 rotated, gzip -6)."""
    method = "create" if case.method == "rename" else "copytruncate"
    compress = "compress" if case.compress else "nocompress"
    return (
        f"{tree.glob} {{\n    size 1M\n    rotate 4\n    {compress}\n    {method}\n"
        "    missingok\n    notifempty\n}\n"
    )


def nodeguard_conf(tree: Tree, case: Case) -> str:
    """max_size 1Mi, 5 files (live + 4 rotated), gzip level 6; no logrotate cross-check."""
    return (
        f"state_dir: {tree.root}/state\nlogrotate_config: null\npolicies:\n"
        f"  - name: bench\n    paths: [{json.dumps(tree.glob)}]\n    max_size: 1Mi\n"
        f"    max_files: 5\n    compress: {'gzip' if case.compress else 'none'}\n"
        f"    compress_level: 6\n    method: {case.method}\n"
    )


# --- running a tool ---------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One timed run of one tool."""

    tool: str
    compressor: str
    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_kib: int
    exit_code: int


@dataclass(frozen=True)
class Tools:
    """How to start each tool."""

    python: str
    logrotate: str
    time: str

    def argv(self, tree: Tree) -> list[str]:
        if tree.tool == "logrotate":
            state = str(tree.root / "logrotate.state")
            return [self.logrotate, "-s", state, str(tree.config)]
        return [self.python, "-m", "nodeguard", "-c", str(tree.config), "--no-dropins", "rotate"]

    def env(self, tree: Tree) -> dict[str, str]:
        env = dict(os.environ)
        if tree.tool == "nodeguard":
            env["PYTHONPATH"] = str(REPO)
            # bytecode as an installed package has it: the warm-up run writes the .pyc files
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            if tree.compressor in COMPRESSORS:
                env["NODEGUARD_COMPRESSOR"] = tree.compressor
        return env


def run_tool(tools: Tools, tree: Tree) -> Run:
    """Run the tool once on its tree under GNU time; wall clock measured here around it.

    Peak RSS comes from GNU time's wait4 because it is small: the kernel carries the
    RSS high-water mark of the process that calls exec into the child's ru_maxrss, so
    a child spawned straight from this (larger) Python process would report our size.
    """
    log, usage = tree.root / f"{tree.tool}.out", tree.root / f"{tree.tool}.time"
    argv = [tools.time, "-f", "%U %S %M", "-o", str(usage), "--", *tools.argv(tree)]
    os.sync()  # write-back of the tree must not land inside the next tool's time
    with log.open("wb") as out:
        start = time.perf_counter()
        code = subprocess.call(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=tools.env(tree),
        )
        wall = time.perf_counter() - start
    if code != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise BenchError(f"{' '.join(argv)} exited {code}:\n{tail}")
    user, system, rss = usage.read_text().split()[-3:]
    return Run(tree.tool, tree.compressor, wall, float(user), float(system), int(rss), code)


def nodeguard_compressor(tools: Tools, tree: Tree) -> str:
    """The encoder nodeguard really uses for level 6 here, e.g. libdeflate-6 or zlib-5."""
    code = "from nodeguard.rotation.compress import compressor_name; print(compressor_name(6))"
    done = subprocess.run(
        [tools.python, "-c", code],
        env=tools.env(tree),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"cannot import nodeguard with {tools.python}: {done.stderr.strip()}")
    return done.stdout.strip()


# --- checking the outputs ---------------------------------------------------------------


@dataclass
class Outcome:
    """What a tree holds after a run."""

    live: int = 0
    live_bytes: int = 0
    plain: int = 0
    gz: int = 0
    gz_bytes: int = 0
    debris: int = 0
    gz_files: list[Path] = field(default_factory=list)


def survey(tree: Tree) -> Outcome:
    """Count live logs, rotated plain files, .gz files (and their bytes) and leftovers."""
    outcome = Outcome()
    for folder in sorted((tree.root / "logs").iterdir()):
        for entry in os.scandir(folder):
            size = entry.stat(follow_symlinks=False).st_size
            if entry.name.startswith("."):
                outcome.debris += 1
            elif entry.name.endswith(".log"):
                outcome.live += 1
                outcome.live_bytes += size
            elif entry.name.endswith(".gz"):
                outcome.gz += 1
                outcome.gz_bytes += size
                outcome.gz_files.append(Path(entry.path))
            elif entry.is_dir(follow_symlinks=False):
                outcome.debris += 1
            else:
                outcome.plain += 1
    return outcome


def check_outcome(case: Case, tree: Tree, outcome: Outcome) -> list[str]:
    """Problems with what the tool left, as readable sentences (empty: all as expected)."""
    name = f"{tree.tool}/{tree.compressor}"
    rotated = 0 if case.noop else case.files
    want = {
        "live files": (outcome.live, case.files),
        "bytes left in live files": (
            outcome.live_bytes,
            case.files * case.size if case.noop else 0,
        ),
        ".gz files": (outcome.gz, rotated if case.compress else 0),
        "plain rotated files": (outcome.plain, 0 if case.compress else rotated),
        "leftover temporary files": (outcome.debris, 0),
    }
    return [
        f"{name}: {what}: {got}, expected {exp}" for what, (got, exp) in want.items() if got != exp
    ]


def zcat_check(files: list[Path], sample: bytes, batch: int = 200) -> list[str]:
    """Decompress every file with zcat; each must give back exactly the sample."""
    problems: list[str] = []
    for start in range(0, len(files), batch):
        chunk = files[start : start + batch]
        expected = hashlib.sha256()
        for _ in chunk:
            expected.update(sample)
        got, code = _zcat_digest(chunk)
        if code != 0:
            problems.append(f"zcat of {len(chunk)} files from {chunk[0]}: exit {code}")
        elif got != expected.hexdigest():
            problems.append(f"zcat of {len(chunk)} files from {chunk[0]}: content differs")
    return problems


def _zcat_digest(files: list[Path]) -> tuple[str, int]:
    digest = hashlib.sha256()
    with subprocess.Popen(["zcat", "--", *map(str, files)], stdout=subprocess.PIPE) as proc:
        if proc.stdout is None:
            raise BenchError("zcat: no stdout")
        while block := proc.stdout.read(1 << 20):
            digest.update(block)
    return digest.hexdigest(), proc.returncode


# --- one case ---------------------------------------------------------------------------


@dataclass
class CaseResult:
    """Runs, ratios and checks of one case."""

    case: Case
    order: list[str]
    runs: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    zcat_checked: int = 0


def variants(case: Case, compressors: list[str]) -> list[tuple[str, str]]:
    """(tool, compressor) pairs for a case; compressor choice matters only with gzip."""
    if not case.compress or case.noop:
        label = "none" if not case.compress else "any"
        return [("logrotate", label), ("nodeguard", label)]
    return [("logrotate", "gzip-6")] + [("nodeguard", c) for c in compressors]


def run_case(case: Case, ctx: Context, first: str) -> CaseResult:
    """Build the trees, run the tools in the given order, check and survey the outputs."""
    sample = ctx.work / f"sample-{case.size}.log"
    if not sample.exists():
        sample.write_bytes(log_text(case.size))
    trees = [
        Tree(t, c, ctx.work / case.key / f"{t}-{c}") for t, c in variants(case, ctx.compressors)
    ]
    trees.sort(key=lambda t: t.tool != first)
    result = CaseResult(case, [f"{t.tool}/{t.compressor}" for t in trees])
    try:
        ctx.progress(f"case {case.key}: building {len(trees)} trees of {case.files} files")
        for tree in trees:
            build_tree(tree, case, sample)
        if case.noop:  # the untimed first pass also writes both tools' state files
            for tree in trees:
                run_tool(ctx.tools, tree)
        for tree in trees:
            ctx.progress(f"case {case.key}: running {tree.tool} ({tree.compressor})")
            result.runs.append(_measure(case, tree, ctx))
            _check(case, tree, ctx, sample.read_bytes(), result)
        if case.noop:
            ours = next(t for t in trees if t.tool == "nodeguard")
            result.runs.append(resident_pass(ctx.tools, ours))
            _check(case, ours, ctx, sample.read_bytes(), result)
    finally:
        if not ctx.keep:
            shutil.rmtree(ctx.work / case.key, ignore_errors=True)
    return result


def _check(case: Case, tree: Tree, ctx: Context, sample: bytes, result: CaseResult) -> None:
    result.problems += check_outcome(case, tree, survey(tree))
    if tree.tool == "nodeguard" and case.compress and not case.noop:
        files = survey(tree).gz_files[: ctx.zcat_limit]
        result.problems += zcat_check(files, sample)
        result.zcat_checked += len(files)


_RESIDENT = """
import contextlib, io, json, sys, time
from nodeguard import cli
argv = ["-c", sys.argv[1], "--no-dropins", "rotate"]
def once():
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(argv)
    return code, time.perf_counter() - wall, time.process_time() - cpu
once()
code, wall, cpu = once()
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"exit": code, "wall": wall, "cpu": cpu, "rss": hwm}))
"""


def resident_pass(tools: Tools, tree: Tree) -> dict[str, Any]:
    """A pass inside an already running nodeguard process, as the daemon loop makes them.

    The second of two calls in one interpreter is timed: no start-up, imports cached.
    RSS is the process's own high-water mark (VmHWM), which exec does not inherit.
    """
    os.sync()
    done = subprocess.run(
        [tools.python, "-c", _RESIDENT, str(tree.config)],
        env=tools.env(tree),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"resident pass failed: {done.stderr.strip()[-2000:]}")
    got = json.loads(done.stdout)
    if got["exit"] != 0:
        raise BenchError(f"resident pass: nodeguard exited {got['exit']}")
    run = Run("nodeguard", "resident-pass", got["wall"], got["cpu"], 0.0, got["rss"], 0)
    return {**asdict(run), "gz_bytes": 0, "loadavg_1m_after": os.getloadavg()[0]}


def _measure(case: Case, tree: Tree, ctx: Context) -> dict[str, Any]:
    run = run_tool(ctx.tools, tree)
    row = asdict(run)
    if tree.tool == "nodeguard" and case.compress and not case.noop:
        row["compressor"] = f"{tree.compressor}:{nodeguard_compressor(ctx.tools, tree)}"
    row["loadavg_1m_after"] = os.getloadavg()[0]
    row["gz_bytes"] = survey(tree).gz_bytes
    return row


def with_ratios(result: CaseResult) -> dict[str, Any]:
    """The case as JSON-ready data, each nodeguard run with its ratios to logrotate."""
    base = next(r for r in result.runs if r["tool"] == "logrotate")
    for run in result.runs:
        run["wall_ratio"] = run["wall_s"] / base["wall_s"]
        run["cpu_ratio"] = (run["user_s"] + run["sys_s"]) / max(
            base["user_s"] + base["sys_s"], 1e-9
        )
        run["rss_ratio"] = run["peak_rss_kib"] / base["peak_rss_kib"]
        run["gz_ratio"] = run["gz_bytes"] / base["gz_bytes"] if base["gz_bytes"] else None
    return {
        **asdict(result.case),
        "order": result.order,
        "runs": result.runs,
        "zcat_checked": result.zcat_checked,
        "problems": result.problems,
    }


# --- the whole run ----------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """Settings shared by every case."""

    work: Path
    tools: Tools
    compressors: list[str]
    zcat_limit: int | None
    keep: bool
    progress: Callable[[str], None]


def cases(args: argparse.Namespace) -> list[Case]:
    """The cases asked for on the command line, in the order asked."""
    n, size, small = args.files, args.size, args.small_files
    known = {
        "a": Case("a", f"{n} x {size} B, gzip, rename/create", n, size, True, "rename"),
        "b": Case("b", f"{n} x {size} B, no compression, rename/create", n, size, False, "rename"),
        "c": Case(
            "c", f"{small} small files, nothing to do", small, SMALL_FILE_SIZE, True, "rename", True
        ),
        "a-copytruncate": Case(
            "a-copytruncate", f"{n} x {size} B, gzip, copytruncate", n, size, True, "copytruncate"
        ),
    }
    unknown = [k for k in args.cases if k not in known]
    if unknown:
        raise UsageError(f"--cases: unknown case(s) {', '.join(unknown)} (have {', '.join(known)})")
    return [known[k] for k in args.cases]


def warm_up(ctx: Context, size: int) -> None:
    """Run each tool once on a throwaway 10-file tree: binaries, libraries, imports cached."""
    case = Case("warm-up", "warm-up", 10, size, True, "rename")
    sample = ctx.work / f"sample-{size}.log"
    sample.write_bytes(log_text(size))
    for tool, compressor in variants(case, ctx.compressors):
        tree = Tree(tool, compressor, ctx.work / "warm-up" / f"{tool}-{compressor}")
        build_tree(tree, case, sample)
        run_tool(ctx.tools, tree)
    shutil.rmtree(ctx.work / "warm-up")


def machine(work: Path, tools: Tools) -> dict[str, Any]:
    """What the figures were measured on."""
    version = subprocess.run(
        [tools.logrotate, "--version"], capture_output=True, text=True, check=False
    )
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in _lines("/proc/cpuinfo")
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "loadavg_at_start": os.getloadavg(),
        "filesystem": fs_type(work),
        "work_dir": str(work),
        "python": tools.python,
        "logrotate": (version.stdout or version.stderr).splitlines()[0].strip(),
        "kernel": platform.release(),
    }


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def fs_type(path: Path) -> str:
    """The type of the filesystem holding ``path`` (longest mount point prefix wins)."""
    best, kind = "", "unknown"
    real = str(path.resolve())
    for line in _lines("/proc/self/mounts"):
        fields = line.split()
        mount = fields[1].replace("\\040", " ")
        inside = real == mount or real.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, fields[2]
    return kind


# --- output -----------------------------------------------------------------------------


def render(doc: dict[str, Any]) -> str:
    """A plain-text table of every run, with the ratios to logrotate."""
    m = doc["machine"]
    out = [
        f"machine: {m['nproc']} CPUs, {m['cpu']}, {m['filesystem']} at {m['work_dir']}, "
        f"{m['logrotate']}, load at start {m['loadavg_at_start'][0]:.2f}",
        f"method: {doc['method']}",
        "",
        f"{'case':<15}{'tool':<11}{'compressor':<14}{'wall s':>9}{'cpu s':>9}{'RSS MiB':>9}"
        f"{'wall x':>8}{'RSS x':>7}{'gz MiB':>9}{'gz x':>7}",
    ]
    for case in doc["cases"]:
        for r in case["runs"]:
            gz = f"{r['gz_bytes'] / 2**20:9.1f}" if r["gz_bytes"] else f"{'-':>9}"
            gzx = f"{r['gz_ratio']:7.3f}" if r["gz_ratio"] is not None else f"{'-':>7}"
            out.append(
                f"{case['key']:<15}{r['tool']:<11}{r['compressor']:<14}{r['wall_s']:9.2f}"
                f"{r['user_s'] + r['sys_s']:9.2f}{r['peak_rss_kib'] / 1024:9.1f}"
                f"{r['wall_ratio']:8.3f}{r['rss_ratio']:7.2f}{gz}{gzx}"
            )
        out += [f"  PROBLEM: {p}" for p in case["problems"]]
        out.append(
            f"  ({case['title']}; order {', '.join(case['order'])}; "
            f"{case['zcat_checked']} nodeguard .gz read back by zcat)"
        )
    return "\n".join(out) + "\n"


def parse_size(text: str) -> int:
    """Bytes, or a number with Ki, Mi or Gi."""
    match = _SIZE_RE.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (bytes, or with Ki/Mi/Gi)")
    return int(match.group(1)) * _SUFFIX[match.group(2)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=None, help="files in cases a/b (2000)")
    parser.add_argument("--size", type=parse_size, default=None, help="bytes per file (2Mi)")
    parser.add_argument("--small-files", type=int, default=None, help="files in case c (10000)")
    parser.add_argument("--quick", action="store_true", help="20 files, 300 small: a smoke test")
    parser.add_argument(
        "--cases",
        type=lambda s: s.split(","),
        default=["a", "b", "c", "a-copytruncate"],
        help="comma-separated: a, b, c, a-copytruncate (all)",
    )
    parser.add_argument(
        "--compressors",
        type=lambda s: s.split(","),
        default=["libdeflate", "zlib"],
        help="nodeguard compressors for the gzip cases: libdeflate (with zlib: what the deb "
        "depends on), zlib (zlib alone), auto (every accelerator installed), isal, zlibng "
        "(default: libdeflate,zlib)",
    )
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="disk, not tmpfs")
    parser.add_argument("--python", default=None, help="interpreter for nodeguard (.venv's)")
    parser.add_argument("--logrotate", default=LOGROTATE)
    parser.add_argument("--zcat-limit", type=int, default=None, help="zcat only the first N")
    parser.add_argument("--keep", action="store_true", help="keep the trees for inspection")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    quick = args.quick
    args.files = args.files or (20 if quick else 2000)
    args.size = args.size or (2 << 20)
    args.small_files = args.small_files or (300 if quick else 10_000)
    return args


def _tools(args: argparse.Namespace) -> Tools:
    venv = REPO / ".venv" / "bin" / "python"
    python = args.python or (str(venv) if venv.exists() else sys.executable)
    if not os.access(args.logrotate, os.X_OK):
        raise BenchError(f"{args.logrotate} not found: apt-get install logrotate")
    if shutil.which("zcat") is None:
        raise BenchError("zcat not found: apt-get install gzip")
    if not os.access(GNU_TIME, os.X_OK):
        raise BenchError(f"{GNU_TIME} not found: apt-get install time")
    return Tools(python, args.logrotate, GNU_TIME)


METHOD = (
    "each tool runs once as a subprocess on its own copy of the tree; trees live on one "
    "disk filesystem and are written and synced before any timed run; before the cases "
    "each tool ran once on a throwaway 10-file tree (warm-up); the order of the tools "
    "alternates from case to case; case c times the second pass (the first is untimed)"
)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        tools = _tools(args)
        check_dir(args.dir)
        cases(args)  # unknown names fail here, before any tree is built
        bad = [c for c in args.compressors if c not in ("auto", *COMPRESSORS)]
        if bad:
            have = ", ".join(("auto", *COMPRESSORS))
            raise UsageError(f"--compressors: unknown {', '.join(bad)} (have {have})")
        return _bench(args, tools)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1


def check_dir(path: Path) -> None:
    """The work folder must exist and be on a disk filesystem, as logs are."""
    if not path.is_dir():
        raise UsageError(f"--dir {path}: not a directory")
    kind = fs_type(path)
    if kind in ("tmpfs", "ramfs"):
        raise UsageError(f"--dir {path} is on {kind}: use a folder on a disk filesystem")


def _bench(args: argparse.Namespace, tools: Tools) -> int:
    work = Path(tempfile.mkdtemp(prefix="nodeguard-bench-", dir=args.dir))
    ctx = Context(work, tools, args.compressors, args.zcat_limit, args.keep, _progress)
    try:
        doc: dict[str, Any] = {"machine": machine(work, tools), "method": METHOD, "cases": []}
        warm_up(ctx, args.size)
        for index, case in enumerate(cases(args)):
            first = "logrotate" if index % 2 == 0 else "nodeguard"
            doc["cases"].append(with_ratios(run_case(case, ctx, first)))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    sys.stdout.write(json.dumps(doc, indent=1) + "\n" if args.json else render(doc))
    return 1 if any(c["problems"] for c in doc["cases"]) else 0


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
