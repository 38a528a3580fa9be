#!/usr/bin/env python3
"""Journal entries per second through all built-in rules: nodeguard's follower against
``journalctl -o json`` piped into a JSON parser applying the same rules.

Builds real journal files with systemd-journal-remote (kubelet, containerd, dockerd,
conmon and kernel lines in their real shapes, about 1% of them disk trouble, plus 15%
from units nobody watches), then times, in one run and on the same files:

- nodeguard: ``follow_once`` in a fresh process (all built-in rules, default batch, the
  cursor saved after every batch, as the daemon runs it);
- the pipeline: ``journalctl -D DIR -o json`` with the same matches, piped into Python
  that ``json.loads`` each line and runs nodeguard's own compiled rules on MESSAGE.

Both see the same entries (checked), each runs ``--runs`` times, the best wall time
counts, and the ratio is printed. Peak RSS of nodeguard is measured on the full journal
and on a fifth of it: bounded means about equal. Numbers go to docs/performance.md.

    .venv/bin/python bench/journal_throughput.py                  # 300,000 entries
    .venv/bin/python bench/journal_throughput.py --entries 50000 --runs 1   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.journal.journalfiles import Stream, append  # noqa: E402
from tests.journal.samples import CID, SAMPLES, UNITS, klog, logrus  # noqa: E402

MATCHES = [
    *(
        f"_SYSTEMD_UNIT={u}"
        for u in ("kubelet.service", "containerd.service", "docker.service", "crio.service")
    ),
    "+",
    "SYSLOG_IDENTIFIER=conmon",
    "SYSLOG_IDENTIFIER=k3s",
    "_UID=0",
    "+",
    "_TRANSPORT=kernel",
]  # the follower's own matches (reader.py), in journalctl's syntax

NODEGUARD_RUN = r"""
import json, os, resource, sys, threading, time
from datetime import UTC, datetime
from pathlib import Path
from nodeguard.config import load_config
from nodeguard.journal.follow import follow_once
from nodeguard.world import World
config = load_config(Path(sys.argv[1]), dropins=False)
now = datetime.fromtimestamp(int(sys.argv[2]) / 1e6, UTC)
start = time.perf_counter()
result = follow_once(config, World(clock=lambda: now, stop=threading.Event()))
wall = time.perf_counter() - start
# VmHWM, the peak RSS of this process image (ru_maxrss would include the pages the
# forking parent had before exec).
# RssAnon at the end: the heap (Python never returns it, so the end is about the peak);
# the rest of VmHWM is journal file pages mapped by sd-journal (page cache, reclaimable).
status = {l.split(":")[0]: l.split()[1] for l in open("/proc/self/status") if "kB" in l}
print(json.dumps({"wall": wall, "entries": result.entries_read,
                  "matches": sum(result.metrics.matches.values()),
                  "hwm_kib": int(status["VmHWM"]), "anon_kib": int(status["RssAnon"])}))
"""

PIPELINE_CONSUMER = r"""
import json, sys, time
from pathlib import Path
from nodeguard.config import load_config
from nodeguard.journal.rules import Evaluator, RuleSet, RuleState
config = load_config(Path(sys.argv[1]), dropins=False).journal
rules = RuleSet(config)
ev = Evaluator(config, rules, RuleState())
units = {u.encode() for u in config.units}
n = matched = 0
for line in sys.stdin.buffer:
    entry = json.loads(line)
    n += 1
    message = entry.get("MESSAGE") or ""
    raw = message.encode() if isinstance(message, str) else bytes(message)
    unit = entry.get("_SYSTEMD_UNIT")
    ident = entry.get("SYSLOG_IDENTIFIER")
    unit_b = unit.encode() if isinstance(unit, str) else None
    kernel = unit_b not in units and entry.get("_TRANSPORT") == "kernel"
    scope = rules.scope(unit_b, ident.encode() if isinstance(ident, str) else None, kernel)
    if scope.may_match(raw):
        cursor = entry["__CURSOR"]
        ev.check(scope, raw, int(entry["__REALTIME_TIMESTAMP"]), lambda: cursor)
