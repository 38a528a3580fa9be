"""Which files does this host's logrotate already rotate?

Two rotators on one file race each other, so nodeguard skips files that a
logrotate config covers unless a policy says to take them over. This reads
only what is needed for that: the path patterns at the top level of
``/etc/logrotate.conf`` and of the files it includes, never the scripts.
"""

from __future__ import annotations

import errno
import glob
import os
import shlex
import stat
from pathlib import Path

# logrotate's default tabooext list: files in an included directory it ignores.
_TABOO_SUFFIXES = (
    ".rpmsave",
    ".rpmorig",
    "~",
    ",v",
    ".disabled",
    ".dpkg-old",
    ".dpkg-dist",
    ".dpkg-new",
    ".cfsaved",
    ".ucf-old",
    ".ucf-dist",
    ".ucf-new",
    ".rpmnew",
    ".swp",
    ".cfsaved",
    ".rhn-cfg-tmp-*",
)
_SCRIPT_START = {"postrotate", "prerotate", "firstaction", "lastaction", "preremove"}


READ_CAP = 1 << 20  # a logrotate config file larger than this is not read
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def covered_paths(conf: Path) -> dict[str, str]:
    """Map each existing file a logrotate config covers to the config file naming it.

    Raises OSError when ``conf`` itself cannot be read (not a regular file, too large);
    an included file that cannot be read is skipped, as logrotate skips it.
    """
    if not conf.is_dir():
        _read(conf)  # the main file must be readable: say so now
    covered: dict[str, str] = {}
    for pattern, source in _patterns(conf, seen=set()):
        for path in glob.glob(pattern):
            covered.setdefault(os.path.normpath(path), source)
    return covered


def _patterns(conf: Path, seen: set[Path]) -> list[tuple[str, str]]:
    if conf in seen:
        return []
    seen.add(conf)
    if conf.is_dir():
        out: list[tuple[str, str]] = []
        for child in sorted(conf.iterdir()):
            if (
                child.is_file()
                and not child.name.startswith(".")
                and not child.name.endswith(_TABOO_SUFFIXES)
            ):
                out += _patterns(child, seen)
        return out
    try:
        text = _read(conf).decode("utf-8", errors="replace")
    except OSError:
        return []
    return _parse(text, conf, seen)


def _read(path: Path) -> bytes:
    """A config file's bytes: a regular file (symlinks followed: root's own config) of at
    most READ_CAP bytes, opened without blocking (a FIFO cannot hang the pass)."""
    fd = os.open(path, _READ_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"not a regular file ({stat.filemode(st.st_mode)})")
        data = os.read(fd, READ_CAP + 1)
        if len(data) > READ_CAP or st.st_size > READ_CAP:
            raise OSError(errno.EFBIG, f"larger than {READ_CAP} bytes")
        return data
    finally:
        os.close(fd)


def _parse(text: str, conf: Path, seen: set[Path]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    depth = 0
    in_script = False
    for line in text.splitlines():
        words = _words(line)
        if not words:
            continue
        if in_script:
            in_script = words[0] != "endscript"
            continue
        if depth > 0 and words[0] in _SCRIPT_START:
            in_script = True
            continue
        if depth == 0 and words[0] == "include" and len(words) > 1:
            out += _patterns(Path(words[1]), seen)
            continue
        for word in words:
            if word == "{":
                depth += 1
            elif word == "}":
                depth = max(0, depth - 1)
            elif depth == 0 and word.startswith("/"):
                out.append((word.rstrip("{"), str(conf)))
                depth += word.endswith("{")
    return out


def _words(line: str) -> list[str]:
    if line.lstrip().startswith("#"):
        return []
    try:
        return shlex.split(line.replace("{", " { ").replace("}", " } "))
    except ValueError:
        return line.split()
