"""A booted Debian 12 with systemd in systemd-nspawn, for tests that need a real systemd.

    from tests.nspawn import booted

    with booted("ngj") as machine:          # unique name per boot
        machine.write("/etc/systemd/system/x.service", UNIT)
        machine.run("systemctl", "daemon-reload")
        machine.run("systemctl", "start", "x.service")
        machine.journal_dir                 # host path of its persistent journal

The root is built once by tests/nspawn_root.sh (debootstrap, cached under
/var/cache/nodeguard-test; .ci/setup --test builds it before the suite). Each boot uses
``--volatile=overlay``: everything the container writes goes to a tmpfs, the cached root
never changes, and several boots can share it. A root or a boot that fails fails the test
with the reason (never a skip).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT_SCRIPT = Path(__file__).with_name("nspawn_root.sh")
BOOT_TIMEOUT = 60.0


def nspawn_root() -> Path:
    """The cached root (built on first use); a failed test with the builder's reason."""
    done = subprocess.run(
        ["bash", str(ROOT_SCRIPT)], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"cannot build the nspawn root ({ROOT_SCRIPT}): {done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass
class Machine:
    """A running container: its name, nspawn process and init's pid."""

    name: str
    nspawn: subprocess.Popen[bytes]
    init_pid: int
    log: Path

    @property
    def root(self) -> Path:
        """The container's root as the host sees it."""
        return Path(f"/proc/{self.init_pid}/root")

    @property
    def machine_id(self) -> str:
        return (self.root / "etc/machine-id").read_text().strip()

    @property
    def journal_dir(self) -> Path:
        return self.root / "var/log/journal" / self.machine_id

    def run(self, *argv: str, timeout: float = 60.0, check: bool = True) -> str:
        """Run a command inside (all of the container's namespaces); its output."""
        done = subprocess.run(
            ["nsenter", "-t", str(self.init_pid), "-a", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            pytest.fail(f"in {self.name}: {' '.join(argv)} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)


def _init_pid(nspawn_pid: int) -> int | None:
    """The container's systemd: a child of the nspawn process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == nspawn_pid and comm == "systemd":
            return int(entry)
    return None


def _wait_booted(machine: Machine) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT
    state = ""
    while time.monotonic() < deadline:
        if machine.nspawn.poll() is not None:
            break
        state = machine.run("systemctl", "is-system-running", check=False).strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.2)
    pytest.fail(f"{machine.name} did not boot (state {state!r}): {machine.log.read_text()[-3000:]}")


@contextmanager
def booted(prefix: str, tmp_dir: Path | None = None) -> Iterator[Machine]:
    """Boot the cached root; stop it (SIGTERM: a clean halt) when the block ends."""
    root = nspawn_root()
    name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
    log = (tmp_dir or Path("/tmp")) / f"{name}.log"
    argv = [
        "systemd-nspawn",
        "-D",
        str(root),
        "--volatile=overlay",
        "--boot",
        "--register=no",
        "--keep-unit",
        "-M",
        name,
        "--console=passive",
    ]
    # Several boots share the read-only root; the overlay keeps them apart.
    env = {**os.environ, "SYSTEMD_NSPAWN_LOCK": "0"}
    with log.open("wb") as out:
        nspawn = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        init = None
        deadline = time.monotonic() + BOOT_TIMEOUT
        while init is None and nspawn.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            init = _init_pid(nspawn.pid)
        if init is None:
            pytest.fail(f"systemd-nspawn did not start {name}: {log.read_text()[-3000:]}")
        machine = Machine(name, nspawn, init, log)
        _wait_booted(machine)
        yield machine
    finally:
        _stop(nspawn)


def _stop(nspawn: subprocess.Popen[bytes]) -> None:
    if nspawn.poll() is None:
        nspawn.send_signal(signal.SIGTERM)
        try:
            nspawn.wait(timeout=20)
        except subprocess.TimeoutExpired:
            nspawn.kill()
            nspawn.wait(timeout=10)
