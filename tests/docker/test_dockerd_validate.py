"""Validation by the real dockerd binary (Debian 12: 20.10, without ``--validate``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from nodeguard.docker.dockerd import Verdict, keys_named, validate
from nodeguard.world import World


def _isolated(tmp_path: Path) -> dict[str, object]:
    return {
        "data-root": str(tmp_path / "data"),
        "exec-root": str(tmp_path / "exec"),
        "pidfile": str(tmp_path / "docker.pid"),
        "hosts": [f"unix://{tmp_path / 'docker.sock'}"],
        "deprecated-key-path": str(tmp_path / "key.json"),
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "5"},
    }


def _processes_running(binary: Path) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "exe") == str(binary):
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def test_dockerd_accepts_a_good_file_and_creates_nothing_it_names(
    tmp_path: Path, dockerd_binary: Path
) -> None:
    before = _processes_running(dockerd_binary)
    verdict = validate(dockerd_binary, json.dumps(_isolated(tmp_path)).encode(), World())
    assert verdict.ok, verdict.reason
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert _processes_running(dockerd_binary) <= before


def test_dockerd_rejects_unknown_directives_and_number_log_opts(
    tmp_path: Path, dockerd_binary: Path
) -> None:
    unknown = validate(dockerd_binary, b'{"debug": false, "no-such-option": 1}', World())
    assert not unknown.ok
    assert "no-such-option" in unknown.reason
    number = validate(dockerd_binary, b'{"log-opts": {"max-file": 5}}', World())
    assert not number.ok
    assert "cannot unmarshal number" in number.reason and "log-opts" in number.reason
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_rejection_reasons_point_at_the_key_they_name() -> None:
    keys = ["debug", "log-opts", "max-concurrent-downloads"]
    reason = "json: cannot unmarshal number into Go struct field Config.log-opts of type string"
    assert keys_named(reason, keys) == ["log-opts"]
    assert keys_named("don't match any configuration option: nope, debug", keys) == ["debug"]
    assert keys_named("invalid max-concurrent-downloads value: -1", keys) == [
        "max-concurrent-downloads"
    ]
    assert keys_named("invalid character 'ï' looking for beginning of value", keys) == []
    assert Verdict("m").ok and not Verdict("m", "bad").ok
