"""Loading YAML: positioned errors, all at once, drop-ins, and the embedded default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeguard.config import ConfigError, load_config, load_text, loader
from tests.conftest import run_cli, tree_digest

BAD_SIZE_AT_12_15 = """\
# nodeguard test config
state_dir: /var/lib/nodeguard
interval: 1h
logrotate_config: null
policies:
  - name: first
    paths: [/var/log/first.log]
    max_size: 1Mi
  - name: second
    paths:
      - /var/log/second.log
    max_size: 10Q
"""


def problems_of(text: str, name: str = "n.yaml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, name)
    return info.value.problems


def test_error_names_file_line_column_and_key_path() -> None:
    assert problems_of(BAD_SIZE_AT_12_15, "nodeguard.yaml") == [
        'nodeguard.yaml:12:15: policies[1].max_size: "10Q" is not a size'
    ]


def test_error_from_a_file_names_the_file_path(tmp_path: Path) -> None:
    main = tmp_path / "nodeguard.yaml"
    main.write_text(BAD_SIZE_AT_12_15)
    with pytest.raises(ConfigError) as info:
        load_config(main)
    assert info.value.problems == [f'{main}:12:15: policies[1].max_size: "10Q" is not a size']


def test_all_errors_are_reported_together() -> None:
    text = """\
