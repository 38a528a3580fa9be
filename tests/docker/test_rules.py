"""Docker's log-opt rules as nodeguard applies them.

Expected outcomes were taken from Debian 12's dockerd 20.10.24, started isolated with
each value as the daemon default and then asked to run a container (see docs/docker.md):
"start" = dockerd refuses to start, "run" = every container fails to start.
"""

from __future__ import annotations

import pytest

from nodeguard.config.dockerrules import (
    docker_size,
    human_size,
    log_config_problems,
    validate_log_config,
)

ACCEPTED = [
    ("json-file", {"max-size": "10m", "max-file": "5"}),
    ("json-file", {"max-size": "10 MiB"}),
    ("json-file", {"max-size": "1.5k", "max-file": "+3"}),
    ("json-file", {"max-size": "1m", "max-file": "2", "compress": "true"}),
    ("json-file", {"labels": "a", "env": "b", "tag": "x", "mode": "non-blocking"}),
    ("json-file", {"mode": "non-blocking", "max-buffer-size": "4m"}),
    ("json-file", {"cache-disabled": "true"}),
    ("local", {"max-size": "1.5m", "max-file": "2", "compress": "false"}),
    ("local", {}),
    ("journald", {"tag": "{{.Name}}"}),
    ("none", {}),
]

REFUSED = [
    ("json-file", {"max-size": "10q"}, "max-size"),  # run: invalid size
    ("json-file", {"max-size": "0"}, "max-size"),  # run: must be a positive number
    ("json-file", {"max-size": "1.5.2k"}, "max-size"),  # run: invalid size
    ("json-file", {"max-size": "1m", "max-file": "0"}, "max-file"),  # run
    ("json-file", {"max-size": "1m", "max-file": " 3"}, "max-file"),  # run: Atoi
    ("json-file", {"compress": "yes"}, "compress"),  # run: ParseBool
    ("json-file", {"max-size": "1m", "compress": "true"}, "compress"),  # run
    ("json-file", {"foo": "bar"}, "foo"),  # start: unknown log opt
    ("json-file", {"mode": "fast"}, "mode"),  # start
    ("json-file", {"max-buffer-size": "1m"}, "max-buffer-size"),  # start: needs non-blocking
    ("json-file", {"cache-disabled": "maybe"}, "cache-disabled"),  # start
    ("json-file", {"max-file": "3"}, "max-file"),  # accepted by Docker, never rotates
    ("local", {"labels": "a"}, "labels"),  # start: unknown log opt for local
    ("local", {"max-file": "1"}, "compress"),  # run: compression with one file
    ("local", {"max-size": "1q"}, "max-size"),  # run
]


@pytest.mark.parametrize(("driver", "opts"), ACCEPTED)
def test_values_dockerd_accepts_pass(driver: str, opts: dict[str, str]) -> None:
    assert validate_log_config(driver, opts) == []


@pytest.mark.parametrize(("driver", "opts", "key"), REFUSED)
def test_values_dockerd_refuses_are_reported_with_their_key(
    driver: str, opts: dict[str, str], key: str
) -> None:
    problems = log_config_problems(driver, opts)
    assert [p.key for p in problems] == [key], problems


def test_non_string_values_and_unknown_drivers_are_refused() -> None:
    assert [p.key for p in log_config_problems("json-file", {"max-file": 5})] == ["max-file"]
    assert "unknown log-driver" in validate_log_config("loki", {})[0]


def test_sizes_follow_go_units() -> None:
    assert human_size("10k") == 10_000  # json-file and local: decimal
    assert human_size("10m") == 10_000_000
    assert human_size("1.5 KiB") == 1500
    assert docker_size("10k") == 10_240  # max-buffer-size: binary
    with pytest.raises(ValueError, match="64 bits"):
        human_size("99999999p")
    for text in ("10\n", "\uff11\uff10k", "1.5.2k", "-1", ""):
        with pytest.raises(ValueError, match="invalid size"):
            human_size(text)
