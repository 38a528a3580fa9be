"""The rendered DaemonSet read as data: its mounts, settings and effective config (tests)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeguard.config import Config, load_config
from tests.conftest import REPO
from tests.fleet.kustomize import Resource, render

KUBE = REPO / "packaging" / "kubernetes"
VARIANTS = ("base", "overlays/alertmanager", "overlays/docker-nodes")
CONFIG_VOLUME = "config"


@functools.cache
def _rendered(variant: str) -> tuple[Resource, ...]:
    return tuple(render(KUBE / variant))


def rendered(variant: str) -> list[Resource]:
    """The variant's resources (a fresh deep copy each call, so tests may change them)."""
    import copy

    return copy.deepcopy(list(_rendered(variant)))


def one(resources: list[Resource], kind: str) -> Resource:
    found = [r for r in resources if r["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def pod_spec(resources: list[Resource]) -> dict[str, Any]:
    spec: dict[str, Any] = one(resources, "DaemonSet")["spec"]["template"]["spec"]
    return spec


def container(resources: list[Resource]) -> dict[str, Any]:
    containers = pod_spec(resources)["containers"]
    assert [c["name"] for c in containers] == ["nodeguard"]
    main: dict[str, Any] = containers[0]
    return main


@dataclass(frozen=True)
class Mount:
    """One volumeMount joined with its volume."""

    name: str
    path: str
    read_only: bool
    volume: dict[str, Any]

    @property
    def host_path(self) -> str | None:
        hp = self.volume.get("hostPath")
        return None if hp is None else str(hp["path"])

    @property
    def host_type(self) -> str:
        return str(self.volume["hostPath"].get("type", ""))


def mounts(resources: list[Resource]) -> list[Mount]:
    volumes = {v["name"]: v for v in pod_spec(resources)["volumes"]}
    out = []
    for vm in container(resources)["volumeMounts"]:
        assert set(vm) <= {"name", "mountPath", "readOnly"}, f"unexpected mount fields: {vm}"
        read_only = vm.get("readOnly", False)
        out.append(Mount(vm["name"], vm["mountPath"], read_only, volumes[vm["name"]]))
    assert {m.name for m in out} == set(volumes), "every volume is mounted exactly once"
    return out


def host_mounts(resources: list[Resource]) -> dict[str, bool]:
    """hostPath mount point -> read-only."""
    return {m.path: m.read_only for m in mounts(resources) if m.host_path is not None}


def write_config_volume(resources: list[Resource], folder: Path) -> Path:
    """Lay out the config ConfigMap as kubelet does for the volume's items; return folder."""
    volume = next(m.volume for m in mounts(resources) if m.name == CONFIG_VOLUME)
    ref = volume["configMap"]
    configmap = next(
        r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"] == ref["name"]
    )
    for item in ref["items"]:
        target = folder / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(configmap["data"][item["key"]], "utf-8")
    return folder


def config_path(resources: list[Resource]) -> str:
    """The --config argument the container runs with."""
    args = container(resources)["args"]
    return str(args[args.index("--config") + 1])


def effective_config(resources: list[Resource], scratch: Path) -> Config:
    """The config nodeguard loads in the pod: main file plus the conf.d drop-ins."""
    mount = next(m for m in mounts(resources) if m.name == CONFIG_VOLUME)
    folder = write_config_volume(resources, scratch)
    relative = Path(config_path(resources)).relative_to(mount.path)
    return load_config(folder / relative)


def covering_mount(resources: list[Resource], path: str) -> Mount | None:
    """The innermost mount holding ``path`` (the one a process in the pod would use)."""
    holders = [
        m for m in mounts(resources) if path == m.path or path.startswith(m.path.rstrip("/") + "/")
    ]
    return max(holders, key=lambda m: len(m.path), default=None)
