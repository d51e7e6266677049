"""A fake Gemini REST server on 127.0.0.1 that the real google-genai SDK talks to over HTTP.

Replies are scripted per test; every request is recorded with its arrival time.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    text: str | None = "Hello from the fake Gemini."
    body: Any = None  # overrides the generated body: dict -> JSON, bytes -> raw
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if self.body is not None:
            return json.dumps(self.body).encode()
        if self.status >= 400:
            return json.dumps(
                {
                    "error": {
                        "code": self.status,
                        "message": "upstream says no (secret detail)",
                        "status": "ERR",
                    }
                }
            ).encode()
        return json.dumps(
            {
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": self.text}]}, "finishReason": "STOP"}
                ],
                "modelVersion": "fake-gemini",
            }
        ).encode()


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class FakeGemini:
    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with fake._lock:
                    fake.requests.append(
                        Recorded(self.path, dict(self.headers), json.loads(raw or b"{}"), time.monotonic())
                    )
                    reply = fake.script.popleft() if fake.script else fake.default
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.payload()
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

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeGemini:
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
