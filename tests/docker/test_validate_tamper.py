"""The candidate dockerd validates cannot be changed by other processes of its user.

Validation runs dockerd as uid 65534, a user many services share (and the attacker of
the hostile tests). The candidate and its temp folder used to be chowned to that user,
so any process of it could rewrite the candidate between its write and dockerd's read
(and get a verdict for a file nodeguard will not write), or fill the folder root then
removes. The stand-in dockerd below runs exactly as dockerd would (the runner's
unprivileged argv) and reports what that user can do there.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeguard.docker.dockerd import validate
from nodeguard.world import World

PROBE = """#!/bin/sh
# argv: --validate --config-file PATH
config="$3"
folder="$(dirname "$config")"
if [ -r "$config" ]; then echo "READ"; fi
if (echo ' ' >> "$config") 2>/dev/null; then echo "WROTE"; fi
if mkdir "$folder/planted" 2>/dev/null; then echo "PLANTED"; fi
if mv "$config" "$folder/moved" 2>/dev/null; then echo "MOVED"; fi
echo "configuration OK"
"""


@pytest.fixture
def probe() -> Iterator[Path]:
    """The stand-in dockerd, in a folder uid 65534 can reach (tmp_path is root's 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="nodeguard-test-probe-"))
    try:
        folder.chmod(0o755)
        script = folder / "dockerd"
        script.write_text(PROBE)
        script.chmod(0o755)
        yield script
    finally:
        shutil.rmtree(folder)


def test_the_unprivileged_validator_can_read_the_candidate_and_nothing_more(
    probe: Path,
) -> None:
    seen: list[str] = []
    world = World()

    def run(argv: list[str], timeout: float):  # type: ignore[no-untyped-def]
        result = world.run(argv, timeout)
        seen.append(result.output)
        return result

    verdict = validate(probe, b'{"log-driver": "json-file"}\n', World(run=run))

    assert verdict.ok
    [output] = seen
    assert "READ" in output  # dockerd must still be able to read it
    assert "WROTE" not in output
    assert "PLANTED" not in output
    assert "MOVED" not in output
