"""``nodeguard containers --json``: stdout is always one JSON document, also when
``--apply`` is refused (removal switched off, an unsafe lock, another pass holding the
lock): the refusal and the exit code are in it; stderr keeps the human line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeguard import cli
from nodeguard.state import pass_lock
from tests.containers.nodetree import Node, cri_lines

UID = "dddddddd-0000-0000-0000-00000000000d"


def _run(node: Node, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["-c", str(node.config_file()), "--no-dropins", "containers", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _orphan(node: Node) -> Path:
    node.cri("default", "gone", UID, "app", live=cri_lines(5), link=False)
    return node.pods / f"default_gone_{UID}"


def test_apply_refused_prints_one_json_document_with_the_refusal_and_the_exit_code(
    node: Node, capsys: pytest.CaptureFixture[str]
) -> None:
    pod = _orphan(node)

    code, out, err = _run(node, capsys, "--apply", "--json")

    assert code == 2
    body = json.loads(out)
    assert body["exit"] == 2
    assert (
        len(body["refused"]) == 1
        and "remove_orphaned_pod_logs_after is null" in (body["refused"][0])
    )
    assert [e["kind"] for e in body["events"]] == ["apply-refused"]
    assert "nothing was changed" in err  # the human line stays on stderr
    assert pod.is_dir()


def test_apply_with_an_unusable_lock_or_a_busy_one_is_json_too(
    node: Node, capsys: pytest.CaptureFixture[str]
) -> None:
    node.containers_extra = {"remove_orphaned_pod_logs_after": "1d"}
    pod = _orphan(node)
    node.state.mkdir(parents=True, mode=0o700)
    (node.state / "nodeguard.lock").mkdir()

    unusable = _run(node, capsys, "--apply", "--json")
    (node.state / "nodeguard.lock").rmdir()
    with pass_lock(node.state):
        busy = _run(node, capsys, "--apply", "--json")

    assert unusable[0] == 2 and json.loads(unusable[1])["exit"] == 2
    assert "cannot open the lock" in json.loads(unusable[1])["refused"][0]
    assert busy[0] == 3 and json.loads(busy[1])["exit"] == 3
    assert "another pass is running" in json.loads(busy[1])["refused"][0]
    assert "Traceback" not in unusable[2] + busy[2]
    assert pod.is_dir()


def test_a_report_carries_its_exit_code(node: Node, capsys: pytest.CaptureFixture[str]) -> None:
    _orphan(node)

    code, out, _ = _run(node, capsys, "--json")

    body = json.loads(out)
    assert code == 0 and body["exit"] == 0 and "refused" not in body
    assert [o["pod"] for o in body["orphan_pod_dirs"]] == ["gone"]
