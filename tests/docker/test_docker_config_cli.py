"""``nodeguard docker-config`` modes, exit codes and file handling on real files."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from nodeguard.config import load_config
from nodeguard.docker.apply import docker_config
from nodeguard.docker.dockerd import Verdict, validate
from nodeguard.docker.outcome import EXIT_DIFFERS, DockerKind, DockerOptions, Mode
from nodeguard.world import CommandResult, World
from tests.docker.conftest import CliResult, write_nodeguard_config

Run = Callable[..., CliResult]

TYPICAL = b'{\n  "debug": false,\n  "storage-driver": "overlay2"\n}\n'
TYPICAL_APPLIED = (
    b'{\n  "debug": false,\n  "storage-driver": "overlay2",\n  "log-driver": "json-file",\n'
    b'  "log-opts": {\n    "max-size": "10m",\n    "max-file": "5"\n  }\n}\n'
)


def _setup(tmp_path: Path, content: bytes | None, extra: str = "") -> tuple[Path, list[str]]:
    folder = tmp_path / "etc-docker"
    folder.mkdir()
    daemon_json = folder / "daemon.json"
    if content is not None:
        daemon_json.write_bytes(content)
    config = write_nodeguard_config(tmp_path, daemon_json, extra=extra)
    return daemon_json, ["-c", str(config), "--no-dropins", "docker-config"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_apply_writes_exactly_the_managed_members_in_the_files_style(
    tmp_path: Path, run_cli: Run
) -> None:
    daemon_json, base = _setup(tmp_path, TYPICAL)
    result = run_cli(*base, "--apply")
    assert result.code == 0, result.err
    assert daemon_json.read_bytes() == TYPICAL_APPLIED


def test_apply_follows_four_space_tab_and_one_line_layouts(tmp_path: Path, run_cli: Run) -> None:
    layouts = {
        b'{\n    "debug": false\n}\n': b'{\n    "debug": false,\n    "log-driver": "json-file",\n'
        b'    "log-opts": {\n        "max-size": "10m",\n        "max-file": "5"\n    }\n}\n',
        b'{\n\t"debug": false\n}': b'{\n\t"debug": false,\n\t"log-driver": "json-file",\n'
        b'\t"log-opts": {\n\t\t"max-size": "10m",\n\t\t"max-file": "5"\n\t}\n}',
        b'{"debug": false, "mtu": 1500}': b'{"debug": false, "mtu": 1500, "log-driver": '
        b'"json-file", "log-opts": {"max-size": "10m", "max-file": "5"}}',
    }
    for index, (before, after) in enumerate(layouts.items()):
        folder = tmp_path / str(index)
        folder.mkdir()
        daemon_json, base = _setup(folder, before)
        assert run_cli(*base, "--apply").code == 0
        assert daemon_json.read_bytes() == after


def test_apply_replaces_only_changed_values_inside_existing_log_opts(
    tmp_path: Path, run_cli: Run
) -> None:
    before = b'{\n  "log-driver": "json-file",\n'
    before += b'  "log-opts": {"tag": "{{.Name}}", "max-size": "1g"}\n}\n'
    daemon_json, base = _setup(tmp_path, before)
    result = run_cli(*base, "--apply")
    assert result.code == 0, result.err
    assert daemon_json.read_bytes() == (
        b'{\n  "log-driver": "json-file",\n  "log-opts": {"tag": "{{.Name}}", "max-size": "10m",'
        b' "max-file": "5"}\n}\n'
    )
    assert '  log-opts.max-size: "1g" -> "10m"' in result.out


def test_check_exits_1_listing_differences_then_0_after_apply(tmp_path: Path, run_cli: Run) -> None:
    daemon_json, base = _setup(tmp_path, b'{"log-opts": {"max-size": "100m", "max-file": 3}}')
    before = _sha(daemon_json)
    result = run_cli(*base, "--check")
    assert result.code == 1
    assert '  log-driver: (missing) -> "json-file"' in result.out
    assert '  log-opts.max-size: "100m" -> "10m"' in result.out
    assert "log-opts.max-file: 3 (a number: dockerd refuses it)" in result.out
    assert _sha(daemon_json) == before
    assert run_cli(*base, "--apply").code == 0
    assert run_cli(*base, "--check").code == 0


def test_check_on_malformed_json_exits_2_with_position(tmp_path: Path, run_cli: Run) -> None:
    daemon_json, base = _setup(tmp_path, b'{\n  "debug": true\n  "mtu": 1500\n}\n')
    before = _sha(daemon_json)
    for mode in ("--check", "--diff", "--apply"):
        result = run_cli(*base, mode)
        assert result.code == 2
        assert f"{daemon_json}:3:3: expected ',' or '}}'" in result.err
    assert _sha(daemon_json) == before


def test_diff_prints_a_patch_that_produces_what_apply_writes(tmp_path: Path, run_cli: Run) -> None:
    daemon_json, base = _setup(tmp_path, TYPICAL)
    result = run_cli(*base, "--diff")
    assert result.code == 1
    assert result.out.startswith(f"--- {daemon_json}\n+++ {daemon_json} (nodeguard)\n")
    patched = tmp_path / "patched.json"
    patched.write_bytes(TYPICAL)
    subprocess.run(["patch", "-s", str(patched)], input=result.out, text=True, check=True)
    assert patched.read_bytes() == TYPICAL_APPLIED
    assert daemon_json.read_bytes() == TYPICAL
    assert run_cli(*base, "--apply").code == 0
    again = run_cli(*base, "--diff")
    assert (again.code, again.out) == (0, "")


def test_apply_creates_a_missing_file_without_backup(tmp_path: Path, run_cli: Run) -> None:
    daemon_json, base = _setup(tmp_path, None)
    assert run_cli(*base, "--check").code == 1
    result = run_cli(*base, "--apply")
    assert result.code == 0, result.err
    assert daemon_json.read_bytes() == (
        b'{\n  "log-driver": "json-file",\n  "log-opts": {\n    "max-size": "10m",\n'
        b'    "max-file": "5"\n  }\n}\n'
    )
    assert daemon_json.stat().st_mode & 0o7777 == 0o644
    assert sorted(p.name for p in daemon_json.parent.iterdir()) == ["daemon.json"]


def test_apply_into_a_missing_folder_exits_2_and_creates_nothing(
    tmp_path: Path, run_cli: Run
) -> None:
    missing = tmp_path / "no-docker" / "daemon.json"
    config = write_nodeguard_config(tmp_path, missing)
    result = run_cli("-c", str(config), "--no-dropins", "docker-config", "--apply")
    assert result.code == 2
    assert f"folder {missing.parent} does not exist" in result.err
    assert not missing.parent.exists()


def test_apply_refuses_when_manage_is_false(tmp_path: Path, run_cli: Run) -> None:
    daemon_json, base = _setup(tmp_path, TYPICAL, extra="manage: false")
    result = run_cli(*base, "--apply")
    assert result.code == 2
    assert "docker.manage is false" in result.err
    assert daemon_json.read_bytes() == TYPICAL
    assert run_cli(*base, "--check").code == 1


def test_restart_without_apply_is_a_usage_error(tmp_path: Path, run_cli: Run) -> None:
    _, base = _setup(tmp_path, TYPICAL)
    result = run_cli(*base, "--check", "--restart")
    assert result.code == 2
    assert "--restart goes with --apply" in result.err


def test_with_json_stdout_is_one_document_for_a_usage_error_and_a_bad_daemon_json(
    tmp_path: Path, run_cli: Run
) -> None:
    """--json: a refused argument and a daemon.json nodeguard cannot read are one JSON
    document on stdout with the exit code; stderr keeps the human line."""
    daemon_json, base = _setup(tmp_path, b'{"log-opts": ')
    before = _sha(daemon_json)

    usage = run_cli(*base, "--check", "--restart", "--json")
    bad = run_cli(*base, "--apply", "--json")

    assert usage.code == 2 and "--restart goes with --apply" in usage.err
    body = json.loads(usage.out)
    assert body["exit"] == 2 and body["error"] == "--restart goes with --apply"
    assert body["mode"] == "check" and body["events"] == []
    assert bad.code == 2 and json.loads(bad.out)["exit"] == 2
    assert json.loads(bad.out)["events"], bad.out
    assert _sha(daemon_json) == before


def test_failed_restart_exits_1_after_writing(tmp_path: Path, run_cli: Run) -> None:
    daemon_json, base = _setup(tmp_path, TYPICAL, extra='restart_command: "false"')
    result = run_cli(*base, "--apply", "--restart")
    assert result.code == 1
    assert "restarting Docker failed: 'false' exited 1" in result.err
    assert daemon_json.read_bytes() == TYPICAL_APPLIED


def test_restart_true_in_config_restarts_after_a_change_only(tmp_path: Path, run_cli: Run) -> None:
    marker = tmp_path / "restarted"
    extra = f"restart: true\nrestart_command: touch {marker}"
    _, base = _setup(tmp_path, TYPICAL, extra=extra)
    assert run_cli(*base, "--apply").code == 0
    assert marker.exists()
    marker.unlink()
    result = run_cli(*base, "--apply")
    assert result.code == 0 and "nothing changed" in result.out
    assert not marker.exists()


def test_apply_refuses_a_symlinked_daemon_json(tmp_path: Path, run_cli: Run) -> None:
    target = tmp_path / "real.json"
    target.write_bytes(TYPICAL)
    daemon_json, base = _setup(tmp_path, None)
    daemon_json.symlink_to(target)
    result = run_cli(*base, "--apply")
    assert result.code == 2
    assert "is a symlink" in result.err
    assert daemon_json.is_symlink() and target.read_bytes() == TYPICAL


def test_apply_gives_up_when_the_file_changes_during_validation(tmp_path: Path) -> None:
    daemon_json, _ = _setup(tmp_path, TYPICAL)
    config = load_config(tmp_path / "nodeguard.yaml", dropins=False)
    admin_edit = b'{"debug": true}\n'

    def validate_while_admin_edits(candidate: bytes) -> Verdict:
        daemon_json.write_bytes(admin_edit)
        return Verdict("test")

    options = DockerOptions(Mode.APPLY, validator=validate_while_admin_edits)
    result = docker_config(config, options, World(run=_no_commands))
    assert result.exit == 1
    assert result.kinds() == [DockerKind.CHANGED_MEANWHILE]
    assert "changed while nodeguard read it" in result.events[0].reason
    assert daemon_json.read_bytes() == admin_edit
    assert not daemon_json.with_name("daemon.json.nodeguard-bak").exists()


def _no_commands(argv: list[str], timeout: float) -> CommandResult:
    raise AssertionError(f"no command expected: {argv}")


def test_validator_without_a_verdict_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    daemon_json, _ = _setup(tmp_path, TYPICAL)
    config = load_config(tmp_path / "nodeguard.yaml", dropins=False)
    world = World()
    silent = partial(validate, Path("/bin/true"), world=world)  # a "dockerd" that says nothing
    result = docker_config(config, DockerOptions(Mode.APPLY, validator=silent), world)
    assert result.exit == 1
    assert result.kinds() == [DockerKind.NO_VERDICT]
    assert "could not validate with dockerd" in result.events[0].reason
    assert daemon_json.read_bytes() == TYPICAL


def test_differs_and_failures_share_exit_1_but_never_their_kind(tmp_path: Path) -> None:
    _setup(tmp_path, TYPICAL, extra="validate_with_dockerd: false")
    config = load_config(tmp_path / "nodeguard.yaml", dropins=False)
    differs = docker_config(config, DockerOptions(Mode.CHECK), World(run=_no_commands))
    assert (differs.exit, differs.kinds()) == (EXIT_DIFFERS, [DockerKind.DIFFERS])
    assert differs.events[0].facts["changes"][0] == {
        "key": "log-driver",
        "old": None,
        "new": '"json-file"',
    }


def test_restart_runs_through_the_worlds_command_runner(tmp_path: Path) -> None:
    daemon_json, _ = _setup(tmp_path, TYPICAL, extra="validate_with_dockerd: false")
    config = load_config(tmp_path / "nodeguard.yaml", dropins=False)
    ran: list[list[str]] = []

    def runner(argv: list[str], timeout: float) -> CommandResult:
        ran.append(argv)
        return CommandResult(0, "")

    options = DockerOptions(Mode.APPLY, restart=True)
    result = docker_config(config, options, World(run=runner))
    assert ran == [["systemctl", "restart", "docker.service"]]
    assert result.exit == 0
    assert result.kinds()[:2] == [DockerKind.UPDATED, DockerKind.RESTARTED]
    assert daemon_json.read_bytes() == TYPICAL_APPLIED


def test_json_output_lists_the_events(tmp_path: Path, run_cli: Run) -> None:
    _, base = _setup(tmp_path, TYPICAL, extra="validate_with_dockerd: false")
    result = run_cli(*base, "--check", "--json")
    assert result.code == 1
    body = json.loads(result.out)
    assert body["exit"] == 1 and body["mode"] == "check"
    assert [e["kind"] for e in body["events"]] == ["differs"]
    assert body["events"][0]["source"] == "docker"


def test_what_it_did_is_logged_at_info_and_what_it_refused_at_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _setup(tmp_path, TYPICAL, extra="validate_with_dockerd: false")
    config = load_config(tmp_path / "nodeguard.yaml", dropins=False)
    with caplog.at_level(logging.INFO, logger="nodeguard.docker"):
        docker_config(config, DockerOptions(Mode.APPLY), World(run=_no_commands))
        refused = replace(config, docker=replace(config.docker, manage=False))
        docker_config(refused, DockerOptions(Mode.APPLY), World(run=_no_commands))
    logged = [(r.levelno, r.nodeguard_kind) for r in caplog.records]  # type: ignore[attr-defined]
    assert logged == [(logging.INFO, "updated"), (logging.WARNING, "not-managed")]
