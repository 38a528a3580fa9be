"""Just enough of kustomize to render packaging/kubernetes offline (tests only).

Debian 12 has no kustomize (its kubectl 1.20 embeds kustomize 2.0, which predates
components), so the tests render the base, the overlays and the component themselves.
Supported, as kustomize does it: ``resources`` (files and folders), ``components``,
``configMapGenerator`` (``files``; ``behavior`` create or merge; the content-hash name
suffix and the references to it), strategic-merge ``patches`` by path, ``namespace`` and
``images``. Anything else in a kustomization is an error, so a manifest change that this
renderer would get wrong fails the tests instead of passing unchecked.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

KNOWN_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "resources",
        "components",
        "configMapGenerator",
        "patches",
        "namespace",
        "images",
    }
)
CLUSTER_SCOPED = frozenset({"Namespace", "PriorityClass", "ClusterRole", "ClusterRoleBinding"})
# Strategic-merge keys of the lists the patches touch (from the Kubernetes API types).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "env": "name",
    "ports": "containerPort",
    "tolerations": None,
}


class KustomizeError(Exception):
    """The kustomization uses something this renderer does not support, or is wrong."""


def render(folder: Path) -> list[Resource]:
    """The resources ``kubectl kustomize FOLDER`` would print, as dicts."""
    resources, generated = _build(folder, kind="Kustomization")
    return _finish(resources, generated)


def _load_kustomization(folder: Path, kind: str) -> dict[str, Any]:
    data = yaml.safe_load((folder / "kustomization.yaml").read_text("utf-8"))
    unknown = set(data) - KNOWN_FIELDS
    if unknown:
        raise KustomizeError(f"{folder}: unsupported kustomization fields {sorted(unknown)}")
    if data.get("kind", "Kustomization") != kind:
        raise KustomizeError(f"{folder}: expected a {kind}, got {data.get('kind')}")
    return dict(data)


def _build(
    folder: Path, kind: str, resources: list[Resource] | None = None
) -> tuple[list[Resource], set[str]]:
    """Resources after this kustomization; names of the ConfigMaps generated so far."""
    spec = _load_kustomization(folder, kind)
    out = resources if resources is not None else []
    generated: set[str] = set()
    for entry in spec.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            sub, sub_generated = _build(path, "Kustomization")
            out += sub
            generated |= sub_generated
        else:
            out += [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc]
    for entry in spec.get("components", []):
        out, comp_generated = _build((folder / entry).resolve(), "Component", out)
        generated |= comp_generated
    for generator in spec.get("configMapGenerator", []):
        generated.add(_generate(folder, generator, out))
    for patch in spec.get("patches", []):
        _patch(folder, patch, out)
    if "namespace" in spec:
        for res in out:
            if res["kind"] not in CLUSTER_SCOPED:
                res["metadata"]["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        _set_image(out, image)
    return out, generated


def _generate(folder: Path, generator: dict[str, Any], out: list[Resource]) -> str:
    unknown = set(generator) - {"name", "files", "behavior"}
    if unknown:
        raise KustomizeError(f"{folder}: unsupported configMapGenerator fields {sorted(unknown)}")
    data = {}
    for entry in generator.get("files", []):
        key, _, rel = entry.partition("=") if "=" in entry else (Path(entry).name, "", entry)
        data[key] = (folder / rel).read_text("utf-8")
    behavior = generator.get("behavior", "create")
    name = generator["name"]
    existing = [r for r in out if r["kind"] == "ConfigMap" and r["metadata"]["name"] == name]
    if behavior == "create":
        if existing:
            raise KustomizeError(f"{folder}: ConfigMap {name} already exists")
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
        out[-1]["data"] = data
    elif behavior == "merge":
        if len(existing) != 1:
            raise KustomizeError(f"{folder}: no ConfigMap {name} to merge into")
        existing[0]["data"] = {**existing[0].get("data", {}), **data}
    else:
        raise KustomizeError(f"{folder}: unsupported behavior {behavior}")
    return str(name)


def _patch(folder: Path, patch: dict[str, Any], out: list[Resource]) -> None:
    if set(patch) != {"path"}:
        raise KustomizeError(f"{folder}: only `patches: - path: FILE` is supported")
    body = yaml.safe_load((folder / patch["path"]).read_text("utf-8"))
    targets = [
        r
        for r in out
        if r["kind"] == body["kind"] and r["metadata"]["name"] == body["metadata"]["name"]
    ]
    if len(targets) != 1:
        raise KustomizeError(f"{folder}: patch target {body['kind']}/{body['metadata']['name']}")
    merged = strategic_merge(targets[0], body)
    targets[0].clear()
    targets[0].update(merged)


def strategic_merge(base: Any, patch: Any, key: str = "") -> Any:
    """Kubernetes strategic merge for maps and the merge-keyed lists in MERGE_KEYS."""
    if isinstance(base, dict) and isinstance(patch, dict):
        if any(str(k).startswith("$") for k in patch):
            raise KustomizeError(f"unsupported patch directive in {sorted(patch)}")
        merged = copy.deepcopy(base)
        for k, v in patch.items():
            merged[k] = strategic_merge(base[k], v, k) if k in base else copy.deepcopy(v)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and MERGE_KEYS.get(key):
        merge_key = MERGE_KEYS[key]
        merged_list = copy.deepcopy(base)
        added = []
        for item in patch:
            match = [i for i, b in enumerate(merged_list) if b.get(merge_key) == item[merge_key]]
            if match:
                merged_list[match[0]] = strategic_merge(merged_list[match[0]], item)
            else:
                added.append(copy.deepcopy(item))
        return added + merged_list  # kustomize puts the patch's new items first
    return copy.deepcopy(patch)


def _set_image(out: list[Resource], image: dict[str, Any]) -> None:
    for res in out:
        for container in _pod_spec(res).get("containers", []):
            name, _, _ = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"


def _pod_spec(res: Resource) -> dict[str, Any]:
    spec: dict[str, Any] = res.get("spec", {}).get("template", {}).get("spec", {})
    return spec


def configmap_hash(configmap: Resource) -> str:
    """A content-hash name suffix in kustomize's alphabet (sha256 of kind, name and data).

    It changes whenever the data changes, which is what rolls the DaemonSet; it is not
    guaranteed to equal kustomize's own suffix, and no test relies on the value.
    """
    encoded = {"data": configmap.get("data", {}), "kind": "ConfigMap"}
    encoded["name"] = configmap["metadata"]["name"]
    text = json.dumps(encoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, escape)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _finish(resources: list[Resource], generated: set[str]) -> list[Resource]:
    """Hash-suffix the generated ConfigMaps and point the pod volumes at the new names."""
    renamed = {}
    for res in resources:
        name = res["metadata"]["name"]
        if res["kind"] == "ConfigMap" and name in generated:
            renamed[name] = f"{name}-{configmap_hash(res)}"
            res["metadata"]["name"] = renamed[name]
    for res in resources:
        for volume in _pod_spec(res).get("volumes", []):
            ref = volume.get("configMap")
            if ref and ref["name"] in renamed:
                ref["name"] = renamed[ref["name"]]
    return resources
