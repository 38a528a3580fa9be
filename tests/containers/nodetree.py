"""A node's container log trees, built on disk exactly as kubelet and dockerd leave them."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
# Captured from a real Docker 20.10.24 (Debian's docker.io): see tests/containers/data.
CONFIG_V2 = json.loads((DATA / "docker-20.10-config.v2.json").read_text())
HOSTCONFIG = json.loads((DATA / "docker-20.10-hostconfig.json").read_text())

T0 = "2026-11-27T05:00:00"


def cri_lines(count: int, width: int = 60, stream: str = "stdout") -> bytes:
    """CRI log lines, each long line split into a P(artial) entry and its F(inal) rest."""
    out = []
    for i in range(count):
        stamp = f"{T0}.{i:09d}Z"
        text = f"line {i} " + "x" * width
        half = len(text) // 2
        out.append(f"{stamp} {stream} P {text[:half]}\n")
        out.append(f"{stamp} {stream} F {text[half:]}\n")
    return "".join(out).encode()


def docker_lines(count: int) -> bytes:
    """json-file lines as dockerd writes them."""
    return b"".join(
        json.dumps({"log": f"line {i}\n", "stream": "stdout", "time": f"{T0}.{i:09d}Z"}).encode()
        + b"\n"
        for i in range(count)
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Node:
    """Roots of one fake node inside tmp_path, plus helpers to populate them."""

    root: Path
    policies: list[dict[str, Any]] = field(default_factory=list)
    containers_extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pods(self) -> Path:
        return self.root / "var/log/pods"

    @property
    def links(self) -> Path:
        return self.root / "var/log/containers"

    @property
    def docker(self) -> Path:
        return self.root / "var/lib/docker"

    @property
    def kubelet(self) -> Path:
        return self.root / "var/lib/kubelet/config.yaml"

    @property
    def state(self) -> Path:
        return self.root / "var/lib/nodeguard"

    def config_file(self) -> Path:
        """The YAML config passed with -c (every root inside tmp_path)."""
        doc = {
            "state_dir": str(self.state),
            "logrotate_config": None,
            "policies": self.policies,
            "containers": {
                "pods_dir": str(self.pods),
                "containers_dir": str(self.links),
                "docker_root": str(self.docker),
                "kubelet_config": str(self.kubelet),
                **self.containers_extra,
            },
        }
        path = self.root / "nodeguard.yaml"
        path.write_text(json.dumps(doc, indent=1))  # JSON is YAML
        return path

    def cri(
        self,
        ns: str,
        pod: str,
        uid: str,
        container: str,
        *,
        restart: int = 0,
        cid: str | None = None,
        live: bytes = b"",
        rotated: Mapping[str, bytes] | None = None,
        gz: Mapping[str, bytes] | None = None,
        tmp: Sequence[str] = (),
        link: bool = True,
    ) -> Path:
        """One container's logs as kubelet lays them out; returns the live log path."""
        cdir = self.pods / f"{ns}_{pod}_{uid}" / container
        cdir.mkdir(parents=True, exist_ok=True)
        live_path = cdir / f"{restart}.log"
        live_path.write_bytes(live)
        for stamp, data in (rotated or {}).items():
            (cdir / f"{restart}.log.{stamp}").write_bytes(data)
        for stamp, data in (gz or {}).items():
            (cdir / f"{restart}.log.{stamp}.gz").write_bytes(gzip.compress(data))
        for stamp in tmp:
            (cdir / f"{restart}.log.{stamp}.tmp").write_bytes(b"\x1f\x8b partial gzip")
        if link:
            cid = cid or hashlib.sha256(f"{uid}/{container}/{restart}".encode()).hexdigest()
            self.links.mkdir(parents=True, exist_ok=True)
            os.symlink(live_path, self.links / f"{pod}_{ns}_{container}-{cid}.log")
        return live_path

    def docker_container(
        self,
        cid: str,
        name: str,
        *,
        running: bool = True,
        labels: Mapping[str, str] | None = None,
        log_type: str = "json-file",
        log_opts: Mapping[str, str] | None = None,
        live: bytes = b"",
        rotated: Sequence[bytes] = (),
        compress: bool = False,
    ) -> Path:
        """A container directory in Docker 20.10's on-disk format; returns its directory."""
        cdir = self.docker / "containers" / cid
        cdir.mkdir(parents=True)
        log_path = cdir / f"{cid}-json.log"
        config = copy.deepcopy(CONFIG_V2)
        config["ID"] = cid
        config["Name"] = f"/{name}"
        config["State"]["Running"] = running
        config["State"]["Pid"] = 4242 if running else 0
        config["Config"]["Labels"] = dict(labels or {})
        config["Config"]["Hostname"] = cid[:12]
        config["LogPath"] = str(log_path) if log_type == "json-file" else ""
        for key in ("HostnamePath", "HostsPath", "ResolvConfPath"):
            config[key] = str(cdir / key.removesuffix("Path").lower())
        host = copy.deepcopy(HOSTCONFIG)
        host["LogConfig"] = {"Type": log_type, "Config": dict(log_opts or {})}
        (cdir / "config.v2.json").write_text(json.dumps(config, separators=(",", ":")))
        (cdir / "hostconfig.json").write_text(json.dumps(host, separators=(",", ":")))
        if log_type == "json-file":
            log_path.write_bytes(live)
            for n, data in enumerate(rotated, start=1):
                if compress:
                    (cdir / f"{cid}-json.log.{n}.gz").write_bytes(gzip.compress(data))
                else:
                    (cdir / f"{cid}-json.log.{n}").write_bytes(data)
        return cdir

    def kubelet_config(self, text: str) -> None:
        self.kubelet.parent.mkdir(parents=True, exist_ok=True)
        self.kubelet.write_text(text)


def docker_id(n: int) -> str:
    return hashlib.sha256(f"container-{n}".encode()).hexdigest()


Runner = Callable[..., tuple[int, str]]
