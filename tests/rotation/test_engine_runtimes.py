"""Logs a container runtime owns: Docker's json-file logs are never rotated by nodeguard,
and CRI logs under the pods root are never renamed (the runtime would keep writing into
the renamed file)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_config, records, rotate_json, tree_digest


def _roots(tmp_path: Path) -> dict[str, str]:
    return {
        "pods_dir": str(tmp_path / "pods"),
        "containers_dir": str(tmp_path / "containers"),
        "docker_root": str(tmp_path / "docker"),
        "kubelet_config": str(tmp_path / "kubelet.yaml"),
    }


def test_docker_json_logs_matched_by_a_policy_are_skipped_and_untouched(tmp_path: Path) -> None:
    cid = "a" * 64
    cdir = tmp_path / "docker" / "containers" / cid
    cdir.mkdir(parents=True)
    log = cdir / f"{cid}-json.log"
    log.write_bytes(b'{"log":"x\\n","stream":"stdout","time":"2026-11-27T00:00:00Z"}\n' * 2000)
    before = tree_digest(cdir)
    policy = {"name": "docker", "paths": [f"{cdir.parent}/*/*-json.log"], "max_size": "1Ki"}
    code, body = rotate_json(make_config(tmp_path, [policy], containers=_roots(tmp_path)))
    assert code == 0, body
    assert records(body, log) == [("skip", "skipped")]
    assert "dockerd rotates it" in body["files"][0]["reason"]
    assert tree_digest(cdir) == before


def test_cri_logs_are_refused_for_rename_and_rotated_in_place_otherwise(tmp_path: Path) -> None:
    cdir = tmp_path / "pods" / "default_web_0123" / "nginx"
    cdir.mkdir(parents=True)
    log = cdir / "0.log"
    log.write_bytes(b"2026-11-27T00:00:00.000000000Z stdout F line\n" * 1000)
    before = tree_digest(cdir)
    rename = {
        "name": "cri",
        "paths": [f"{tmp_path}/pods/*/*/*.log"],
        "max_size": "1Ki",
        "method": "rename",
    }
    code, body = rotate_json(make_config(tmp_path, [rename], containers=_roots(tmp_path)))
    assert code == 1, body
    assert records(body, log) == [("refuse", "refused")]
    assert "use method: lossless" in body["files"][0]["reason"]
    assert tree_digest(cdir) == before
    inode = log.stat().st_ino
    copy = {**rename, "method": "copytruncate", "compress": "none"}
    code, body = rotate_json(make_config(tmp_path, [copy], containers=_roots(tmp_path)))
    assert code == 0, body
    assert records(body, log) == [("rotate", "done")]
    assert log.stat().st_ino == inode
