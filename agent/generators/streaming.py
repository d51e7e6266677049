"""What every remote tier's stream shares: errors classified once, and a stream with no text is a
fall-through, not an answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from agent.errors import FallThroughError, GenerationError


async def guarded(
    pieces: AsyncIterator[str], classify: Callable[[BaseException], GenerationError], provider: str
) -> AsyncIterator[str]:
    """`pieces` with leading whitespace dropped and library errors turned into our error tree."""
    produced = False
    try:
        async for piece in pieces:
            piece = piece if produced else piece.lstrip()
            if piece:
                produced = True
                yield piece
    except GenerationError:
        raise
    except Exception as exc:  # classified right here, once, into our error tree
        raise classify(exc) from exc
    if not produced:
        raise FallThroughError(f"{provider} streamed no text", reason="empty")
