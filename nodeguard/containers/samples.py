"""Byte-count samples of each container's logs, kept between runs to measure growth.

The file is a cache in the state folder, read and written through the state-file API
(:class:`~nodeguard.state.StateDocument`: capped, versioned, atomic, unique temp
names). A corrupt or foreign one is reported and replaced by the current sample,
never fatal, and nothing in it is trusted: the time must be a finite number and every
count a non-negative integer. Growth is the net change of the container's log bytes
on disk per second (negative after kubelet or dockerd deleted rotated files).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeguard.state import StateDocument

SAMPLES_NAME = "container-samples.json"
SAMPLES_KIND = "container-samples"
SAMPLES_VERSION = 1
MAX_SAMPLES_BYTES = 8 * 1024 * 1024  # ~100,000 containers


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


def samples_document(state_dir: Path) -> StateDocument:
    """The samples file in ``state_dir``."""
    return StateDocument(
        state_dir / SAMPLES_NAME, SAMPLES_KIND, version=SAMPLES_VERSION, cap=MAX_SAMPLES_BYTES
    )


def load_samples(document: StateDocument) -> tuple[Samples, str | None]:
    """The stored samples, or none plus the reason when the file is unusable."""
    loaded = document.load()
    if loaded.problem:
        return EMPTY, f"{loaded.problem}; samples replaced"
    if loaded.data is None:
        return EMPTY, None
    parsed = _parse(loaded.data)
    if parsed is None:
        return EMPTY, f"{document.path}: samples hold values that are not counts; replaced"
    return parsed, None


def _parse(data: Mapping[str, Any]) -> Samples | None:
    at, counts = data.get("at"), data.get("bytes")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        return None
    if not isinstance(counts, dict):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()):
        return None
    return Samples(float(at), {str(k): v for k, v in counts.items()})


def save_samples(document: StateDocument, counts: Mapping[str, int], now: float) -> None:
    """Replace the samples with this run's totals (containers gone are forgotten)."""
    document.save({"at": now, "bytes": dict(sorted(counts.items()))})
