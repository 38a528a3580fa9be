"""Config files an unlucky admin or an attacker writes: every one is a positioned error.

YAML features (merge keys, tags, aliases, complex keys), odd files (FIFOs, devices,
symlinks, files others own or can write), and drop-ins that would silently change
what the main file says. Each case runs on real files; none may end in a traceback,
hang, or echo the content of a file that is not a root-owned regular config file.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nodeguard.config import ConfigError, load_config, load_text
from tests.conftest import run_cli

POLICY = "policies:\n  - {name: a, paths: [/var/log/a.log]}\n"


def problems_of(text: str, name: str = "n.yaml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, name)
    return info.value.problems


def _main(tmp_path: Path, text: str = POLICY) -> Path:
    main = tmp_path / "nodeguard.yaml"
    main.write_text(text)
    return main


def _dropin(main: Path, name: str, text: str) -> Path:
    conf_d = main.parent / "conf.d"
    conf_d.mkdir(exist_ok=True)
    path = conf_d / name
    path.write_text(text)
    return path


def _load_problems(main: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(main)
    return info.value.problems


# --- YAML features -----------------------------------------------------------------


def test_merge_key_with_defaults_kept_under_an_x_key() -> None:
    text = (
        "x-defaults: &defaults {max_size: 1Mi, max_files: 3, compress: none}\n"
        "policies:\n"
        "  - <<: *defaults\n"
        "    name: a\n"
        "    paths: [/var/log/a.log]\n"
        "    max_files: 7\n"
    )
    (a,) = load_text(text).policies
    assert (a.max_size, a.max_files, a.compress) == (1024**2, 7, "none")
    # Only top-level keys starting with x- are free; any other unknown key is an error.
    assert problems_of(text.replace("x-defaults", "defaults")) == [
        "n.yaml:1:1: defaults: unknown key"
    ]


def test_merge_key_values_are_used_by_policies() -> None:
    text = (
        "policies:\n"
        "  - &base {name: a, paths: [/var/log/a.log], max_size: 1Mi, max_files: 3}\n"
        "  - <<: *base\n"
        "    name: b\n"
        "    paths: [/var/log/b.log]\n"
        "    max_files: 7\n"
        "  - {<<: [{max_age: 2d}, *base], name: c, paths: [/var/log/c.log]}\n"
    )
    config = load_text(text)
    a, b, c = config.policies
    assert (a.name, a.max_size, a.max_files) == ("a", 1024**2, 3)
    assert (b.name, b.paths, b.max_size, b.max_files) == ("b", ("/var/log/b.log",), 1024**2, 7)
    assert (c.name, c.max_age, c.max_size, c.max_files) == ("c", 2 * 86400, 1024**2, 3)


def test_merge_key_errors_point_at_the_merged_value_where_it_was_written() -> None:
    text = (
        "policies:\n"
        "  - &base {name: a, paths: [/var/log/a.log], max_size: 10Q}\n"
        "  - <<: *base\n"
        "    name: b\n"
        "  - <<: [1, 2]\n"
        "    name: c\n"
        "    paths: [/c]\n"
    )
    assert problems_of(text) == [
        "n.yaml:5:10: policies[2].<<: merge needs a mapping or a list of mappings",
        "n.yaml:5:13: policies[2].<<: merge needs a mapping or a list of mappings",
        'n.yaml:2:56: policies[0].max_size: "10Q" is not a size',
        'n.yaml:2:56: policies[1].max_size: "10Q" is not a size',
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("!!int abc", "!!int 'abc' is not valid"),
        ("!!float abc", "!!float 'abc' is not valid"),
        ("!!timestamp abc", "!!timestamp 'abc' is not valid"),
        ("!!bool maybe", "!!bool 'maybe' is not valid"),
        ("!!null x", "!!null 'x' is not valid"),
        ("!secret abc", "tag !secret is not supported"),
        ("!!binary aGVsbG8=", "tag !!binary is not supported"),
        ("!!python/name:os.system x", "tag !!python/name:os.system is not supported"),
        ("!!set {a, b}", "tag !!set is not supported"),
        ("!custom [1, 2]", "tag !custom is not supported"),
        pytest.param("!!int " + "9" * 5000, "!!int '9999999999999999…' is not valid", id="huge"),
    ],
)
def test_tagged_values_are_positioned_errors(value: str, reason: str) -> None:
    assert problems_of(f"interval: 1h\nstate_dir: {value}\n") == [
        f"n.yaml:2:12: state_dir: {reason}"
    ]


def test_implicit_timestamps_and_explicit_strings_are_just_text() -> None:
    text = "policies:\n  - {name: 2024-01-01, paths: [/x]}\n  - {name: !!str 5, paths: [/y]}\n"
    config = load_text(text)
    assert [p.name for p in config.policies] == ["2024-01-01", "5"]


def test_recursive_alias_is_a_positioned_error() -> None:
    assert problems_of("interval: 1h\nx-a: &a [*a]\n") == [
        "n.yaml:2:10: x-a[0]: recursive alias (a value that contains itself)"
    ]
    assert problems_of("policies:\n  - &p {name: a, paths: [/x], more: *p}\n")[0] == (
        "n.yaml:2:37: policies[0].more: recursive alias (a value that contains itself)"
    )


def _alias_bomb(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, levels):
        refs = ",".join([f"*l{n - 1}"] * 9)
        lines.append(f"l{n}: &l{n} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_in_bounded_time_and_memory(tmp_path: Path) -> None:
    main = _main(tmp_path, _alias_bomb())
    limit = 1 << 30

    def cap_memory() -> None:  # the child may use at most 1 GiB of address space
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "nodeguard", "-c", str(main), "--no-dropins", "config", "validate"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=cap_memory,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert f"{main}:" in proc.stderr and "once aliases are expanded" in proc.stderr
    assert elapsed < 30, elapsed


def test_deep_nesting_is_a_positioned_error_not_a_recursion_error() -> None:
    (problem,) = problems_of("interval: " + "[" * 5000 + "]" * 5000 + "\n")
    assert problem.startswith("n.yaml:1:")
    assert "nested" in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("? [a, b]\n: 1\n", "n.yaml:1:3: key is a sequence, not a string"),
        ("? {a: 1}\n: 1\n", "n.yaml:1:3: key is a mapping, not a string"),
        (
            "policies:\n  - {[x]: 1, name: a, paths: [/x]}\n",
            "n.yaml:2:6: policies[0]: key is a sequence, not a string",
        ),
        ("~: 1\n", "n.yaml:1:1: key null is not a string"),
    ],
)
def test_complex_keys_are_described_never_printed_as_node_reprs(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert problems == [expected]
    assert "Node(" not in "".join(problems)


# --- values ------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["\uff11\uff10Mi", "\u0661\u0660Mi", "10Mi\u00a0", "\uff11\uff10"])
def test_non_ascii_digits_are_not_sizes(size: str) -> None:
    (problem,) = problems_of(f"policies:\n  - {{name: a, paths: [/x], max_size: '{size}'}}\n")
    assert problem.startswith("n.yaml:2:38: policies[0].max_size: ")
    assert "is not a size" in problem


def test_non_ascii_digits_are_not_durations() -> None:
    (problem,) = problems_of("interval: '\uff11h'\n")
    assert problem.startswith("n.yaml:1:11: interval: ") and "is not a duration" in problem


@pytest.mark.parametrize(
    "path", ["/", "//", "/var/log/", "/var/log/./a.log", "/var/log/../a.log", "/var//log/a.log"]
)
def test_paths_that_cannot_name_a_log_file_are_refused(path: str) -> None:
    (problem,) = problems_of(f"policies:\n  - {{name: a, paths: ['{path}']}}\n")
    assert problem.startswith("n.yaml:2:22: policies[0].paths: ")
    assert repr(path) in problem


def test_paths_refusal_at_validate_exits_2(tmp_path: Path) -> None:
    main = _main(tmp_path, "policies:\n  - {name: root, paths: ['/']}\n")
    result = run_cli("-c", main, "--no-dropins", "config", "validate")
    assert result.code == 2
    assert f"{main}:2:25: policies[0].paths: '/' names a directory" in result.err


# --- drop-ins ----------------------------------------------------------------------


def test_error_in_a_dropin_names_the_dropins_own_index(tmp_path: Path) -> None:
    main = _main(
        tmp_path,
        "policies:\n  - {name: a, paths: [/a]}\n  - {name: b, paths: [/b]}\n"
        "  - {name: c, paths: [/c]}\n",
    )
    text = "policies:\n  - {name: d, paths: [/d]}\n  - {name: e, paths: [/e], max_size: 1q}\n"
    dropin = _dropin(main, "50-more.yaml", text)
    assert _load_problems(main) == [f'{dropin}:3:38: policies[1].max_size: "1q" is not a size']


def test_dropin_replacing_a_policy_names_its_own_index(tmp_path: Path) -> None:
    main = _main(tmp_path, "policies:\n  - {name: a, paths: [/a]}\n  - {name: b, paths: [/b]}\n")
    dropin = _dropin(main, "50-b.yaml", "policies:\n  - {name: b, paths: [/b], max_files: 0}\n")
    assert _load_problems(main) == [
        f"{dropin}:2:39: policies[0].max_files: 0 is below the minimum 1"
    ]


def test_dropin_with_null_policies_is_an_error_not_a_wipe(tmp_path: Path) -> None:
    main = _main(tmp_path)
    dropin = _dropin(main, "50-empty.yaml", "interval: 2h\npolicies:\n")
    assert _load_problems(main) == [
        f"{dropin}:2:1: policies: null in a drop-in would remove every policy; "
        "drop-ins add or replace policies by name (write `policies: []` to add none)"
    ]
    result = run_cli("-c", main, "config", "validate")
    assert result.code == 2 and "null in a drop-in" in result.err
    dropin.write_text("interval: 2h\npolicies: []\n")
    config = load_config(main)
    assert [p.name for p in config.policies] == ["a"] and config.interval == 7200


def test_null_policies_in_the_main_file_means_none(tmp_path: Path) -> None:
    assert load_config(_main(tmp_path, "policies:\n"), dropins=False).policies == ()


# --- odd files ---------------------------------------------------------------------

LEAK = "stolen_secret_line: hunter2\n"


def test_symlinked_dropin_is_refused_without_reading_its_target(tmp_path: Path) -> None:
    main = _main(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text(LEAK)
    (tmp_path / "conf.d").mkdir()
    link = tmp_path / "conf.d" / "50-link.yaml"
    link.symlink_to(secret)
    problems = _load_problems(main)
    assert problems == [f"{link}: is a symlink; a drop-in must be a regular file (not read)"]
    result = run_cli("-c", main, "config", "validate")
    assert result.code == 2
    assert "stolen_secret_line" not in result.err + result.out
    assert "hunter2" not in result.err + result.out


@pytest.mark.parametrize(
    ("owner", "mode", "reason"),
    [
        (65534, 0o644, "owned by uid 65534, not root"),
        (0, 0o666, "writable by group or others (mode 666)"),
        (0, 0o664, "writable by group or others (mode 664)"),
    ],
)
def test_config_files_others_could_write_are_refused_unread(
    tmp_path: Path, owner: int, mode: int, reason: str
) -> None:
    main = _main(tmp_path)
    dropin = _dropin(main, "50-x.yaml", LEAK)
    os.chown(dropin, owner, owner)
    os.chmod(dropin, mode)
    assert _load_problems(main) == [f"{dropin}: {reason}; refused (not read)"]
    os.chown(dropin, 0, 0)
    os.chmod(dropin, 0o644)
    os.chown(main, owner, owner)
    os.chmod(main, mode)
    problems = _load_problems(main)
    assert problems[0] == f"{main}: {reason}; refused (not read)"
    assert "stolen_secret_line" not in "".join(problems)


def test_dropin_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    main = _main(tmp_path)
    _dropin(main, "50-x.yaml", "interval: 2h\n")
    os.chmod(tmp_path / "conf.d", 0o777)  # noqa: S103
    assert _load_problems(main) == [
        f"{tmp_path / 'conf.d'}: writable by group or others (mode 777); "
        "drop-ins refused (not read)"
    ]


def _validate_quickly(main: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nodeguard", "-c", str(main), *args, "config", "validate"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_fifo_as_main_config_or_dropin_is_an_error_not_a_hang(tmp_path: Path) -> None:
    main = tmp_path / "nodeguard.yaml"
    os.mkfifo(main)
    proc = _validate_quickly(main)
    assert proc.returncode == 2, proc.stderr
    assert f"{main}: not a regular file" in proc.stderr
    main.unlink()
    main.write_text(POLICY)
    (tmp_path / "conf.d").mkdir()
    fifo = tmp_path / "conf.d" / "50-fifo.yaml"
    os.mkfifo(fifo)
    proc = _validate_quickly(main)
    assert proc.returncode == 2, proc.stderr
    assert f"{fifo}: not a regular file" in proc.stderr


def test_config_symlinked_to_dev_zero_is_refused_at_once(tmp_path: Path) -> None:
    main = tmp_path / "nodeguard.yaml"
    main.symlink_to("/dev/zero")
    proc = _validate_quickly(main, "--no-dropins")
    assert proc.returncode == 2, proc.stderr
    assert f"{main}: not a regular file" in proc.stderr


def test_oversized_config_is_refused(tmp_path: Path) -> None:
    main = _main(tmp_path, POLICY + "#" * (2 * 1024 * 1024) + "\n")
    problems = _load_problems(main)
    assert problems == [f"{main}: larger than 1048576 bytes; refused"]


def test_directory_named_like_a_dropin_is_an_error(tmp_path: Path) -> None:
    main = _main(tmp_path)
    (tmp_path / "conf.d" / "50-dir.yaml").mkdir(parents=True)
    assert _load_problems(main) == [f"{tmp_path / 'conf.d' / '50-dir.yaml'}: not a regular file"]
