"""HTTP for the sinks: urllib from the standard library, timeouts, TLS verified, no redirects.

Secrets (a bearer token, a basic-auth password) are read from files, never from the
config itself, and a file anyone else could read or change is refused.
"""

from __future__ import annotations

import base64
import errno
import os
import ssl
import stat
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from nodeguard.alerts.registry import DeliveryError

SECRET_CAP = 64 * 1024
USER_AGENT = "nodeguard"
RETRY_STATUS = frozenset({408, 425, 429})
CONFIG_STATUS = frozenset({401, 403})  # the credentials configured are refused


class SecretRefused(Exception):
    """A secret file failed a safety check; the message says which and why."""


def read_secret(path: Path, euid: int) -> str:
    """The secret in ``path``: a regular file (no symlink), owned by root or us, not
    writable by group or others, not readable by others (by group only if it is root's)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SecretRefused(f"{path}: is a symlink; refused") from None
        raise SecretRefused(f"{path}: cannot open: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        _check_secret(path, st, euid)
        data = os.read(fd, SECRET_CAP + 1)
    finally:
        os.close(fd)
    if len(data) > SECRET_CAP:
        raise SecretRefused(f"{path}: larger than {SECRET_CAP} bytes; refused")
    text = data.decode("utf-8", "replace").strip()
    if not text or any(c in text for c in "\r\n\0"):
        raise SecretRefused(f"{path}: must hold one non-empty line")
    return text


def _check_secret(path: Path, st: os.stat_result, euid: int) -> None:
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode):
        raise SecretRefused(f"{path}: not a regular file; refused")
    if st.st_uid not in (0, euid):
        raise SecretRefused(f"{path}: owned by uid {st.st_uid}; refused")
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SecretRefused(f"{path}: writable by group or others (mode {mode:o}); refused")
    if mode & stat.S_IROTH or (mode & stat.S_IRGRP and st.st_gid != 0):
        raise SecretRefused(
            f"{path}: readable by others (mode {mode:o}); refused: chmod 600 {path}"
        )


def auth_header(
    token_file: Path | None, username: str | None, password_file: Path | None, euid: int
) -> str | None:
    """The Authorization header for the configured credentials (None for none)."""
    try:
        if token_file is not None:
            return f"Bearer {read_secret(token_file, euid)}"
        if username is not None and password_file is not None:
            pair = f"{username}:{read_secret(password_file, euid)}".encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
    except SecretRefused as exc:
        # Kept in the spool and retried: the admin fixes the file, the alerts then arrive.
        raise DeliveryError(str(exc), retry=True, config=True) from None
    return None


def _detail(exc: urllib.error.HTTPError) -> str:
    """What the receiver said: a redirect's target, or the first bytes the body's first
    read returns (one read, so a trickling receiver cannot hold us)."""
    if 300 <= exc.code < 400:
        where = (exc.headers.get("Location") or "?")[:200] if exc.headers else "?"
        return f"redirect to {where} not followed (it could carry the credentials elsewhere)"
    try:
        chunk: bytes = exc.read1(300) if exc.fp is not None else b""
    except (OSError, ValueError, AttributeError):
        chunk = b""
    return chunk[:300].decode("utf-8", "replace").strip()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect could carry the credentials elsewhere: treat it as an error."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _opener(ca_file: Path | None) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    # ProxyHandler({}): no proxy from the environment (http_proxy would carry the token
    # in clear text, and 127.0.0.1 to the proxy's own loopback); receivers are direct.
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=context),
        _NoRedirect(),
    )


def post_json(
    url: str,
    body: bytes,
    *,
    timeout: float,
    ca_file: Path | None = None,
    authorization: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> int:
    """POST ``body`` as JSON; return the status, or raise DeliveryError."""
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310 (http(s) only)
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", USER_AGENT)
    if authorization:
        request.add_header("Authorization", authorization)
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        opener = _opener(ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(f"CA file {ca_file}: {exc}", retry=False, config=True) from None
    try:
        with opener.open(request, timeout=timeout) as response:
            # The status is the answer; the body is not read: a receiver that trickles
            # it a byte per timeout would hold the sink for hours.
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        retry = exc.code >= 500 or exc.code in RETRY_STATUS
        config = 300 <= exc.code < 400 or exc.code in CONFIG_STATUS
        message = f"{url}: HTTP {exc.code}: {_detail(exc)}"
        raise DeliveryError(message, retry=retry, config=config) from None
    except urllib.error.URLError as exc:
        raise DeliveryError(f"{url}: {exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"{url}: {exc}") from None
