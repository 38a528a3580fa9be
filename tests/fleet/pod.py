"""Run the DaemonSet's container under a real dockerd exactly as declared (tests only).

``container_spec`` turns the rendered DaemonSet into a Docker Engine create request:
each hostPath becomes a bind mount of a test folder standing in for the host path (same
target, same read-only flag, same hostPath type rules), the ConfigMap volume a read-only
bind of its items, a memory emptyDir a tmpfs of the same size, and the security context
the same user, capabilities, read-only root and no-new-privileges. A field it does not
know is an error, so the manifests cannot gain a setting that the image test ignores.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.docker.dockerapi import API, _UnixConnection
from tests.fleet.kustomize import Resource
from tests.fleet.manifests import container, mounts, pod_spec, write_config_volume

CONTAINER_KEYS = {
    "name",
    "image",
    "imagePullPolicy",
    "args",
    "env",
    "ports",
    "resources",
    "securityContext",
    "volumeMounts",
    "livenessProbe",
}
PROBE_KEYS = {"exec", "initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold"}
SECURITY_KEYS = {
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "privileged",
    "allowPrivilegeEscalation",
    "readOnlyRootFilesystem",
    "capabilities",
}
_UNITS = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 10**3, "M": 10**6, "G": 10**9}


class SpecError(Exception):
    """The DaemonSet uses something this runner cannot reproduce faithfully."""


def quantity(text: str) -> float:
    """A Kubernetes quantity: '192Mi' -> bytes, '500m' -> 0.5."""
    if text.endswith("m"):
        return int(text[:-1]) / 1000
    found = re.fullmatch(r"(\d+)([KMG]i?|)", text)
    if found is None:
        raise SpecError(f"quantity {text!r}")
    return int(found[1]) * _UNITS[found[2]]


def grace_period(resources: list[Resource]) -> int:
    return int(pod_spec(resources).get("terminationGracePeriodSeconds", 30))


@dataclass(frozen=True)
class HostTree:
    """A folder standing in for the node's root filesystem, and the pod's config folder."""

    root: Path
    config: Path

    def path(self, host_path: str) -> Path:
        return self.root / host_path.lstrip("/")


def _bind_source(tree: HostTree, host: dict[str, Any]) -> Path:
    """The stand-in folder for a hostPath, following kubelet's rules for its type."""
    source = tree.path(host["path"])
    kind = host.get("type", "")
    if kind == "DirectoryOrCreate":
        source.mkdir(parents=True, exist_ok=True)
    elif kind == "Directory" and not source.is_dir():
        raise SpecError(f"hostPath {host['path']} (Directory) is missing: the pod would not start")
    elif kind == "File" and not source.is_file():
        raise SpecError(f"hostPath {host['path']} (File) is missing: the pod would not start")
    elif kind not in ("DirectoryOrCreate", "Directory", "File"):
        raise SpecError(f"hostPath type {kind!r} is not reproduced")
    return source


def docker_mounts(resources: list[Resource], tree: HostTree) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for mount in mounts(resources):
        volume = {k: v for k, v in mount.volume.items() if k != "name"}
        if "hostPath" in volume:
            source = _bind_source(tree, volume["hostPath"])
            out.append(_bind(source, mount.path, mount.read_only))
        elif "configMap" in volume:
            if not mount.read_only:
                raise SpecError("the config volume must be mounted read-only")
            out.append(_bind(write_config_volume(resources, tree.config), mount.path, True))
        elif volume.get("emptyDir", {}).get("medium") == "Memory":
            size = int(quantity(volume["emptyDir"]["sizeLimit"]))
            out.append({"Type": "tmpfs", "Target": mount.path, "TmpfsOptions": {"SizeBytes": size}})
        else:
            raise SpecError(f"volume {mount.name} is not reproduced: {volume}")
    return out


def _bind(source: Path, target: str, read_only: bool) -> dict[str, Any]:
    return {
        "Type": "bind",
        "Source": str(source),
        "Target": target,
        "ReadOnly": read_only,
        "BindOptions": {"Propagation": "rprivate"},
    }


def _env(main: dict[str, Any], node_name: str) -> list[str]:
    out = []
    for var in main.get("env", []):
        if "value" in var:
            out.append(f"{var['name']}={var['value']}")
        elif var.get("valueFrom") == {"fieldRef": {"fieldPath": "spec.nodeName"}}:
            out.append(f"{var['name']}={node_name}")
        else:
            raise SpecError(f"env {var} is not reproduced")
    return out


def _security(main: dict[str, Any]) -> dict[str, Any]:
    context = main["securityContext"]
    unknown = set(context) - SECURITY_KEYS
    if unknown:
        raise SpecError(f"securityContext fields not reproduced: {sorted(unknown)}")
    options = ["no-new-privileges:true"] if context["allowPrivilegeEscalation"] is False else []
    return {
        "CapDrop": context["capabilities"]["drop"],
        "CapAdd": context["capabilities"]["add"],
        "ReadonlyRootfs": context["readOnlyRootFilesystem"],
        "Privileged": context["privileged"],
        # Docker's default seccomp profile is the runtime default.
        "SecurityOpt": options,
    }


