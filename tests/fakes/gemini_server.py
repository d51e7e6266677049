"""Fake LLM servers on 127.0.0.1 that the real SDKs talk to over HTTP: Gemini's REST API and the OpenAI
chat-completions protocol. Replies are scripted per test; every request is recorded with its arrival time."""

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
from typing import Any, Literal

Protocol = Literal["gemini", "openai"]


@dataclass
class Reply:
    status: int = 200
    text: str | None = "Hello from the fake model."
    body: Any = None  # overrides the generated body: dict -> JSON, bytes -> raw
    delay: float = 0.0  # seconds before answering: longer than the client's timeout is a hang
    reset: bool = False  # drop the connection (TCP reset) instead of answering
    break_after: int | None = None  # streaming: drop the connection after this many pieces
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self, protocol: Protocol) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if self.body is not None:
            return json.dumps(self.body).encode()
        if self.status >= 400:
            error = {"code": self.status, "message": "upstream says no (secret detail)", "status": "ERR"}
            return json.dumps({"error": error}).encode()
        if protocol == "openai":
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": self.text},
                "finish_reason": "stop",
            }
            return json.dumps(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "fake",
                    "choices": [choice],
                }
            ).encode()
        candidate = {"content": {"role": "model", "parts": [{"text": self.text}]}, "finishReason": "STOP"}
        return json.dumps({"candidates": [candidate], "modelVersion": "fake-gemini"}).encode()

    def stream_events(self, protocol: Protocol) -> list[bytes]:
        """The reply as SSE `data:` events, a few words per event."""
        words = (self.text or "").split(" ")
        pieces = [
            " ".join(words[i : i + 3]) + (" " if i + 3 < len(words) else "") for i in range(0, len(words), 3)
        ]
        events = []
        for piece in pieces:
            if protocol == "openai":
                delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                chunk = {
                    "id": "c",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "m",
                    "choices": [delta],
                }
            else:
                chunk = {"candidates": [{"content": {"role": "model", "parts": [{"text": piece}]}}]}
            events.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        if protocol == "openai":
            events.append(b"data: [DONE]\n\n")
        return events


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the stdlib's 5 refuses connections when many clients call at once


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class FakeLLMServer:
    protocol: Protocol = "gemini"

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
                with fake._lock:
                    fake.requests.append(
                        Recorded(self.path, dict(self.headers), json.loads(raw or b"{}"), time.monotonic())
                    )
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
                streaming = (
                    "streamGenerateContent" in self.path or fake.requests[-1].body.get("stream") is True
                )
                if streaming and reply.status == 200 and reply.body is None:
                    self._stream(reply)
                    return
                payload = reply.payload(fake.protocol)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
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
                    for number, chunk in enumerate(reply.stream_events(fake.protocol)):
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

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # Connections this fake resets on purpose make the stdlib server print tracebacks: not news.
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self, *replies: Reply, default: Reply | None = None) -> None:
        with self._lock:
            self.script = deque(replies)
            self.default = default or Reply()
            self.requests = []

    @property
    def calls(self) -> int:
        return len(self.requests)


class FakeGemini(FakeLLMServer):
    protocol: Protocol = "gemini"


class FakeOpenAI(FakeLLMServer):
    """Speaks chat completions; clients take `url + "/v1"` as their base URL."""

    protocol: Protocol = "openai"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"
