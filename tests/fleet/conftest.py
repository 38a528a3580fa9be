"""Fixtures for the image tests: the deb, an isolated real dockerd, the image built in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nodeguard.docker.dockerd import find_dockerd
from tests.conftest import REPO
from tests.docker import dockerd_ctl
from tests.fleet.debs import build_deb
from tests.fleet.pod import Engine

BUILD_SCRIPT = REPO / "packaging" / "container" / "build-image.sh"
# The plain Debian root is cached here across runs (debootstrap is the slow part).
ROOT_CACHE = Path(
    os.environ.get("NODEGUARD_IMAGE_ROOT_CACHE", "/var/cache/nodeguard-test/image-root")
)


@dataclass(frozen=True)
class Dockerd:
    layout: dockerd_ctl.Layout
    engine: Engine

    @property
    def docker_cli(self) -> str:
        return f"docker -H unix://{self.layout.socket}"


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nodeguard's deb (the real one when packaging/debian exists; see debs.py)."""
    return build_deb(tmp_path_factory.mktemp("deb"))


def _start(layout: dockerd_ctl.Layout) -> None:
    errors = []
    for driver in ("overlay2", "vfs"):
        dockerd_ctl.write_config(layout, {}, driver)
        try:
            dockerd_ctl.start(layout)
        except dockerd_ctl.DockerdFailed as exc:
            errors.append(f"[{driver}] {exc}")
            dockerd_ctl.stop(layout)
            continue
        return
    pytest.fail("isolated dockerd could not start:\n" + "\n".join(errors))


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Dockerd]:
    """A real dockerd isolated under a temp folder (tests/docker/dockerd_ctl.py)."""
    if find_dockerd() is None:
        pytest.fail("no dockerd binary: install docker.io (.ci/setup)")
    if shutil.which("docker") is None:
        pytest.fail("no docker CLI: install docker.io (.ci/setup)")
    base = Path(tempfile.mkdtemp(prefix="ngfleet-", dir="/tmp"))
    layout = dockerd_ctl.Layout(base)
    try:
        _start(layout)
        yield Dockerd(layout, Engine(layout.socket))
    finally:
        dockerd_ctl.stop(layout)
        dockerd_ctl.cleanup(layout)
        remaining = dockerd_ctl.mounts_under(base)
        if not remaining:
            shutil.rmtree(base, ignore_errors=True)
    assert not remaining, f"mounts left under {base}: {remaining}"


@pytest.fixture(scope="module")
def image(dockerd: Dockerd, deb: Path) -> str:
    """The image built by packaging/container/build-image.sh from the deb, in that dockerd."""
    tag = "nodeguard-fleet-test:1"
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--cache", str(ROOT_CACHE), str(deb), tag],
        env={**os.environ, "DOCKER": dockerd.docker_cli},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"build-image.sh failed ({done.returncode}):\n{done.stderr[-3000:]}")
    assert done.stdout.strip() == tag
    return tag
