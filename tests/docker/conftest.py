"""Fixtures for the docker-config tests: configs, the CLI, and an isolated real dockerd."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nodeguard import cli
from nodeguard.docker.dockerd import find_dockerd
from tests.docker import dockerd_ctl
from tests.docker.dockerapi import DockerAPI

CTL = Path(dockerd_ctl.__file__)
IMAGE = "nodeguard-test-busybox"

# Unmanaged keys of every sort that nodeguard must keep exactly (all valid for dockerd).
EXTRA_KEYS: dict[str, object] = {
    "debug": False,
    "max-concurrent-downloads": 3,
    "labels": ["nodeguard-test=1", "owner=Jürgen"],
    "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 1024, "Soft": 1024}},
    "features": {"buildkit": False},
}


@dataclass(frozen=True)
class CliResult:
    """Exit code and captured output of one in-process ``nodeguard`` run."""

    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``nodeguard ARGS`` in this process and capture what it prints."""

    def run(*argv: str) -> CliResult:
        capsys.readouterr()
        code = cli.main(list(argv))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def write_nodeguard_config(
    folder: Path,
    daemon_json: Path,
    *,
    docker_root: Path | None = None,
    log_opts: str = '{max-size: 10m, max-file: "5"}',
    extra: str = "",
) -> Path:
    """A nodeguard.yaml whose docker section points at ``daemon_json``."""
    path = folder / "nodeguard.yaml"
    path.write_text(
        f"state_dir: {folder / 'state'}\n"
        "logrotate_config: null\n"
        f"containers:\n  docker_root: {docker_root or folder / 'docker-root'}\n"
        "docker:\n"
        f"  daemon_json: {daemon_json}\n"
        "  log_driver: json-file\n"
        f"  log_opts: {log_opts}\n" + "".join(f"  {line}\n" for line in extra.splitlines())
    )
    return path


@pytest.fixture(scope="session")
def dockerd_binary() -> Path:
    """The real dockerd (Debian's docker.io, installed by .ci/setup)."""
    found = find_dockerd()
    if found is None:
        pytest.fail("no dockerd binary: install docker.io (.ci/setup)")
    return found


@dataclass(frozen=True)
class IsolatedDockerd:
    """A running isolated dockerd, its files, and an API client for it."""

    layout: dockerd_ctl.Layout
    api: DockerAPI
    storage_driver: str

    @property
    def restart_command(self) -> str:
        return f"{sys.executable} {CTL} restart {self.layout.base}"


def _start(layout: dockerd_ctl.Layout) -> str:
    """Start with overlay2, or vfs when overlay2 does not work here; fail with the log."""
    errors = []
    for driver in ("overlay2", "vfs"):
        dockerd_ctl.write_config(layout, EXTRA_KEYS, driver)
        try:
            dockerd_ctl.start(layout)
        except dockerd_ctl.DockerdFailed as exc:
            errors.append(f"[{driver}] {exc}")
            dockerd_ctl.stop(layout)
            continue
        return driver
    pytest.fail("isolated dockerd could not start:\n" + "\n".join(errors))


@pytest.fixture(scope="module")
def isolated_dockerd(dockerd_binary: Path) -> Iterator[IsolatedDockerd]:
    """A real dockerd fully isolated under a temp folder; stopped and unmounted after."""
    # A short path: unix socket paths (dockerd's, containerd's) are limited to 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="ngdockerd-", dir="/tmp"))
    layout = dockerd_ctl.Layout(base)
    try:
        driver = _start(layout)
        api = DockerAPI(layout.socket)
        api.import_busybox(IMAGE)
        yield IsolatedDockerd(layout, api, driver)
    finally:
        dockerd_ctl.stop(layout)
        leftovers = dockerd_ctl.cleanup(layout)
        remaining = dockerd_ctl.mounts_under(base)
        if not remaining:
            shutil.rmtree(base, ignore_errors=True)
    assert not remaining, f"mounts left under {base}: {remaining} (had {leftovers})"
