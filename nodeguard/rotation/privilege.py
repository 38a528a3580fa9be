"""Run one policy's pass as another user (the ``su`` setting).

User ids are per process, not per thread, so the pass runs in a forked child
that drops to the user and group for good and sends its records back as JSON
through a pipe. Nothing it does can act with root's rights.
"""

from __future__ import annotations

import grp
import json
import logging
import os
import pwd
import traceback
from collections.abc import Callable, Sequence

from nodeguard.events import Event
from nodeguard.rotation.report import (
    FAILED,
    Entry,
    RotationKind,
    as_record,
    from_record,
    rotation_event,
)

_log = logging.getLogger(__name__)

Handled = dict[tuple[int, int], str]
PassResult = tuple[Sequence[Entry], Handled]  # a pass's events and kept files


def missing_su(su: tuple[str, str]) -> str | None:
    """Why the ``su`` user or group cannot be used now: checked when the config loaded,
    but a daemon keeps its config while users come and go."""
    try:
        pwd.getpwnam(su[0])
        grp.getgrnam(su[1])
    except KeyError as exc:
        return f"su {su[0]}:{su[1]}: {exc.args[0] if exc.args else exc}; policy skipped"
    return None


def run_as(
    user_group: tuple[str, str], job: Callable[[], PassResult], policy: str = "?"
) -> tuple[list[Event], Handled]:
    """Run ``job`` in a child process as ``user_group``; return what it returned."""
    uid = pwd.getpwnam(user_group[0]).pw_uid
    gid = grp.getgrnam(user_group[1]).gr_gid
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        os.close(read_fd)
        _child(uid, gid, job, write_fd)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        payload = pipe.read()
    _, status = os.waitpid(pid, 0)
    who = f"{user_group[0]}:{user_group[1]}"
    try:
        body = json.loads(payload)
        if "error" in body:
            reason = f"pass as {who} failed"
            error = str(body["error"])
            return [rotation_event(policy, "", RotationKind.SU, FAILED, reason, error=error)], {}
        events = [from_record(r) for r in body["records"]]
        handled = {(int(d), int(i)): p for d, i, p in body["handled"]}
    except (ValueError, KeyError, TypeError):
        reason = f"pass as {who} died (wait status {status})"
        return [rotation_event(policy, "", RotationKind.SU, FAILED, reason)], {}
    return events, handled


def _child(uid: int, gid: int, job: Callable[[], PassResult], write_fd: int) -> None:
    code = 0
    try:
        os.setgroups([gid])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        events, handled = job()
        body = {
            "records": [as_record(e) for e in events],
            "handled": [[d, i, p] for (d, i), p in handled.items()],
        }
    except BaseException as exc:  # report anything, never fall back into the parent's code
        _log.error("pass as uid %d failed", uid, exc_info=True)  # the traceback, for stderr
        body = {"error": "".join(traceback.format_exception_only(exc)).strip()}
        code = 1
    data = json.dumps(body).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(write_fd, view) :]
    os._exit(code)
