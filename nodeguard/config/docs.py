"""Generate the commented sample config and docs/configuration.md from the schema."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from nodeguard.config.schema import ROOT, Field, Kind, Section

_WIDTH = 88

SIZE_HELP = (
    "Sizes: plain bytes (`1048576`), binary `Ki` `Mi` `Gi` `Ti` (powers of 1024, as in "
    "Kubernetes) or decimal `k` `M` `G` `T` (powers of 1000). Docker's lower-case `m`/`g` are "
    "refused as ambiguous. Durations: a whole number with `s`, `m`, `h`, `d` or `w` "
    "(`30s`, `5m`, `1h`, `14d`)."
)


def _yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        quoted: str = json.dumps(value)
        return quoted if value[:1] in "0123456789*[{!&" or ":" in value else value
    text: str = json.dumps(value)
    return text


def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}" for line in textwrap.wrap(text, _WIDTH - len(indent) - 2)]


def _sample_section(section: Section, indent: str) -> list[str]:
    lines: list[str] = []
    for spec in section.fields:
        lines += _comment(spec.doc, indent)
        lines += _sample_field(spec, indent)
    return lines


def _sample_field(spec: Field, indent: str) -> list[str]:
    if spec.kind is Kind.SECTION and spec.section is not None:
        if spec.nullable and spec.default is None:
            return [f"{indent}# {spec.key}:"] + [
                f"{indent}#   {k}: {_yaml_value(v)}" for k, v in (spec.example or {}).items()
            ]
        return [f"{indent}{spec.key}:", *_sample_section(spec.section, indent + "  ")]
    if spec.kind is Kind.SECTION_LIST and spec.section is not None:
        body = _sample_section(spec.section, indent + "    ")
        first = next(i for i, line in enumerate(body) if not line.lstrip().startswith("#"))
        body[first] = f"{indent}  - {body[first].lstrip()}"
        return [f"{indent}{spec.key}:", *body]
    value = spec.example if spec.required else spec.default
    if value is None and spec.example is not None:
        return [f"{indent}# {spec.key}: {_yaml_value(spec.example)}"]
    return [f"{indent}{spec.key}: {_yaml_value(value)}"]


def render_sample() -> str:
    """A complete, commented, valid config with every key at its default."""
    head = [
        "# nodeguard configuration: /etc/nodeguard/nodeguard.yaml",
        "# Drop-ins in /etc/nodeguard/conf.d/*.yaml are merged on top, in name order.",
        *_comment(SIZE_HELP, ""),
        "",
    ]
    return "\n".join(head + _sample_section(ROOT, "")) + "\n"


def _type_text(spec: Field) -> str:
    if spec.kind is Kind.CHOICE:
        return " \\| ".join(f"`{c}`" for c in spec.choices)
    if spec.kind in (Kind.SECTION, Kind.SECTION_LIST) and spec.section is not None:
        return f"{spec.kind.value} ([{spec.section.name}](#{spec.section.name}))"
    text: str = spec.kind.value
    return text + (" or null" if spec.nullable else "")


def _default_text(spec: Field) -> str:
    if spec.required:
        return "required"
    if spec.kind in (Kind.SECTION, Kind.SECTION_LIST):
        return "see section"
    return f"`{_yaml_value(spec.default)}`"


def _markdown_section(section: Section, prefix: str) -> list[str]:
    lines = [
        f"## {section.name}",
        "",
        section.doc,
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
    ]
    nested: list[Section] = []
    for spec in section.fields:
        doc = spec.doc.replace("|", "\\|")
        if spec.example is not None:
            doc += f" Example: `{_yaml_value(spec.example)}`."
        lines.append(
            f"| `{prefix}{spec.key}` | {_type_text(spec)} | {_default_text(spec)} | {doc} |"
        )
        if spec.section is not None:
            nested.append(spec.section)
    lines.append("")
    for child in nested:
        lines += _markdown_section(child, "")
    return lines


def render_markdown() -> str:
    """docs/configuration.md, generated; a test keeps the checked-in copy current."""
    head = [
        "# Configuration reference",
        "",
        "<!-- Generated from nodeguard/config/schema.py by `python3 -m nodeguard.config.docs`."
        " Do not edit by hand. -->",
        "",
        "nodeguard reads `/etc/nodeguard/nodeguard.yaml` (or the file named with `-c`), then "
        "every `conf.d/*.yaml` beside it in name order. Without the main file the embedded "
        "default applies (`nodeguard config default` prints it). Sections merge key by key; "
        "policies merge by name (a drop-in policy with an existing name replaces it). Unknown "
        "keys are errors; every error names file, line, column and key path, and all are "
        "reported at once. `nodeguard config sample` prints a commented file with every key.",
        "",
        "Plain YAML only: mappings with string keys, lists, strings, integers, booleans and "
        "null. The merge key works (`<<: *defaults`); top-level keys starting with `x-` are "
        "ignored, a place for anchors (`x-defaults: &defaults {...}`). Other tags (`!!binary`, "
        "`!custom`), complex keys, a value that contains itself, nesting deeper than 64 levels "
        "and more than 20,000 values (aliases expanded) are errors. A drop-in's `policies:` "
        "left empty (null) is an error: it would remove every policy (`policies: []` adds "
        "none). Each config file must be a regular file of at most 1 MiB that root (or the "
        "user running nodeguard) owns and no group or other user can write; a drop-in must "
        "not be a symlink, and `conf.d/` must not be writable by group or others. A refused "
        "file is never read, so its content never appears in an error. See "
        "[security.md](security.md#configuration-files).",
        "",
        SIZE_HELP,
        "",
    ]
    return "\n".join(head + _markdown_section(ROOT, "")).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render_markdown(), end="")
