"""A crawl in a process of its own: how the service crawls, so that a crash while parsing a page costs one
crawl, never the service.

trafilatura and lxml parse the site's HTML in C, and a crash there (adbar/trafilatura#840 was one) would end
the process it happens in. `CrawlWorker.run` starts `python -m rag.crawl.worker`, sends it the crawl (the
settings, the URLs, the snapshot folder) as one JSON line and reads JSON lines back: progress as the crawl
goes, then the report. The worker logs as the service does (its stderr is the service's) and ends as soon as
its standard input closes, so a service that stops or dies never leaves a crawl running behind it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag.crawl.crawler import CrawlProgress, CrawlReport
from rag.crawl.snapshot import SnapshotInUse
from rag.logs import LoggingSettings
from rag.settings import RagSettings

# Exit status of a worker whose crawl was refused (bad input, or the folder held by another crawl).
_REFUSED = 2


class CrawlFailed(Exception):
    """The crawl could not run to its end: its worker died, was stopped, or said why it could not."""


class CrawlWorker:
    """Runs one crawl at a time in a worker process; `stop` ends a running one from any thread."""

    def __init__(self, settings: RagSettings, logging: LoggingSettings) -> None:
        self.settings = settings
        self.logging = logging
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._stopped = False

    def run(
        self, urls: list[str], folder: Path, progress: Callable[[CrawlProgress], None] | None = None
    ) -> CrawlReport:
        """Blocking. ValueError for bad URLs, SnapshotInUse while another crawl writes the folder,
        CrawlFailed when the worker dies or is stopped."""
        request = {
            "settings": self.settings.model_dump(mode="json"),
            "logging": self.logging.model_dump(mode="json"),
            "urls": urls,
            "folder": str(folder),
        }
        with self._lock:
            if self._stopped:
                raise CrawlFailed("the service is stopping")
            process = subprocess.Popen(
                [sys.executable, "-m", "rag.crawl.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                # Its log lines go where the service's go: the crawl's skips are read there.
                stderr=None,
            )
            self._process = process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps(request).encode() + b"\n")
            process.stdin.flush()  # stdin stays open: closing it tells the worker to stop
            return _read_replies(process, progress)
        except OSError as exc:  # a worker that died before reading the request
            raise CrawlFailed(_death("the crawl worker could not be reached", process)) from exc
        finally:
            with self._lock:
                self._process = None
            process.kill()
            process.wait()
            process.stdin.close()
            process.stdout.close()

    def stop(self) -> None:
        """End the running crawl, if any, and refuse new ones (the service is stopping)."""
        with self._lock:
            self._stopped = True
            if self._process is not None:
                self._process.kill()


def _read_replies(
    process: subprocess.Popen[bytes], progress: Callable[[CrawlProgress], None] | None
) -> CrawlReport:
    assert process.stdout is not None
    for line in process.stdout:
        try:
            reply = json.loads(line)
        except ValueError:
            raise CrawlFailed(f"the crawl worker sent an unreadable line: {line[:200]!r}") from None
        if "progress" in reply:
            if progress is not None:
                progress(CrawlProgress(**reply["progress"]))
        elif "report" in reply:
            return _report(reply["report"])
        elif "refused" in reply:
            if reply.get("in_use"):
                raise SnapshotInUse(reply["refused"])
            raise ValueError(reply["refused"])
    raise CrawlFailed(_death("the crawl worker ended without a report", process))


def _death(reason: str, process: subprocess.Popen[bytes]) -> str:
    code = process.wait()
    if code < 0:
        return f"{reason} (killed by signal {-code})"
    return f"{reason} (exit status {code})"


def _report(data: dict[str, Any]) -> CrawlReport:
    data["errors"] = [(str(url), str(reason)) for url, reason in data["errors"]]
    return CrawlReport(**data)


def _exit_when_orphaned() -> None:
    """Standard input closes when the service ends the crawl or dies: the crawl ends with it."""
    # The raw descriptor, not sys.stdin: a thread blocked in a buffered read stops the interpreter's exit.
    while os.read(0, 4096):
        pass
    os._exit(1)


def _serve() -> int:
    import asyncio

    from rag.crawl.crawler import crawl
    from rag.logs import configure_logging

    request = json.loads(sys.stdin.buffer.readline())
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # Nothing a library prints, from Python or from C, may break the reply lines: both go to stderr.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    threading.Thread(target=_exit_when_orphaned, name="orphan-watch", daemon=True).start()
    configure_logging(LoggingSettings.model_validate(request["logging"]))
    settings = RagSettings.model_validate(request["settings"])

    def send(reply: dict[str, Any]) -> None:
        replies.write(json.dumps(reply).encode() + b"\n")
        replies.flush()

    def on_progress(step: CrawlProgress) -> None:
        send({"progress": dataclasses.asdict(step)})

    try:
        report = asyncio.run(crawl(request["urls"], Path(request["folder"]), settings, progress=on_progress))
    except SnapshotInUse as exc:
        send({"refused": str(exc), "in_use": True})
        return _REFUSED
    except ValueError as exc:
        send({"refused": str(exc)})
        return _REFUSED
    send({"report": dataclasses.asdict(report)})
    return 0


if __name__ == "__main__":
    sys.exit(_serve())
