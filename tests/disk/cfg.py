"""Config files for disk guard and alert tests: every root inside tmp_path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nodeguard.config import Config, load_config

QUIET_ALERTS: dict[str, Any] = {
    "alertmanager": {"url": None},
    "webhook": {"url": None},
    "textfile": None,
    "journald": False,
}


def write_config(
    tmp_path: Path,
    *,
    policies: list[dict[str, Any]] | None = None,
    disk: dict[str, Any] | None = None,
    alerts: dict[str, Any] | None = None,
    containers: dict[str, Any] | None = None,
    **top: Any,
) -> Path:
    """nodeguard.yaml in tmp_path: state, pods and docker roots inside tmp_path."""
    doc: dict[str, Any] = {
        "state_dir": str(tmp_path / "state"),
        "logrotate_config": None,
        "policies": policies or [],
        "containers": {
            "pods_dir": str(tmp_path / "pods"),
            "containers_dir": str(tmp_path / "containers"),
            "docker_root": str(tmp_path / "docker"),
            "kubelet_config": str(tmp_path / "no-kubelet" / "config.yaml"),
            **(containers or {}),
        },
        "journal": {"directory": str(tmp_path / "journal")},
        "disk": disk or {},
        "alerts": {**QUIET_ALERTS, **(alerts or {})},
        **top,
    }
    path = tmp_path / "nodeguard.yaml"
    path.write_text(json.dumps(doc, indent=1))
    return path


def load(tmp_path: Path, **kwargs: Any) -> Config:
    return load_config(write_config(tmp_path, **kwargs), dropins=False)
