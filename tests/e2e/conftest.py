"""The packages, built once per session with ``make`` into a temp folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

VERSION = re.search(r'__version__ = "(.+)"', (REPO / "nodeguard/__init__.py").read_text())
NEWER = "+e2e1"  # appended to the version for the upgrade's newer build


def need_tool(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t, path="/usr/bin:/bin") is None]
    if missing:
        reason = f"{', '.join(missing)} missing: run `bash .ci/setup --test`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass(frozen=True)
class Built:
    dist: Path
    version: str
    deb: Path
    newer_deb: Path
    rpm: Path


def make(dist: Path, build: Path, *targets: str, **variables: str) -> None:
    argv = ["make", "-C", str(REPO), *targets, f"DIST={dist}", f"BUILD={build}"]
    argv += [f"{k}={v}" for k, v in variables.items()]
    env = {**os.environ, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout[-3000:]}\n{done.stderr}"


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The deb and rpm of this tree, and a newer deb (same tree, higher version)."""
    need_tool("make", "dpkg-buildpackage", "rpmbuild", "lintian", "rpmlint", "git")
    assert VERSION is not None
    version = VERSION.group(1)
    base = tmp_path_factory.mktemp("packages")
    dist, build = base / "dist", base / "build"
    make(dist, build, "deb", "rpm")
    make(dist, build, "deb", DEB_VERSION=version + NEWER)
    return Built(
        dist,
        version,
        dist / f"nodeguard_{version}_all.deb",
        dist / f"nodeguard_{version}{NEWER}_all.deb",
        dist / f"nodeguard-{version}-1.noarch.rpm",
    )
