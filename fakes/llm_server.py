"""What every fake LLM server shares: scripted replies, recorded requests and the HTTP plumbing on
127.0.0.1 (plain answers, chunked SSE streams, hangs, dropped connections). Each protocol's module
(`fakes.gemini_server`, `fakes.openai_server`) only says how a reply is written on the wire."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from fakes.thread_server import ThreadServer


@dataclass
class Reply:
    status: int = 200
    text: str | None = "Hello from the fake model."
    body: Any = None  # overrides the generated body: dict -> JSON, bytes -> raw
    delay: float = 0.0  # seconds before answering: longer than the client's timeout is a hang
    reset: bool = False  # drop the connection (TCP reset) instead of answering
    break_after: int | None = None  # streaming: drop the connection after this many pieces
    headers: dict[str, str] = field(default_factory=dict)

    def pieces(self) -> list[str]:
        """The text as a stream sends it: a few words per event."""
        words = (self.text or "").split(" ")
        return [
            " ".join(words[i : i + 3]) + (" " if i + 3 < len(words) else "") for i in range(0, len(words), 3)
        ]


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the stdlib's 5 refuses connections when many clients call at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Connections this fake resets on purpose make the stdlib server print tracebacks: not news.
        return None


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class FakeLLMServer:
    """A protocol's subclass writes answers (`answer`), stream events (`stream_events`) and says which
    requests stream (`streams`); everything else is shared."""

    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self.requests: list[Recorded] = []
        self.pick: Callable[[], Reply] | None = None  # chooses each unscripted reply instead of `default`
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                recorded = Recorded(self.path, dict(self.headers), json.loads(raw or b"{}"), time.monotonic())
                with fake._lock:
                    fake.requests.append(recorded)
                    if fake.script:
                        reply = fake.script.popleft()
                    else:
                        reply = fake.pick() if fake.pick is not None else fake.default
                if reply.reset:
                    # SO_LINGER 0 makes close() send a TCP reset; the file objects must go first, or
                    # they keep the socket open.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.rfile.close()
                    self.wfile.close()
                    self.connection.close()
                    self.close_connection = True
                    return
                if reply.delay:
                    time.sleep(reply.delay)
                streaming = fake.streams(recorded)
                if streaming and reply.status == 200 and reply.body is None:
                    self._stream(reply)
                    return
                payload = fake.payload(reply)
                try:
                    self.send_response(reply.status)
                    headers = {"Content-Type": "application/json", **reply.headers}  # a reply's own first
                    headers["Content-Length"] = str(len(payload))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

            def _stream(self, reply: Reply) -> None:
                # Chunked, as the real APIs stream: a connection dropped mid-body is then an incomplete
                # payload to the client, not an ordinary end of the answer.
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.close_connection = True
                try:
                    for number, chunk in enumerate(fake.stream_events(reply)):
                        if reply.break_after is not None and number >= reply.break_after:
                            linger = struct.pack("ii", 1, 0)  # close() then sends a TCP reset
                            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                            self.rfile.close()
                            self.wfile.close()
                            self.connection.close()
                            return
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                        time.sleep(0.01)
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadServer(Handler, server_class=_Server)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self, *replies: Reply, default: Reply | None = None) -> None:
        with self._lock:
            self.script = deque(replies)
            self.default = default or Reply()
            self.requests = []

    @property
    def calls(self) -> int:
        return len(self.requests)

    def payload(self, reply: Reply) -> bytes:
        if isinstance(reply.body, bytes):
            return reply.body
        if reply.body is not None:
            return json.dumps(reply.body).encode()
        if reply.status >= 400:
            error = {"code": reply.status, "message": "upstream says no (secret detail)", "status": "ERR"}
            return json.dumps({"error": error}).encode()
        return json.dumps(self.answer(reply)).encode()

    # -- what each protocol defines ------------------------------------------------------------------

    def streams(self, request: Recorded) -> bool:
        raise NotImplementedError

    def answer(self, reply: Reply) -> dict[str, Any]:
        """The JSON body of a successful plain answer."""
        raise NotImplementedError

    def stream_events(self, reply: Reply) -> list[bytes]:
        """The reply as SSE `data:` events."""
        raise NotImplementedError
