"""The deb and the rpm: linters, the same files and requirements, the unit's checks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO
from tests.e2e.conftest import Built, need_tool

SYS_ENV = {**os.environ, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
# deb Depends -> the rpm's Requires for the same need
DEB_TO_RPM = {
    "libdeflate0": "libdeflate",
    "procps": "/usr/bin/kill",
    "python3-prometheus-client": "python3-prometheus_client",
    "python3-psutil": "python3-psutil",
    "python3-schedule": "python3-schedule",
    "python3-systemd": "python3-systemd",
    "python3-yaml": "python3-pyyaml",
    "python3:any": "python3",
}


def sh(*argv: str | Path) -> str:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env=SYS_ENV, check=False
    )
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done.stdout


def deb_files(deb: Path) -> set[str]:
    listing = sh("dpkg-deb", "-c", deb)  # mode owner size date time ./path
    return {line.split(maxsplit=5)[-1].removeprefix(".") for line in listing.splitlines()}


def normalise(path: str) -> str | None:
    """The same file in both layouts: Python modules by package path, units by name."""
    path = path.rstrip("/")
    match = re.search(r"/(?:dist|site)-packages/(nodeguard/.*\.(?:py|yaml|typed))$", path)
    if match:
        return "python:" + match.group(1)
    for fixed in ("/etc/nodeguard/nodeguard.yaml", "/usr/bin/nodeguard"):
        if path == fixed:
            return path
    if path.endswith("/systemd/system/nodeguard.service"):
        return "unit:nodeguard.service"
    if re.search(r"/man8/nodeguard\.8(\.gz)?$", path):
        return "man:nodeguard.8"
    return None


def test_both_packages_pass_their_linters(built: Built) -> None:
    lintian = subprocess.run(
        ["lintian", "--fail-on", "error,warning", built.deb],
        capture_output=True,
        text=True,
        env=SYS_ENV,
        check=False,
    )
    assert lintian.returncode == 0, lintian.stdout + lintian.stderr
    assert not re.search(r"^[EW]: ", lintian.stdout, re.MULTILINE), lintian.stdout
    spec, rc = REPO / "packaging/rpm/nodeguard.spec", REPO / "packaging/rpm/nodeguard.rpmlintrc"
    rpmlint = subprocess.run(
        ["rpmlint", "-r", rc, spec, built.rpm], capture_output=True, text=True, check=False
    )
    assert " 0 errors" in rpmlint.stdout, rpmlint.stdout + rpmlint.stderr


def test_the_rpm_ships_the_files_of_the_deb(built: Built) -> None:
    deb = {n for p in deb_files(built.deb) if (n := normalise(p))}
    rpm = {n for p in sh("rpm", "-qlp", built.rpm).splitlines() if (n := normalise(p))}
    assert deb == rpm
    source = {f"python:{p.relative_to(REPO)}" for p in (REPO / "nodeguard").rglob("*.py")}
    assert source <= deb
    assert {"unit:nodeguard.service", "man:nodeguard.8", "/etc/nodeguard/nodeguard.yaml"} <= deb
    assert sh("dpkg-deb", "--info", built.deb, "conffiles").split() == [
        "/etc/nodeguard/nodeguard.yaml"
    ]
    assert sh("rpm", "-qp", "--configfiles", built.rpm).split() == ["/etc/nodeguard/nodeguard.yaml"]


def test_the_rpm_requires_what_the_deb_depends_on(built: Built) -> None:
    depends = sh("dpkg-deb", "-f", built.deb, "Depends")
    names = {d.split()[0] for d in depends.replace("\n", " ").split(",") if d.strip()}
    names.discard("${misc:Depends}")
    assert names == set(DEB_TO_RPM), names
    requires = {r.split()[0] for r in sh("rpm", "-qp", "--requires", built.rpm).splitlines()}
    assert {DEB_TO_RPM[n] for n in names} <= requires
    pypi_only = {"isal", "zlib-ng", "python3-isal", "python3-zlib-ng"}
    assert not names & pypi_only and not requires & pypi_only


def test_the_rpm_scriptlets_enable_stop_and_restart_the_unit(built: Built) -> None:
    scripts = sh("rpm", "-qp", "--scripts", built.rpm)
    assert "preset nodeguard.service" in scripts
    assert "disable --now nodeguard.service" in scripts
    assert "try-restart nodeguard.service" in scripts


def _unit_root(tmp_path: Path) -> Path:
    """A root where the unit's commands exist, for systemd-analyze without installing."""
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/nodeguard").write_text("#!/bin/sh\n")
    (root / "usr/bin/nodeguard").chmod(0o755)
    (root / "bin").symlink_to("usr/bin")
    shutil.copy("/bin/kill", root / "usr/bin/kill")
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(REPO / "systemd/nodeguard.service", root / "etc/systemd/system")
    return root


def test_systemd_analyze_verify_prints_nothing(tmp_path: Path) -> None:
    need_tool("systemd-analyze")
    root = _unit_root(tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", "nodeguard.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_the_exposure_recorded_in_the_docs_is_the_measured_one(tmp_path: Path) -> None:
    need_tool("systemd-analyze")
    root = _unit_root(tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--root={root}", "nodeguard.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for nodeguard.service: (\d+\.\d+)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= 3.5  # "kept low"
    docs = (REPO / "docs/operations.md").read_text()
    assert f"exposure level {match.group(1)}" in docs
