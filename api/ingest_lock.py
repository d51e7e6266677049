"""Replicas sharing a Chroma server ingest one at a time: a Redis lock, held while an ingest runs.

The lock expires on its own if its holder dies, so it is renewed while the ingest goes on. A replica that
waits finds the store up to date when its turn comes, and embeds nothing. Inside a process the store's own
writer lock (`KnowledgeStore.writer`) keeps ingests apart; an embedded store has one process
(`rag.store_lock`), so it needs no lock here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import structlog

from api.settings import Settings

log = structlog.get_logger(__name__)

LOCK_SECONDS = 30  # how long a dead holder keeps the others waiting
WAIT_SECONDS = 3600  # how long a replica waits for another's ingest before giving up


def ingest_guard(settings: Settings) -> Callable[[], AbstractContextManager[object]]:
    """A context-manager factory: the Redis lock with a Chroma server and Redis, nothing otherwise."""
    url = settings.api.redis_url
    if not settings.rag.chroma_host or not url:
        return nullcontext
    name = f"{settings.api.redis_prefix}:ingest-lock:{settings.rag.collection_prefix}"
    return lambda: _one_replica_ingesting(url, name)


@contextmanager
def _one_replica_ingesting(url: str, name: str) -> Iterator[None]:
    import redis

    client = redis.Redis.from_url(url)
    lock = client.lock(name, timeout=LOCK_SECONDS, blocking_timeout=WAIT_SECONDS, thread_local=False)
    if not lock.acquire(blocking=False):
        log.info("ingest_waiting", detail="another replica is ingesting; waiting for it")
        if not lock.acquire():
            raise TimeoutError(f"another replica held the ingest lock for over {WAIT_SECONDS} s")
    done = threading.Event()

    def renew() -> None:
        while not done.wait(LOCK_SECONDS / 3):
            lock.reacquire()

    renewer = threading.Thread(target=renew, name="ingest-lock", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join()
        lock.release()
        client.close()