interval: soon
policies:
  - name: a
    paths: [relative/*.log]
    max_files: 0
  - name: b
    paths: [/var/log/b.log]
    compress: zstd
containers:
  pods_dir: 5
"""
    assert problems_of(text) == [
        'n.yaml:1:11: interval: "soon" is not a duration (use e.g. 30s, 5m, 1h, 14d)',
        "n.yaml:4:12: policies[0].paths: 'relative/*.log' is not an absolute path or glob",
        "n.yaml:5:16: policies[0].max_files: 0 is below the minimum 1",
        "n.yaml:8:15: policies[1].compress: 'zstd' is not one of gzip, none",
        "n.yaml:10:13: containers.pods_dir: 5 is not an absolute path",
    ]


def test_unknown_keys_get_a_did_you_mean_hint_at_the_key() -> None:
    text = (
        "intervall: 1h\nfrobnicate: 1\npolicies:\n  - name: a\n    paths: [/x]\n    max_szie: 1Mi\n"
    )
    assert problems_of(text) == [
        "n.yaml:1:1: intervall: unknown key (did you mean interval?)",
        "n.yaml:2:1: frobnicate: unknown key",
        "n.yaml:6:5: policies[0].max_szie: unknown key (did you mean max_size?)",
    ]


def test_duplicate_keys_are_errors_naming_both_places() -> None:
    text = "policies:\n  - name: a\n    paths: [/x]\n    max_size: 1Mi\n    max_size: 2Mi\n"
    (problem,) = problems_of(text)
    assert problem.startswith("n.yaml:5:5: ")
    assert "max_size: duplicate key (first at n.yaml:4:5)" in problem


def test_duplicate_policy_names_are_errors() -> None:
    text = "policies:\n  - {name: a, paths: [/x]}\n  - {name: a, paths: [/y]}\n"
    assert problems_of(text) == [
        "n.yaml:3:5: policies[1].name: duplicate name 'a' (first at n.yaml:2:5)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("policies: {a: 1}\n", "n.yaml:1:11: policies: must be a list"),
        ("containers: []\n", "n.yaml:1:13: containers: must be a mapping"),
        ("policies:\n  - just-a-string\n", "n.yaml:2:5: policies[0]: must be a mapping"),
        ("policies:\n  - name: a\n", "n.yaml:2:5: policies[0].paths: is required"),
        ("1: x\n", "n.yaml:1:1: key 1 is not a string"),
        ("- a\n- b\n", "n.yaml:1:1: nodeguard: must be a mapping"),
    ],
)
def test_structural_errors_are_positioned(text: str, expected: str) -> None:
    assert problems_of(text) == [expected]


def test_yaml_syntax_errors_are_positioned() -> None:
    (problem,) = problems_of("interval: 1h\npolicies: [\n")
    assert problem.startswith("n.yaml:3:1: invalid YAML: ")


def _dropins(main: Path, files: dict[str, str]) -> None:
    conf_d = main.parent / "conf.d"
    conf_d.mkdir()
    for name, text in files.items():
        (conf_d / name).write_text(text)


MAIN = """\
interval: 1h
containers: {pods_dir: /data/pods, docker_root: /data/docker}
policies:
  - {name: app, paths: [/var/log/app.log], max_size: 5Mi, compress: none}
  - {name: web, paths: [/var/log/web.log]}
"""


def test_dropins_merge_in_name_order_and_replace_policies_by_name(tmp_path: Path) -> None:
    main = tmp_path / "nodeguard.yaml"
    main.write_text(MAIN)
    _dropins(
        main,
        {
            "20-late.yaml": "interval: 3h\npolicies:\n  - {name: app, paths: [/srv/app.log]}\n",
            "10-early.yaml": "interval: 2h\ncontainers: {pods_dir: /other/pods}\n"
            "policies:\n  - {name: extra, paths: [/var/log/extra.log]}\n",
            "30-ignored.yml": "interval: 9h\n",
            "40-ignored.yaml.dpkg-old": "interval: 9h\n",
        },
    )
    config = load_config(main)
    assert config.interval == 3 * 3600
    assert [p.name for p in config.policies] == ["app", "web", "extra"]
    app = config.policy("app")
    assert app is not None
    # Replacement is whole: keys the drop-in does not set go back to the defaults.
    assert (app.paths, app.max_size, app.compress) == (("/srv/app.log",), 10 * 1024**2, "gzip")
    assert str(config.containers.pods_dir) == "/other/pods"
    assert str(config.containers.docker_root) == "/data/docker"
    assert config.sources == (
        str(main),
        str(tmp_path / "conf.d/10-early.yaml"),
        str(tmp_path / "conf.d/20-late.yaml"),
    )
    assert load_config(main, dropins=False).interval == 3600


def test_error_in_a_dropin_names_the_dropin(tmp_path: Path) -> None:
    main = tmp_path / "nodeguard.yaml"
    main.write_text(MAIN)
    _dropins(main, {"50-bad.yaml": "policies:\n  - {name: web, paths: [/x], max_size: 10m}\n"})
    with pytest.raises(ConfigError) as info:
        load_config(main)
    assert info.value.problems == [
        # The drop-in's own index (its first policy), not the place after merging.
        f'{tmp_path}/conf.d/50-bad.yaml:2:40: policies[0].max_size: "10m" is not a size '
        "(ambiguous unit; did you mean 10Mi?)"
    ]


def test_missing_explicit_config_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("-c", tmp_path / "absent.yaml", "config", "validate")
    assert result.code == 2
    assert f"{tmp_path}/absent.yaml: cannot read" in result.err
    assert "configuration invalid (1 problem(s)); nothing was changed" in result.err


@pytest.mark.parametrize(
    "command", [("rotate", "--json"), ("disk", "--json"), ("containers", "--json")]
)
def test_an_invalid_config_under_json_still_prints_one_json_document(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    bad = tmp_path / "ng.yaml"
    bad.write_text("policies:\n  - {name: web, paths: [/x], max_size: 10m}\n")
    bad.chmod(0o600)
    result = run_cli("-c", bad, "--no-dropins", *command)
    assert result.code == 2
    document = json.loads(result.out)
    assert document["exit"] == 2 and "configuration invalid" in document["error"]
    [problem] = document["problems"]
    assert f"{bad}:2:40: policies[0].max_size" in problem
    assert problem in result.err


def test_invalid_config_exits_2_listing_every_problem_and_changes_nothing(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(b"x" * 5000)
    main = tmp_path / "nodeguard.yaml"
    main.write_text(
        f"state_dir: {tmp_path}/state\npolicies:\n  - name: a\n    paths: [{logs}/*.log]\n"
        "    max_size: 1k\n    max_files: zero\n    methd: rename\n"
    )
    before = tree_digest(tmp_path)
    result = run_cli("-c", main, "rotate")
    assert result.code == 2
    assert result.out == ""
    assert f"{main}:6:16: policies[0].max_files: 'zero' is not an integer" in result.err
    assert f"{main}:7:5: policies[0].methd: unknown key (did you mean method?)" in result.err
    assert "(2 problem(s))" in result.err
    assert tree_digest(tmp_path) == before


def test_embedded_default_validates_and_matches_the_node_guide() -> None:
    config = load_text(loader.embedded_default_text(), loader.EMBEDDED_NAME)
    pods = config.policy("container-logs")
    assert pods is not None
    assert pods.paths == ("/var/log/pods/*/*/*.log",)
    # A hard ceiling above kubelet's default containerLogMaxSize (10Mi), in place: the
    # runtime keeps these files open, so they are never renamed.
    assert (pods.max_size, pods.max_files, pods.method) == (20 * 1024**2, 5, "lossless")
    assert pods.max_size > 10 * 1024**2
    var_log = config.policy("var-log")
    assert var_log is not None and var_log.method == "lossless"
    assert config.interval == 3600


def test_embedded_default_is_used_when_the_default_path_is_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "DEFAULT_MAIN", tmp_path / "nodeguard.yaml")
    config = load_config()
    assert config.sources == (loader.EMBEDDED_NAME,)
    assert [p.name for p in config.policies] == ["container-logs", "var-log"]
    # Drop-ins beside the default path still apply on top of the embedded default.
    _dropins(tmp_path / "nodeguard.yaml", {"10-local.yaml": "interval: 5m\n"})
    config = load_config()
    assert config.interval == 300
    assert config.sources == (loader.EMBEDDED_NAME, str(tmp_path / "conf.d/10-local.yaml"))
    (tmp_path / "nodeguard.yaml").write_text("interval: 2h\n")
    assert load_config(dropins=False).interval == 7200


def test_config_validate_and_show_report_the_effective_config(tmp_path: Path) -> None:
    main = tmp_path / "nodeguard.yaml"
    main.write_text(MAIN)
    result = run_cli("-c", main, "--no-dropins", "config", "validate")
    assert (result.code, result.out) == (0, f"configuration OK: {main} (2 policies)\n")
    shown = run_cli("-c", main, "--no-dropins", "config", "show")
    assert shown.code == 0
    body = json.loads(shown.out)
    assert body["policies"][0]["max_size"] == 5 * 1024**2
    assert body["containers"]["pods_dir"] == "/data/pods"
    assert body["docker"]["log_opts"] == {"max-size": "10m", "max-file": "5"}


def test_config_default_prints_the_embedded_file() -> None:
    result = run_cli("config", "default")
    assert (result.code, result.out) == (0, loader.embedded_default_text())


def test_a_control_character_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    """PyYAML refuses NUL and other control characters while reading, before parsing:
    that too is a positioned problem, and ``check`` says UNKNOWN."""
    (problem,) = problems_of('interval: 1h\nx: "a\0b"\n')
    assert problem.startswith("n.yaml:2:") and "#x0000" in problem, problem
    bad = tmp_path / "bad.yaml"
    bad.write_text("state_dir: /tmp/x\x01\n")
    result = run_cli("-c", bad, "--no-dropins", "check")
    assert result.code == 3 and "bad.yaml:1:" in result.err, result
