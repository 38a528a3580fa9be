"""nodeguard's deb for the image tests: the real one from packaging/debian when it exists.

TEMPORARY FALLBACK: until packaging/debian (issue 11) is on this branch, ``fallback_deb``
builds a plain deb from this checkout with dpkg-deb: the package, /usr/bin/nodeguard,
the embedded default as the /etc/nodeguard/nodeguard.yaml conffile, and the Debian
dependencies the real package will declare. Remove it once the real deb builds here.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

from nodeguard import __version__
from tests.conftest import REPO

DEPENDS = (
    "python3 (>= 3.11)",
    "python3-yaml",
    "python3-psutil",
    "python3-schedule",
    "python3-systemd",
    "python3-prometheus-client",
)


def build_deb(out: Path) -> Path:
    """The deb to put in the image: the real package when this checkout has its recipe."""
    if (REPO / "packaging" / "debian").is_dir():
        return real_deb(out)
    return fallback_deb(out)


def real_deb(out: Path) -> Path:
    """``make packages`` (issue 11) and the deb it leaves in dist/."""
    done = subprocess.run(
        ["make", "-C", str(REPO), "packages"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    debs = sorted((REPO / "dist").glob(f"nodeguard_{__version__}*_all.deb"))
    if done.returncode != 0 or not debs:
        raise RuntimeError(f"make packages failed ({done.returncode}):\n{done.stdout[-3000:]}")
    return Path(shutil.copy2(debs[-1], out))


def fallback_deb(out: Path) -> Path:
    """TEMPORARY: a deb of this checkout made with dpkg-deb (see the module docstring)."""
    tree = out / "fallback-deb"
    site = tree / "usr" / "lib" / "python3" / "dist-packages"
    shutil.copytree(
        REPO / "nodeguard", site / "nodeguard", ignore=shutil.ignore_patterns("__pycache__")
    )
    script = tree / "usr" / "bin" / "nodeguard"
    script.parent.mkdir(parents=True)
    script.write_text(
        "#!/usr/bin/python3\nfrom nodeguard.cli import main\nraise SystemExit(main())\n"
    )
    script.chmod(0o755)
    conffile = tree / "etc" / "nodeguard" / "nodeguard.yaml"
    conffile.parent.mkdir(parents=True)
    shutil.copy2(REPO / "nodeguard" / "config" / "default.yaml", conffile)
    (conffile.parent / "conf.d").mkdir()
    control = tree / "DEBIAN" / "control"
    control.parent.mkdir()
    control.write_text(
        textwrap.dedent(f"""\
            Package: nodeguard
            Version: {__version__}
            Architecture: all
            Maintainer: nodeguard tests <root@localhost>
            Depends: {", ".join(DEPENDS)}
            Section: admin
            Priority: optional
            Description: keeps logs from filling a node's disks (test build)
             TEMPORARY test build from a checkout, not the real package.
            """)
    )
    (tree / "DEBIAN" / "conffiles").write_text("/etc/nodeguard/nodeguard.yaml\n")
    deb = out / f"nodeguard_{__version__}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return deb
