"""Settings of the owner's records, read from the environment (or `.env`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SQLITE_FILE = "records.sqlite3"


class RecordsSettings(BaseSettings):
    # A blank variable means the default: docker-compose passes `KEY: ${KEY:-}` through as "".
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    record_answers: bool = Field(
        default=True,
        description="Record every answer (and take feedback, curated answers and the admin reports); false: "
        "no database at all.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:password@host/db for replicas; unset: SQLite in DATA_DIR.",
    )
    data_dir: Path = Field(default=Path("data"), description="Folder of the embedded SQLite database.")
    store_transcripts: bool = Field(
        default=True,
        description="Keep questions and answers; false: only what is counted (time, tier, outcome, latency, "
        "rating), no text and no session.",
    )
    transcript_retention_days: int = Field(
        default=30, ge=1, description="Days answer records are kept; older ones are purged daily."
    )
    record_queue_size: int = Field(
        default=10000,
        ge=1,
        description="Answers waiting to be written; past it (the database down for long) new ones are "
        "counted as dropped.",
    )
    record_batch_size: int = Field(default=200, ge=1, description="Answers written per transaction.")
    curated_threshold: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Cosine similarity at which a visitor's question gets a curated answer.",
    )
    curated_refresh_seconds: float = Field(
        default=10.0, gt=0, description="How often a replica looks for curated answers changed elsewhere."
    )
    gap_similarity: float = Field(
        default=0.7, gt=0, le=1, description="Cosine similarity at which gap questions are one row."
    )
    feedback_comment_chars: int = Field(default=1000, ge=0, description="Longest feedback comment kept.")

    def password(self) -> str | None:
        """The database password in DATABASE_URL, if any: kept out of every log line."""
        if self.database_url is None:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            return make_url(self.url()).password or None
        except ArgumentError:
            return None

    def url(self) -> str:
        """The SQLAlchemy URL: PostgreSQL through psycopg 3, whichever spelling was given."""
        if self.database_url is None:
            return f"sqlite:///{(self.data_dir / SQLITE_FILE).resolve()}"
        url = self.database_url.get_secret_value().strip()
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url
