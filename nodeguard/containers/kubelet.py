"""kubelet's own container log rotation limits, read from its KubeletConfiguration.

nodeguard must know them so that its container policy stays above kubelet's
``containerLogMaxSize`` and only acts as a hard ceiling when kubelet falls behind.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from nodeguard.config.readfile import Refused, read_bounded
from nodeguard.config.yamltree import Node, parse_text

DEFAULT_MAX_SIZE_TEXT = "10Mi"
DEFAULT_MAX_SIZE = 10 * 1024**2
DEFAULT_MAX_FILES = 5

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY_RE = re.compile(
    r"(?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<bin>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exp>[eE][+-]?[0-9]{1,10})|(?P<dec>[numkMGTPE]))?"
)


MAX_QUANTITY = 2**63 - 1  # resource.Quantity saturates here (ParseQuantity's maxAllowed)
MAX_QUANTITY_TEXT = 64
MAX_CONFIG_BYTES = 1024 * 1024
INT32_MAX = 2**31 - 1
# The amount is at most 64 digits either side of the point, so an exponent beyond
# +-200 changes nothing once the value saturates or rounds up to one byte.
_EXPONENT_CLAMP = 200


class QuantityError(ValueError):
    """A string that is not a Kubernetes resource quantity."""


def parse_quantity(text: str) -> int:
    """Bytes of a Kubernetes quantity (``10Mi``, ``10M``, ``1.5Gi``, ``1e6``).

    Rounded up to a whole byte and saturated at 2^63-1, as ``ParseQuantity`` and
    ``Quantity.Value()`` do in kubelet; huge exponents cost nothing.
    """
    stripped = text.strip()
    match = _QUANTITY_RE.fullmatch(stripped) if len(stripped) <= MAX_QUANTITY_TEXT else None
    if match is None:
        raise QuantityError(f"{_short(text)!r} is not a Kubernetes quantity (e.g. 10Mi, 50M)")
    value = Fraction(match["num"])
    if match["bin"]:
        value *= 1024 ** _BINARY[match["bin"]]
    elif match["exp"]:
        exponent = max(-_EXPONENT_CLAMP, min(_EXPONENT_CLAMP, int(match["exp"][1:])))
        value *= Fraction(10) ** exponent
    else:
        value *= Fraction(10) ** _DECIMAL[match["dec"] or ""]
    if value < 0:
        raise QuantityError(f"{text!r} is negative")
    return min(MAX_QUANTITY, math.ceil(value))


def _short(text: str) -> str:
    return text if len(text) <= 32 else text[:16] + "…"


@dataclass(frozen=True)
class KubeletLimits:
    """kubelet's container log rotation settings, or why they are unknown.

    ``max_size``/``max_files`` are None when the config exists but cannot be used;
    ``defaulted`` names the keys that took kubelet's built-in defaults.
    """

    path: Path
    present: bool
    max_size: int | None
    max_size_text: str | None
    max_files: int | None
    defaulted: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def rotates(self) -> bool:
        """Whether kubelet is known to rotate CRI logs with these limits."""
        return self.max_size is not None and self.max_files is not None

    def to_json(self) -> dict[str, Any]:
        """The ``kubelet`` object of ``nodeguard containers --json``."""
        return {
            "config": str(self.path),
            "present": self.present,
            "container_log_max_size": self.max_size,
            "container_log_max_size_text": self.max_size_text,
            "container_log_max_files": self.max_files,
            "defaulted": list(self.defaulted),
            "rotates_cri_logs": self.rotates,
            "problems": list(self.problems),
        }


def kubelet_limits(path: Path) -> KubeletLimits:
    """Read ``containerLogMaxSize``/``containerLogMaxFiles`` from kubelet's config.

    An absent file, or one silent about a key, means kubelet's defaults (10Mi, 5).
    A malformed file is reported (file:line) and leaves the limits unknown: kubelet
    would refuse to start with it, so nothing can be assumed. The file is read like
    every input: no FIFO or device, at most 1 MiB, YAML with bounded work.
    """
    try:
        raw = read_bounded(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        return KubeletLimits(
            path,
            False,
            DEFAULT_MAX_SIZE,
            DEFAULT_MAX_SIZE_TEXT,
            DEFAULT_MAX_FILES,
            defaulted=("containerLogMaxSize", "containerLogMaxFiles"),
        )
    except Refused as exc:
        return _unknown(path, f"{path}: cannot read kubelet config: {exc.reason}")
    except OSError as exc:
        return _unknown(path, f"{path}: cannot read kubelet config: {exc.strerror or exc}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _unknown(path, f"{path}: kubelet config is not UTF-8 text")
    return _limits_from_text(path, text)


def _unknown(path: Path, *problems: str) -> KubeletLimits:
    return KubeletLimits(path, True, None, None, None, problems=problems)


def _limits_from_text(path: Path, text: str) -> KubeletLimits:
    problems: list[str] = []
    root = parse_text(text, str(path), problems)
    if problems or root is None:
        return _unknown(path, *(_in_kubelet_config(p) for p in problems))
    if not isinstance(root.value, dict):
        return _unknown(path, f"{root.where}: kubelet config is not a mapping")
    kind = root.value.get("kind")
    if kind is not None and kind.value != "KubeletConfiguration":
        return _unknown(path, f"{kind.where}: kind {kind.value!r} is not KubeletConfiguration")
    return _limits_from_mapping(path, root.value)


def _in_kubelet_config(problem: str) -> str:
    return problem.replace(": invalid YAML: ", ": invalid YAML in kubelet config: ", 1)


def _limits_from_mapping(path: Path, keys: dict[str, Node]) -> KubeletLimits:
    problems: list[str] = []
    defaulted: list[str] = []
    size_node = keys.get("containerLogMaxSize")
    files_node = keys.get("containerLogMaxFiles")
    size: int | None = DEFAULT_MAX_SIZE
    size_text: str | None = DEFAULT_MAX_SIZE_TEXT
    files: int | None = DEFAULT_MAX_FILES
    if size_node is None:
        defaulted.append("containerLogMaxSize")
    else:
        size_text = size_node.value if isinstance(size_node.value, str) else None
        size = _max_size(size_node, problems)
    if files_node is None:
        defaulted.append("containerLogMaxFiles")
    else:
        files = _max_files(files_node, problems)
    fatal = size is None or files is None
    return KubeletLimits(
        path,
        True,
        None if fatal else size,
        None if fatal else size_text,
        None if fatal else files,
        defaulted=tuple(defaulted),
        problems=tuple(problems),
    )


def _max_size(node: Node, problems: list[str]) -> int | None:
    where = f"{node.where}: containerLogMaxSize"
    if not isinstance(node.value, str):
        problems.append(f'{where}: must be a quoted quantity string such as "10Mi"')
        return None
    try:
        size = parse_quantity(node.value)
    except QuantityError as exc:
        problems.append(f"{where}: {exc}")
        return None
    if node.value.strip().endswith("m"):
        # Kubernetes reads "m" as milli, not mega: "10m" is 10 thousandths of a byte.
        hint = node.value.strip()[:-1] + "Mi"
        problems.append(
            f"{where}: {node.value!r} means milli-bytes in Kubernetes quantities, so kubelet "
            f"rotates at {size} byte(s); did you mean {hint}?"
        )
    if size <= 0:
        problems.append(f"{where}: {node.value!r} must be above zero")
        return None
    return size


def _max_files(node: Node, problems: list[str]) -> int | None:
    where = f"{node.where}: containerLogMaxFiles"
    files = node.value
    if isinstance(files, bool) or not isinstance(files, int):
        shown = files if isinstance(files, str | int | float | None) else "a collection"
        problems.append(f"{where}: {shown!r} is not an integer")
        return None
    if files > INT32_MAX:
        problems.append(f"{where}: {files} is too large: kubelet reads it as a 32-bit integer")
        return None
    if files < 2:
        problems.append(f"{where}: {files} must be greater than 1 (kubelet refuses to start)")
        return None
    return files


KUBELET_PODS_CAP = 100_000  # names read from kubelet's pods folder at most


def kubelet_pods_dir(kubelet_config: Path) -> Path:
    """kubelet's pods folder: ``pods`` beside its configuration (``/var/lib/kubelet``)."""
    return kubelet_config.parent / "pods"


def kubelet_pod_uids(kubelet_config: Path) -> frozenset[str] | None:
    """The uids of the pods kubelet still keeps a folder for (``<root>/pods/<uid>``);
    None when that folder does not exist or cannot be read. A liveness signal only:
    it can keep a pod's logs, never make them removable."""
    try:
        fd = os.open(kubelet_pods_dir(kubelet_config), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        names: set[str] = set()
        with os.scandir(fd) as it:
            for entry in it:
                if len(names) >= KUBELET_PODS_CAP:
                    return None  # not the whole list: no authority
                names.add(entry.name)
        return frozenset(names)
    except OSError:
        return None
    finally:
        os.close(fd)
