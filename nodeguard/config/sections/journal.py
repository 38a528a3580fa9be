"""``journal:``: what the journal follower reads, the rules it applies, journal retention.

The built-in rules (``journal_rules.py``) are the defaults; ``rules`` adds rules and
overrides built-in ones by reason, ``disable_rules`` turns some off. After validation,
``JournalConfig.rules`` holds the effective rule list, so the follower never merges.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nodeguard.config.fields import Field, Kind, Section
from nodeguard.config.sections.journal_rules import (
    BUILTIN_BY_REASON,
    BUILTIN_RULES,
    RULE_KINDS,
    SEVERITIES,
    RuleSpec,
)

DEFAULT_UNITS = ("kubelet.service", "containerd.service", "docker.service", "crio.service")
DEFAULT_IDENTIFIERS = ("conmon", "k3s")
_REASON_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class FloodConfig:
    """A watched unit writing more than this per window is a flood (null: no limit)."""

    window: int = 300
    max_entries: int | None = 15000
    max_bytes: int | None = 10 * 1024 * 1024


@dataclass(frozen=True)
class TextLog:
    """A text log followed on hosts without systemd, read as if ``unit`` wrote it."""

    path: Path
    unit: str


@dataclass(frozen=True)
class TextLogsConfig:
    """The journal rules over text logs, for hosts without systemd: when, and which."""

    read: str = "auto"
    files: tuple[TextLog, ...] = (
        TextLog(Path("/var/log/kubelet.log"), "kubelet.service"),
        TextLog(Path("/var/log/containerd.log"), "containerd.service"),
    )


@dataclass(frozen=True)
class RetentionConfig:
    """Journal retention nodeguard enforces on top of journald's own limits."""

    max_use: int | None = None
    max_age: int | None = None
    floor: int = 256 * 1024 * 1024


@dataclass(frozen=True)
class JournalConfig:
    """The journal follower's config."""

    units: tuple[str, ...] = DEFAULT_UNITS
    directory: Path | None = None
    identifiers: tuple[str, ...] = DEFAULT_IDENTIFIERS
    kernel: bool = True
    lookback: int = 600
    batch: int = 5000
    lag_warning: int = 300
    max_events_per_rule: int = 20
    rules: tuple[RuleSpec, ...] = tuple(b.spec for b in BUILTIN_RULES)
    flood: FloodConfig = field(default_factory=FloodConfig)
    text_logs: TextLogsConfig = field(default_factory=TextLogsConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)


# --- rules: validation and merge with the built-in ones ---------------------------------

_RULE_KEYS = (
    "severity",
    "units",
    "identifiers",
    "kernel",
    "kind",
    "clear_pattern",
    "timeout",
    "count",
    "window",
)


def _rule_item(**values: Any) -> dict[str, Any]:
    return values  # merged into RuleSpec by _build_journal, once all items are known


def _regex_problem(pattern: str | None) -> str | None:
    if pattern is None:
        return None
    try:
        re.compile(pattern.encode("utf-8"))
    except re.error as exc:
        return f"{pattern!r} is not a valid regular expression: {exc}"
    return None


