"""packaging/kubernetes: schema-valid offline for several Kubernetes versions, least privilege.

kubernetes-validate bundles the API's JSON schemas; ``strict`` also rejects fields the
API does not know, so a misspelled field fails here instead of on a cluster.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from kubernetes_validate import utils as kubeval

from tests.fleet.kustomize import render
from tests.fleet.manifests import (
    KUBE,
    VARIANTS,
    container,
    effective_config,
    host_mounts,
    mounts,
    one,
    pod_spec,
    rendered,
)

# The oldest minor version the manifests target, one in the middle, and the newest bundled.
KUBERNETES_VERSIONS = ("1.27.0", "1.31.0", "1.37.0")
CAPABILITIES = {"CHOWN", "DAC_OVERRIDE", "FOWNER"}
# host path -> read-only, for every variant; components/docker adds /etc/docker read-write.
HOST_MOUNTS = {
    "/var/log": False,
    "/var/log/journal": True,
    "/etc/machine-id": True,
    "/var/lib/docker/containers": True,
    "/var/lib/nodeguard": False,
}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_validates_against_the_kubernetes_api_schema(
    variant: str, version: str
) -> None:
    resources = rendered(variant)
    assert {r["kind"] for r in resources} == {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "DaemonSet",
    }
    for resource in resources:
        kubeval.validate(resource, version, strict=True)


def test_the_schema_check_rejects_a_misspelled_field() -> None:
    resources = rendered("base")
    daemonset = copy.deepcopy(one(resources, "DaemonSet"))
    daemonset["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(kubeval.ValidationError):
        kubeval.validate(daemonset, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_container_keeps_only_the_capabilities_rotation_needs(variant: str) -> None:
    resources = rendered(variant)
    context = container(resources)["securityContext"]
    assert context["capabilities"]["drop"] == ["ALL"]
    assert set(context["capabilities"]["add"]) == CAPABILITIES
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["privileged"] is False
    spec = pod_spec(resources)
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for shared in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(shared, False)


@pytest.mark.parametrize("variant", VARIANTS)
def test_it_runs_on_every_node_and_is_evicted_last(variant: str) -> None:
    spec = pod_spec(rendered(variant))
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert spec["priorityClassName"] == "system-node-critical"
    assert "nodeSelector" not in spec
    assert "affinity" not in spec


def test_the_service_account_has_no_api_access() -> None:
    resources = rendered("overlays/docker-nodes")
    assert one(resources, "ServiceAccount")["automountServiceAccountToken"] is False
    spec = pod_spec(resources)
    assert spec["serviceAccountName"] == one(resources, "ServiceAccount")["metadata"]["name"]
    assert spec["automountServiceAccountToken"] is False
    assert not [r for r in resources if r["kind"].endswith(("Role", "RoleBinding"))]


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_host_path_is_mounted_at_its_own_path_with_the_narrowest_access(
    variant: str,
) -> None:
    resources = rendered(variant)
    expected = dict(HOST_MOUNTS)
    if variant == "overlays/docker-nodes":
        expected["/etc/docker"] = False
    assert host_mounts(resources) == expected
    for mount in mounts(resources):
        if mount.host_path is not None:
            assert mount.host_path == mount.path, "same path in the pod as on the host"
    types = {m.path: m.host_type for m in mounts(resources) if m.host_path}
    # Never created on the host where creating would change it (a persistent journal).
    assert types["/var/log/journal"] == "Directory"
    assert types["/etc/machine-id"] == "File"
    assert {m.path for m in mounts(resources) if m.host_path is None} == {"/etc/nodeguard", "/tmp"}


def test_the_node_name_reaches_the_daemon_from_spec_node_name() -> None:
    env = container(rendered("base"))["env"]
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in env


def test_requests_and_limits_are_set() -> None:
    resources = container(rendered("base"))["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}


def test_the_metrics_port_is_the_one_the_config_listens_on(tmp_path: Path) -> None:
    resources = rendered("base")
    ports = container(resources)["ports"]
    assert [p["name"] for p in ports] == ["metrics"]
    listen = effective_config(resources, tmp_path).alerts.metrics_listen
    assert listen is not None
    assert listen[1] == ports[0]["containerPort"]


def test_the_alertmanager_overlay_sets_only_the_address(tmp_path: Path) -> None:
    base = effective_config(rendered("base"), tmp_path / "base")
    overlay = effective_config(rendered("overlays/alertmanager"), tmp_path / "overlay")
    assert base.alerts.alertmanager.url is None
    assert overlay.alerts.alertmanager.url == "http://alertmanager-operated.monitoring.svc:9093"
    assert overlay.policies == base.policies


def test_the_docker_component_turns_on_management_and_mounts_etc_docker(tmp_path: Path) -> None:
    base = effective_config(rendered("overlays/alertmanager"), tmp_path / "base")
    docker = effective_config(rendered("overlays/docker-nodes"), tmp_path / "docker")
    assert base.docker.manage is False
    assert docker.docker.manage is True
    assert docker.docker.restart is False, "dockerd cannot be restarted from the pod"
    assert str(docker.docker.daemon_json).startswith("/etc/docker/")


def test_a_config_change_renames_the_configmap_so_the_pods_roll(tmp_path: Path) -> None:
    copied = tmp_path / "kubernetes"
    import shutil

    shutil.copytree(KUBE, copied)
    before = render(copied / "base")
    config = copied / "base" / "nodeguard.yaml"
    config.write_text(config.read_text().replace("interval: 1h", "interval: 2h"))
    after = render(copied / "base")
    names = [one(r, "ConfigMap")["metadata"]["name"] for r in (before, after)]
    assert names[0] != names[1]
    for resources, name in zip((before, after), names, strict=True):
        volume = next(v for v in pod_spec(resources)["volumes"] if v["name"] == "config")
        assert volume["configMap"]["name"] == name


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_daemonset_has_a_liveness_probe_running_status_check(variant: str) -> None:
    """The probe runs ``nodeguard status --check`` on the mounted config (tested against
    a real daemon in tests/daemon/test_liveness.py), generously timed."""
    probe = container(rendered(variant))["livenessProbe"]
    command = probe["exec"]["command"]
    assert command == [
        "/usr/bin/nodeguard",
        "--config",
        "/etc/nodeguard/nodeguard.yaml",
        "status",
        "--check",
    ]
    assert probe["initialDelaySeconds"] >= 60 and probe["failureThreshold"] >= 3
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 180
