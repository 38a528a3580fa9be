"""A corpus of daemon.json files through ``docker-config --apply``.

Each file either applies, with every unmanaged key kept byte for byte and in order,
or fails with exit 2, a file:line:col message, and the file untouched (sha256). Each
runs twice: validated by the real dockerd (Debian's 20.10), and without dockerd
(``validate_with_dockerd: false``), where only JSON and log-opts are checked.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from nodeguard.docker.jsontext import parse
from tests.docker.conftest import CliResult, write_nodeguard_config

APPLY, ERROR = "apply", "error"
OPTS = {"max-size": "10m", "max-file": "5"}
MANAGED = ("log-driver", "log-opts")


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    with_dockerd: str
    without_dockerd: str
    error: str = ""  # expected in the message of an error
    where: str = ""  # expected "line:col" of an error


def _huge(count: int) -> bytes:
    """About 80 bytes per label: 13,000 stay under the 1 MiB cap, 14,000 do not."""
    labels = [f"com.example.team{i}=value-{i}-" + "x" * 40 for i in range(count)]
    return (json.dumps({"debug": False, "labels": labels}, indent=2) + "\n").encode()


CASES = [
    Case(
        "other-keys",
        b'{\n  "debug": true,\n  "storage-driver": "overlay2",\n'
        b'  "registry-mirrors": ["https://mirror.example.com"]\n}\n',
        APPLY,
        APPLY,
    ),
    Case(
        "nested-objects",
        b'{\n    "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 4096, "Soft": 1024}},\n'
        b'    "default-address-pools": [{"base": "172.80.0.0/16", "size": 24}],\n'
        b'    "features": {"buildkit": true},\n'
        b'    "builder": {"gc": {"enabled": true, "defaultKeepStorage": "20GB"}}\n}\n',
        APPLY,
        APPLY,
    ),
    Case(
        "unicode",
        '{"labels": ["owner=Jürgen", "e=\\u00e9", "emoji=\\ud83d\\ude00", "q=ü\\"x"]}'.encode(),
        APPLY,
        APPLY,
    ),
    Case(
        "exotic-numbers",
        b'{"max-concurrent-downloads": 1e1, "shutdown-timeout": 15.0,\n'
        b' "max-concurrent-uploads": 123456789012345678901234567890}',
        ERROR,
        APPLY,
        "max-concurrent-downloads",
        "1:2",
    ),
    Case("string-for-bool", b'{"debug": "yes"}', ERROR, APPLY, "debug", "1:2"),
    Case(
        "unknown-key",
        b'{\n  "debug": false,\n  "no-such-option": 1\n}\n',
        ERROR,
        APPLY,
        "no-such-option",
        "3:3",
    ),
    Case(
        "numbers-in-managed-log-opts",
        b'{"log-driver": "json-file", "log-opts": {"max-size": 10, "max-file": 5}}',
        APPLY,
        APPLY,
    ),
    Case(
        "number-in-unmanaged-log-opt",
        b'{"log-opts": {\n  "labels": 5\n}}',
        ERROR,
        ERROR,
        "log-opts.labels is a number",
        "2:13",
    ),
    Case(
        "extra-log-opts-kept",
        b'{\n  "log-opts": {\n    "labels": "app,env",\n    "tag": "{{.Name}}",\n'
        b'    "max-size": "1g"\n  }\n}\n',
        APPLY,
        APPLY,
    ),
    Case(
        "log-opt-of-another-driver",
        b'{"log-opts": {"syslog-address": "udp://192.0.2.1:514"}}',
        ERROR,
        ERROR,
        "unknown log-opt 'syslog-address'",
        "1:33",
    ),
    Case("duplicate-key", b'{"debug": true, "debug": false}', ERROR, ERROR, "duplicate", "1:17"),
    Case(
        "duplicate-nested-key",
        b'{"default-ulimits": {"nofile": {"Name": "nofile", "Name": "x"}}}',
        ERROR,
        ERROR,
        "duplicate key 'Name'",
        "1:51",
    ),
    Case(
        "duplicate-log-opt",
        b'{"log-opts": {"max-size": "1m",\n "max-size": "2m"}}',
        ERROR,
        ERROR,
        "duplicate",
        "2:2",
    ),
    Case("trailing-comma", b'{\n  "debug": true,\n}\n', ERROR, ERROR, "trailing comma", "3:1"),
    Case("trailing-comma-array", b'{"dns": ["192.0.2.53",]}', ERROR, ERROR, "trailing", "1:23"),
    Case("empty", b"", APPLY, APPLY),
    Case("whitespace-only", b"\n  \n", APPLY, APPLY),
    Case("bom", b'\xef\xbb\xbf{"debug": false}\n', ERROR, APPLY, "byte-order mark", "1:1"),
    Case("utf-16", '{"debug": false}'.encode("utf-16"), ERROR, ERROR, "UTF-16", "1:1"),
    Case("invalid-utf-8", b'{"labels": ["\xff"]}', ERROR, ERROR, "invalid UTF-8", "1:14"),
    Case("top-level-array", b"[]", ERROR, ERROR, "top level is an array", "1:1"),
    Case("top-level-null", b"null\n", ERROR, ERROR, "top level is null", "1:1"),
    Case("top-level-string", b' "x"', ERROR, ERROR, "top level is a string", "1:2"),
    Case("comment", b'{\n  // bounded logs\n  "debug": true\n}', ERROR, ERROR, "key", "2:3"),
    Case("nan", b'{"mtu": NaN}', ERROR, ERROR, "expected a value", "1:9"),
    Case("trailing-data", b"{} {}", ERROR, ERROR, "after the top-level value", "1:4"),
    Case("unterminated", b'{"debug": true', ERROR, ERROR, "expected ','", "1:15"),
    Case("raw-tab-in-string", b'{"labels": ["a\tb"]}', ERROR, ERROR, "control character", "1:15"),
    Case(
        "deep-nesting",
        b'{"labels": ' + b"[" * 300 + b"]" * 300 + b"}",
        ERROR,
        ERROR,
        "nested deeper",
    ),
    Case("crlf", b'{\r\n  "debug": false\r\n}\r\n', APPLY, APPLY),
    Case("log-opts-null", b'{"log-opts": null, "debug": false}', APPLY, APPLY),
    Case(
        "log-opts-string", b'{"log-opts": "max-size=10m"}', ERROR, ERROR, "needs an object", "1:14"
    ),
    Case("other-driver", b'{"log-driver": "journald", "debug": false}', APPLY, APPLY),
    Case("driver-as-number", b'{"log-driver": 5}', APPLY, APPLY),
    Case("huge", _huge(13_000), APPLY, APPLY),
    Case("over-the-cap", _huge(14_000), ERROR, ERROR, "refusing more than 1048576"),
]


def _params() -> list[object]:
    return [
        pytest.param(case, validate, id=f"{case.name}-{'dockerd' if validate else 'no-dockerd'}")
        for case in CASES
        for validate in (True, False)
    ]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("case", "validate"), _params())
def test_corpus_file_applies_with_unmanaged_keys_kept_or_fails_untouched(
    case: Case,
    validate: bool,
    tmp_path: Path,
    run_cli: Callable[..., CliResult],
    dockerd_binary: Path,
) -> None:
    folder = tmp_path / "etc-docker"
    folder.mkdir()
    daemon_json = folder / "daemon.json"
    daemon_json.write_bytes(case.data)
    os.chown(daemon_json, 65534, 65534)
    daemon_json.chmod(0o640)
    extra = "" if validate else "validate_with_dockerd: false"
    config = write_nodeguard_config(tmp_path, daemon_json, extra=extra)
    before = _sha(daemon_json)
    result = run_cli("-c", str(config), "--no-dropins", "docker-config", "--apply")
    expected = case.with_dockerd if validate else case.without_dockerd
    if expected == ERROR:
        assert result.code == 2, result.out + result.err
        assert _sha(daemon_json) == before
        assert sorted(p.name for p in folder.iterdir()) == ["daemon.json"]
        location = f"{daemon_json}:{case.where}:" if case.where else f"{daemon_json}:"
        assert location in result.err and case.error in result.err, result.err
        return
    assert result.code == 0, result.err
    _assert_applied(case.data, daemon_json.read_bytes())
    info = daemon_json.stat()
    assert (info.st_mode & 0o7777, info.st_uid, info.st_gid) == (0o640, 65534, 65534)
    backup = folder / "daemon.json.nodeguard-bak"
    assert backup.read_bytes() == case.data
    assert sorted(p.name for p in folder.iterdir()) == ["daemon.json", backup.name]
    after = _sha(daemon_json)
    again = run_cli("-c", str(config), "--no-dropins", "docker-config", "--apply")
    assert again.code == 0 and "nothing changed" in again.out
    assert _sha(daemon_json) == after


def _assert_applied(old_raw: bytes, new_raw: bytes) -> None:
    """Managed keys set; every other member, and extra log-opts, kept byte for byte."""
    bom = b"\xef\xbb\xbf"
    assert new_raw.startswith(bom) == old_raw.startswith(bom)
    new_text = new_raw.decode().removeprefix("\ufeff")
    new = parse(new_text)
    document = json.loads(new_text)
    assert document["log-driver"] == "json-file"
    assert {k: document["log-opts"][k] for k in OPTS} == OPTS
    old_text = old_raw.decode().removeprefix("\ufeff")
    if not old_text.strip():
        return
    if "\r\n" in old_text:
        assert new_text.count("\n") == new_text.count("\r\n")
    old = parse(old_text)
    kept = [m for m in old.members if m.key not in MANAGED]
    assert [m.key for m in new.members if m.key not in MANAGED] == [m.key for m in kept]
    for member in kept:
        twin = new.member(member.key)
        assert twin is not None
        assert _source(new_text, twin) == _source(old_text, member)
    old_opts, new_opts = old.member("log-opts"), new.member("log-opts")
    if old_opts is not None and old_opts.value.kind == "object" and new_opts is not None:
        for item in old_opts.value.members:
            if item.key not in OPTS:
                twin = new_opts.value.member(item.key)
                assert twin is not None and _source(new_text, twin) == _source(old_text, item)


def _source(text: str, member: object) -> str:
    start, end = member.key_start, member.value.end  # type: ignore[attr-defined]
    return text[start:end]
