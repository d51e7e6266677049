"""A lean HTTP/1.1 load generator: N keep-alive connections, each sending its next request as soon as the
previous answer has fully arrived (bodies read to the end, chunked streams included).

It is raw asyncio on uvloop rather than an HTTP client library so that, on two cores, the client costs the
server as little CPU as possible; `client_cpu_share` reports what it did cost."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: Any = None  # JSON-encoded when set
    kind: str = "request"


@dataclass(frozen=True)
class Reply:
    call: Call
    status: int
    body: bytes
    seconds: float


@dataclass
class LoadResult:
    replies: list[Reply]
    wall: float
    client_cpu: float
    server_cpu: float | None = None  # seconds of CPU the server process used during the run
    invalid: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return len(self.replies) / self.wall

    def percentile(self, q: float, kind: str | None = None) -> float:
        """Milliseconds; nearest-rank."""
        times = sorted(r.seconds for r in self.replies if kind is None or r.call.kind == kind)
        return times[max(0, math.ceil(q * len(times)) - 1)] * 1000 if times else float("nan")

    def statuses(self) -> Counter[int]:
        return Counter(r.status for r in self.replies)

    @property
    def client_cpu_share(self) -> float:
        return self.client_cpu / self.wall

    def server_cpu_per_request_ms(self) -> float:
        return (self.server_cpu or 0.0) / len(self.replies) * 1000


def encode(call: Call, host: str) -> bytes:
    body = b"" if call.body is None else json.dumps(call.body).encode()
    head = f"{call.method} {call.path} HTTP/1.1\r\nHost: {host}\r\n"
    if call.body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def _read(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(b":") for line in lines[1:] if line)
    }
    keep_alive = headers.get(b"connection", b"").lower() != b"close"
    if b"content-length" in headers:
        return status, keep_alive, await reader.readexactly(int(headers[b"content-length"]))
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return status, keep_alive, b"".join(parts)
            parts.append((await reader.readexactly(size + 2))[:-2])
    return status, False, await reader.read()


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(url: str, calls: Iterator[Call], connections: int, until: float | None) -> list[Reply]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    replies: list[Reply] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for call in calls:
                if until is not None and time.perf_counter() >= until:
                    return
                started = time.perf_counter()
                writer.write(encode(call, parts.netloc))
                status, keep_alive, body = await _read(reader)
                replies.append(Reply(call, status, body, time.perf_counter() - started))
                if not keep_alive:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return replies


def run_load(
    url: str,
    calls: Iterator[Call],
    *,
    connections: int,
    seconds: float | None = None,
    server_pid: int | None = None,
    validate: Callable[[Reply], str | None] | None = None,
) -> LoadResult:
    """Send `calls` (all of them, or for `seconds`) over `connections` connections and time each reply."""
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    cpu_before = time.process_time()
    server_before = server_cpu(server_pid) if server_pid else 0.0
    started = time.perf_counter()
    until = started + seconds if seconds is not None else None
    replies = runner(_load(url, calls, connections, until))
    wall = time.perf_counter() - started
    result = LoadResult(replies, wall, time.process_time() - cpu_before)
    if server_pid:
        result.server_cpu = server_cpu(server_pid) - server_before
    if validate is not None:
        result.invalid = [problem for r in replies if (problem := validate(r)) is not None]
    return result


def forever(call: Call) -> Iterator[Call]:
    return itertools.repeat(call)
