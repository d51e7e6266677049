"""`python -m api`: serve on HOST:PORT."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from pydantic import ValidationError

from api.app import create_app
from api.http_limits import bounded_protocol
from api.settings import Settings
from rag.store_lock import StoreInUse, own_embedded_store


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as exc:
        # The values themselves are left out: a refused one may be a secret (a too-short ADMIN_TOKEN).
        problems = "\n".join(
            f"  {'.'.join(str(part) for part in error['loc']).upper() or 'SETTINGS'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        sys.stderr.write(f"Not starting: invalid settings\n{problems}\n")
        raise SystemExit(2) from None
    try:
        if not settings.rag.chroma_host:
            own_embedded_store(settings.rag.chroma_path)  # before anything is loaded: a clear refusal
    except StoreInUse as exc:
        sys.stderr.write(f"Not starting: {exc}\n")
        raise SystemExit(1) from None
    serve(create_app(settings), settings)


def serve(app: Any, settings: Settings) -> None:
    """uvicorn as the service runs it (the benchmarks serve their baseline app through this too)."""
    uvicorn.run(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,  # our structlog set-up renders uvicorn's records too
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 by default; the app applies TRUSTED_PROXIES.
        proxy_headers=False,
        server_header=False,
        # httptools (what "auto" picks) with bounded request heads: uvicorn bounds neither their size nor
        # the time they take to arrive (see api/http_limits.py).
        http=bounded_protocol(settings.api.max_header_bytes, settings.api.header_timeout),
        access_log=settings.api.access_log,
        # On SIGTERM: stop accepting, let answers in flight finish (streams included), then exit.
        timeout_graceful_shutdown=settings.api.shutdown_grace,
    )


if __name__ == "__main__":
    main()
