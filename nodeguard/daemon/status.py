"""The status document: what the running daemon last did, for ``nodeguard status``.

The daemon keeps a :class:`StatusBook` in memory (main thread only) and writes it to
``state_dir/status.json`` through the state-file API at least every ``report_every``
seconds. ``nodeguard status`` reads it back; a document older than three report
intervals means the daemon is gone or stuck.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nodeguard.config.units import format_size
from nodeguard.state import StateDirUnsafe, StateDocument, check_state_dir

STATUS_NAME = "status.json"
STATUS_KIND = "daemon-status"
STATUS_CAP = 1024 * 1024
STALE_AFTER = 3  # report intervals without a write
REPORT_MAX = 30.0  # the daemon writes its status at least this often
FUTURE_SLACK = 60.0  # a report further ahead than this: clock stepped back, or forged


def status_document(state_dir: Path) -> StateDocument:
    return StateDocument(state_dir / STATUS_NAME, STATUS_KIND, cap=STATUS_CAP)


@dataclass
class PartStatus:
    """One part's record: counters, its last run, its next."""

    interval: int
    runs: int = 0
    failures: int = 0
    running_since: float | None = None
    last_start: float | None = None
    last_duration: float | None = None
    last_ok: bool | None = None
    last_error: str | None = None
    next_run: float | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class StatusBook:
    """The daemon's status, updated by the main loop and saved as one document."""

    pid: int
    version: str
    hostname: str
    started_at: float
    report_every: float
    config_sources: tuple[str, ...] = ()
    config_loaded_at: float = 0.0
    state: str = "starting"
    reload: dict[str, Any] | None = None
    parts: dict[str, PartStatus] = field(default_factory=dict)
    totals: dict[str, int] = field(
        default_factory=lambda: {"passes": 0, "files_rotated": 0, "bytes_freed": 0}
    )
    hung: list[str] = field(default_factory=list)  # parts past their hang limit (watchdog)

    def started(self, name: str, at: float) -> None:
        self.parts[name].running_since = at

    def finished(self, name: str, at: float, duration: float, summary: Mapping[str, Any]) -> None:
        part = self.parts[name]
        part.runs += 1
        part.running_since = None
        part.last_start, part.last_duration = at, round(duration, 3)
        part.last_ok, part.last_error = summary.get("error") is None, summary.get("error")
        if summary.get("error") is not None:
            part.failures += 1
        part.summary = dict(summary)
        if "rotated" in summary and "skipped" not in summary:
            self.totals["passes"] += 1
            self.totals["files_rotated"] += int(summary.get("rotated", 0))
            self.totals["bytes_freed"] += int(summary.get("bytes_freed", 0))

    def as_data(self, now: float) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "version": self.version,
            "hostname": self.hostname,
            "state": self.state,
            "started_at": self.started_at,
            "updated_at": now,
            "report_every": self.report_every,
            "config": {"sources": list(self.config_sources), "loaded_at": self.config_loaded_at},
            "reload": self.reload,
            "parts": {n: vars(p) | {"summary": dict(p.summary)} for n, p in self.parts.items()},
            "totals": dict(self.totals),
            "hung": list(self.hung),
        }

    def one_line(self) -> str:
        """systemd's STATUS=: the last pass and what is wrong, in one line."""
        rotation = self.parts.get("rotation")
        if rotation is None or rotation.last_start is None:
            line = "first pass running"
        else:
            s = rotation.summary
            line = (
                f"last pass {_clock(rotation.last_start)} ({rotation.last_duration}s): "
                f"{s.get('rotated', 0)} rotated, {format_size(int(s.get('bytes_freed', 0)))} freed"
            )
        failing = sorted(n for n, p in self.parts.items() if p.last_ok is False)
        if failing:
            line += f"; failing: {', '.join(failing)}"
        if self.reload is not None and not self.reload.get("ok"):
            line += "; last reload FAILED, running on the previous config"
        return line


# --- reading it back: nodeguard status --------------------------------------------


@dataclass(frozen=True)
class StatusView:
    """A status document as read, with its age judged against its report interval."""

    data: dict[str, Any] | None
    problem: str | None
    age: float | None

    @property
    def stale(self) -> bool:
        if self.data is None or self.age is None:
            return True
        every = _number(self.data.get("report_every")) or 0.0
        stopped = self.data.get("state") == "stopped"
        # The daemon writes at least every min(report_every, 30) s (loop._save_status):
        # a document claiming a longer interval cannot keep a silent daemon "ok".
        return stopped or self.age > STALE_AFTER * min(max(every, 1.0), REPORT_MAX)


def liveness(view: StatusView) -> tuple[bool, str]:
    """``status --check`` (the DaemonSet's liveness probe): alive means reporting on time
    and no part hung (the watchdog's own verdict); one line saying why not."""
    data = view.data
    if view.problem or data is None:
        return False, f"not alive: {view.problem}"
    if data.get("state") == "stopped":
        return False, "not alive: the daemon stopped"
    if view.stale:
        return False, f"not alive: last report {_ago(view.age)} (hung or gone)"
    hung = data.get("hung")
    if isinstance(hung, list) and hung:
        names = ", ".join(str(h)[:64] for h in hung[:10])
        return False, f"not alive: part(s) hung: {names}"
    return True, f"alive: pid {data.get('pid')}, last report {_ago(view.age)}"


