"""Byte-count samples of each container's logs, kept between runs to measure growth.

The file is a cache: a corrupt one is reported and replaced by the current
sample, never fatal. Growth is the net change of the container's log bytes on
disk per second (negative after kubelet or dockerd deleted rotated files).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nodeguard.fsutil import atomic_write

SAMPLES_NAME = "container-samples.json"
SAMPLES_VERSION = 1


@dataclass(frozen=True)
class Samples:
    """The previous run's total bytes per container key, taken at ``at``."""

    at: float | None
    bytes: Mapping[str, int]

    def growth(self, key: str, total: int, now: float) -> float | None:
        """Bytes per second since the previous sample; None without one."""
        previous = self.bytes.get(key)
        if previous is None or self.at is None or now <= self.at:
            return None
        return (total - previous) / (now - self.at)


EMPTY = Samples(None, {})


def load_samples(path: Path) -> tuple[Samples, str | None]:
    """The stored samples, or none plus the reason when the file is unusable."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return EMPTY, None
    except (OSError, UnicodeDecodeError) as exc:
        return EMPTY, f"{path}: cannot read samples ({exc}); replaced"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return EMPTY, f"{path}:{exc.lineno}:{exc.colno}: corrupt samples ({exc.msg}); replaced"
    parsed = _parse(data)
    if parsed is None:
        return EMPTY, f"{path}: not a nodeguard samples file (version {SAMPLES_VERSION}); replaced"
    return parsed, None


def _parse(data: object) -> Samples | None:
    if not isinstance(data, dict) or data.get("version") != SAMPLES_VERSION:
        return None
    at, counts = data.get("at"), data.get("bytes")
    if isinstance(at, bool) or not isinstance(at, int | float) or not isinstance(counts, dict):
        return None
    good = {str(k): v for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)}
    return Samples(float(at), good)


def save_samples(path: Path, counts: Mapping[str, int], now: float) -> None:
    """Replace the samples with this run's totals (containers gone are forgotten)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = {"version": SAMPLES_VERSION, "at": now, "bytes": dict(sorted(counts.items()))}
    atomic_write(path, (json.dumps(body, indent=1) + "\n").encode(), mode=0o600)
