"""The DaemonSet, the image recipe, the scrape config and the host package agree.

Same config keys and values (apart from a short list of deliberate differences, each
with its reason), every path the pod's config uses is mounted with the access it needs,
and the image runs what the DaemonSet expects. The built image and the deb themselves
are checked against the same facts in test_image.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from nodeguard import __version__, cli
from nodeguard.config import Config, load_text
from nodeguard.config.loader import embedded_default_text
from tests.conftest import REPO
from tests.fleet.manifests import (
    KUBE,
    VARIANTS,
    config_path,
    container,
    covering_mount,
    effective_config,
    mounts,
    one,
    pod_spec,
    rendered,
)

BUILD_SCRIPT = REPO / "packaging" / "container" / "build-image.sh"
SCRAPE = REPO / "packaging" / "prometheus" / "daemonset-scrape.yml"
GLOB_CHARS = re.compile(r"[*?\[]")

# Where the pod's config differs from the host package's default, and why.
DELIBERATE = {
    # The host's logrotate config is not mounted: the pod cannot see what it covers.
    "logrotate_config",
    # Host files under /var/log are left to the host (and its logrotate); see above.
    "policies",
    # /etc/docker is mounted only by components/docker.
    "docker.manage",
    # Prometheus scrapes the pod's port; no node-exporter textfile folder is mounted.
    "alerts.textfile",
    "alerts.metrics_listen",
    # The host's journal socket is not mounted: no journald sink in the pod.
    "alerts.journald",
    # The host default sends to a local Alertmanager; overlays name the cluster's.
    "alerts.alertmanager.url",
    # Filled in by nodeguard: the config files it was read from.
    "sources",
}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A config as {"dotted.key": value} for every leaf."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out |= flatten(sub, f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): value}


def as_dict(config: Config) -> dict[str, Any]:
    plain: dict[str, Any] = json.loads(json.dumps(cli._jsonable(config)))
    return plain


def static_prefix(pattern: str) -> str:
    """The folder before a glob's first wildcard: '/var/log/pods/*/*/*.log' -> '/var/log/pods'."""
    parts = pattern.split("/")
    for index, part in enumerate(parts):
        if GLOB_CHARS.search(part):
            return "/".join(parts[:index])
    return str(Path(pattern).parent)


def test_the_pod_config_differs_from_the_host_default_only_where_it_must(tmp_path: Path) -> None:
    host = flatten(as_dict(load_text(embedded_default_text(), "default.yaml")))
    for variant in VARIANTS:
        pod = flatten(as_dict(effective_config(rendered(variant), tmp_path / variant)))
        assert set(pod) == set(host), "the same config keys"
        differing = {key for key in host if host[key] != pod[key]}
        assert differing <= DELIBERATE, f"{variant}: {sorted(differing - DELIBERATE)}"


def test_the_pod_keeps_the_host_default_container_log_policy(tmp_path: Path) -> None:
    host = load_text(embedded_default_text(), "default.yaml")
    pod = effective_config(rendered("base"), tmp_path)
    assert [p.name for p in pod.policies] == ["container-logs"]
    assert pod.policies[0] == host.policy("container-logs")


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_path_the_config_writes_is_on_a_read_write_mount(
    variant: str, tmp_path: Path
) -> None:
    resources = rendered(variant)
    config = effective_config(resources, tmp_path)
    writes = [str(config.state_dir), str(config.containers.pods_dir)]
    writes += [static_prefix(path) for policy in config.policies for path in policy.paths]
    if config.docker.manage:
        writes.append(str(config.docker.daemon_json.parent))
    if config.alerts.textfile is not None:
        writes.append(str(config.alerts.textfile.parent))
    for path in writes:
        mount = covering_mount(resources, path)
        assert mount is not None, f"{path} is not mounted"
        assert mount.host_path is not None and not mount.read_only, f"{path}: {mount}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_path_the_config_only_reads_is_mounted_read_only_where_it_can_be(
    variant: str, tmp_path: Path
) -> None:
    resources = rendered(variant)
    config = effective_config(resources, tmp_path)
    assert config.journal.directory is None, "the host's journal, found by the machine ID"
    reads = ["/var/log/journal", "/etc/machine-id", f"{config.containers.docker_root}/containers"]
    for path in reads:
        mount = covering_mount(resources, path)
        assert mount is not None and mount.path == path and mount.read_only, path
    symlinks = covering_mount(resources, str(config.containers.containers_dir))
    assert symlinks is not None and symlinks.host_path is not None


def test_the_image_recipe_runs_what_the_daemonset_expects() -> None:
    script = BUILD_SCRIPT.read_text()
    resources = rendered("overlays/docker-nodes")
    main = container(resources)
    cmd = json.loads(re.search(r"^CMD='(.*)'$", script, re.M)[1])  # type: ignore[index]
    assert cmd == main["args"], "the image's default command is the DaemonSet's"
    port = int(re.search(r"^METRICS_PORT=(\d+)$", script, re.M)[1])  # type: ignore[index]
    assert port == main["ports"][0]["containerPort"]
    dirs = re.search(r"^MOUNT_DIRS=\((.*?)\)$", script, re.M | re.S)[1].split()  # type: ignore[index]
    for mount in mounts(resources):
        if mount.path not in ("/tmp", "/var/log", "/etc/machine-id"):
            assert mount.path in dirs or any(d.startswith(mount.path + "/") for d in dirs)
    assert config_path(resources) == "/etc/nodeguard/nodeguard.yaml", "the deb's conffile path"


def test_the_image_tag_is_this_nodeguard_version() -> None:
    kustomization = yaml.safe_load((KUBE / "base" / "kustomization.yaml").read_text())
    assert kustomization["images"] == [{"name": "nodeguard", "newTag": __version__}]
    assert container(rendered("base"))["image"] == f"nodeguard:{__version__}"


def test_the_scrape_config_finds_exactly_the_daemonsets_metrics_port() -> None:
    job = yaml.safe_load(SCRAPE.read_text())["scrape_configs"][0]
    resources = rendered("base")
    namespace = one(resources, "DaemonSet")["metadata"]["namespace"]
    sd = job["kubernetes_sd_configs"][0]
    assert sd["role"] == "pod"
    assert sd["namespaces"]["names"] == [namespace]
    key, _, value = sd["selectors"][0]["label"].partition("=")
    assert pod_spec(resources) is not None
    labels = one(resources, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    assert labels[key] == value
    keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
    assert keep["source_labels"] == ["__meta_kubernetes_pod_container_port_name"]
    assert keep["regex"] == container(resources)["ports"][0]["name"]
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"node", "namespace", "pod"} <= targets
