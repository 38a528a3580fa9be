"""The schema's value parsers (one per Kind) and its defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nodeguard.config import ConfigError, load_text
from nodeguard.config.model import ContainersConfig, CreateSpec, DockerConfig
from nodeguard.config.schema import (
    CONTAINERS,
    CREATE,
    DOCKER,
    POLICY,
    ROOT,
    Field,
    Kind,
    Section,
    parse_scalar,
)
from nodeguard.config.sections.alerts import ALERTMANAGER, ALERTS
from nodeguard.config.sections.disk import DISK, OUT_OF_SPACE

MINIMAL_POLICY = "policies:\n  - name: app\n    paths: [/var/log/app/*.log]\n"


def spec(section: Section, key: str) -> Field:
    found = section.field(key)
    assert found is not None, key
    return found


ACCEPTED: list[tuple[Section, str, Any, Any]] = [
    (POLICY, "name", "app", "app"),
    (POLICY, "max_files", 1, 1),
    (POLICY, "compress_level", 9, 9),
    (POLICY, "delay_compress", True, True),
    (POLICY, "max_size", "10Mi", 10 * 1024**2),
    (POLICY, "max_size", 1, 1),
    (POLICY, "max_age", "14d", 14 * 86400),
    (POLICY, "max_age", None, None),
    (ROOT, "state_dir", "/var/lib/x", Path("/var/lib/x")),
    (ROOT, "logrotate_config", None, None),
    (POLICY, "paths", "/var/log/a.log", ("/var/log/a.log",)),
    (POLICY, "paths", ["/a/*.log", "/b/[ab]?.log"], ("/a/*.log", "/b/[ab]?.log")),
    (POLICY, "compress", "none", "none"),
    (POLICY, "method", "copytruncate", "copytruncate"),
    (CREATE, "mode", "0640", 0o640),
    (CREATE, "mode", "640", 0o640),
    (CREATE, "mode", "1755", 0o1755),
    (DOCKER, "log_opts", {"max-file": 5, "max-size": "10m"}, {"max-file": "5", "max-size": "10m"}),
    (POLICY, "su", ["nobody", "nogroup"], ("nobody", "nogroup")),
    (OUT_OF_SPACE, "warning", "5%", 0.05),
    (OUT_OF_SPACE, "critical", "12.5 %", 0.125),
    (DISK, "paths", ["/data", "/srv"], ("/data", "/srv")),
    (ALERTMANAGER, "url", "http://127.0.0.1:9093/", "http://127.0.0.1:9093"),
    (ALERTMANAGER, "url", None, None),
    (ALERTS, "metrics_listen", "127.0.0.1:9877", ("127.0.0.1", 9877)),
    (ALERTS, "metrics_listen", "[::1]:9877", ("::1", 9877)),
]


@pytest.mark.parametrize(("section", "key", "value", "expected"), ACCEPTED)
def test_each_kind_parses_valid_values(
    section: Section, key: str, value: Any, expected: Any
) -> None:
    parsed = parse_scalar(spec(section, key), value)
    assert (dict(parsed) if key == "log_opts" else parsed) == expected


REFUSED: list[tuple[Section, str, Any, str]] = [
    (POLICY, "name", "", "is not a non-empty string"),
    (POLICY, "name", 5, "is not a non-empty string"),
    (POLICY, "name", None, "must not be empty"),
    (POLICY, "max_files", 0, "below the minimum 1"),
    (POLICY, "max_files", True, "is not an integer"),
    (POLICY, "max_files", "5", "is not an integer"),
    (POLICY, "compress_level", 10, "above the maximum 9"),
    (POLICY, "delay_compress", "yes", "is not true or false"),
    (POLICY, "delay_compress", 1, "is not true or false"),
    (POLICY, "max_size", 0, "below the minimum of 1 bytes"),
    (POLICY, "max_size", "10Q", '"10Q" is not a size'),
    (POLICY, "max_age", "soon", "is not a duration"),
    (ROOT, "state_dir", "var/lib/x", "is not an absolute path"),
    (ROOT, "state_dir", None, "must not be empty"),
    (POLICY, "paths", [], "non-empty list"),
    (POLICY, "paths", ["logs/*.log"], "is not an absolute path or glob"),
    (POLICY, "paths", ["/var/log/**/*.log"], "'**' is not supported"),
    (POLICY, "paths", {"a": 1}, "non-empty list"),
    (POLICY, "compress", "zstd", "is not one of gzip, none"),
    (POLICY, "method", "copy", "is not one of rename, copytruncate"),
    (CREATE, "mode", 416, "is not an octal mode; quote it"),
    (CREATE, "mode", 640, "is not an octal mode"),
    (CREATE, "mode", "0999", "is not an octal mode"),
    (CREATE, "mode", "rw-r--r--", "is not an octal mode"),
    (DOCKER, "log_opts", ["max-size"], "must be a mapping"),
    (DOCKER, "log_opts", {"max-file": True}, "must be a string"),
    (POLICY, "su", ["nobody"], "must be a list of two names"),
    (POLICY, "su", "nobody:nogroup", "must be a list of two names"),
    (POLICY, "su", ["no-such-user-ng", "nogroup"], "no such user 'no-such-user-ng'"),
    (POLICY, "su", ["nobody", "no-such-group-ng"], "no such group 'no-such-group-ng'"),
    (OUT_OF_SPACE, "warning", 5, "is not a percentage"),
    (OUT_OF_SPACE, "warning", "101%", "is not a percentage"),
    (OUT_OF_SPACE, "warning", "five%", "is not a percentage"),
    (DISK, "paths", "/data", "must be a list of non-empty strings"),
    (DISK, "paths", ["/data", ""], "must be a list of non-empty strings"),
    (ALERTMANAGER, "url", "ftp://x", "is not an http:// or https:// URL"),
    (ALERTMANAGER, "url", "http://u:p@127.0.0.1", "credentials do not belong in the URL"),
    (ALERTMANAGER, "url", "http://a b", "is not a URL"),
    (ALERTS, "metrics_listen", "9877", "is not host:port"),
    (ALERTS, "metrics_listen", "127.0.0.1:0", "port from 1 to 65535"),
    (ALERTS, "metrics_listen", "127.0.0.1:http", "port from 1 to 65535"),
]


@pytest.mark.parametrize(("section", "key", "value", "message"), REFUSED)
def test_each_kind_refuses_invalid_values_with_a_reason(
    section: Section, key: str, value: Any, message: str
) -> None:
    with pytest.raises(ValueError) as info:
        parse_scalar(spec(section, key), value)
    assert message in str(info.value)


def test_every_scalar_kind_is_covered_by_these_tests() -> None:
    tested = {spec(s, k).kind for s, k, _, _ in ACCEPTED} | {
        spec(s, k).kind for s, k, _, _ in REFUSED
    }
    scalar_kinds = set(Kind) - {Kind.SECTION, Kind.SECTION_LIST}
    assert scalar_kinds <= tested


def _scalar_defaults(section: Section) -> list[Field]:
    return [f for f in section.fields if not f.required and f.section is None]


def test_policy_defaults_are_the_schema_defaults() -> None:
    policy = load_text(MINIMAL_POLICY).policies[0]
    for field in _scalar_defaults(POLICY):
        assert getattr(policy, field.key) == parse_scalar(field, field.default), field.key
    assert policy.create is None
    assert (policy.max_size, policy.max_files, policy.method) == (10 * 1024**2, 5, "rename")
    assert policy.keep_rotated == 4


def test_top_level_and_section_defaults_are_the_schema_defaults() -> None:
    config = load_text("")
    for field in _scalar_defaults(ROOT):
        assert getattr(config, field.key) == parse_scalar(field, field.default), field.key
    for section, built in ((CONTAINERS, config.containers), (DOCKER, config.docker)):
        for field in _scalar_defaults(section):
            value = getattr(built, field.key)
            value = dict(value) if field.kind is Kind.STR_MAP else value
            expected = parse_scalar(field, field.default)
            assert value == (dict(expected) if field.kind is Kind.STR_MAP else expected)
    assert config.policies == ()
    assert config.interval == 3600
    assert isinstance(config.containers, ContainersConfig)
    assert isinstance(config.docker, DockerConfig)


def test_create_section_builds_a_spec_with_only_the_given_keys() -> None:
    text = MINIMAL_POLICY + '    create: {mode: "0600", group: adm}\n'
    assert load_text(text).policies[0].create == CreateSpec(mode=0o600, owner=None, group="adm")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    compress: none\n    delay_compress: true\n", "delay_compress: needs compress: gzip"),
        (
            "    method: copytruncate\n    create: {mode: '0600'}\n",
            "create: applies only to method: rename",
        ),
        ("    olddir: ../elsewhere\n", "olddir: '../elsewhere' must not contain '..'"),
        ("    create: {owner: no-such-user-ng}\n", "create.owner: no such user"),
        ("    create: {group: no-such-group-ng}\n", "create.group: no such group"),
    ],
)
def test_cross_field_checks_name_the_key(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(MINIMAL_POLICY + extra, "n.yaml")
    assert f"policies[0].{message}" in str(info.value)


def test_orphan_removal_needs_at_least_an_hour() -> None:
    with pytest.raises(ConfigError, match=r"remove_orphaned_pod_logs_after: must be at least 1h"):
        load_text("containers: {remove_orphaned_pod_logs_after: 30m}")
    after = load_text("containers: {remove_orphaned_pod_logs_after: 7d}").containers
    assert after.remove_orphaned_pod_logs_after == 7 * 86400


def test_service_sections_have_their_contract_defaults() -> None:
    config = load_text(MINIMAL_POLICY)
    assert config.disk.paths == ()
    assert (config.disk.out_of_space.warning, config.disk.out_of_space.critical) == (0.05, 0.03)
    assert config.disk.out_of_space.for_ == 1800
    assert config.alerts.alertmanager.url == "http://127.0.0.1:9093"
    assert config.alerts.webhook.url is None
    assert config.alerts.textfile == Path("/var/lib/prometheus/node-exporter/nodeguard.prom")
    assert config.alerts.metrics_listen is None
    assert config.journal.units[0] == "kubelet.service"
    assert config.journal.directory is None


def test_a_warning_threshold_below_critical_is_refused_where_written() -> None:
    text = MINIMAL_POLICY + "disk:\n  out_of_space: {warning: 2%, critical: 3%}\n"
    with pytest.raises(ConfigError) as info:
        load_text(text)
    assert any(
        "disk.out_of_space.warning: must be at least critical" in p for p in info.value.problems
    )
    assert any(":5:" in p for p in info.value.problems)
