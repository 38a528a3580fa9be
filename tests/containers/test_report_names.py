"""Names in the container report are shown escaped, as rotation's report shows them.

A pod log folder's name is whatever its creator chose: a newline would forge a report
line, an escape sequence would drive the operator's terminal, and a byte that is not
UTF-8 made ``nodeguard containers`` end in a UnicodeEncodeError under a UTF-8 locale.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import VENV_BIN
from tests.containers.nodetree import Node, cri_lines

UID = "dddddddd-0000-0000-0000-00000000000d"
FORGED = "ns_p\x1b[31m\nFORGED LINE"


def _hostile_pods(node: Node) -> None:
    node.cri(FORGED.split("_", maxsplit=1)[0], FORGED.split("_")[1], UID, "app", live=cri_lines(1))
    raw = os.fsencode(node.pods) + b"/\xff\xfe_pod_" + UID.encode() + b"/app"
    os.makedirs(raw)
    with open(raw + b"/0.log", "wb") as handle:
        handle.write(cri_lines(1))


def test_the_text_report_escapes_control_characters_and_bytes(node: Node) -> None:
    _hostile_pods(node)
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    env["PYTHONIOENCODING"] = "utf-8:strict"  # what a host's en_US.UTF-8 locale gives
    done = subprocess.run(
        [str(VENV_BIN / "nodeguard"), "-c", str(node.config_file()), "--no-dropins", "containers"],
        capture_output=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    text = done.stdout.decode("utf-8")
    assert not any(line.startswith("FORGED") for line in text.splitlines())
    assert "\x1b" not in text
    assert "ns/p\\x1b[31m\\nFORGED LINE/app" in text
    assert f"{node.pods}/\\xff\\xfe_pod_{UID}" in text
    assert all(line.isprintable() for line in text.splitlines())


def test_json_keeps_the_names_exact(node: Node, tmp_path: Path) -> None:
    _hostile_pods(node)
    import json

    from tests.containers.test_samples import run_at

    _, report = run_at(node, 1_800_000_000.0)
    names = {o["path"] for o in report["orphan_pod_dirs"]}
    assert os.fsdecode(os.fsencode(node.pods) + b"/\xff\xfe_pod_" + UID.encode()) in names
    assert json.dumps(report)  # surrogates travel as \\udcXX escapes
