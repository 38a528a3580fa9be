"""Log corpora of different shapes for the compression level table (bench/gzip_levels.py).

Each generator is seeded and returns ``size`` bytes of whole lines, so every run and
every machine measures the same text. The shapes: the rotation bench's application
lines; the same lines in Docker json-file and CRI (kubelet) framing; JSON lines;
CRI lines with long JSON payloads (up to 16 KiB); klog (Kubernetes components);
access logs built from a pool of 12 words; stack traces; plus log files given on the
command line (by default a few of this host's /var/log files).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from rotate_vs_logrotate import log_text

SIZE = 2 << 20
HOST_LOGS = ("/var/log/dpkg.log", "/var/log/apt/term.log", "/var/log/alternatives.log")


def _lines(size: int, seed: int, line: Callable[[random.Random, int], str]) -> bytes:
    rng, out, total, n = random.Random(seed), [], 0, 0
    while total < size:
        text = line(rng, n) + "\n"
        out.append(text)
        total += len(text)
        n += 1
    return "".join(out).encode()[:size]


def _stamp(n: int, rng: random.Random) -> str:
    ms = 36_000_000 + n * 7 + rng.randrange(7)
    return f"2024-05-01T{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}"


def framed(kind: str, size: int = SIZE) -> bytes:
    """The bench's lines as a container runtime writes them (nanosecond stamps)."""
    rng, nanos, out = random.Random(3), 0, []
    for line in log_text(size, seed=7).decode().splitlines():
        nanos += rng.randrange(10**6)
        stamp = f"2024-05-01T10:{nanos // 60_000_000_000 % 60:02d}:{nanos // 10**9 % 60:02d}"
        stamp += f".{nanos % 10**9:09d}Z"
        body = line.split(" ", 1)[1]
        if kind == "docker-json":
            out.append(json.dumps({"log": body + "\n", "stream": "stdout", "time": stamp}))
        else:
            out.append(f"{stamp} stdout F {body}")
    return ("\n".join(out) + "\n").encode()[:size]


_SERVICES = ("checkout", "payments", "inventory", "search", "auth", "gateway")
_EVENTS = ("request completed", "cache refreshed", "retrying upstream", "order placed")


def json_lines(size: int = SIZE) -> bytes:
    def line(rng: random.Random, n: int) -> str:
        record = {
            "ts": _stamp(n, rng) + f".{rng.randrange(1000):03d}Z",
            "level": rng.choice(("info", "info", "info", "debug", "warn", "error")),
            "service": rng.choice(_SERVICES),
            "msg": rng.choice(_EVENTS),
            "trace_id": f"{rng.getrandbits(64):016x}",
            "user_id": rng.randrange(100_000),
            "latency_ms": round(rng.expovariate(1 / 40), 2),
            "status": rng.choice((200, 200, 200, 201, 404, 500)),
        }
        return json.dumps(record, separators=(",", ":"))

    return _lines(size, 11, line)


def _payload(rng: random.Random, length: int) -> str:
    items = []
    while sum(map(len, items)) < length:
        items.append(
            json.dumps(
                {
                    "sku": f"SKU-{rng.randrange(10**6):06d}",
                    "qty": rng.randrange(1, 9),
                    "price": round(rng.uniform(1, 500), 2),
                    "tags": rng.sample(("new", "sale", "gift", "bulk", "eco", "promo"), 2),
                }
            )
        )
    return "[" + ",".join(items) + "]"


def cri_long(size: int = SIZE) -> bytes:
    """CRI lines whose JSON payloads run from 50 bytes to 16 KiB (log-uniform)."""

    def line(rng: random.Random, n: int) -> str:
        length = int(2.718281828 ** rng.uniform(3.9, 9.7))  # 50 .. 16 KiB
        body = json.dumps({"event": rng.choice(_EVENTS), "items": _payload(rng, length)})
        return f"{_stamp(n, rng)}.{rng.randrange(10**9):09d}Z stdout F {body}"[:16_384]

    return _lines(size, 13, line)


_KLOG_FILES = ("controller.go", "reflector.go", "kubelet.go", "pod_workers.go", "round_trippers.go")


