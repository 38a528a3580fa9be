"""The Prometheus textfile is written through its folder's fd, never by path, on real
folders: a folder reached through another user's symlink and one anybody can write are
refused with the path named (``run --once`` exits 2, nothing written anywhere); a folder
swapped for a symlink after it was opened still gets the file in the folder that was
checked, never in the target. Root's own symlink in root's folder is root's choice."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nodeguard.alerts.textfile import open_folder, write_at
from tests.conftest import run_cli, tree_digest
from tests.daemon.conftest import write_config

NAME = "nodeguard.prom"


def once(tmp_path: Path, folder: Path) -> tuple[int, dict[str, Any]]:
    alerts = {"alertmanager": {"url": None}, "textfile": str(folder / NAME), "journald": False}
    conf = write_config(tmp_path / "ng.yaml", tmp_path, alerts=alerts)
    result = run_cli("-c", conf, "--no-dropins", "run", "--once", "--json")
    return result.code, json.loads(result.out)["parts"]["alerts"]


def test_a_safe_folder_gets_the_metrics(tmp_path: Path) -> None:
    folder = tmp_path / "textfile"
    folder.mkdir(mode=0o755)
    code, alerts = once(tmp_path, folder)
    assert code == 0, alerts
    prom = folder / NAME
    assert "nodeguard_filesystem_avail_bytes{" in prom.read_text()
    assert prom.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in folder.iterdir()] == [NAME]  # no temp left behind


def test_a_folder_symlinked_by_another_user_is_refused_and_its_target_untouched(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    (victim / NAME).write_text("precious\n")
    link = tmp_path / "textfile"
    link.symlink_to(victim)
    os.chown(link, 65534, 65534, follow_symlinks=False)
    before = tree_digest(victim)
    code, alerts = once(tmp_path, link)
    assert code == 2, alerts
    assert alerts["refused"] == ["textfile"], alerts
    error = alerts["failed"]["textfile"]
    assert f"{link}: refused: directory is a symlink that a non-root user" in error, error
    assert "unsafe textfile folder" in error, error
    assert tree_digest(victim) == before


def test_roots_own_symlink_to_a_data_disk_folder_is_followed(tmp_path: Path) -> None:
    """/var/lib/prometheus/node-exporter -> /data/node-exporter, made by root in a folder
    only root can change: the metrics land in the target."""
    tmp_path.chmod(0o755)
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    link = tmp_path / "textfile"
    link.symlink_to(data)
    code, alerts = once(tmp_path, link)
    assert code == 0, alerts
    assert "nodeguard_filesystem_avail_bytes{" in (data / NAME).read_text()


def test_a_root_folder_under_another_users_parent_gets_the_metrics(tmp_path: Path) -> None:
    """Debian's node_exporter: /var/lib/prometheus is the prometheus user's (0755),
    its textfile folder node-exporter is root's. That is a normal layout, not a refusal."""
    parent = tmp_path / "prometheus"
    parent.mkdir(mode=0o755)
    os.chown(parent, 65534, 65534)
    folder = parent / "node-exporter"
    folder.mkdir(mode=0o755)
    code, alerts = once(tmp_path, folder)
    assert code == 0, alerts
    assert "nodeguard_filesystem_avail_bytes{" in (folder / NAME).read_text()


def test_a_symlink_of_another_user_on_the_way_is_refused(tmp_path: Path) -> None:
    """A user who owns a parent can put a symlink there; it is not followed."""
    parent = tmp_path / "prometheus"
    parent.mkdir(mode=0o755)
    victim = tmp_path / "victim"
    (victim / "node-exporter").mkdir(parents=True, mode=0o755)
    link = parent / "lib"
    link.symlink_to(victim)
    os.chown(link, 65534, 65534, follow_symlinks=False)
    before = tree_digest(victim)
    code, alerts = once(tmp_path, link / "node-exporter")
    assert code == 2, alerts
    error = alerts["failed"]["textfile"]
    assert f"{link}: refused: directory is a symlink that a non-root user" in error, alerts
    assert tree_digest(victim) == before


def test_a_world_writable_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "textfile"
    folder.mkdir()
    folder.chmod(0o777)
    code, alerts = once(tmp_path, folder)
    assert code == 2, alerts
    assert f"{folder}: writable by group or others (mode 777)" in alerts["failed"]["textfile"]
    assert list(folder.iterdir()) == []


def test_a_folder_swapped_after_it_was_opened_cannot_redirect_the_write(tmp_path: Path) -> None:
    folder = tmp_path / "textfile"
    folder.mkdir(mode=0o755)
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    with open_folder(folder, os.geteuid()) as dir_fd:
        folder.rename(tmp_path / "moved")  # the attacker swaps the folder for a symlink
        folder.symlink_to(victim)
        write_at(dir_fd, NAME, b"metrics 1\n")
    assert list(victim.iterdir()) == []
    assert (tmp_path / "moved" / NAME).read_bytes() == b"metrics 1\n"
