"""`python -m api export-transcripts`: the recorded answers of the last days, as JSON Lines.

One object per answer, oldest first: the fields of the admin API's conversation turn (`GET
/admin/conversations/{id}`) plus `conversation`. To stdout, or to a file written beside its target and then
renamed over it: a reader never finds it half-written.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from alembic.util.exc import CommandError
from sqlalchemy.exc import SQLAlchemyError

from agent.records.database import create_records_engine, migrate
from agent.records.repository import RecordedAnswer, Records
from agent.records.settings import RecordsSettings
from api.owner_routes import turn_out

BATCH = 500  # answers read per round trip
_MAX_DAYS = 365_000  # anything more means "all of them" (and would overflow a date)


class ExportError(Exception):
    """The export could not be made: the message is one line, secrets left out."""


def transcript_lines(answers: Iterable[RecordedAnswer]) -> Iterator[str]:
    """Each answer as one JSON line (with its newline)."""
    for recorded in answers:
        turn = turn_out(recorded).model_dump(mode="json")
        line = {"conversation": recorded.record.conversation, **turn}
        yield json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"


def export_transcripts(settings: RecordsSettings, days: int, output: Path | None) -> int:
    """Blocking. Writes the answers recorded in the last `days` days; returns how many. Raises ExportError."""
    since = datetime.now(UTC) - timedelta(days=min(days, _MAX_DAYS))
    secrets = [password] if (password := settings.password()) else []
    try:
        records = Records(create_records_engine(settings))
    except (OSError, ImportError, ValueError, SQLAlchemyError) as exc:  # no folder, an unusable DATABASE_URL
        raise ExportError(_one_line(f"Cannot open the records database: {exc}", secrets)) from None
    try:
        # Safe beside a running service: migrations run in one process at a time, and are a no-op when done.
        migrate(records.engine)
        lines = transcript_lines(records.export(since, batch=BATCH))
        if output is None:
            return _write(lines, sys.stdout)
        return _write_file(lines, output)
    except (SQLAlchemyError, CommandError) as exc:  # unreachable, or a schema newer than this code
        raise ExportError(_one_line(f"Cannot read the records database: {exc}", secrets)) from None
    finally:
        records.close()


def _write(lines: Iterable[str], out: IO[str]) -> int:
    count = 0
    for line in lines:
        out.write(line)
        count += 1
    out.flush()
    return count


def _write_file(lines: Iterable[str], target: Path) -> int:
    """Into a temporary file in the target's folder, renamed over the target once complete."""
    target = target.expanduser()
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, renamed or removed
            "w", encoding="utf-8", dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
        )
    except OSError as exc:
        raise ExportError(_one_line(f"Cannot write {target}: {exc}", [])) from None
    temporary = Path(handle.name)
    try:
        with handle:
            count = _write(lines, handle)
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise ExportError(_one_line(f"Cannot write {target}: {exc}", [])) from None
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return count


def _one_line(message: str, secrets: list[str]) -> str:
    line = message.strip().splitlines()[0] if message.strip() else message
    for secret in secrets:
        line = line.replace(secret, "***")
    return line
