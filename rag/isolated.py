"""Parse untrusted files in a separate process whose memory and time are bounded.

A knowledge file is outside input: a PDF whose streams inflate to gigabytes, or one that sends a parser into
a loop or into an exception nobody foresaw, must cost the service one skipped file, never its memory, its
event loop or its start. `Parsers` keeps one small worker process (`python -m rag.isolated`: it imports the
parsers only, not the service) under an address-space limit, sends it one file at a time and waits at most
the deadline; a worker that fails, runs out of memory or overruns is killed and the next file gets a new one.
Messages are JSON lines both ways: the worker's output is text, never objects to unpickle.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

Kind = Literal["pdf", "html"]
_MAX_REPLY = 64 * 2**20  # bytes of one reply line; the text limit keeps real replies far below it


class ParserFailed(Exception):
    """The parser refused the file, raised, ran out of its memory, ran past its time, or died."""


class Parsers:
    """A context manager: one worker for a run of files (an ingest), closed at the end."""

    def __init__(self, memory_bytes: int, seconds: float) -> None:
        self.memory_bytes = memory_bytes
        self.seconds = seconds
        self._worker: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Parsers:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def pdf(self, path: Path, max_chars: int) -> tuple[str, str]:
        return self._call("pdf", str(path), max_chars)

    def html(self, text: str, max_chars: int) -> tuple[str, str]:
        return self._call("html", text, max_chars)

    def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill()
            worker.wait()
            for stream in (worker.stdin, worker.stdout):
                if stream is not None:
                    stream.close()

    def _call(self, kind: Kind, *args: Any) -> tuple[str, str]:
        worker = self._started()
        assert worker.stdin is not None and worker.stdout is not None
        try:
            worker.stdin.write(json.dumps([kind, *args]).encode() + b"\n")
            worker.stdin.flush()
            line = _read_line(worker.stdout.fileno(), self.seconds)
            ok, value, sound = json.loads(line)
        except (OSError, ValueError, ParserFailed) as exc:
            if isinstance(exc, ParserFailed):
                reason = str(exc)
            else:
                reason = "the parser process died" if isinstance(exc, OSError) else "unreadable parser reply"
            reason = _death(reason, worker, self.memory_bytes)  # before close(), whose kill would read as one
            self.close()  # whatever state it is in, the next file starts a fresh one
            raise ParserFailed(reason) from exc
        if not ok:
            if not sound:
                self.close()  # after MemoryError or an unforeseen exception its state is not to be trusted
            raise ParserFailed(str(value))
        return str(value[0]), str(value[1])

    def _started(self) -> subprocess.Popen[bytes]:
        if self._worker is None or self._worker.poll() is not None:
            self._worker = subprocess.Popen(
                [sys.executable, "-m", "rag.isolated", str(self.memory_bytes)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # a parser's warnings are about the file, and already reported
            )
        return self._worker


def _read_line(fd: int, seconds: float) -> bytes:
    deadline = time.monotonic() + seconds
    parts: list[bytes] = []
    size = 0
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise ParserFailed(f"took longer than {seconds:g} s (PARSER_TIMEOUT)")
            piece = os.read(fd, 1 << 16)
            if not piece:
                raise ParserFailed("the parser process died")
            end = piece.find(b"\n")
            parts.append(piece if end < 0 else piece[:end])
            size += len(piece)
            if end >= 0:
                return b"".join(parts)
            if size > _MAX_REPLY:
                raise ParserFailed("the parser's reply is too large")


def _death(reason: str, worker: subprocess.Popen[bytes], memory_bytes: int) -> str:
    code = worker.poll()
    if code is not None and code < 0:
        return f"{reason} (killed by signal {-code}; PARSER_MEMORY_MB is {memory_bytes // 2**20})"
    return reason


def _serve(memory_bytes: int) -> None:
    """The worker: one JSON request per line in, one JSON reply per line out."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    from rag.formats import UnreadableFile, html_to_text, pdf_to_text

    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing a library prints may break the reply lines
    for line in sys.stdin.buffer:
        kind, *args = json.loads(line)
        try:
            if kind == "pdf":
                result = pdf_to_text(Path(args[0]), int(args[1]))
            else:
                result = html_to_text(str(args[0]), int(args[1]))
            reply: list[Any] = [True, list(result), True]
        except MemoryError:
            limit = memory_bytes // 2**20
            reply = [False, f"needed more than {limit} MB of memory (PARSER_MEMORY_MB)", False]
        except UnreadableFile as exc:  # the parser's own verdict on the file: the worker is fine
            reply = [False, str(exc), True]
        except Exception as exc:  # noqa: BLE001 - whatever a parser raises on hostile input: one skipped file
            reply = [False, f"could not be parsed ({type(exc).__name__})", False]
        replies.write(json.dumps(reply).encode() + b"\n")
        replies.flush()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
