"""SHA-256 without OpenSSL where CPython has its own.

``hashlib`` loads OpenSSL's libcrypto (about 3.5 MiB resident in a daemon that hashes a
few kilobytes an hour); CPython 3.11's built-in ``_sha256`` gives the same digests.
Elsewhere (another Python, a build without it) ``hashlib`` is used.
"""

from __future__ import annotations

from typing import Protocol


class Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...


def sha256(data: bytes = b"") -> Hash:
    """A SHA-256 hash object, fed ``data``."""
    try:
        from _sha256 import sha256 as builtin  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from hashlib import sha256 as builtin
    h: Hash = builtin(data)
    return h