def klog(size: int = SIZE) -> bytes:
    def line(rng: random.Random, n: int) -> str:
        sev = rng.choice("IIIIIWE")
        ms = 36_000_000 + n * 3
        head = (
            f"{sev}0501 {ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}."
            f"{rng.randrange(10**6):06d}    {rng.choice((1187, 1187, 2231))} "
            f"{rng.choice(_KLOG_FILES)}:{rng.randrange(60, 900)}]"
        )
        pod = f"{rng.choice(_SERVICES)}-{rng.getrandbits(32):08x}-{rng.getrandbits(20):05x}"
        what = rng.choice(
            (
                f' "SyncLoop UPDATE" source="api" pods=["default/{pod}"]',
                f' "Observed a panic" err="context deadline exceeded" pod="default/{pod}"',
                f" Watch close - *v1.Pod total {rng.randrange(900)} items received",
                f' "Probe failed" probeType="Readiness" pod="default/{pod}" output="HTTP 503"',
            )
        )
        return head + what

    return _lines(size, 17, line)


_WORDS = ("alpha", "bravo", "cart", "delta", "echo", "item", "list", "order", "page", "user",
          "view", "zone")  # fmt: skip


def access_words(size: int = SIZE) -> bytes:
    """Combined-format access logs whose paths and agents come from a 12-word pool."""

    def line(rng: random.Random, n: int) -> str:
        path = "/".join(rng.choice(_WORDS) for _ in range(rng.randrange(1, 5)))
        agent = " ".join(rng.choice(_WORDS) for _ in range(3))
        sec = n // 40
        return (
            f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(256)} - - "
            f"[01/May/2024:{10 + sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d} +0000] "
            f'"{rng.choice(("GET", "GET", "POST"))} /{path} HTTP/1.1" '
            f'{rng.choice((200, 200, 304, 404))} {rng.randrange(100, 90_000)} "-" "{agent}"'
        )

    return _lines(size, 19, line)


_FRAMES = (
    "com.example.shop.CheckoutService.placeOrder(CheckoutService.java:{})",
    "com.example.shop.PaymentClient.charge(PaymentClient.java:{})",
    "org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:{})",
    "javax.servlet.http.HttpServlet.service(HttpServlet.java:{})",
    "org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:{})",
    "java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:{})",
)


def stack_traces(size: int = SIZE) -> bytes:
    def line(rng: random.Random, n: int) -> str:
        if rng.random() < 0.7:
            return f"{_stamp(n, rng)}Z INFO  [http-{rng.randrange(64)}] handled request {n}"
        frames = [f"\tat {rng.choice(_FRAMES).format(rng.randrange(20, 900))}" for _ in range(12)]
        error = rng.choice(("java.net.SocketTimeoutException: Read timed out", "NPE"))
        return "\n".join([f"{_stamp(n, rng)}Z ERROR request {n} failed", error, *frames])

    return _lines(size, 23, line)


GENERATED: dict[str, Callable[[], bytes]] = {
    "bench": lambda: log_text(SIZE),
    "docker-json": lambda: framed("docker-json"),
    "cri": lambda: framed("cri"),
    "json-lines": json_lines,
    "cri-long": cri_long,
    "klog": klog,
    "access-12words": access_words,
    "stack-traces": stack_traces,
    "docker-json-access": lambda: _docker_json(access_words()),
}


def _docker_json(text: bytes) -> bytes:
    out = []
    for n, line in enumerate(text.decode().splitlines()):
        stamp = f"2024-05-01T10:00:{n // 1000 % 60:02d}.{n * 7919 % 10**9:09d}Z"
        out.append(json.dumps({"log": line + "\n", "stream": "stdout", "time": stamp}))
    return ("\n".join(out) + "\n").encode()[:SIZE]


def corpora(paths: list[str]) -> dict[str, bytes]:
    """Every generated corpus, then each readable file of ``paths`` (its first SIZE bytes)."""
    found = {name: make() for name, make in GENERATED.items()}
    for path in paths:
        file = Path(path)
        if file.is_file():
            with file.open("rb") as handle:
                found[file.name] = handle.read(SIZE)
    return found
