"""A few Docker Engine API calls over the isolated dockerd's unix socket (tests only)."""

from __future__ import annotations

import http.client
import io
import json
import socket
import tarfile
from pathlib import Path
from typing import Any

API = "/v1.41"  # Docker 20.10
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "sleep", "echo", "cat", "true", "seq")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("docker", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.path))


class DockerAPI:
    """Just enough of the Engine API: import, create, start, wait, inspect."""

    def __init__(self, sock: Path) -> None:
        self.sock = sock

    def call(
        self, method: str, url: str, body: bytes | None = None, ctype: str = "application/json"
    ) -> Any:
        conn = _UnixConnection(self.sock, timeout=120)
        try:
            headers = {"Content-Type": ctype} if body is not None else {}
            conn.request(method, API + url, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status >= 300:
            raise RuntimeError(f"{method} {url}: {response.status} {data[-500:]!r}")
        if not data.strip():
            return None
        lines = data.strip().splitlines()
        result = json.loads(lines[-1]) if len(lines) > 1 else json.loads(data)
        if isinstance(result, dict) and result.get("error"):
            raise RuntimeError(f"{method} {url}: {result['error']}")
        return result

    def import_busybox(self, repo: str) -> None:
        """``docker import`` of a root tree holding only a static busybox."""
        self.call(
            "POST",
            f"/images/create?fromSrc=-&repo={repo}&tag=1",
            busybox_tar(),
            "application/x-tar",
        )

    def run(self, image: str, name: str, script: str, restart: str = "no") -> str:
        """Create and start a container running ``sh -c script`` with no network."""
        spec = {
            "Image": image,
            "Cmd": ["sh", "-c", script],
            "StopTimeout": 1,
            "HostConfig": {"NetworkMode": "none", "RestartPolicy": {"Name": restart}},
        }
        created = self.call("POST", f"/containers/create?name={name}", json.dumps(spec).encode())
        cid = str(created["Id"])
        self.call("POST", f"/containers/{cid}/start")
        return cid

    def wait(self, cid: str) -> int:
        return int(self.call("POST", f"/containers/{cid}/wait")["StatusCode"])

    def inspect(self, cid: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/containers/{cid}/json")
        return result


def busybox_tar() -> bytes:
    """A tar of /bin/busybox plus applet symlinks; fails if busybox is not static."""
    binary = BUSYBOX.read_bytes()
    if _has_interpreter(binary):
        raise RuntimeError(f"{BUSYBOX} is dynamically linked: install busybox-static (.ci/setup)")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo("bin")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(binary), 0o755
        tar.addfile(info, io.BytesIO(binary))
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return buffer.getvalue()


def _has_interpreter(elf: bytes) -> bool:
    """True for a dynamically linked ELF64 (it has a PT_INTERP program header)."""
    phoff = int.from_bytes(elf[0x20:0x28], "little")
    size = int.from_bytes(elf[0x36:0x38], "little")
    count = int.from_bytes(elf[0x38:0x3A], "little")
    types = [
        int.from_bytes(elf[phoff + i * size : phoff + i * size + 4], "little") for i in range(count)
    ]
    return 3 in types
