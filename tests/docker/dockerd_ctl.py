"""Start, stop and restart an isolated real dockerd for the end-to-end tests.

Also a command (``python dockerd_ctl.py start|stop|restart BASE``) so that nodeguard's
``docker.restart_command`` can restart this dockerd instead of docker.service.

Isolation: its own data-root, exec-root, pidfile, trust key and unix socket under BASE,
no iptables, no bridge, no ip-forward/masquerade; and it runs in a private mount
namespace with a tmpfs on /run, so the mounts it makes (overlay layers, container
rootfs) and its /run/docker and /run/containerd never appear on the host and vanish
when its last process exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


class DockerdFailed(Exception):
    """dockerd did not start or stop; the message carries its log."""


@dataclass(frozen=True)
class Layout:
    """Where one isolated dockerd keeps everything."""

    base: Path

    @property
    def config(self) -> Path:
        return self.base / "etc" / "daemon.json"

    @property
    def data_root(self) -> Path:
        return self.base / "data"

    @property
    def exec_root(self) -> Path:
        return self.base / "exec"

    @property
    def pidfile(self) -> Path:
        return self.base / "dockerd.pid"

    @property
    def socket(self) -> Path:
        return self.base / "docker.sock"

    @property
    def log(self) -> Path:
        return self.base / "dockerd.log"

    @property
    def mntns(self) -> Path:
        return self.base / "mntns"


def isolation_settings(layout: Layout, storage_driver: str) -> dict[str, object]:
    """daemon.json keys that keep this dockerd away from the host's Docker and network."""
    return {
        "data-root": str(layout.data_root),
        "exec-root": str(layout.exec_root),
        "pidfile": str(layout.pidfile),
        "hosts": [f"unix://{layout.socket}"],
        "deprecated-key-path": str(layout.base / "key.json"),
        "iptables": False,
        "ip-forward": False,
        "ip-masq": False,
        "bridge": "none",
        "storage-driver": storage_driver,
    }


def ping(sock: Path) -> bool:
    """True when the API answers ``GET /_ping`` with OK."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(2)
            conn.connect(str(sock))
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return conn.recv(4096).rstrip().endswith(b"OK")
    except OSError:
        return False


def _log_tail(layout: Layout, lines: int = 25) -> str:
    try:
        text = layout.log.read_text("utf-8", "replace")
    except FileNotFoundError:
        return "(no dockerd log)"
    return "\n".join(text.splitlines()[-lines:])


def start(layout: Layout) -> int:
    """Start dockerd detached in a private mount namespace; return its pid when ready."""
    for folder in (layout.data_root, layout.exec_root):
        folder.mkdir(parents=True, exist_ok=True)
    with layout.log.open("ab") as log:
        proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                'mount -t tmpfs -o mode=0755 nodeguard-test /run && exec "$@"',
                "sh",
                "dockerd",
                "--config-file",
                str(layout.config),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while not ping(layout.socket):
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise DockerdFailed(f"dockerd did not start (exit {proc.poll()}):\n{_log_tail(layout)}")
        time.sleep(0.05)
    layout.mntns.write_text(os.readlink(f"/proc/{proc.pid}/ns/mnt"))
    proc.returncode = 0  # detached on purpose: stop() ends it by pid
    return proc.pid


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _pid(layout: Layout) -> int | None:
    try:
        return int(layout.pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def stop(layout: Layout) -> None:
    """SIGTERM dockerd (it stops its containers first), SIGKILL after STOP_TIMEOUT."""
    pid = _pid(layout)
    if pid is not None and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    _kill_namespace(layout)


def _kill_namespace(layout: Layout) -> None:
    """Kill whatever is left in dockerd's mount namespace (containerd, shims)."""
    try:
        namespace = layout.mntns.read_text()
    except FileNotFoundError:
        return
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(entry / "ns" / "mnt") == namespace:
                os.kill(int(entry.name), signal.SIGKILL)


def container_cgroup_pids(layout: Layout) -> list[int]:
    """Processes still in the cgroups of this dockerd's containers."""
    pids: list[int] = []
    folder = layout.data_root / "containers"
    ids = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    for cid in ids:
        for procs in Path("/sys/fs/cgroup").glob(f"*/docker/{cid}/cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids += [int(line) for line in procs.read_text().split()]
    return pids


def mounts_under(base: Path) -> list[str]:
    """Mount points at or below ``base`` as the host sees them."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(base) or point.startswith(f"{base}/"):
            points.append(point)
    return points


def cleanup(layout: Layout) -> list[str]:
    """After stop(): kill container leftovers, unmount, return what needed unmounting."""
    for pid in container_cgroup_pids(layout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    leftovers = mounts_under(layout.base)
    for point in sorted(leftovers, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    return leftovers


def restart(layout: Layout) -> int:
    """What ``systemctl restart docker`` does, for this dockerd."""
    stop(layout)
    return start(layout)


def main(argv: list[str]) -> int:
    action, base = argv
    layout = Layout(Path(base))
    try:
        if action == "start":
            print(f"dockerd started, pid {start(layout)}")
        elif action == "restart":
            print(f"dockerd restarted, pid {restart(layout)}")
        elif action == "stop":
            stop(layout)
        else:
            print(f"unknown action {action}", file=sys.stderr)
            return 2
    except DockerdFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def write_config(layout: Layout, extra: dict[str, object], storage_driver: str) -> None:
    """The initial daemon.json: isolation keys plus unmanaged keys nodeguard must keep."""
    layout.config.parent.mkdir(parents=True, exist_ok=True)
    document = {**isolation_settings(layout, storage_driver), **extra}
    layout.config.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
