"""scan.path_matches answers, without I/O, exactly what scan.expand reaches on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeguard.rotation import scan


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/var/log/*.log", "/var/log/app.log", True),
        ("/var/log/*.log", "/var/log/pods/ns_p_u/c/0.log", False),  # * never crosses /
        ("/var/log/*.log", "/var/log/.hidden.log", False),  # * skips dot-names
        ("/var/log/.*.log", "/var/log/.hidden.log", True),
        ("/var/log/pods/*/*/*.log", "/var/log/pods/ns_p_u/c/0.log", True),
        ("/var/log/syslog", "/var/log/syslog", True),
        ("/var/log/syslog", "/var/log/syslog.1", False),
        ("/var/log/app-[0-9].log", "/var/log/app-7.log", True),
    ],
)
def test_path_matches_follows_shell_rules(pattern: str, path: str, expected: bool) -> None:
    assert scan.path_matches(pattern, path) is expected


def test_path_matches_agrees_with_expand_on_a_real_tree(tmp_path: Path) -> None:
    names = ["a.log", ".b.log", "c.txt", "sub/d.log", "sub/deeper/e.log", "sub/.f.log"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    for pattern in (f"{tmp_path}/*.log", f"{tmp_path}/*/*.log", f"{tmp_path}/sub/.*.log"):
        reached = {
            f"{m.directory.path}/{n}"
            for m in scan.expand(pattern, lambda p, r: None)
            for n in m.files
        }
        predicted = {
            str(tmp_path / n) for n in names if scan.path_matches(pattern, str(tmp_path / n))
        }
        assert reached == predicted, pattern
        assert reached  # every pattern reaches something, so the comparison means something
