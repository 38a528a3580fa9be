"""The disk and alerts config keys: contract keys kept, bad values named with file and line."""

from __future__ import annotations

import pytest

from nodeguard.config import ConfigError, load_text


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, "test.yaml")
    return info.value.problems


def test_the_contract_keys_and_their_defaults() -> None:
    config = load_text(
        "disk:\n  paths: [/data]\n  out_of_space: {warning: 5%, critical: 3%, for: 30m}\n"
        "alerts:\n  alertmanager: {url: http://127.0.0.1:9093}\n"
        "  webhook: {url: null, token_file: null}\n"
        "  textfile: /var/lib/prometheus/node-exporter/nodeguard.prom\n"
        "  metrics_listen: null\n",
        "test.yaml",
    )
    assert config.disk.paths == ("/data",)
    assert (config.disk.out_of_space.warning, config.disk.out_of_space.for_) == (0.05, 1800)
    assert config.alerts.alertmanager.url == "http://127.0.0.1:9093"
    assert config.disk.filling_up.warning_within == 86400
    assert config.disk.kubelet_eviction.free == 0.10


def test_alertmanager_url_null_turns_it_off() -> None:
    from nodeguard.alerts.registry import enabled_sinks

    config = load_text("alerts: {alertmanager: {url: null}, journald: false}\n", "t.yaml")
    assert [s.name for s in enabled_sinks(config)] == ["textfile"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "disk: {filling_up: {warning: 10%, critical: 20%}}",
            "disk.filling_up.warning: must be at least",
        ),
        ("disk: {filling_up: {critical_within: 48h}}", "critical_within: must not be longer"),
        ("disk: {window: 30s}", "disk.window: must be at least 2m"),
        ("disk: {reclaim: {keep_rotated: -1}}", "keep_rotated: -1 is below the minimum 0"),
        ("alerts: {alertmanager: {resend_interval: 10m}}", "resend_interval: must be at most 4m"),
        ("alerts: {webhook: {url: 'http://u:p@h/x'}}", "credentials do not belong in the URL"),
        ("alerts: {webhook: {password_file: /etc/pw}}", "password_file: needs username"),
        ("alerts: {labels: {node: x}}", "'node' is set by nodeguard itself"),
        ("alerts: {labels: {'bad-name': x}}", "not a Prometheus label name"),
        ("alerts: {events: {min_severity: info}}", "is not one of warning, error, critical"),
    ],
)
def test_bad_values_are_named_with_file_line_and_key(text: str, expected: str) -> None:
    problems = _problems(text + "\n")
    assert any(expected in p and p.startswith("test.yaml:1:") for p in problems), problems
