"""A booted Debian 12 with systemd, for tests that need a real systemd or journald.

Generic on purpose (the daemon's packages and the journald follower both use it)::

    with Machine.boot("ngd-e2e", binds_ro={dist: "/mnt/dist"}) as m:
        m.run("systemctl", "is-active", "nodeguard")
        m.journal_dir()            # read the container's journal from the host

The root is the cached one ``tests/nspawn_root.sh`` builds once per machine (under a
lock); each boot mounts it with ``--volatile=overlay``, so a test's changes vanish with
its container and the cached root never changes. When a component cannot start in CI
(``CI=true``) the test fails with the reason; elsewhere it is skipped with it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT_SCRIPT = Path(__file__).resolve().parent / "nspawn_root.sh"
BOOT_TIMEOUT = 60.0


def unavailable(reason: str) -> None:
    """Fail in CI, skip elsewhere: a test that needs a component never silently passes."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"booted systemd unavailable: {reason}")
    pytest.skip(f"booted systemd unavailable: {reason}")


def cached_root() -> Path:
    """The shared Debian 12 root with systemd (built on first use, then reused)."""
    if os.geteuid() != 0:
        unavailable("needs root")
    for tool in ("systemd-nspawn", "debootstrap", "nsenter"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is missing (apt-get install systemd-container debootstrap)")
    done = subprocess.run(
        ["bash", str(ROOT_SCRIPT)], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        unavailable(f"cannot build the root: {done.stderr.strip()[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass
class Machine:
    """One booted container: run commands in it, read its files and journal."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    init_pid: int = 0
    binds: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    @contextlib.contextmanager
    def boot(
        cls,
        prefix: str,
        *,
        binds_ro: Mapping[Path, str] | None = None,
        binds: Mapping[Path, str] | None = None,
        log_dir: Path | None = None,
    ) -> Iterator[Machine]:
        """Boot the cached root; stop it (SIGTERM, then SIGKILL) when the block ends."""
        root = cached_root()
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        log = (log_dir or Path("/tmp")) / f"{name}.console.log"
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
        argv += [f"--bind-ro={h}:{c}" for h, c in (binds_ro or {}).items()]
        argv += [f"--bind={h}:{c}" for h, c in (binds or {}).items()]
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        machine = cls(name, proc, log)
        try:
            machine._wait_booted()
            yield machine
        finally:
            machine.halt()

    def _wait_booted(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline and not self.init_pid:
            if self.proc.poll() is not None:
                unavailable(f"systemd-nspawn exited {self.proc.returncode}: {self.console()}")
            found = subprocess.run(
                ["pgrep", "-P", str(self.proc.pid), "-x", "systemd"],
                capture_output=True,
                text=True,
                check=False,
            )
            if found.stdout.strip():
                self.init_pid = int(found.stdout.split()[0])
            else:
                time.sleep(0.1)
        if not self.init_pid:
            unavailable(f"no systemd in the container after {BOOT_TIMEOUT}s: {self.console()}")
        while time.monotonic() < deadline:  # the system bus comes up a moment after init
            state = self.run("systemctl", "is-system-running", "--wait", timeout=BOOT_TIMEOUT)
            if state.stdout.strip() in ("running", "degraded"):
                return
            if "Failed to connect to bus" not in state.stderr:
                break
            time.sleep(0.1)
        why = f"{state.stdout.strip()!r} {state.stderr.strip()}"
        unavailable(f"the container's systemd is {why}: {self.console()}")

    def console(self) -> str:
        return self.log.read_text("utf-8", "replace")[-3000:]

    def run(
        self,
        *argv: str,
        timeout: float = 120.0,
        check: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the container (all its namespaces), capturing the output."""
        prefix = ["nsenter", "-t", str(self.init_pid), "-a", "env", "-i"]
        base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", **(env or {})}
        full = prefix + [f"{k}={v}" for k, v in base.items()] + list(argv)
        done = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done

    def path(self, inside: str) -> Path:
        """A path inside the running container, reachable from the host."""
        return Path(f"/proc/{self.init_pid}/root") / inside.lstrip("/")

    def journal_dir(self) -> Path:
        """The container's persistent journal folder (for systemd.journal.Reader)."""
        machine_id = self.path("/etc/machine-id").read_text().strip()
        return self.path(f"/var/log/journal/{machine_id}")

    def halt(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
