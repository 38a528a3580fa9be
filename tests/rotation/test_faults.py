"""Environment hooks are read where they are used, never at import: the value in force is
the caller's (``NODEGUARD_FAULT`` for the crash trials, ``NODEGUARD_COMPRESSOR``)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from nodeguard import faults
from nodeguard.rotation import compress
from tests.conftest import REPO

SET_AFTER_IMPORT = """
import os
from nodeguard import faults
os.environ["NODEGUARD_FAULT"] = "trial.point:2"
faults.point("other.point")
faults.point("trial.point")
print("first hit survived", flush=True)
faults.point("trial.point")
print("second hit survived", flush=True)
"""


def test_a_fault_armed_after_import_fires_at_its_nth_hit() -> None:
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", SET_AFTER_IMPORT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert done.stdout == "first hit survived\n"


def test_armed_follows_the_environment_in_force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faults.ENV, raising=False)
    assert faults.armed() is None
    monkeypatch.setenv(faults.ENV, "rename.after-rename:3")
    assert faults.armed() == ("rename.after-rename", 3)
    monkeypatch.setenv(faults.ENV, "typo")
    assert faults.armed() is None
    faults.point("typo")  # disarmed: a typo never kills


def test_the_compressor_choice_follows_the_environment_in_force(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(compress.COMPRESSOR_ENV, "zlib")
    assert compress.compressor_name(6) == "zlib-5"  # level 6 maps to zlib 5 (PREFERENCES)
    monkeypatch.setenv(compress.COMPRESSOR_ENV, "auto")
    assert compress.encoder(6) == compress.encoder(6, "auto")