print(json.dumps({"entries": n, "matches": sum(ev.matches.values())}))
"""


# --- the journal ---------------------------------------------------------------------------


def _ordinary(rng: random.Random, stream: Stream) -> dict[str, str]:
    pod = f"default/web-{rng.randrange(10**6):06d}"
    cid = f"{rng.getrandbits(256):064x}"
    pick = rng.random()
    if pick < 0.40:
        text = rng.choice(
            (
                f'"SyncLoop (PLEG): event for pod" pod="{pod}" event={{"ID":"{cid[:8]}",'
                '"Type":"ContainerStarted"}',
                f'"Probe failed" probeType="Readiness" pod="{pod}" containerName="web" '
                'probeResult="failure" output="HTTP probe failed with statuscode: 503"',
                f'"RemoveContainer" containerID="{cid}"',
            )
        )
        return stream.service("kubelet.service", "kubelet", klog("I", "kubelet.go:2400", text))
    if pick < 0.65:
        text = logrus("info", f'StartContainer for "{cid}" returns successfully')
        return stream.service("containerd.service", "containerd", text)
    if pick < 0.75:
        text = logrus(
            "info",
            "ignoring event",
            container=cid,
            module="libcontainerd",
            namespace="moby",
            topic="/tasks/delete",
            type="*events.TaskDelete",
        )
        return stream.service("docker.service", "dockerd", text)
    if pick < 0.80:
        unit, ident = UNITS["conmon"]
        return stream.syslog(ident, f"conmon {CID[:20]} <ninfo>: container PID: 4242", unit=unit)
    if pick < 0.85:
        return stream.kernel(
            f"cni0: port {rng.randrange(64)}(veth{cid[:8]}) entered forwarding state", priority=6
        )
    return stream.service(
        "cron.service",
        "CRON",
        f"pam_unix(cron:session): session opened for user root(uid=0) by (uid=0) {cid[:6]}",
    )


def _trouble(rng: random.Random, stream: Stream) -> dict[str, str]:
    sample = rng.choice([s for s in SAMPLES if s.rules])
    if sample.source == "kernel":
        return stream.kernel(sample.message)
    unit, ident = UNITS[sample.source]
    if sample.source == "conmon":
        return stream.syslog(ident, sample.message, unit=unit)
    return stream.service(unit, ident, sample.message)


def build_journal(directory: Path, entries: int, seed: int = 1) -> int:
    """``entries`` entries over three boots; returns the realtime (µs) of the last one."""
    rng = random.Random(seed)
    stream = Stream(step_us=500)
    chunk: list[dict[str, str]] = []
    for i in range(entries):
        if i in (entries // 3, 2 * entries // 3):
            stream.new_boot()
        chunk.append(_trouble(rng, stream) if rng.random() < 0.01 else _ordinary(rng, stream))
        if len(chunk) == 50_000:
            append(directory / "system.journal", chunk)
            chunk = []
    if chunk:
        append(directory / "system.journal", chunk)
    return stream.realtime_us


# --- the runs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    wall: float
    entries: int
    matches: int
    max_rss_kib: int = 0
    anon_kib: int = 0


def write_config(folder: Path, journal: Path) -> Path:
    path = folder / "nodeguard.yaml"
    path.write_text(
        f"state_dir: {folder / 'state'}\nlogrotate_config: null\npolicies: []\n"
        f"journal:\n  directory: {journal}\n  lookback: 3650d\n"
        "  text_logs: {read: never}\n"
    )
    return path


def run_nodeguard(config: Path, now_us: int) -> Run:
    shutil.rmtree(config.parent / "state", ignore_errors=True)  # from the lookback, as new
    proc = subprocess.Popen(
        [sys.executable, "-c", NODEGUARD_RUN, str(config), str(now_us)],
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    out = proc.stdout.read() if proc.stdout else b""
    if proc.wait() != 0:
        raise SystemExit(f"nodeguard run failed ({proc.returncode})")
    body = json.loads(out)
    return Run(body["wall"], body["entries"], body["matches"], body["hwm_kib"], body["anon_kib"])


def run_pipeline(config: Path, journal: Path) -> Run:
    journalctl = ["journalctl", "-D", str(journal), "-o", "json", "--no-pager", *MATCHES]
    start = time.perf_counter()
    source = subprocess.Popen(journalctl, stdout=subprocess.PIPE)
    sink = subprocess.run(
        [sys.executable, "-c", PIPELINE_CONSUMER, str(config)],
        stdin=source.stdout,
        capture_output=True,
        cwd=REPO,
        check=True,
    )
    if source.stdout:
        source.stdout.close()
    source.wait()
    wall = time.perf_counter() - start
    body = json.loads(sink.stdout)
    return Run(wall, body["entries"], body["matches"])


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ng-journal-bench-", dir=args.dir))
    try:
        return _bench(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bench(work: Path, args: argparse.Namespace) -> int:
    big, small = work / "big", work / "small"
    big.mkdir()
    small.mkdir()
    t0 = time.perf_counter()
    now_big = build_journal(big, args.entries) + 1_000_000
    now_small = build_journal(small, args.entries // 5, seed=2) + 1_000_000
    built = time.perf_counter() - t0
    for name in ("cfg-big", "cfg-small"):
        (work / name).mkdir()
    config_big = write_config(work / "cfg-big", big)
    config_small = write_config(work / "cfg-small", small)
    subprocess.run(["sync"], check=False)
    ours, theirs = [], []
    for _ in range(args.runs):  # alternate, so load changes hit both alike
        ours.append(run_nodeguard(config_big, now_big))
        theirs.append(run_pipeline(config_big, big))
    small_run = run_nodeguard(config_small, now_small)
    a, b = best(ours), best(theirs)
    if (a.entries, a.matches) != (b.entries, b.matches):
        raise SystemExit(f"the two saw different things: nodeguard {a}, pipeline {b}")
    report = {
        "entries_in_journal": args.entries,
        "entries_matched_by_units": a.entries,
        "rule_matches": a.matches,
        "nodeguard_s": round(a.wall, 3),
        "nodeguard_entries_per_s": round(a.entries / a.wall),
        "pipeline_s": round(b.wall, 3),
        "pipeline_entries_per_s": round(b.entries / b.wall),
        "ratio": round(b.wall / a.wall, 2),
        "nodeguard_max_rss_mib": round(a.max_rss_kib / 1024, 1),
        "nodeguard_max_rss_mib_fifth": round(small_run.max_rss_kib / 1024, 1),
        "nodeguard_anon_mib": round(a.anon_kib / 1024, 1),
        "nodeguard_anon_mib_fifth": round(small_run.anon_kib / 1024, 1),
        "build_s": round(built, 1),
        "loadavg": os.getloadavg()[0],
        "runs": args.runs,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"journal: {args.entries} entries ({a.entries} from watched units, "
        f"{a.matches} rule matches), built in {built:.1f}s"
    )
    print(
        f"nodeguard follow_once:           {a.wall:7.3f} s  {a.entries / a.wall:>10,.0f} entries/s"
    )
    print(
        f"  peak RSS {a.max_rss_kib / 1024:.1f} MiB, heap (RssAnon) {a.anon_kib / 1024:.1f} MiB;"
        f" on a journal 1/5 the size: peak {small_run.max_rss_kib / 1024:.1f} MiB, heap "
        f"{small_run.anon_kib / 1024:.1f} MiB"
    )
    print(
        f"journalctl -o json | json+rules: {b.wall:7.3f} s  {b.entries / b.wall:>10,.0f} entries/s"
    )
    print(
        f"ratio: nodeguard is {b.wall / a.wall:.2f}x the pipeline (target >= 2x); "
        f"best of {args.runs}, load average {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
