"""``nodeguard disk`` and ``nodeguard check`` (a Nagios plugin)."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from nodeguard.disk.command import run_check, run_disk
from nodeguard.disk.cycle import disk_cycle
from nodeguard.disk.render import render_text
from tests.conftest import run_cli, tree_digest
from tests.disk.cfg import load, write_config
from tests.disk.fakes import GIB, Clock, Probe, fake_world


def _check(tmp_path: Path, free: int, **disk: object) -> tuple[int, str]:
    config = load(tmp_path, disk=disk)
    out = io.StringIO()
    code = run_check(
        argparse.Namespace(json=False), config, out=out, world=fake_world(Clock(), Probe(free=free))
    )
    return code, out.getvalue()


def test_check_is_ok_with_space_left(tmp_path: Path) -> None:
    code, out = _check(tmp_path, 50 * GIB)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith("NODEGUARD DISK OK - 0 critical, 0 warning, ")
    assert all(ln.startswith("OK - ") and " | '" in ln for ln in lines[1:])
    assert "avail'=53687091200B;5368709120:;3221225472:;0;107374182400" in out


def test_check_warns_and_goes_critical_with_the_thresholds(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    code, out = _check(tmp_path / "w", 4 * GIB)
    assert code == 1 and "NodeguardFilesystemAlmostOutOfSpace" in out
    (tmp_path / "c").mkdir()
    code, out = _check(tmp_path / "c", 2 * GIB)
    assert code == 2 and out.startswith("NODEGUARD DISK CRITICAL")


def test_check_json(tmp_path: Path) -> None:
    config = load(tmp_path)
    out = io.StringIO()
    world = fake_world(Clock(), Probe(free=2 * GIB))
    code = run_check(argparse.Namespace(json=True), config, out=out, world=world)
    body = json.loads(out.getvalue())
    assert code == 2 and body["status"] == "CRITICAL" and body["code"] == 2
    assert body["filesystems"][0]["alerts"][0]["alertname"].startswith("Nodeguard")


def test_check_with_a_bad_config_is_unknown(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("disk: {out_of_space: {warning: 1%, critical: 3%}}\n")
    result = run_cli("-c", bad, "--no-dropins", "check")
    assert result.code == 3
    assert "disk.out_of_space.warning" in result.err
    assert run_cli("-c", bad, "--no-dropins", "disk").code == 2


def test_disk_json_lists_each_filesystem_with_usage_forecast_and_alerts(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    result = run_cli("-c", path, "--no-dropins", "disk", "--json")
    assert result.code == 0, result.err
    body = json.loads(result.out)
    assert body["dry_run"] is True
    fs = body["filesystems"][0]
    assert {
        "mountpoint",
        "device",
        "fstype",
        "usage",
        "forecast",
        "alerts",
        "top_consumers",
    } <= set(fs)
    assert fs["usage"]["size_bytes"] > 0


def test_disk_changes_nothing_in_the_state_folder(tmp_path: Path) -> None:
    config = load(tmp_path)
    world = fake_world(Clock(), Probe())
    disk_cycle(config, world)
    before = tree_digest(tmp_path / "state")
    out = io.StringIO()
    assert run_disk(argparse.Namespace(json=False), config, out=out, world=world) == 0
    assert "forecast:" in out.getvalue()
    assert tree_digest(tmp_path / "state") == before


def test_the_terminal_chart_shows_the_window_and_the_projection(tmp_path: Path) -> None:
    config = load(tmp_path)
    clock, probe = Clock(), Probe(free=40 * GIB)
    world = fake_world(clock, probe)
    for _ in range(30):
        result = disk_cycle(config, world)
        clock.t += 300
        probe.free -= GIB // 2
    text = render_text(result, chart=True)
    assert "filling at" in text
    chart = [ln for ln in text.splitlines() if "│" in ln]
    assert len(chart) == 6
    assert any("░" in ln for ln in chart) and any("█" in ln for ln in chart)
    assert "now" in text


def test_check_with_bad_arguments_is_unknown_not_critical(tmp_path: Path) -> None:
    """Nagios reads exit 2 as CRITICAL: a usage error of the plugin (an option it does not
    know, -c after the subcommand) must be UNKNOWN (3), with the usage on stderr."""
    for args in (["check", "--bogus"], ["check", "-c", str(tmp_path / "x.yaml")]):
        result = run_cli(*args)
        assert result.code == 3, (args, result)
        assert "unrecognized arguments" in result.err
    assert run_cli("disk", "--bogus").code == 2  # the other commands keep exit 2
    assert run_cli("-c", tmp_path / "check", "disk", "--bogus").code == 2


def test_disk_json_is_one_document_whatever_the_state_folder(tmp_path: Path) -> None:
    """A state folder others can write, a file where the folder belongs, a state file that
    is no JSON: stdout is still one JSON document (the problem in it), exit 0."""
    cases = {"unsafe": 0o777, "file": None, "corrupt": 0o700}
    for name, mode in cases.items():
        root = tmp_path / name
        root.mkdir()
        config = write_config(root)
        state = root / "state"
        if mode is None:
            state.write_text("not a folder")
        else:
            state.mkdir()
            state.chmod(mode)
            (state / "disk-samples.json").write_text("{not json")

        result = run_cli("-c", config, "--no-dropins", "disk", "--json")

        assert result.code == 0, (name, result.err)
        body = json.loads(result.out)
        assert body["filesystems"], (name, body)
        assert "Traceback" not in result.err
