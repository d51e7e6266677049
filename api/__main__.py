"""`python -m api`: serve on HOST:PORT. `python -m api export-transcripts`: recorded answers as JSON Lines."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import ValidationError

from api.app import create_app
from api.http_limits import bounded_protocol
from api.settings import Settings
from rag.logs import configure_logging
from rag.store_lock import StoreInUse, own_embedded_store


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "export-transcripts":
        raise SystemExit(_export_transcripts(args.days, args.output))
    settings = _settings("Not starting")
    try:
        if not settings.rag.chroma_host:
            own_embedded_store(settings.rag.chroma_path)  # before anything is loaded: a clear refusal
    except StoreInUse as exc:
        sys.stderr.write(f"Not starting: {exc}\n")
        raise SystemExit(1) from None
    serve(create_app(settings), settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m api", description="The chatbot API: without a command, serve on HOST:PORT."
    )
    sub = parser.add_subparsers(dest="command")
    export = sub.add_parser(
        "export-transcripts",
        help="write the recorded answers of the last days as JSON Lines, oldest first",
        description="Every answer recorded in the last N days, oldest first, one JSON object a line (the "
        "admin API's conversation turn plus `conversation`), from the records database of the environment's "
        "settings (DATABASE_URL, or the SQLite file in DATA_DIR).",
    )
    export.add_argument(
        "--days", type=_positive, default=30, help="how many days back (default: 30)", metavar="N"
    )
    export.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="write to FILE, replaced only once complete (default: stdout)",
    )
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _settings(refusal: str) -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        # The values themselves are left out: a refused one may be a secret (a too-short ADMIN_TOKEN).
        problems = "\n".join(
            f"  {'.'.join(str(part) for part in error['loc']).upper() or 'SETTINGS'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        sys.stderr.write(f"{refusal}: invalid settings\n{problems}\n")
        raise SystemExit(2) from None


def _export_transcripts(days: int, output: Path | None) -> int:
    from api.export import ExportError, export_transcripts

    settings = _settings("Not exporting")
    configure_logging(settings.logging, secrets=settings.secrets())  # log lines go to stderr, never stdout
    try:
        export_transcripts(settings.records, days, output)
    except ExportError as exc:
        sys.stderr.write(f"export-transcripts: {exc}\n")
        return 2
    except BrokenPipeError:  # the reader (`| head`) stopped reading: not an error of the export
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 1
    return 0


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
