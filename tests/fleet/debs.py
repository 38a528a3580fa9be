"""nodeguard's deb for the image tests, built by ``make deb`` (packaging/debian, issue 11)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nodeguard import __version__
from tests.conftest import REPO

SYSTEM_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"  # Debian's python3 builds the deb, not a venv's


def build_deb(out: Path) -> Path:
    """``make deb`` into ``out``; the path of the deb it made."""
    missing = [t for t in ("make", "dpkg-buildpackage", "git") if not shutil.which(t)]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `bash .ci/setup --test`")
    argv = ["make", "-C", str(REPO), "deb", f"DIST={out / 'dist'}", f"BUILD={out / 'build'}"]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": SYSTEM_PATH},
        timeout=900,
        check=False,
    )
    deb = out / "dist" / f"nodeguard_{__version__}_all.deb"
    if done.returncode != 0 or not deb.is_file():
        pytest.fail(f"make deb failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr}")
    return deb
