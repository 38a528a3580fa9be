"""A file is rotated in place only when every writer holding it open uses O_APPEND
(issue 7, items 6 and 13).

A writer without O_APPEND keeps its own offset: after a truncate or a collapse its next
write leaves a hole of NUL bytes as long as what was moved. cri-o's conmon opens a
container's log that way after every reopen kubelet asks for. The writers are real
processes here, with the command names of the runtimes, and one whose name is not
UTF-8 (an unprivileged process chooses its own).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from nodeguard.config.loader import embedded_default_text, load_text
from nodeguard.config.model import Config
from nodeguard.rotation.engine import PassOptions, run_pass
from nodeguard.rotation.sparse import open_writers
from nodeguard.state import IntentJournal
from tests.conftest import make_config, numbered_lines, records, rotate_json
from tests.fsimages import Mounted, ext4_image

DATA = numbered_lines("w", 0, 1000)  # 64000 bytes: 15 blocks and a tail
IN_PLACE = ["copytruncate", "lossless"]

_WRITER = textwrap.dedent(
    """
    import ctypes, os, sys
    path, flags, name = sys.argv[1], int(sys.argv[2]), os.fsencode(sys.argv[3])
    ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
    fd = os.open(path, flags, 0o644)
    os.lseek(fd, 0, os.SEEK_END)  # where a writer that wrote the file so far stands
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes stdin: then one more line
    os.write(fd, b"after the rotation\\n")
    """
)


@contextlib.contextmanager
def writer(path: Path, flags: int, name: bytes) -> Iterator[int]:
    """A process holding ``path`` open with ``flags``, named ``name`` (its comm), at the
    end of the file; it writes one more line when the block ends."""
    argv = [sys.executable, "-c", _WRITER, str(path), str(flags), os.fsdecode(name)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline() == b"ready\n"
        yield proc.pid
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def ext4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with ext4_image(tmp_path_factory.mktemp("writers"), size_mb=128) as fs:
        yield fs


@pytest.fixture
def logs(ext4: Mounted, tmp_path: Path) -> Iterator[Path]:
    path = ext4.path / tmp_path.name
    path.mkdir()
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=True)


APPEND = os.O_WRONLY | os.O_APPEND  # containerd's shim
NO_APPEND = os.O_WRONLY  # conmon after a reopen (O_WRONLY|O_TRUNC|O_CREAT, then writes)


def policy(logs: Path, method: str) -> dict[str, object]:
    return {"name": "p", "paths": [f"{logs}/*.log"], "max_size": "1Ki", "method": method}


@pytest.mark.parametrize("method", IN_PLACE)
def test_writer_without_o_append_is_named_and_the_file_is_never_rotated_in_place(
    tmp_path: Path, logs: Path, method: str
) -> None:
    log = logs / "app.log"
    log.write_bytes(DATA)
    with writer(log, NO_APPEND, b"conmon") as pid:
        code, body = rotate_json(make_config(tmp_path, [policy(logs, method)]))
    assert code == 1, body
    assert records(body, log) == [("refuse", "refused")]
    reason = body["files"][0]["reason"]
    assert f"pid {pid} (conmon)" in reason and "without O_APPEND" in reason
    assert log.read_bytes()[: len(DATA)] == DATA
    assert b"\0" not in log.read_bytes()  # the writer's last line landed after the data
    assert sorted(os.listdir(logs)) == ["app.log"]


@pytest.mark.parametrize("method", IN_PLACE)
def test_append_writers_do_not_stop_an_in_place_rotation(
    tmp_path: Path, logs: Path, method: str
) -> None:
    log = logs / "app.log"
    log.write_bytes(DATA)
    with writer(log, APPEND, b"containerd-shim"):
        code, body = rotate_json(make_config(tmp_path, [policy(logs, method)]))
    assert code == 0, body
    assert records(body, log)[0] == ("rotate", "done")
    assert b"\0" not in log.read_bytes()
    assert log.read_bytes().endswith(b"after the rotation\n")


def test_a_writer_whose_name_is_not_utf8_is_named_with_escapes(tmp_path: Path, logs: Path) -> None:
    log = logs / "app.log"
    log.write_bytes(DATA)
    with writer(log, NO_APPEND, b"\xff\xfe\x1bevil") as pid:
        code, body = rotate_json(make_config(tmp_path, [policy(logs, "copytruncate")]))
        found = open_writers({(log.stat().st_dev, log.stat().st_ino)})
    assert code == 1, body
    assert f"pid {pid} (\\xff\\xfe\\x1bevil)" in body["files"][0]["reason"]
    ((only,),) = found.values()
    assert only.command == "\\xff\\xfe\\x1bevil"


def default_for(config_root: Path, tmp_path: Path) -> Config:
    """The embedded default, with its container policy pointed at a test pods root."""
    config = load_text(embedded_default_text(), "<embedded default>")
    pods = config_root / "pods"
    policies = tuple(
        replace(p, paths=(f"{pods}/*/*/*.log",)) if p.name == "container-logs" else p
        for p in config.policies
        if p.name == "container-logs"
    )
    containers = replace(config.containers, pods_dir=pods, docker_root=config_root / "docker")
    return replace(
        config,
        policies=policies,
        containers=containers,
        state_dir=tmp_path / "state",
        logrotate_config=None,
    )


def cri_log(root: Path, data: bytes) -> Path:
    cdir = root / "pods" / "default_web_0123" / "nginx"
    cdir.mkdir(parents=True)
    (cdir / "0.log").write_bytes(data)
    return cdir / "0.log"


@pytest.mark.parametrize(
    ("runtime", "flags", "comm"),
    [("containerd", APPEND, b"containerd-shim"), ("cri-o", NO_APPEND, b"conmon")],
)
def test_embedded_default_is_safe_for_each_runtimes_writer(
    tmp_path: Path, logs: Path, runtime: str, flags: int, comm: bytes
) -> None:
    """Over max_size (20Mi), held open as each runtime holds it: containerd's O_APPEND
    log is rotated losslessly, cri-o's reopened one is refused, naming kubelet."""
    config = default_for(logs, tmp_path)
    big = numbered_lines("cri", 0, 21 * 16384)  # 21 MiB
    log = cri_log(logs, big)
    with writer(log, flags, comm) as pid:
        report = run_pass(config, PassOptions(), intents=IntentJournal(tmp_path / "state" / "i"))
    (record,) = [e for e in report.events if e.subject == str(log)]
    if runtime == "containerd":
        assert (record.kind, record.facts["result"]) == ("rotate", "done")
    else:
        assert (record.kind, record.facts["result"]) == ("refuse", "refused")
        assert f"pid {pid} (conmon)" in record.reason
        assert "kubelet rotates" in record.reason
        assert log.read_bytes()[: len(big)] == big
    assert b"\0" not in log.read_bytes()
