"""Guards decide by identity, not by path text (issue 7, items 4 and 7).

Docker's json logs, CRI logs under the pods root and files logrotate rotates are each
reached here through an alias (``./``, a root-owned symlink, a bind mount) and must be
recognised all the same. nodeguard's own lock, state, intent records, config file and
drop-ins are never candidates, whatever the globs say.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeguard.state import pass_lock
from tests.conftest import (
    VENV_BIN,
    make_config,
    numbered_lines,
    records,
    rotate_json,
    run_cli,
    tree_digest,
)

DATA = numbered_lines("g", 0, 100)
CID = "c" * 64


def roots(tmp_path: Path, **override: Path) -> dict[str, str]:
    base = {
        "pods_dir": tmp_path / "pods",
        "containers_dir": tmp_path / "containers",
        "docker_root": tmp_path / "docker",
        "kubelet_config": tmp_path / "kubelet.yaml",
    }
    return {k: str(v) for k, v in {**base, **override}.items()}


def policy(paths: list[str | Path], **keys: Any) -> dict[str, Any]:
    return {"name": "p", "paths": [str(p) for p in paths], "max_size": "1Ki", **keys}


@contextlib.contextmanager
def bind_mount(source: Path, target: Path) -> Iterator[Path]:
    target.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def docker_log(docker: Path) -> Path:
    cdir = docker / "containers" / CID
    cdir.mkdir(parents=True)
    log = cdir / f"{CID}-json.log"
    log.write_bytes(b'{"log":"x\\n","stream":"stdout","time":"2026-01-01T00:00:00Z"}\n' * 200)
    (cdir / "config.v2.json").write_bytes(b"{}" * 1000)
    return log


# --- Docker's own logs ------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["dot", "symlinked-root", "bind-mount"])
def test_docker_json_logs_are_recognised_through_any_alias(tmp_path: Path, alias: str) -> None:
    real = tmp_path / "data" / "docker"
    log = docker_log(real)
    with contextlib.ExitStack() as stack:
        if alias == "dot":
            configured, pattern = real, f"{real}/./containers/*/*"
        elif alias == "symlinked-root":  # /var/lib/docker -> /data/docker, a common layout
            configured = tmp_path / "var-lib-docker"
            configured.symlink_to(real)
            pattern = f"{real}/containers/*/*"
        else:
            configured = real
            mounted = stack.enter_context(bind_mount(real, tmp_path / "mnt"))
            pattern = f"{mounted}/containers/*/*"
        before = tree_digest(real)
        conf = make_config(
            tmp_path, [policy([pattern])], containers=roots(tmp_path, docker_root=configured)
        )
        code, body = rotate_json(conf, "--force")
        assert before == tree_digest(real)
        if alias == "dot":  # the config refuses a '.' component before anything is looked at
            assert code == 2 and "'.' or '..' component" in body["err"], body
            return
        assert code == 0, body
        skipped = [f for f in body["files"] if f["action"] == "skip"]
        assert len(skipped) == 2  # the json log and config.v2.json
        assert all("dockerd rotates it" in f["reason"] for f in skipped)
        assert log.exists()


# --- CRI logs -----------------------------------------------------------------------------


def test_cri_logs_reached_through_an_alias_of_the_pods_root_are_never_renamed(
    tmp_path: Path,
) -> None:
    pods = tmp_path / "pods"
    cdir = pods / "default_web_0123" / "nginx"
    cdir.mkdir(parents=True)
    log = cdir / "0.log"
    log.write_bytes(DATA)
    alias = tmp_path / "pods-alias"
    alias.symlink_to(pods)
    before = tree_digest(pods)
    paths = [f"{alias}/*/*/*.log", f"{pods}/./*/*/*.log"]
    for pattern in paths:
        conf = make_config(
            tmp_path, [policy([pattern], method="rename")], containers=roots(tmp_path)
        )
        code, body = rotate_json(conf)
        assert tree_digest(pods) == before
        if "/./" in pattern:  # the config refuses a '.' component: nothing is looked at
            assert code == 2 and "'.' or '..' component" in body["err"], body
            continue
        assert code == 1, body
        (refusal,) = [f for f in body["files"] if f["action"] == "refuse"]
        assert "CRI container log" in refusal["reason"]


# --- logrotate's files ------------------------------------------------------------------


@pytest.mark.parametrize("side", ["policy-alias", "logrotate-alias"])
def test_files_logrotate_covers_are_recognised_through_an_alias(tmp_path: Path, side: str) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "app.log").write_bytes(DATA)
    alias = tmp_path / "alias"
    alias.symlink_to(real)
    policy_dir, logrotate_dir = (alias, real) if side == "policy-alias" else (real, alias)
    logrotate = tmp_path / "logrotate.conf"
    logrotate.write_text(f"{logrotate_dir}/app.log {{\n  rotate 3\n}}\n")
    conf = make_config(tmp_path, [policy([f"{policy_dir}/*.log"])], logrotate_config=logrotate)
    code, body = rotate_json(conf)
    assert code == 0, body
    (record,) = body["files"]
    assert (record["action"], record["result"]) == ("skip", "skipped")
    assert "covered by logrotate" in record["reason"]
    assert (real / "app.log").read_bytes() == DATA


# --- nodeguard's own files ----------------------------------------------------------------


def nodeguard(*args: str | Path) -> subprocess.CompletedProcess[str]:
    argv = [str(VENV_BIN / "nodeguard"), *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def test_a_glob_covering_the_state_folder_never_touches_the_lock_state_or_intents(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    alias = tmp_path / "state-alias"
    alias.symlink_to(state)
    paths = [f"{state}/*", f"{state}/*/*", f"{alias}/*", f"{tmp_path}/*/nodeguard.lock"]
    conf = make_config(tmp_path, [policy(paths, max_size=1, not_if_empty=False)])
    for _ in range(3):  # the first pass creates the lock and state.json
        code, body = rotate_json(conf, "--force")
        assert code == 0, body
        assert all(f["action"] == "skip" for f in body["files"]), body["files"]
    reasons = {f["reason"] for f in body["files"]}
    assert reasons == {
        "in nodeguard's own state folder: never a candidate",
        "a symlink where a directory was expected (never followed)",  # */ reaching the alias
    }
    assert sorted(os.listdir(state)) == ["nodeguard.lock", "state.json"]
    lock = (state / "nodeguard.lock").stat().st_ino
    with pass_lock(state):
        done = nodeguard("-c", conf, "--no-dropins", "rotate")
        assert done.returncode == 3, done.stdout + done.stderr
    assert (state / "nodeguard.lock").stat().st_ino == lock


def test_the_config_file_and_its_dropins_are_never_candidates(tmp_path: Path) -> None:
    dropins = tmp_path / "conf.d"
    dropins.mkdir()
    extra = {"name": "extra", "paths": [f"{tmp_path}/none.log"]}
    (dropins / "10-extra.yaml").write_text(f"policies:\n  - {extra}\n".replace("'", '"'))
    (dropins / "20-disabled.yaml.dpkg-old").write_text("policies: []\n")
    paths = [f"{tmp_path}/*.yaml", f"{dropins}/*"]
    conf = make_config(tmp_path, [policy(paths, max_size=1)])
    before = tree_digest(tmp_path / "nodeguard.yaml"), tree_digest(dropins)
    result = run_cli("-c", conf, "rotate", "--force", "--json")
    assert result.code == 0, result.out + result.err
    assert (tree_digest(tmp_path / "nodeguard.yaml"), tree_digest(dropins)) == before
    validated = run_cli("-c", conf, "config", "validate")
    assert "(2 policies)" in validated.out


def test_an_olddir_inside_the_state_folder_is_refused(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(DATA)
    state = tmp_path / "state"
    (state / "old").mkdir(parents=True)
    conf = make_config(tmp_path, [policy([f"{logs}/*.log"], olddir=str(state / "old"))])
    code, body = rotate_json(conf)
    assert code == 1, body
    assert records(body, logs / "app.log") == [("refuse", "refused")]
    assert "state folder" in body["files"][0]["reason"]
    assert os.listdir(state / "old") == []


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "include-fifo"])
def test_an_odd_logrotate_config_neither_hangs_nor_grows_the_pass(
    tmp_path: Path, kind: str
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(DATA)
    logrotate = tmp_path / "logrotate.conf"
    if kind == "fifo":
        os.mkfifo(logrotate)
    elif kind == "dev-zero":
        logrotate.symlink_to("/dev/zero")
    else:
        os.mkfifo(tmp_path / "included")
        logrotate.write_text(f"include {tmp_path}/included\n{logs}/app.log {{\n}}\n")
    conf = make_config(tmp_path, [policy([f"{logs}/*.log"])], logrotate_config=logrotate)
    argv = [str(VENV_BIN / "nodeguard"), "-c", str(conf), "--no-dropins", "rotate"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    assert "Traceback" not in done.stderr
    if kind == "include-fifo":  # the file itself is read; the FIFO it includes is not
        assert done.returncode == 0, done.stdout
        assert "covered by logrotate" in done.stdout
    else:
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"cannot read {logrotate}" in done.stdout
        assert "rotate " in done.stdout and (logs / "app.log").stat().st_size == 0
