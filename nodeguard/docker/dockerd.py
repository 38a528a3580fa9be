"""Ask the installed dockerd whether it would accept a candidate daemon.json.

Docker 23+ has ``dockerd --validate``. Docker 20.10 (Debian 12's docker.io) has not,
so nodeguard runs ``dockerd --config-file CANDIDATE`` as the unprivileged user 65534
with no capabilities. dockerd reads and checks the file first (JSON syntax, unknown
directives, value types) and then stops with "dockerd needs to be started with root",
before it creates its data root, pidfile, sockets or any network interface: seen with
strace on 20.10.24, it only opens files for reading and creates nothing. Both forms run
unprivileged, so neither can start containers or touch /var/lib/docker even if a future
dockerd behaved otherwise.

Commands run through the World's runner (no shell, only the output's tail kept). As
root the runner's argv drops privileges itself: ``env -i`` (an empty environment,
working folder /) and util-linux's ``setpriv`` (uid and gid 65534, no supplementary
groups, no new privileges) before dockerd. The candidate is root's, readable by that
group (0640 in a 0710 folder): other processes of the shared uid cannot change it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nodeguard.world import World

UNPRIVILEGED = 65534  # "nobody" on Debian and most distributions
TIMEOUT = 30.0
SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
_NEEDS_ROOT = "needs to be started with root"
_BAD_CONFIG = re.compile(r"unable to configure the Docker daemon with file (\S+?): (.*)")
_SEARCH = ("/usr/sbin/dockerd", "/usr/bin/dockerd", "/usr/local/bin/dockerd")
_NOT_RUN = (124, 126, 127)


class ValidatorFailed(Exception):
    """dockerd gave no usable answer (it could not be run, or said something unknown)."""


@dataclass(frozen=True)
class Verdict:
    """dockerd's answer: ``reason`` is empty when it accepts the file."""

    method: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


def find_dockerd(which: Callable[[str], str | None] = shutil.which) -> Path | None:
    """The dockerd binary on PATH or in the usual places, if any."""
    found = which("dockerd")
    if found:
        return Path(found)
    return next((Path(p) for p in _SEARCH if os.access(p, os.X_OK)), None)


def validate(dockerd: Path, candidate: bytes, world: World) -> Verdict:
    """Run dockerd over ``candidate`` without privileges; raise ValidatorFailed if unsure."""
    with tempfile.TemporaryDirectory(prefix="nodeguard-validate-") as tmp:
        path = Path(tmp) / "daemon.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(candidate)
        if world.euid == 0:
            # Readable by dockerd's group only, changeable by root only: other processes
            # of that shared user can neither rewrite the candidate nor add entries.
            _share_read_only(Path(tmp), path)
        output = _run(world, [str(dockerd), "--validate", "--config-file", str(path)])
        if "unknown flag: --validate" not in output:
            return _verdict("dockerd --validate", output, path, accepted="configuration OK")
        output = _run(world, [str(dockerd), "--config-file", str(path)])
        return _verdict("dockerd as an unprivileged user", output, path, accepted=_NEEDS_ROOT)


def _share_read_only(folder: Path, candidate: Path) -> None:
    os.chown(folder, 0, UNPRIVILEGED)
    os.chmod(folder, 0o710)  # noqa: S103 -- the group is dockerd's: it must enter
    os.chown(candidate, 0, UNPRIVILEGED)
    os.chmod(candidate, 0o640)


def unprivileged_argv(argv: Sequence[str], euid: int) -> list[str]:
    """``argv`` run with an empty environment in /, and as uid 65534 when we are root."""
    env = shutil.which("env", path=SAFE_PATH) or "/usr/bin/env"
    wrapped = [env, "-i", "-C", "/", f"PATH={SAFE_PATH}", "LANG=C"]
    if euid == 0:
        setpriv = shutil.which("setpriv", path=SAFE_PATH) or "/usr/bin/setpriv"
        wrapped += [
            setpriv,
            f"--reuid={UNPRIVILEGED}",
            f"--regid={UNPRIVILEGED}",
            "--clear-groups",
            "--no-new-privs",
        ]
    return [*wrapped, *argv]


def _run(world: World, argv: Sequence[str]) -> str:
    result = world.run(unprivileged_argv(argv, world.euid), TIMEOUT)
    if result.returncode in _NOT_RUN:
        # Timed out (the runner's 124), or env could not run it (126, 127).
        detail = result.output or f"exit {result.returncode}"
        raise ValidatorFailed(f"could not run {argv[0]}: {detail}")
    return result.output


def _verdict(method: str, output: str, path: Path, *, accepted: str) -> Verdict:
    if accepted in output:
        return Verdict(method)
    match = _BAD_CONFIG.search(output)
    if match is None or match.group(2).startswith(f"open {path}"):
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise ValidatorFailed(f"{method} gave no verdict: {tail or 'no output'}")
    return Verdict(method, match.group(2).strip())


_FIELD_RE = re.compile(r"Go struct field \w+\.([\w.-]+)")
_DIRECTIVES_RE = re.compile(r"directives don't match any configuration option: (.*)")


def keys_named(reason: str, keys: Sequence[str]) -> list[str]:
    """The top-level keys a dockerd error message is about, most specific first."""
    named = _DIRECTIVES_RE.search(reason)
    if named:
        wanted = [k.strip() for k in named.group(1).split(",")]
        return [k for k in wanted if k in keys]
    field = _FIELD_RE.search(reason)
    if field:
        head = field.group(1).split(".")[0]
        return [head] if head in keys else []
    by_length = sorted(keys, key=len, reverse=True)
    return [k for k in by_length if re.search(rf"(?<![\w-]){re.escape(k)}(?![\w-])", reason)][:1]
