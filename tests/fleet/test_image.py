"""The image under a real, isolated dockerd, with exactly the DaemonSet's mounts and settings.

One long-running "pod" (the base DaemonSet's container, test folders standing in for the
node's host paths): it rotates an over-limit container log in the mounted /var/log, logs
on stdout, serves /metrics on the pod's loopback, and stops cleanly on SIGTERM within the
grace period. A one-shot run of the same container shows that nothing is written where
the mount is read-only. The last test stops the pod, so keep it last.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nodeguard import __version__, cli
from nodeguard.config.loader import embedded_default_text
from tests.conftest import nodeguard_history, numbered_lines, tree_digest
from tests.fleet.conftest import Dockerd
from tests.fleet.manifests import (
    config_path,
    container,
    effective_config,
    host_mounts,
    rendered,
)
from tests.fleet.pod import HostTree, container_spec, grace_period

NODE = "fleet-node-1"
POD_LOG = "var/log/pods/default_web-0_0a1b2c3d/app/0.log"
LOG_BYTES = 21 << 20  # over the container-logs policy's 20Mi
WAIT = 120.0  # the size watch runs every 30s; a pass at start-up is sooner


def _node_tree(root: Path, log_bytes: int = LOG_BYTES) -> HostTree:
    """A node's host paths as the DaemonSet expects them (Directory/File types exist)."""
    log = root / POD_LOG
    log.parent.mkdir(parents=True)
    log.write_bytes(numbered_lines("app", 0, log_bytes // 64))
    links = root / "var/log/containers"
    links.mkdir()
    (links / "web-0_default_app-0123456789ab.log").symlink_to(f"../../../{POD_LOG}")
    (root / "var/log/journal").mkdir()
    (root / "etc").mkdir()
    (root / "etc/machine-id").write_text("0f1e2d3c4b5a69788796a5b4c3d2e1f0\n")
    config = root.parent / "pod-config"
    config.mkdir()
    return HostTree(root, config)


@dataclass(frozen=True)
class Pod:
    dockerd: Dockerd
    image: str
    tree: HostTree
    cid: str
    original: bytes


@pytest.fixture(scope="module")
def pod(dockerd: Dockerd, image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pod]:
    tree = _node_tree(tmp_path_factory.mktemp("node") / "root")
    original = (tree.root / POD_LOG).read_bytes()
    spec = container_spec(rendered("base"), image, tree, NODE)
    cid = dockerd.engine.create(f"ngfleet-pod-{os.getpid()}", spec)
    try:
        dockerd.engine.start(cid)
        yield Pod(dockerd, image, tree, cid, original)
    finally:
        dockerd.engine.remove(cid)


def _wait_for(what: str, check: object, pod: Pod, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        state = pod.dockerd.engine.inspect(pod.cid)["State"]
        if not state["Running"]:
            out, _ = pod.dockerd.engine.logs(pod.cid)
            pytest.fail(f"the pod exited ({state['ExitCode']}) before {what}:\n{out[-3000:]!r}")
        time.sleep(0.5)
    out, _ = pod.dockerd.engine.logs(pod.cid)
    pytest.fail(f"no {what} within {timeout:.0f}s; pod log:\n{out[-3000:].decode()}")


def test_the_image_runs_the_deb_the_way_the_daemonset_expects(dockerd: Dockerd, image: str) -> None:
    config = dockerd.engine.image(image)["Config"]
    main = container(rendered("base"))
    assert config["Cmd"] == main["args"]
    assert config["Entrypoint"][:2] == ["/usr/bin/tini", "--"]
    assert set(config["ExposedPorts"]) == {f"{p['containerPort']}/tcp" for p in main["ports"]}
    assert config["Labels"]["org.opencontainers.image.version"] == __version__
    assert main["image"] == f"nodeguard:{__version__}"


def _deb_file(deb: Path, member: str) -> bytes:
    tar = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True, timeout=60
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        extracted = archive.extractfile(member)
        assert extracted is not None, member
        return extracted.read()


def test_the_deb_the_image_and_the_daemonset_agree(pod: Pod, deb: Path, tmp_path: Path) -> None:
    """Same version, same config file and state folder, same effective config."""
    resources = rendered("base")
    field = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True
    )
    assert field.stdout.strip() == __version__
    control = subprocess.run(
        ["dpkg-deb", "--info", str(deb), "conffiles"], capture_output=True, text=True, check=True
    )
    assert config_path(resources) in control.stdout.split()
    conffile = _deb_file(deb, f".{config_path(resources)}").decode()
    assert conffile == embedded_default_text(), "test_agreement compares with this default"
    unit = _deb_file(deb, "./lib/systemd/system/nodeguard.service").decode()
    assert "StateDirectory=nodeguard" in unit.split("\n")
    state = effective_config(resources, tmp_path / "cfg").state_dir
    assert state == Path("/var/lib/nodeguard")
    assert host_mounts(resources)[str(state)] is False
    # The image's own nodeguard reads the mounted ConfigMap exactly as the tests do.
    tree = _node_tree(tmp_path / "root", log_bytes=0)
    args = ["--config", config_path(resources), "config", "show"]
    code, out = _run_once(pod, container_spec(resources, pod.image, tree, NODE, args))
    assert code == 0, out
    shown = json.loads(out)
    expected = json.loads(json.dumps(cli._jsonable(effective_config(resources, tmp_path / "c2"))))
    shown.pop("sources"), expected.pop("sources")
    assert shown == expected


def _run_once(pod: Pod, spec: dict[str, object]) -> tuple[int, str]:
    """Run a one-shot container of the DaemonSet's spec to its end: exit code, stdout."""
    engine = pod.dockerd.engine
    cid = engine.create(f"ngfleet-once-{os.getpid()}-{time.monotonic_ns()}", spec)
    try:
        engine.start(cid)
        code = engine.wait(cid, timeout=120)
        out, _ = engine.logs(cid)
    finally:
        engine.remove(cid)
    return code, out.decode("utf-8", "replace")


def test_the_pod_rotates_an_over_limit_log_in_the_mounted_var_log(pod: Pod) -> None:
    log = pod.tree.root / POD_LOG

    def rotated() -> bool:
        return log.stat().st_size < LOG_BYTES and len(os.listdir(log.parent)) > 1

    _wait_for("rotation of the over-limit log", rotated, pod)
    names, content = nodeguard_history(log.parent, "0.log")
    assert names, os.listdir(log.parent)
    assert content == pod.original, "every line kept, in order"
    state = pod.tree.root / "var/lib/nodeguard"
    assert any(state.iterdir()), "state is kept in the host's folder, across restarts"


def test_the_pod_logs_to_stdout_only(pod: Pod) -> None:
    _wait_for("a log line", lambda: pod.dockerd.engine.logs(pod.cid)[0], pod, timeout=30)
    out, err = pod.dockerd.engine.logs(pod.cid)
    assert out
    assert err == b""


def _fetch_in_pod(pod: Pod, url: str) -> subprocess.CompletedProcess[str]:
    """GET url from inside the pod's network namespace (its loopback)."""
    pid = pod.dockerd.engine.pid(pod.cid)
    code = (
        "import sys, urllib.request\n"
        f"with urllib.request.urlopen({url!r}, timeout=5) as r:\n"
        "    sys.stdout.write(r.read().decode())\n"
    )
    return subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "/usr/bin/python3", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _probe_in_pod(pod: Pod) -> subprocess.CompletedProcess[str]:
    """The liveness probe's exec command, run in the pod's namespaces as kubelet runs it."""
    pid = pod.dockerd.engine.pid(pod.cid)
    command = container(rendered("base"))["livenessProbe"]["exec"]["command"]
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-m", "-n", "-p", "-i", "-u", "--", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_liveness_probe_passes_in_the_running_pod(pod: Pod) -> None:
    """The image's nodeguard, the mounted config and state: the probe says alive once the
    daemon reports (and Docker runs the same command as the container's health check)."""
    health = pod.dockerd.engine.inspect(pod.cid)["Config"]["Healthcheck"]
    command = container(rendered("base"))["livenessProbe"]["exec"]["command"]
    assert health["Test"] == ["CMD", *command]
    _wait_for("the liveness probe passing", lambda: _probe_in_pod(pod).returncode == 0, pod)
    assert _probe_in_pod(pod).stdout.startswith("alive: pid ")


def test_the_pod_serves_metrics_on_its_loopback(pod: Pod) -> None:
    """The daemon's alert part serves alerts.metrics_listen; once the disk part has run,
    the filesystems the pod sees are in it, with the node's name from the downward API."""
    port = container(rendered("base"))["ports"][0]["containerPort"]
    url = f"http://127.0.0.1:{port}/metrics"

    def served() -> bool:
        done = _fetch_in_pod(pod, url)
        return done.returncode == 0 and "nodeguard_filesystem_avail_bytes{" in done.stdout

    _wait_for("/metrics with the filesystems", served, pod, timeout=120)
    body = _fetch_in_pod(pod, url).stdout
    assert 'nodeguard_last_pass_timestamp_seconds{part="disk"}' in body
    assert "nodeguard_filesystem_size_bytes{" in body


def test_nothing_is_written_where_the_mount_is_read_only(pod: Pod, tmp_path: Path) -> None:
    journal = pod.tree.root / "var/log/journal"
    probe = journal / "probe.log"
    probe.write_bytes(numbered_lines("ro", 0, 200))
    before = tree_digest(journal)
    tree = HostTree(pod.tree.root, tmp_path / "config")
    resources = rendered("base")
    dropin = tree.config / "conf.d" / "90-ro-probe.yaml"
    dropin.parent.mkdir(parents=True)
    dropin.write_text(  # its own state folder: the pod's daemon may hold the pass lock
        "state_dir: /var/lib/nodeguard/ro-probe\n"
        "policies:\n  - name: ro-probe\n    paths: [/var/log/journal/*.log]\n"
        "    max_size: 1Ki\n    max_files: 2\n    method: rename\n    compress: none\n"
    )
    args = ["--config", config_path(resources), "rotate", "--json", "--policy", "ro-probe"]
    code, out = _run_once(pod, container_spec(resources, pod.image, tree, NODE, args))
    report = json.loads(out[out.index("{\n") :])  # the pod's log: stderr lines, then JSON
    assert code == 1, out
    results = {(f["path"], f["result"]) for f in report["files"]}
    assert ("/var/log/journal/probe.log", "failed") in results, results
    assert "Read-only file system" in out
    assert tree_digest(journal) == before


SMALL_POLICY = """\
policies:
  - name: container-logs
    paths: ["/var/log/pods/*/*/*.log"]
    max_size: 1Ki
    max_files: 3
    compress: gzip
    method: lossless
"""


def _rotate_once(pod: Pod, tree: HostTree, caps: list[str]) -> tuple[int, str]:
    """``rotate`` in the DaemonSet's container, but with these capabilities added."""
    dropin = tree.config / "conf.d" / "90-small.yaml"
    dropin.parent.mkdir(parents=True)
    dropin.write_text(SMALL_POLICY)
    resources = rendered("base")
    spec = container_spec(resources, pod.image, tree, NODE, ["--config", config_path(resources)])
    spec["Cmd"].append("rotate")
    spec["HostConfig"]["CapAdd"] = caps
    return _run_once(pod, spec)


@pytest.mark.parametrize("missing", [None, "CHOWN", "DAC_OVERRIDE", "FOWNER"])
def test_each_capability_is_needed_to_rotate_another_users_log(
    pod: Pod, tmp_path: Path, missing: str | None
) -> None:
    """A 0600 log owned by uid 1000: the DaemonSet's capabilities rotate it, keeping its
    owner and mode; without any one of them the rotation fails and the log is untouched."""
    caps = container(rendered("base"))["securityContext"]["capabilities"]["add"]
    tree = _node_tree(tmp_path / "root", log_bytes=16 << 10)
    log = tree.root / POD_LOG
    os.chown(log, 1000, 1000)
    log.chmod(0o600)
    code, out = _rotate_once(pod, tree, [c for c in caps if c != missing])
    if missing is None:
        assert code == 0, out
        names, content = nodeguard_history(log.parent, "0.log")
        assert names and content == numbered_lines("app", 0, (16 << 10) // 64)
        for name in [*names, "0.log"]:
            st = (log.parent / name).stat()
            assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1000, 0o600), name
    else:
        assert code == 1, out
        assert "FAILED to rotate" in out
        # Left as it was: no other file, same bytes, owner and mode. (Its mtime is not
        # compared: the engine's failed lossless attempt updates it.)
        assert os.listdir(log.parent) == ["0.log"]
        assert log.read_bytes() == numbered_lines("app", 0, (16 << 10) // 64)
        st = log.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1000, 0o600)


def test_the_pod_stops_cleanly_on_sigterm_within_the_grace_period(pod: Pod) -> None:
    grace = grace_period(rendered("base"))
    engine = pod.dockerd.engine
    assert engine.inspect(pod.cid)["State"]["Running"]
    started = time.monotonic()
    engine.stop(pod.cid, grace)  # SIGTERM, then SIGKILL after the grace period
    elapsed = time.monotonic() - started
    state = engine.inspect(pod.cid)["State"]
    out, _ = engine.logs(pod.cid)
    assert state["ExitCode"] == 0, f"exit {state['ExitCode']} (137: killed):\n{out[-2000:]!r}"
    assert not state["OOMKilled"]
    assert elapsed < grace
