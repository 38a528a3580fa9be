"""The shipped scrape config, made runnable by Debian's Prometheus (tests only).

Debian builds Prometheus without Kubernetes service discovery, so ``static_target``
swaps the job's ``kubernetes_sd_configs`` for one static target carrying the
``__meta_kubernetes_*`` labels Kubernetes discovery would give the pod's metrics port;
the relabel rules, and everything else in the job, stay as shipped.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO

SCRAPE = REPO / "packaging" / "prometheus" / "daemonset-scrape.yml"


def shipped() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(SCRAPE.read_text("utf-8"))
    return config


def static_target(address: str, node: str, pod: str, namespace: str) -> dict[str, Any]:
    """The shipped config with the pod as a static target (see the module docstring)."""
    config = copy.deepcopy(shipped())
    # rule_files are relative to the shipped file; the test writes its copy elsewhere.
    config["rule_files"] = [str(SCRAPE.parent / name) for name in config.get("rule_files", [])]
    job = config["scrape_configs"][0]
    del job["kubernetes_sd_configs"]
    job["static_configs"] = [
        {
            "targets": [address],
            "labels": {
                "__meta_kubernetes_pod_container_port_name": "metrics",
                "__meta_kubernetes_pod_node_name": node,
                "__meta_kubernetes_pod_name": pod,
                "__meta_kubernetes_namespace": namespace,
            },
        }
    ]
    return config


def write(config: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
    return path
