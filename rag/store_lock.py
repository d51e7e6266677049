"""An embedded Chroma store belongs to one process: Chroma is not process-safe, and a second process
writing the same folder corrupts it. The processes that serve or write a store (the service, `python -m rag
ingest`) take an exclusive lock on its folder until they exit (the kernel releases it even after a SIGKILL);
another such process gets a clear error instead of a corrupted store. Read-only tools (`status`) do not.

This lock keeps processes apart for their whole life; writers inside the one process take turns through the
store's writer (`KnowledgeStore.writer`)."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import IO

from rag.errors import StoreError

_LOCK_FILE = ".owner.lock"
_held: dict[Path, IO[str]] = {}
_guard = threading.Lock()


class StoreInUse(StoreError):
    """Another process has the embedded store open."""


def own_embedded_store(folder: Path) -> None:
    """Take the folder for this process (again is fine); raise `StoreInUse` if another process has it."""
    folder = folder.resolve()
    with _guard:
        if folder in _held:
            return
        folder.mkdir(parents=True, exist_ok=True)
        handle = (folder / _LOCK_FILE).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise StoreInUse(
                f"the embedded Chroma store at {folder} is in use by {owner}. Chroma's embedded store is for "
                "one process: run a single worker, stop the other process first, or share a Chroma server "
                "(CHROMA_HOST) between processes."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        _held[folder] = handle