def _ago(age: float | None) -> str:
    return f"{age:.0f}s ago" if age is not None else "at an unknown time"


def read_status(state_dir: Path, now: float, euid: int | None = None) -> StatusView:
    """The status document and its age; with ``euid``, only from a state folder nobody
    else could have written (the daemon refuses any other, so a document there is not
    the daemon's)."""
    if euid is not None:
        try:
            check_state_dir(state_dir, euid)
        except StateDirUnsafe as exc:
            return StatusView(None, f"state folder not trusted: {exc}", None)
    loaded = status_document(state_dir).load()
    if loaded.data is None:
        why = loaded.problem or f"{state_dir / STATUS_NAME}: no status: the daemon has not run"
        return StatusView(None, why, None)
    updated = _number(loaded.data.get("updated_at"))
    if updated is not None and updated > now + FUTURE_SLACK:
        why = f"{state_dir / STATUS_NAME}: last report is in the future ({_stamp(updated)})"
        return StatusView(loaded.data, why, None)
    age = None if updated is None else max(0.0, now - updated)
    return StatusView(loaded.data, None, age)


def render_json(view: StatusView) -> str:
    body = {"ok": not view.stale, "age": view.age, "problem": view.problem, "status": view.data}
    return json.dumps(body, indent=1, sort_keys=True) + "\n"


def render_text(view: StatusView) -> str:
    if view.data is None:
        return f"nodeguard daemon: unknown ({view.problem})\n"
    data = view.data
    age = f"{view.age:.0f}s ago" if view.age is not None else "at an unknown time"
    if data.get("state") == "stopped":
        verdict = f"stopped, last report {age}"
    elif view.problem:
        verdict = f"NOT REPORTING: {view.problem}"
    elif view.stale:
        verdict = f"NOT REPORTING: last report {age}, expected every {data.get('report_every')}s"
    else:
        verdict = f"{data.get('state')}, last report {age}"
    lines = [
        f"nodeguard daemon (pid {data.get('pid')}): {verdict}",
        f"started {_stamp(data.get('started_at'))}; config {_sources(data.get('config'))}",
    ]
    hung = data.get("hung")
    if isinstance(hung, list) and hung:
        lines.append(f"HUNG: {', '.join(str(h)[:64] for h in hung[:10])} (past the hang limit)")
    lines += _reload_lines(data.get("reload"))
    lines += _totals_lines(data.get("totals"))
    parts = data.get("parts")
    for name, part in sorted(parts.items()) if isinstance(parts, dict) else ():
        if isinstance(part, dict):
            lines.append(_part_line(str(name), part))
    return "\n".join(lines) + "\n"


def _part_line(name: str, part: dict[str, Any]) -> str:
    if part.get("running_since") is not None:
        state = f"running since {_stamp(part.get('running_since'))}"
    elif part.get("last_start") is None:
        state = "not run yet"
    else:
        result = "ok" if part.get("last_ok") else f"FAILED: {part.get('last_error')}"
        state = f"last {_stamp(part.get('last_start'))} ({part.get('last_duration')}s) {result}"
    summary = part.get("summary")
    figures = _figures(summary) if isinstance(summary, dict) else ""
    return f"  {name}: {state}; next {_stamp(part.get('next_run'))}{figures}"


def _figures(summary: dict[str, Any]) -> str:
    shown = {k: v for k, v in summary.items() if k not in ("duration", "error", "policies")}
    if not shown:
        return ""
    text = ", ".join(f"{k} {_value(k, v)}" for k, v in sorted(shown.items()))
    return f"; {text}"


def _value(key: str, value: Any) -> str:
    if key.startswith("bytes") and isinstance(value, int):
        return format_size(value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _reload_lines(reload: Any) -> list[str]:
    if not isinstance(reload, dict):
        return []
    if reload.get("ok"):
        return [f"last reload {_stamp(reload.get('at'))}: ok"]
    problems = reload.get("problems")
    count = len(problems) if isinstance(problems, list) else "?"
    return [
        f"last reload {_stamp(reload.get('at'))}: FAILED ({count} problem(s)); "
        "running on the previous config"
    ]


def _totals_lines(totals: Any) -> list[str]:
    if not isinstance(totals, dict):
        return []
    freed = _number(totals.get("bytes_freed")) or 0
    return [
        f"since start: {totals.get('passes')} passes, {totals.get('files_rotated')} files "
        f"rotated, {format_size(int(freed))} freed"
    ]


def _sources(config: Any) -> str:
    if isinstance(config, dict) and isinstance(config.get("sources"), list):
        return ", ".join(str(s) for s in config["sources"]) or "embedded default"
    return "?"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _stamp(value: Any) -> str:
    seconds = _number(value)
    if seconds is None:
        return "-"
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return "-"


def _clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%SZ")