def _check_rule(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    reason, builtin = values["reason"], BUILTIN_BY_REASON.get(values["reason"])
    if not _REASON_RE.match(reason):
        problems.append(("reason", f"{reason!r}: use letters, digits, '_', '.', '-' (max 64)"))
    if values["pattern"] is None and builtin is None:
        problems.append(("pattern", f"{reason!r} is not a built-in rule: give a pattern"))
    for key in ("pattern", "clear_pattern"):
        problem = _regex_problem(values[key])
        if problem:
            problems.append((key, problem))
    merged = _merge(builtin, values)
    if merged.kind == "condition" and merged.clear_pattern is None and merged.timeout is None:
        problems.append(("kind", "a condition needs clear_pattern or timeout to end"))
    if merged.count > 1 and merged.window is None:
        problems.append(("window", "a rule with count > 1 needs a window"))
    return problems


def _merge(builtin: RuleSpec | None, values: Mapping[str, Any]) -> RuleSpec:
    """A configured rule: a new one, or a built-in with the given fields replaced."""
    given = {k: values[k] for k in _RULE_KEYS if values.get(k) is not None}
    if builtin is not None:
        pattern = values["pattern"] or builtin.pattern
        return replace(builtin, pattern=pattern, **given)
    return RuleSpec(reason=values["reason"], pattern=values["pattern"] or "", **given)


def _check_journal(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    reasons = [r["reason"] for r in values["rules"]]
    duplicates = sorted({r for r in reasons if reasons.count(r) > 1})
    if duplicates:
        problems.append(("rules", f"reason given more than once: {', '.join(duplicates)}"))
    known = set(BUILTIN_BY_REASON) | set(reasons)
    for name in values["disable_rules"]:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(
                ("disable_rules", f"{name!r} is not a built-in or configured rule{hint}")
            )
    return problems


def _build_journal(**values: Any) -> JournalConfig:
    items = {r["reason"]: r for r in values.pop("rules")}
    disabled = set(values.pop("disable_rules"))
    rules = [_merge(b.spec, items.pop(b.spec.reason, {"pattern": None})) for b in BUILTIN_RULES]
    rules += [_merge(None, item) for item in items.values()]
    return JournalConfig(rules=tuple(r for r in rules if r.reason not in disabled), **values)


RULE = Section(
    name="journal_rule",
    doc="One rule: an extra rule, or (with a built-in rule's reason) an override of the "
    "given fields of that rule. Null fields keep the built-in value (for a new rule: "
    "severity warning, kind event, count 1, scope: every entry read).",
    build=_rule_item,
    check=_check_rule,
    fields=(
        Field(
            "reason",
            Kind.STR,
            "The rule's name (CamelCase, as node-problem-detector).",
            example="ImageGCFailed",
        ),
        Field(
            "pattern",
            Kind.STR,
            "Regular expression searched in each entry's MESSAGE.",
            None,
            nullable=True,
            example="Image garbage collection failed",
        ),
        Field(
            "severity",
            Kind.CHOICE,
            "Severity of the events.",
            None,
            nullable=True,
            choices=SEVERITIES,
            example="critical",
        ),
        Field(
            "units",
            Kind.STR_LIST,
            "Only entries of these systemd units.",
            None,
            nullable=True,
            example=["kubelet.service"],
        ),
        Field(
            "identifiers",
            Kind.STR_LIST,
            "Only entries with these syslog identifiers.",
            None,
            nullable=True,
            example=["kubelet"],
        ),
        Field("kernel", Kind.BOOL, "Also (or only) the kernel's messages.", None, nullable=True),
        Field(
            "kind",
            Kind.CHOICE,
            "event: each match is an event. condition: active from "
            "the first match until clear_pattern matches or timeout passes.",
            None,
            nullable=True,
            choices=RULE_KINDS,
        ),
        Field(
            "clear_pattern",
            Kind.STR,
            "For a condition: a message that ends it.",
            None,
            nullable=True,
        ),
        Field(
            "timeout",
            Kind.DURATION,
            "For a condition: it ends this long after the last match.",
            None,
            nullable=True,
            example="15m",
        ),
        Field(
            "count",
            Kind.INT,
            "A rate rule: fire when this many matches fall within window.",
            None,
            nullable=True,
            minimum=1,
            maximum=100000,
        ),
        Field("window", Kind.DURATION, "The window of a rate rule.", None, nullable=True),
    ),
)

FLOOD = Section(
    name="journal_flood",
    doc="The flood rule (reason JournalFlood): a watched unit writing more entries or "
    "bytes than this within one window (a crash-looping kubelet can fill the journal).",
    build=FloodConfig,
    fields=(
        Field("window", Kind.DURATION, "The window entries and bytes are counted in.", "5m"),
        Field(
            "max_entries",
            Kind.INT,
            "Entries per unit per window; null: no limit.",
            15000,
            nullable=True,
            minimum=1,
        ),
        Field(
            "max_bytes",
            Kind.SIZE,
            "MESSAGE bytes per unit per window; null: no limit.",
            "10Mi",
            nullable=True,
            minimum=1,
        ),
    ),
)

TEXT_LOG = Section(
    name="journal_text_log",
    doc="A text log file read as if the unit had written it to the journal.",
    build=TextLog,
    fields=(
        Field(
            "path",
            Kind.PATH,
            "The log file (followed across rotation by inode).",
            example="/var/log/kubelet.log",
        ),
        Field(
            "unit",
            Kind.STR,
            "The unit the rules see it as (kernel: the kernel's).",
            example="kubelet.service",
        ),
    ),
)


def _build_text_logs(**values: Any) -> TextLogsConfig:
    return TextLogsConfig(read=values["read"], files=tuple(values["files"]))


TEXT_LOGS = Section(
    name="journal_text_logs",
    doc="The same rules over text logs, for hosts without systemd.",
    build=_build_text_logs,
    fields=(
        Field(
            "read",
            Kind.CHOICE,
            "auto: only when no journal can be read (no "
            "systemd-python or no journal files); always; never.",
            "auto",
            choices=("auto", "always", "never"),
        ),
        Field(
            "files",
            Kind.SECTION_LIST,
            "The text logs.",
            [{"path": str(t.path), "unit": t.unit} for t in TextLogsConfig().files],
            section=TEXT_LOG,
        ),
    ),
)

RETENTION = Section(
    name="journal_retention",
    doc="Journal retention nodeguard enforces with `journalctl --vacuum-size/--vacuum-time` "
    "(archived files only, never the active ones), on top of journald's own limits; "
    "journald never gives space back when the disk fills for other reasons.",
    build=RetentionConfig,
    fields=(
        Field(
            "max_use",
            Kind.SIZE,
            "While the journal's files (active ones included) take more than this, archived "
            "files are vacuumed, oldest first. Null: not enforced.",
            None,
            nullable=True,
            example="2Gi",
        ),
        Field(
            "max_age",
            Kind.DURATION,
            "Archived files whose first entry is older are vacuumed. Null: not enforced.",
            None,
            nullable=True,
            example="14d",
        ),
        Field(
            "floor",
            Kind.SIZE,
            "When the disk guard finds the journal's filesystem "
            "critical, archived files are vacuumed until the journal takes at most this (or "
            "no archived file is left).",
            "256Mi",
        ),
    ),
)

JOURNAL = Section(
    name="journal",
    doc="journald: the kubelet and container-runtime units followed for disk trouble.",
    build=_build_journal,
    check=_check_journal,
    fields=(
        Field("units", Kind.STR_LIST, "systemd units to follow.", list(DEFAULT_UNITS)),
        Field(
            "directory",
            Kind.PATH,
            "Null: the system journal. A path: read the journal files under it.",
            None,
            nullable=True,
        ),
        Field(
            "identifiers",
            Kind.STR_LIST,
            "Syslog identifiers to follow too (runtimes that "
            "log under an identifier only: conmon, k3s).",
            list(DEFAULT_IDENTIFIERS),
        ),
        Field(
            "kernel",
            Kind.BOOL,
            "Follow the kernel's messages (_TRANSPORT=kernel): "
            "read-only remounts and filesystem errors come from there.",
            True,
        ),
        Field(
            "lookback",
            Kind.DURATION,
            "Where to start without a usable cursor: this long "
            "ago (never the beginning of history).",
            "10m",
        ),
        Field(
            "batch",
            Kind.INT,
            "Entries per batch; the cursor is saved after each.",
            5000,
            minimum=1,
            maximum=1000000,
        ),
        Field("lag_warning", Kind.DURATION, "Report when the reader is this far behind.", "5m"),
        Field(
            "max_events_per_rule",
            Kind.INT,
            "Events per rule per batch; further matches are counted in one summary event.",
            20,
            minimum=1,
            maximum=100000,
        ),
        Field(
            "rules",
            Kind.SECTION_LIST,
            "Extra rules, and overrides of built-in ones (by "
            "reason). docs/journal.md lists the built-in rules.",
            [],
            section=RULE,
        ),
        Field(
            "disable_rules",
            Kind.STR_LIST,
            "Reasons of rules to turn off.",
            [],
            example=["InvalidImageFsCapacity"],
        ),
        Field("flood", Kind.SECTION, FLOOD.doc, {}, section=FLOOD),
        Field("text_logs", Kind.SECTION, TEXT_LOGS.doc, {}, section=TEXT_LOGS),
        Field("retention", Kind.SECTION, RETENTION.doc, {}, section=RETENTION),
    ),
)
