"""docker-config against odd container files, huge daemon.json and extended attributes.

Issue 7, items 14 (odd container files crashed --apply after writing), 23 (a 30 MB
daemon.json took 12 s and 1.4 GB) and 24 (rewriting dropped ACLs and SELinux labels).
The CLI runs in a subprocess so a traceback, a hang or a memory blow-up fails the test.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.containers.nodetree import Node, docker_id
from tests.docker.conftest import write_nodeguard_config
from tests.fsimages import ext4_image, require_tool

TYPICAL = b'{\n  "debug": false,\n  "storage-driver": "overlay2"\n}\n'
NO_DOCKERD = "validate_with_dockerd: false"


def _docker_config(
    config: Path, *args: str, memory: int | None = None
) -> subprocess.CompletedProcess[str]:
    def cap_memory() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nodeguard",
            "-c",
            str(config),
            "--no-dropins",
            "docker-config",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=cap_memory,
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _setup(tmp_path: Path, content: bytes = TYPICAL) -> tuple[Path, Path, Node]:
    node = Node(tmp_path / "node")
    node.root.mkdir()
    folder = tmp_path / "etc-docker"
    folder.mkdir()
    daemon_json = folder / "daemon.json"
    daemon_json.write_bytes(content)
    config = write_nodeguard_config(
        tmp_path, daemon_json, docker_root=node.docker, extra=NO_DOCKERD
    )
    return daemon_json, config, node


ODD = {
    "hostconfig-list": ("hostconfig.json", b"[1, 2]"),
    "config-list": ("config.v2.json", b'{"ID": "x", "Config": ["x"], "State": {}}'),
    "state-string": ("config.v2.json", b'{"State": "running", "Name": 5}'),
    "logconfig-string": ("hostconfig.json", b'{"LogConfig": "json-file"}'),
    "logconfig-config-list": (
        "hostconfig.json",
        b'{"LogConfig": {"Type": "json-file", "Config": [1]}}',
    ),
    "deep": ("hostconfig.json", b"[" * 100_000 + b"]" * 100_000),
    "nan": (
        "hostconfig.json",
        b'{"LogConfig": {"Type": "json-file", "Config": {"max-size": NaN}}}',
    ),
    "not-utf8": ("config.v2.json", b'{"Name": "\xff"}'),
    "directory": ("hostconfig.json", None),
}


@pytest.mark.parametrize("case", sorted(ODD))
def test_odd_container_files_are_unreadable_containers_not_a_crash(
    tmp_path: Path, case: str
) -> None:
    daemon_json, config, node = _setup(tmp_path)
    odd = node.docker_container(docker_id(1), "odd")
    node.docker_container(docker_id(2), "plain")
    name, content = ODD[case]
    (odd / name).unlink()
    if content is None:
        (odd / name).mkdir()
    else:
        (odd / name).write_bytes(content)
    proc = _docker_config(config, "--apply")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(daemon_json.read_text())["log-opts"]["max-size"] == "10m"
    lines = proc.stdout.splitlines()
    assert any(line.startswith(f"warning: could not read {odd}") for line in lines), proc.stdout
    plain = next(line for line in lines if docker_id(2)[:12] in line)
    assert "UNBOUNDED" in plain


def test_container_folder_unreadable_as_a_whole_still_writes_and_reports(tmp_path: Path) -> None:
    daemon_json, config, node = _setup(tmp_path)
    node.docker.mkdir(parents=True)
    (node.docker / "containers").write_text("not a folder")
    proc = _docker_config(config, "--apply")
    assert proc.returncode == 0, proc.stderr
    assert "log-opts" in daemon_json.read_text()
    assert f"could not read {node.docker / 'containers'}" in proc.stdout


def _many_values(size: int) -> bytes:
    """A valid daemon.json of about ``size`` bytes made of tiny values (the parser's worst)."""
    count = size // 2
    return b'{"labels": [' + b",".join([b"0"] * count) + b"]}\n"


def test_oversized_daemon_json_is_refused_at_once_and_left_alone(tmp_path: Path) -> None:
    huge = _many_values(30 * 1024 * 1024)
    daemon_json, config, _ = _setup(tmp_path, huge)
    for mode in ("--check", "--diff", "--apply"):
        proc = _docker_config(config, mode, memory=1 << 30)
        assert proc.returncode == 2, proc.stderr
        assert f"{daemon_json}: is {len(huge)} bytes; refusing more than 1048576" in proc.stderr
    assert daemon_json.read_bytes() == huge


def test_largest_accepted_daemon_json_edits_within_bounded_memory(tmp_path: Path) -> None:
    big = _many_values(1024 * 1024 - 64)
    daemon_json, config, _ = _setup(tmp_path, big)
    # 400 MiB of address space: the interpreter and the whole edit must fit.
    proc = _docker_config(config, "--apply", memory=400 << 20)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(daemon_json.read_text())
    assert len(data["labels"]) == (len(big) - 14) // 2 and data["log-driver"] == "json-file"


def _xattrs(path: Path) -> dict[str, bytes]:
    return {name: os.getxattr(path, name) for name in sorted(os.listxattr(path))}


def _acl(path: Path) -> str:
    getfacl = require_tool("getfacl", "acl")
    return subprocess.run(
        [getfacl, "-cp", str(path)], capture_output=True, text=True, check=True
    ).stdout


def test_apply_keeps_acls_selinux_label_and_user_xattrs(tmp_path: Path) -> None:
    setfacl = require_tool("setfacl", "acl")
    setfattr = require_tool("setfattr", "attr")
    with ext4_image(tmp_path / "fs", size_mb=16) as fs:
        folder = fs.path / "etc-docker"
        folder.mkdir()
        daemon_json = folder / "daemon.json"
        daemon_json.write_bytes(TYPICAL)
        os.chmod(daemon_json, 0o640)
        os.chown(daemon_json, 0, 65534)
        subprocess.run([setfacl, "-m", "u:nobody:r,g:adm:r", str(daemon_json)], check=True)
        label = "system_u:object_r:container_config_t:s0"
        subprocess.run(
            [setfattr, "-n", "security.selinux", "-v", label, str(daemon_json)], check=True
        )
        subprocess.run(
            [setfattr, "-n", "user.managed-by", "-v", "puppet", str(daemon_json)], check=True
        )
        subprocess.run(
            [setfattr, "-n", "trusted.origin", "-v", "image", str(daemon_json)], check=True
        )
        before_xattrs, before_acl = _xattrs(daemon_json), _acl(daemon_json)
        assert "user:nobody:r--" in before_acl and "security.selinux" in before_xattrs
        before = daemon_json.stat()
        config = write_nodeguard_config(tmp_path, daemon_json, extra=NO_DOCKERD)

        proc = _docker_config(config, "--apply")

        assert proc.returncode == 0, proc.stderr
        after = daemon_json.stat()
        assert after.st_ino != before.st_ino  # replaced, not rewritten in place
        assert "log-opts" in daemon_json.read_text()
        assert (after.st_mode, after.st_uid, after.st_gid) == (
            before.st_mode,
            before.st_uid,
            before.st_gid,
        )
        assert _xattrs(daemon_json) == before_xattrs
        assert _acl(daemon_json) == before_acl
        backup = daemon_json.with_name("daemon.json.nodeguard-bak")
        assert backup.read_bytes() == TYPICAL
        assert _xattrs(backup) == before_xattrs
        assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
