"""Shared test helpers: a config writer, a tree checksum and an in-process CLI runner.

They are plain functions (import them with ``from tests.conftest import ...``) so
test modules can call them with their own arguments.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nodeguard import cli
from nodeguard.rotation import naming

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def make_config(tmp_path: Path, policies: list[dict[str, Any]] | None = None, **top: Any) -> Path:
    """Write ``tmp_path/nodeguard.yaml``: state inside tmp_path, no logrotate check, no
    alert sink of the host's (``run --once`` must not reach its Alertmanager, textfile
    folder or journald)."""
    body: dict[str, Any] = {
        "state_dir": tmp_path / "state",
        "logrotate_config": None,
        "alerts": {"alertmanager": {"url": None}, "textfile": None, "journald": False},
        **top,
        "policies": policies or [],
    }
    path = tmp_path / "nodeguard.yaml"
    path.write_text(yaml.safe_dump(_plain(body), sort_keys=False), "utf-8")
    return path


def _entry(path: Path) -> tuple[object, ...]:
    st = path.lstat()
    meta = (stat.filemode(st.st_mode), st.st_uid, st.st_gid)
    if stat.S_ISLNK(st.st_mode):
        return ("link", *meta, os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return ("dir", *meta, st.st_mtime_ns)
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
    return ("file", *meta, st.st_size, st.st_ino, st.st_nlink, st.st_mtime_ns, digest)


def tree_digest(path: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under ``path`` (or ``path`` itself if it is not a directory), by name.

    Type, mode, owner, group, and for files size, inode, link count, mtime and
    sha256; for symlinks the target; for directories the mtime (so any entry
    created and removed again shows). Symlinks are never followed.
    """
    out = {".": _entry(path)}
    if not path.is_dir() or path.is_symlink():
        return out
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in dirs + files:
            full = Path(root, name)
            out[str(full.relative_to(path))] = _entry(full)
    return out


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


def run_cli(*args: str | Path) -> CliResult:
    """Run ``nodeguard ARGS`` in this process, capturing stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return CliResult(code, out.getvalue(), err.getvalue())


def numbered_lines(tag: str, start: int, count: int, width: int = 64) -> bytes:
    """``count`` distinct newline-terminated lines, each ``width`` bytes long."""
    lines = (f"{tag} {n:010d} ".ljust(width - 1, "x") + "\n" for n in range(start, start + count))
    return "".join(lines).encode()


def read_maybe_gz(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def nodeguard_history(directory: Path, live: str) -> tuple[list[str], bytes]:
    """Rotated files of ``live`` oldest first, and their content followed by the live file's."""
    rotated = [r for r in map(naming.parse, os.listdir(directory)) if r and r.base == live]
    names = [r.name for r in sorted(rotated, key=lambda r: r.key)]
    content = b"".join(read_maybe_gz(directory / n) for n in names)
    live_path = directory / live
    return names, content + (live_path.read_bytes() if live_path.exists() else b"")


def rotate_json(config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """``nodeguard -c CONFIG --no-dropins rotate --json ARGS``: exit code and parsed report."""
    result = run_cli("-c", config, "--no-dropins", "rotate", "--json", *args)
    body: dict[str, Any] = json.loads(result.out) if result.out else {}
    if not body or "error" in body:  # refused: the reasons are on stderr too
        body["err"] = result.err
    return result.code, body


def records(body: dict[str, Any], path: Path | str) -> list[tuple[str, str]]:
    """(action, result) of every report record about ``path``, in order."""
    return [(f["action"], f["result"]) for f in body["files"] if f["path"] == str(path)]
