"""`python -m api export-transcripts` as an operator runs it: a real process over a real records database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.records.database import create_records_engine, migrate
from agent.records.repository import AnswerRecord, Records
from agent.records.settings import RecordsSettings

NOW = datetime.now(UTC)
TURN_FIELDS = {
    "conversation",
    "answer_id",
    "at",
    "surface",
    "question",
    "answer",
    "provider",
    "model",
    "outcome",
    "cached",
    "degraded",
    "sources",
    "retrieval_ms",
    "total_ms",
    "feedback",
}
# Whatever the environment running the tests says about the records, the process gets only what a test sets.
RECORDS_VARIABLES = ("DATABASE_URL", "DATA_DIR", "RECORD_ANSWERS", "STORE_TRANSCRIPTS")


def answer(answer_id: str, age: timedelta, conversation: str, question: str) -> AnswerRecord:
    return AnswerRecord(
        id=answer_id,
        created_at=NOW - age,
        conversation=conversation,
        surface="chat",
        question=question,
        answer=f'About {question.lower()}: ünïcödé and "quotes"\nover two lines.',
        provider="extractive",
        model="extractive",
        outcome="extractive",
        degraded=True,
        cached=False,
        sources=[{"source": "services.md", "title": "Services", "score": 0.61}],
        retrieval_ms=12.5,
        total_ms=40.25,
    )


def fill(settings: RecordsSettings) -> None:
    """Four answers: one 10 days old, three within the week (written out of order), two of them rated."""
    records = Records(create_records_engine(settings))
    migrate(records.engine)
    records.add_answers(
        [
            answer("c" * 32, timedelta(hours=1), "conv-b", "Newest question"),
            answer("0" * 32, timedelta(days=10), "conv-a", "Too old question"),
            answer("a" * 32, timedelta(days=3), "conv-a", "Oldest kept question"),
            answer("b" * 32, timedelta(days=2), "conv-a", "Middle question"),
        ]
    )
    assert records.rate("b" * 32, "down", "Not what I asked", NOW - timedelta(days=1))
    assert records.rate("0" * 32, "up", None, NOW - timedelta(days=9))
    records.close()


@pytest.fixture
def records_dir(tmp_path: Path) -> Path:
    """A SQLite records database in DATA_DIR, filled."""
    data_dir = tmp_path / "data"
    fill(RecordsSettings(_env_file=None, data_dir=data_dir))  # type: ignore[call-arg]
    return data_dir


def export(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if key not in RECORDS_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "api", "export-transcripts", *args],
        cwd=cwd,  # no `.env` of the checkout
        env={**base, "LOG_FORMAT": "json", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def lines_of(text: str) -> list[dict[str, Any]]:
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_exports_the_last_days_oldest_first_to_a_file(tmp_path: Path, records_dir: Path) -> None:
    target = tmp_path / "out" / "transcripts.jsonl"
    target.parent.mkdir()
    target.write_text("an older export\n")

    done = export(tmp_path, "--days", "7", "--output", str(target), DATA_DIR=str(records_dir))

    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # the file holds the export, stdout nothing
    assert "Traceback" not in done.stderr
    rows = lines_of(target.read_text(encoding="utf-8"))
    assert [row["answer_id"] for row in rows] == ["a" * 32, "b" * 32, "c" * 32]  # the old one left out
    assert all(set(row) == TURN_FIELDS for row in rows)
    assert [row["conversation"] for row in rows] == ["conv-a", "conv-a", "conv-b"]
    first, rated, newest = rows
    assert first["question"] == "Oldest kept question"
    assert first["answer"] == 'About oldest kept question: ünïcödé and "quotes"\nover two lines.'
    assert first["sources"] == [{"source": "services.md", "title": "Services", "score": 0.61}]
    assert (first["provider"], first["outcome"], first["degraded"], first["cached"]) == (
        "extractive",
        "extractive",
        True,
        False,
    )
    assert (first["retrieval_ms"], first["total_ms"]) == (12.5, 40.25)
    assert datetime.fromisoformat(first["at"]) == NOW - timedelta(days=3)
    assert first["feedback"] is None and newest["feedback"] is None
    assert rated["feedback"]["rating"] == "down"
    assert rated["feedback"]["comment"] == "Not what I asked"
    assert datetime.fromisoformat(rated["feedback"]["rated_at"]) == NOW - timedelta(days=1)
    assert sorted(path.name for path in target.parent.iterdir()) == ["transcripts.jsonl"]  # no temp file left


def test_exports_to_stdout_and_nothing_else(tmp_path: Path, records_dir: Path) -> None:
    done = export(tmp_path, "--days", "7", DATA_DIR=str(records_dir))
    assert done.returncode == 0, done.stderr
    assert [row["answer_id"] for row in lines_of(done.stdout)] == ["a" * 32, "b" * 32, "c" * 32]

    everything = export(tmp_path, DATA_DIR=str(records_dir))  # 30 days by default: the old one too
    assert everything.returncode == 0, everything.stderr
    rows = lines_of(everything.stdout)
    assert [row["answer_id"] for row in rows] == ["0" * 32, "a" * 32, "b" * 32, "c" * 32]
    assert rows[0]["feedback"]["rating"] == "up"


def test_exports_from_postgresql_with_database_url(tmp_path: Path, postgres_url: str) -> None:
    fill(RecordsSettings(_env_file=None, database_url=postgres_url))  # type: ignore[call-arg]
    # The spelling an operator gives: postgresql://, which the settings turn into psycopg 3's URL.
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    target = tmp_path / "pg.jsonl"
    done = export(tmp_path, "--days", "7", "--output", str(target), DATABASE_URL=url)
    assert done.returncode == 0, done.stderr
    rows = lines_of(target.read_text(encoding="utf-8"))
    assert [row["answer_id"] for row in rows] == ["a" * 32, "b" * 32, "c" * 32]
    assert rows[1]["feedback"]["comment"] == "Not what I asked"
    assert not (tmp_path / "data").exists()  # no SQLite file made beside it


def test_an_empty_database_exports_nothing(tmp_path: Path) -> None:
    target = tmp_path / "empty.jsonl"
    done = export(tmp_path, "--output", str(target), DATA_DIR=str(tmp_path / "fresh"))
    assert done.returncode == 0, done.stderr
    assert target.read_text() == "" and done.stdout == ""


def test_an_unreachable_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    target = tmp_path / "never.jsonl"
    done = export(
        tmp_path,
        "--days",
        "7",
        "--output",
        str(target),
        DATABASE_URL="postgresql://nobody:s3cret-pw@127.0.0.1:1/x",
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("export-transcripts: Cannot read the records database:")
    assert "Traceback" not in done.stderr and "s3cret-pw" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # no file, not even a temporary one


@pytest.mark.parametrize("days", ["0", "-3", "week"])
def test_days_below_one_is_refused_by_the_parser(tmp_path: Path, days: str) -> None:
    done = export(tmp_path, "--days", days, DATA_DIR=str(tmp_path / "data"))
    assert done.returncode == 2
    assert done.stdout == ""
    assert "usage: python -m api export-transcripts" in done.stderr and "--days" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before any database is opened
