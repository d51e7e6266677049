"""An HTTP server on 127.0.0.1 that serves from a daemon thread: what every fake server and test server here
(websites, webhook receivers, model APIs, the Hugging Face Hub) shares."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class ThreadServer:
    """Binds at construction (so the port is known before the first request), serves after `start()`.

    `port`: 0 picks a free one; a given port lets a server be stopped and started again at the same
    address. `server_class`: a ThreadingHTTPServer subclass, for one that tunes its queue or error handling.
    """

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        port: int = 0,
        *,
        name: str | None = None,
        server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer,
    ) -> None:
        self.server = server_class(("127.0.0.1", port), handler)
        # Request threads must never keep a test process alive, nor make server_close() wait on a hung client.
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        # shutdown() waits for serve_forever to notice, so it would hang on a server that never started.
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join()
        self.server.server_close()
