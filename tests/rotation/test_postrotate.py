"""postrotate as the admin expects it: its exit status decides, its output is bounded,
and its timeout is a value the code can use (issue 7, items 10, 19 and 22)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nodeguard.world import OUTPUT_TAIL
from tests.conftest import VENV_BIN, make_config, numbered_lines, records, rotate_json, run_cli

DATA = numbered_lines("p", 0, 100)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    (path / "app.log").write_bytes(DATA)
    return path


def policy(logs: Path, **keys: Any) -> dict[str, Any]:
    return {"name": "app", "paths": [f"{logs}/*.log"], "max_size": "1Ki", **keys}


def test_postrotate_leaving_a_background_child_is_judged_by_its_exit_status(
    tmp_path: Path, logs: Path
) -> None:
    """`sleep 20 &` keeps the hook's stdout open; the pass must not wait for it."""
    marker = tmp_path / "child.pid"
    hook = f'sleep 20 & echo $! > {marker}; echo "reopened $1"'
    conf = make_config(tmp_path, [policy(logs, postrotate=hook, postrotate_timeout="10s")])
    started = time.monotonic()
    code, body = rotate_json(conf)
    elapsed = time.monotonic() - started
    with open(marker, encoding="ascii") as handle:
        os.kill(int(handle.read()), signal.SIGKILL)
    assert code == 0, body
    assert records(body, logs / "app.log") == [("rotate", "done")]  # no postrotate failure
    assert elapsed < 8, f"the pass waited {elapsed:.1f}s for the hook's background child"


_MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, check=False)
sys.stdout.write(done.stdout.decode())
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
"""


def test_postrotate_output_is_kept_as_a_bounded_tail(tmp_path: Path, logs: Path) -> None:
    """200 MB of output: memory stays flat, the report keeps the last lines only."""
    hook = "head -c 200000000 /dev/zero | tr '\\0' x; echo; echo the-last-line; exit 3"
    conf = make_config(tmp_path, [policy(logs, postrotate=hook)])
    argv = [str(VENV_BIN / "nodeguard"), "-c", str(conf), "--no-dropins", "rotate", "--json"]
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *argv], capture_output=True, check=False, timeout=300
    )
    max_rss_kib = int(done.stderr.decode().split()[-1])
    body = json.loads(done.stdout)
    (hook_record,) = [f for f in body["files"] if f["action"] == "postrotate"]
    assert hook_record["result"] == "failed"
    assert hook_record["error"].startswith("exit 3: ")
    assert hook_record["error"].endswith("the-last-line")
    assert len(hook_record["error"]) <= OUTPUT_TAIL + 20
    assert max_rss_kib < 150_000, f"nodeguard grew to {max_rss_kib} KiB for the hook's output"


@pytest.mark.parametrize("value", ["4w", "2h", "99999999999999999999w"])
def test_postrotate_timeout_beyond_what_a_pass_can_wait_is_a_config_error(
    tmp_path: Path, logs: Path, value: str
) -> None:
    conf = make_config(tmp_path, [policy(logs, postrotate="true", postrotate_timeout=value)])
    result = run_cli("-c", conf, "--no-dropins", "config", "validate")
    assert result.code == 2, result
    assert "postrotate_timeout" in result.err and _over_bound(result.err)
    result = run_cli("-c", conf, "--no-dropins", "rotate")
    assert result.code == 2
    assert (logs / "app.log").read_bytes() == DATA  # nothing changed


def test_the_largest_postrotate_timeout_runs_and_recovery_completes(
    tmp_path: Path, logs: Path
) -> None:
    """At the bound, a pass and the recovery of its crash both run the hook normally."""
    marker = tmp_path / "hook.txt"
    keys = {"postrotate": f'echo "$1" >> {marker}', "postrotate_timeout": "1h"}
    conf = make_config(tmp_path, [policy(logs, **keys)])
    env = {**os.environ, "NODEGUARD_FAULT": "rename.after-rename:1"}
    argv = [str(VENV_BIN / "nodeguard"), "-c", str(conf), "--no-dropins", "rotate"]
    killed = subprocess.run(argv, env=env, capture_output=True, check=False, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    code, body = rotate_json(conf)
    assert code == 0, body
    recovered = [f for f in body["files"] if f["action"] == "recover"]
    assert [f["result"] for f in recovered] == ["done"]
    assert "ran postrotate" in recovered[0]["reason"]
    assert marker.read_text() == f"{logs}/app.log\n"


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("policy", "max_age", "99999999999999999999w"),
        ("top", "interval", "99999999999999999999w"),
    ],
)
def test_every_duration_is_bounded_by_what_the_code_can_use(
    tmp_path: Path, logs: Path, section: str, key: str, value: str
) -> None:
    pol = policy(logs, **({key: value} if section == "policy" else {}))
    top = {key: value} if section == "top" else {}
    conf = make_config(tmp_path, [pol], **top)
    result = run_cli("-c", conf, "--no-dropins", "config", "validate")
    assert result.code == 2, result
    assert key in result.err and _over_bound(result.err)


def _over_bound(err: str) -> bool:
    """The schema's bound, or the duration parser's (beyond 100 years) before it."""
    return "above the maximum" in err or "too long for a duration" in err
