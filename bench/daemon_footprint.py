#!/usr/bin/env python3
"""The idle daemon's cost and its burst latency, over the same 10,000 log files.

Builds the tree of ``rotate_vs_logrotate.py``'s case c (10,000 x 2 KiB, 100 per folder,
one glob), starts ``nodeguard run`` on it with a real sd_notify socket, and measures:

- idle: RSS (VmRSS, sampled every second; max and last) and CPU (utime + stime from
  /proc/PID/stat) over ``--window`` seconds after the first pass, as % of one core;
- burst latency: a random live file is pushed over max_size in one write, and the time
  until it is rotated (its inode replaced) is taken, ``--trials`` times at random phases
  of the size-watch interval.

Anchors, in the same run: logrotate 3.21's steady-state pass over the same files
(``ROOT/logs/*/*.log``, nothing to rotate), timed, and its CPU spread over its hourly
timer and over the size-watch interval (what logrotate would cost at nodeguard's
latency). Latency anchors come from the schedules themselves: logrotate's hourly
timer (mean wait 1800 s, worst 3600 s) and kubelet's containerLogMonitorInterval
(10 s: mean 5 s). Targets: RSS < 40 MiB, CPU < 1% of one core, latency under the
size-watch interval (plus one scan and one pass). See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LOGROTATE = "/usr/sbin/logrotate"
MAX_SIZE = 1 << 20
TICK = os.sysconf("SC_CLK_TCK")
TARGET_RSS_MIB = 40.0
TARGET_CPU_PCT = 1.0
LOGROTATE_TIMER = 3600.0
KUBELET_MONITOR = 10.0


@dataclass(frozen=True)
class Tree:
    root: Path
    files: int
    per_dir: int
    size: int

    @property
    def glob(self) -> str:
        return f"{self.root}/logs/*/*.log"

    def path(self, n: int) -> Path:
        return self.root / "logs" / f"d{n // self.per_dir:04d}" / f"f{n % self.per_dir:03d}.log"


def build_tree(tree: Tree) -> None:
    line = b"2024-05-01T12:00:00.000Z INFO http GET /api/v1/items status=200 dur=12ms\n"
    body = (line * (tree.size // len(line) + 1))[: tree.size - 1] + b"\n"
    for n in range(tree.files):
        path = tree.path(n)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    os.sync()


def write_config(tree: Tree, size_watch: int) -> Path:
    conf = tree.root / "nodeguard.yaml"
    d = tree.root
    (d / "journal").mkdir(exist_ok=True)
    conf.write_text(
        f"state_dir: {d}/state\nlogrotate_config: null\ninterval: 1h\n"
        f"containers: {{pods_dir: {d}/pods, containers_dir: {d}/containers, "
        f"docker_root: {d}/docker, kubelet_config: {d}/kubelet.yaml}}\n"
        f"daemon: {{size_watch_interval: {size_watch}s}}\n"
        # The whole service runs (journal, disk, delivery), but nothing leaves the bench:
        # its own empty journal folder, no Alertmanager or journald, a textfile of its own.
        f"journal: {{directory: {d}/journal, text_logs: {{read: never}}}}\n"
        f"alerts: {{alertmanager: {{url: null}}, journald: false, textfile: {d}/nodeguard.prom}}\n"
        "policies:\n"
        f'  - {{name: app, paths: ["{tree.glob}"], max_size: {MAX_SIZE}, max_files: 5,'
        " compress: gzip, method: rename}\n"
    )
    return conf


class Notify:
    """The NOTIFY_SOCKET end, recording when READY=1 arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            if b"READY=1" in data:
                self.ready.set()


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def proc_rss_mib(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_daemon(conf: Path, work: Path, python: str) -> tuple[subprocess.Popen[bytes], Notify]:
    notify = Notify(work / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "PYTHONPATH": str(REPO)}
    log = (work / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [python, "-m", "nodeguard", "-c", str(conf), "run"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        env=env,
    )
    if not notify.ready.wait(60):
        proc.kill()
        raise SystemExit(f"the daemon did not report READY=1: see {work / 'daemon.log'}")
    return proc, notify


def wait_first_pass(state: Path, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = json.loads((state / "status.json").read_text())["data"]
            if data["parts"]["rotation"]["last_start"] is not None:
                return
        except (OSError, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.2)
    raise SystemExit("the first pass did not finish")


def idle(pid: int, window: float) -> dict[str, Any]:
    cpu0, t0 = proc_cpu(pid), time.monotonic()
    rss: list[float] = []
    while time.monotonic() - t0 < window:
        rss.append(proc_rss_mib(pid))
        time.sleep(1.0)
    cpu = proc_cpu(pid) - cpu0
    elapsed = time.monotonic() - t0
    return {
        "window_s": round(elapsed, 1),
        "cpu_s": round(cpu, 3),
        "cpu_pct_of_one_core": round(100 * cpu / elapsed, 4),
        "rss_mib_max": round(max(rss), 1),
        "rss_mib_last": round(rss[-1], 1),
        "vmhwm_mib": round(proc_rss_mib(pid, "VmHWM"), 1),
    }


def burst(tree: Tree, rng: random.Random, size_watch: int, timeout: float) -> float:
    """Push one random file over max_size; seconds until its inode is replaced."""
    time.sleep(rng.uniform(0, size_watch))  # a random phase of the watch's interval
    path = tree.path(rng.randrange(tree.files))
    inode = path.stat().st_ino
    with path.open("ab") as f:
        f.write(b"b" * MAX_SIZE)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if path.stat().st_ino != inode:
                return time.monotonic() - t0
        except FileNotFoundError:
            pass  # between the rename and the new file: not done yet
        time.sleep(0.005)
    raise SystemExit(f"{path} was not rotated within {timeout}s")


def logrotate_pass(tree: Tree) -> dict[str, Any]:
    """logrotate's steady-state pass over the same files (second run: nothing to do)."""
    conf = tree.root / "logrotate.conf"
    conf.write_text(
        f"{tree.glob} {{\n  size 1M\n  rotate 4\n  compress\n  missingok\n  notifempty\n"
        "  create\n}\n"
    )
    argv = [LOGROTATE, "-s", str(tree.root / "logrotate.state"), str(conf)]
    subprocess.run(argv, check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run(argv, check=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    tree = Tree(work, args.files, 100, 2048)
    build_tree(tree)
    conf = write_config(tree, args.size_watch)
    anchor = logrotate_pass(tree) if Path(LOGROTATE).exists() else None
    proc, _ = start_daemon(conf, work, args.python)
    try:
        wait_first_pass(work / "state")
        cost = idle(proc.pid, args.window)
        rng = random.Random(args.seed)
        timeout = args.size_watch * 3 + 60
        latencies = [burst(tree, rng, args.size_watch, timeout) for _ in range(args.trials)]
    finally:
        proc.terminate()
        proc.wait(30)
    return report(args, cost, latencies, anchor)


def report(
    args: argparse.Namespace,
    cost: dict[str, Any],
    latencies: list[float],
    anchor: dict[str, Any] | None,
) -> dict[str, Any]:
    lat = {
        "trials": len(latencies),
        "min_s": round(min(latencies), 3),
        "median_s": round(statistics.median(latencies), 3),
        "max_s": round(max(latencies), 3),
    }
    body: dict[str, Any] = {
        "files": args.files,
        "size_watch_interval_s": args.size_watch,
        "idle": cost,
        "burst_latency": lat,
        "targets": {
            "rss_under_40_mib": cost["rss_mib_max"] < TARGET_RSS_MIB,
            "cpu_under_1_pct": cost["cpu_pct_of_one_core"] < TARGET_CPU_PCT,
            "median_latency_under_interval": lat["median_s"] < args.size_watch,
        },
        "loadavg": os.getloadavg(),
    }
    if anchor is not None:
        hourly = 100 * anchor["cpu_s"] / LOGROTATE_TIMER
        at_watch = 100 * anchor["cpu_s"] / args.size_watch
        anchor |= {
            "cpu_pct_hourly_timer": round(hourly, 4),
            "cpu_pct_at_size_watch_interval": round(at_watch, 4),
        }
        body["logrotate"] = anchor
        ours = cost["cpu_pct_of_one_core"]
        body["ratios"] = {
            "cpu_vs_logrotate_at_same_latency": round(ours / at_watch, 4) if at_watch else None,
            "cpu_vs_logrotate_hourly": round(ours / hourly, 3) if hourly else None,
        }
    body.setdefault("ratios", {})
    body["ratios"] |= {
        "median_latency_vs_logrotate_hourly_mean_1800s": round(lat["median_s"] / 1800, 5),
        "median_latency_vs_kubelet_10s_monitor_mean_5s": round(lat["median_s"] / 5, 3),
    }
    return body


def render(body: dict[str, Any]) -> str:
    c, lat, r = body["idle"], body["burst_latency"], body["ratios"]
    lines = [
        f"nodeguard daemon over {body['files']} files, size watch every "
        f"{body['size_watch_interval_s']}s",
        f"idle {c['window_s']}s: CPU {c['cpu_s']}s = {c['cpu_pct_of_one_core']}% of one core; "
        f"RSS max {c['rss_mib_max']} MiB (last {c['rss_mib_last']}, VmHWM {c['vmhwm_mib']})",
        f"burst latency over {lat['trials']} trials: min {lat['min_s']}s, median "
        f"{lat['median_s']}s, max {lat['max_s']}s",
    ]
    if "logrotate" in body:
        lr = body["logrotate"]
        lines.append(
            f"logrotate steady pass: {lr['cpu_s']}s CPU ({lr['wall_s']}s wall) = "
            f"{lr['cpu_pct_hourly_timer']}% of a core hourly, "
            f"{lr['cpu_pct_at_size_watch_interval']}% at the size-watch interval"
        )
    lines.append("ratios: " + ", ".join(f"{k} {v}" for k, v in r.items()))
    lines.append("targets: " + ", ".join(f"{k} {v}" for k, v in body["targets"].items()))
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--files", type=int, default=None, help="log files (10000)")
    parser.add_argument("--window", type=float, default=None, help="idle seconds (120)")
    parser.add_argument("--ten-minutes", action="store_true", help="an idle window of 600 s")
    parser.add_argument("--size-watch", type=int, default=None, help="seconds (the default 30)")
    parser.add_argument("--trials", type=int, default=None, help="bursts (4)")
    parser.add_argument(
        "--quick", action="store_true", help="defaults of 2000 files, 10 s, 3 s, 2 bursts"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--python", default=str(REPO / ".venv/bin/python"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    defaults = (2000, 10.0, 3, 2) if args.quick else (10_000, 120.0, 30, 4)
    for name, value in zip(("files", "window", "size_watch", "trials"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.ten_minutes:
        args.window = 600.0
    if args.files < 1 or args.window <= 0 or args.size_watch < 1 or args.trials < 1:
        parser.error("--files, --window, --size-watch and --trials must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ng-footprint-", dir=args.dir))
    try:
        body = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.stdout.write(json.dumps(body, indent=1) + "\n" if args.json else render(body))
    return 0 if all(body["targets"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
