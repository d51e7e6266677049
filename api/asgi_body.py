"""Reading a request's body in the ASGI layer, then handing the very same messages on to the app."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Message, Receive


@dataclass(frozen=True, slots=True)
class BufferedBody:
    messages: tuple[Message, ...]
    size: int
    complete: bool  # the body ended; False when the client left, or more than the limit arrived

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.request")

    def replay(self, receive: Receive) -> Receive:
        """A `receive` that gives these messages again, then whatever comes next."""
        pending = iter(self.messages)

        async def replayed() -> Message:
            return next(pending, None) or await receive()

        return replayed


async def buffer_body(receive: Receive, max_bytes: int | None = None) -> BufferedBody:
    """Reads the request's messages until its body ends, the client leaves, or more than `max_bytes` came."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return BufferedBody(tuple(messages), size, complete=False)
        size += len(message.get("body", b""))
        if max_bytes is not None and size > max_bytes:
            return BufferedBody(tuple(messages), size, complete=False)
        if not message.get("more_body", False):
            return BufferedBody(tuple(messages), size, complete=True)