def _healthcheck(main: dict[str, Any]) -> dict[str, Any]:
    """The liveness probe as Docker's health check: the same command and timing (Docker
    marks the container unhealthy where kubelet would restart it)."""
    probe = main["livenessProbe"]
    unknown = set(probe) - PROBE_KEYS
    if unknown or set(probe["exec"]) != {"command"}:
        raise SpecError(f"livenessProbe fields not reproduced: {sorted(unknown)}")
    second = 1_000_000_000
    return {
        "Test": ["CMD", *probe["exec"]["command"]],
        "Interval": probe["periodSeconds"] * second,
        "Timeout": probe["timeoutSeconds"] * second,
        "Retries": probe["failureThreshold"],
        "StartPeriod": probe["initialDelaySeconds"] * second,
    }


def container_spec(
    resources: list[Resource],
    image: str,
    tree: HostTree,
    node_name: str,
    args: list[str] | None = None,
) -> dict[str, Any]:
    """The Docker create request for the DaemonSet's container on a node named node_name."""
    main = container(resources)
    unknown = set(main) - CONTAINER_KEYS
    if unknown:
        raise SpecError(f"container fields not reproduced: {sorted(unknown)}")
    if pod_spec(resources)["securityContext"] != {"seccompProfile": {"type": "RuntimeDefault"}}:
        raise SpecError("pod securityContext not reproduced")
    context = main["securityContext"]
    limits = main["resources"]["limits"]
    return {
        "Image": image,
        "Cmd": args if args is not None else main["args"],
        "Env": _env(main, node_name),
        "User": f"{context['runAsUser']}:{context['runAsGroup']}",
        "StopTimeout": grace_period(resources),
        "ExposedPorts": {f"{p['containerPort']}/tcp": {} for p in main["ports"]},
        "Healthcheck": _healthcheck(main),
        "HostConfig": {
            "NetworkMode": "none",
            "Mounts": docker_mounts(resources, tree),
            "Memory": int(quantity(limits["memory"])),
            "NanoCpus": int(quantity(limits["cpu"]) * 1e9),
            **_security(main),
        },
    }


class Engine:
    """The Engine API calls the image test needs, over the isolated dockerd's socket."""

    def __init__(self, sock: Path) -> None:
        self.sock = sock

    def raw(self, method: str, url: str, body: Any = None, timeout: float = 120) -> bytes:
        conn = _UnixConnection(self.sock, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, API + url, body=data, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        finally:
            conn.close()
        if response.status >= 300:
            raise RuntimeError(f"{method} {url}: {response.status} {payload[-500:]!r}")
        return payload

    def json(self, method: str, url: str, body: Any = None, timeout: float = 120) -> Any:
        payload = self.raw(method, url, body, timeout)
        return json.loads(payload) if payload.strip() else None

    def create(self, name: str, spec: dict[str, Any]) -> str:
        return str(self.json("POST", f"/containers/create?name={name}", spec)["Id"])

    def start(self, cid: str) -> None:
        self.raw("POST", f"/containers/{cid}/start")

    def inspect(self, cid: str) -> dict[str, Any]:
        found: dict[str, Any] = self.json("GET", f"/containers/{cid}/json")
        return found

    def image(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.json("GET", f"/images/{name}/json")
        return found

    def stop(self, cid: str, grace: int) -> None:
        self.raw("POST", f"/containers/{cid}/stop?t={grace}", timeout=grace + 60)

    def wait(self, cid: str, timeout: float) -> int:
        return int(self.json("POST", f"/containers/{cid}/wait", timeout=timeout)["StatusCode"])

    def remove(self, cid: str) -> None:
        self.raw("DELETE", f"/containers/{cid}?force=1&v=1")

    def logs(self, cid: str) -> tuple[bytes, bytes]:
        """(stdout, stderr) so far, from Docker's multiplexed log stream."""
        payload = self.raw("GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
        streams = {1: bytearray(), 2: bytearray()}
        offset = 0
        while offset + 8 <= len(payload):
            kind, size = struct.unpack(">BxxxI", payload[offset : offset + 8])
            streams.setdefault(kind, bytearray()).extend(payload[offset + 8 : offset + 8 + size])
            offset += 8 + size
        return bytes(streams[1]), bytes(streams[2])

    def pid(self, cid: str) -> int:
        return int(self.inspect(cid)["State"]["Pid"])


def in_netns(pid: int) -> str:
    """The network namespace of a container's process, for nsenter."""
    return os.readlink(f"/proc/{pid}/ns/net")
