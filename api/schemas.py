"""Request and response bodies."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.settings import MESSAGE_CHARS_CEILING
from rag.retriever import Passage

_INVISIBLE = re.compile(
    # C0 and C1 controls but tab and newlines, zero-width characters and bidirectional overrides: invisible to
    # the visitor, they only serve to smuggle text past a reader or a filter.
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


def no_lone_surrogates(data: Any) -> Any:
    """A `model_validator(mode="before")` for request bodies: JSON may escape half of a UTF-16 pair
    (`"\\ud800"`), which is no character at all and cannot be encoded; refused as invalid wherever it is in
    the body (fields the service ignores included), instead of failing later as a 500."""
    pending = [data]
    while pending:  # a loop, not recursion: a deeply nested body must not exhaust the stack
        value = pending.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("text must not contain lone UTF-16 surrogates (invalid Unicode)") from None
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return data


def clean_text(value: str) -> str:
    return _INVISIBLE.sub("", value)


def check_length(text: str, limit: int, field: str) -> None:
    """MAX_MESSAGE_CHARS is a setting, so it is checked here; the answer is the same 422 as the schema's."""
    if len(text) > limit:
        raise RequestValidationError(
            [
                {
                    "type": "string_too_long",
                    "loc": ("body", field),
                    "msg": f"String should have at most {limit} characters",
                    "input": None,
                }
            ]
        )


SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(
        min_length=1,
        max_length=MESSAGE_CHARS_CEILING,
        description="The visitor's question: at most MAX_MESSAGE_CHARS characters (2000 by default).",
    )
    session_id: str | None = Field(
        default=None,
        pattern=SESSION_ID_PATTERN,
        description="Conversation id (the widget makes a UUID): the last turns are kept for follow-ups.",
    )
    use_cache: bool = Field(
        default=True, description="false: skip the cache lookup; the answer is then not stored either."
    )

    _valid_unicode = model_validator(mode="before")(no_lone_surrogates)

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = clean_text(value)
        if not value.strip():
            raise ValueError("message must not be empty")
        return value


class Source(BaseModel):
    id: str
    title: str
    source: str = Field(description="Path relative to the knowledge folder, or a web page's address.")
    score: float


def source_models(passages: Iterable[Passage]) -> list[Source]:
    return [Source(id=p.id, title=p.title, source=p.source, score=p.score) for p in passages]


def sources_of(passages: Iterable[Passage]) -> list[dict[str, Any]]:
    return [source.model_dump() for source in source_models(passages)]


class ModelInfo(BaseModel):
    provider: str = Field(description="gemini, local or extractive (none when no tier answered).")
    model: str
    response_time: float = Field(description="Seconds spent on this request.")


class ChatResponse(BaseModel):
    response: str
    status: Literal["success", "error"]
    cached: bool
    sources: list[Source]
    model_info: ModelInfo
    answer_id: str | None = Field(
        default=None, description="Names this answer in POST /feedback; null when answers are not recorded."
    )
    offer_contact: bool = Field(
        default=False,
        description="The bot could not help (nothing known about it, no answer right now, or the visitor "
        "asked for a person): the widget offers its contact form (POST /leads).",
    )


class TierInfo(BaseModel):
    provider: str
    model: str
    state: str = Field(description="ready, idle (loads on first use), not configured or unavailable.")
    configured: bool
    detail: str = ""
    loaded: bool | None = Field(default=None, description="Local tier: whether its model is in memory.")
    circuit: str | None = Field(default=None, description="Remote tiers: closed, open or half_open.")
    last_error: str | None = Field(default=None, description="Reason of the tier's last failure.")


class LlmInfo(BaseModel):
    active: str | None
    chain: list[TierInfo]


class RecordsHealth(BaseModel):
    state: Literal["ok", "unavailable", "off"] = Field(
        description="ok: answers are recorded; unavailable: the records database cannot be written to "
        "(answers wait in the queue, then are dropped); off: RECORD_ANSWERS=false. Informational: an "
        "unavailable records database does not make `status` degraded, since visitors are still answered."
    )
    database: Literal["sqlite", "postgresql"] | None = Field(
        description="The records database: sqlite (DATA_DIR) or postgresql (DATABASE_URL); null when off."
    )
    queued: int = Field(description="Answer records waiting to be written.")
    dropped: int = Field(description="Answer records dropped since start: the queue was full.")


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="degraded: the knowledge store holds no vectors. The records database is not counted "
        "(see `records`)."
    )
    version: str
    llm: LlmInfo
    vectors: int
    knowledge_version: str
    embedder: Literal["ready", "loading", "not loaded"]
    cache_size: int | None = Field(description="Cached answers; null with a shared cache (see /cache/stats).")
    records: RecordsHealth


class TierStatsOut(BaseModel):
    attempts: int
    successes: int
    failures: dict[str, int]
    failures_total: int
    retries: int
    skipped: dict[str, int]
    answered: int
    answered_share: float = Field(description="Share of answered requests this tier answered.")
    ungrounded: int = Field(
        description="Answers holding a fact their sources do not: withheld (failures.ungrounded, the next "
        "tier answered) or cut before that sentence."
    )
    latency_mean_s: float | None
    latency_p95_s: float | None
    last_error: str | None
    state: str
    circuit: str | None


class LlmStats(BaseModel):
    requests: int
    unanswered: int
    fallback_rate: float = Field(
        description="Share of requests answered by a tier below the best configured one."
    )
    tiers: dict[str, TierStatsOut]


class CacheStats(BaseModel):
    total_entries: int
    valid_entries: int
    expired_entries: int
    cache_ttl_seconds: int
    max_entries: int | None = Field(description="null with Redis: bounded by the TTL and its memory policy.")
    hits: int
    misses: int
    hit_rate: float


class CacheCleared(BaseModel):
    message: str
    removed: int


class ServiceInfo(BaseModel):
    name: str
    version: str
    description: str
    docs: str
    endpoints: dict[str, str]


class HistoryMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str
    sources: list[Source] = Field(default_factory=list)


class HistoryResponse(BaseModel):
    session_id: str
    messages: list[HistoryMessage]


class HistoryCleared(BaseModel):
    message: str
    removed: int


class ErrorBody(BaseModel):
    error: str


class FieldError(BaseModel):
    field: str
    message: str


class ValidationErrorBody(ErrorBody):
    detail: list[FieldError]


class OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """The error shape OpenAI clients read, on the /v1 surface."""

    error: OpenAIError


class IngestSummary(BaseModel):
    status: Literal["up_to_date", "updated", "rebuilt"]
    version: str = Field(description="The knowledge version now served.")
    files: int
    chunks: int
    embedded: int = Field(description="Chunks embedded by this ingest.")
    reused: int = Field(description="Chunks whose vectors were kept from an earlier build.")
    added: list[str]
    changed: list[str]
    removed: list[str]
    skipped: list[str] = Field(description="Files that gave no text (see the log for why).")
    seconds: float


class CrawlError(BaseModel):
    url: str
    reason: str = Field(description="Why the address was not kept: `timeout`, `http_404`, `too_large`, ...")


class CrawlResult(BaseModel):
    pages: int = Field(description="Pages saved or found unchanged: new + changed + unchanged.")
    new: int
    changed: int
    unchanged: int
    kept: int = Field(
        description="Pages not read this time (a passing failure): their previous version kept."
    )
    removed: int = Field(description="Pages gone from the site, so gone from the knowledge.")
    skipped: dict[str, int] = Field(description="Addresses skipped, by reason (robots, other_site, ...).")
    errors: list[CrawlError] = Field(description="Addresses that failed, with why (the first 200).")
    complete: bool = Field(description="Every start URL and sitemap was read (only then are pages removed).")
    requests: int
    seconds: float


class CrawlOut(BaseModel):
    done: int = Field(description="Addresses finished so far (saved, unchanged or skipped).")
    queued: int = Field(description="Addresses found and waiting.")
    pages: int
    skipped: int
    not_due: bool = Field(
        description="A scheduled crawl found the site crawled recently by another replica: nothing crawled."
    )
    result: CrawlResult | None = Field(description="Once the crawl has ended.")


class ReindexJobOut(BaseModel):
    id: str
    kind: Literal["ingest", "crawl"] = Field(
        description="`crawl`: the website (KNOWLEDGE_URLS) crawled, then what changed ingested."
    )
    scheduled: bool = Field(description="Started by CRAWL_INTERVAL rather than by a request.")
    status: Literal["running", "succeeded", "failed"]
    started_at: datetime
    finished_at: datetime | None
    crawl: CrawlOut | None = Field(description="The crawl's progress and result (a crawl job only).")
    to_embed: int = Field(description="Chunks this ingest has to embed (0 until the folder is chunked).")
    embedded: int
    result: IngestSummary | None
    error: str | None


class ReindexConflict(BaseModel):
    error: str
    job: ReindexJobOut


class KnowledgeFile(BaseModel):
    path: str = Field(description="Path relative to the knowledge folder, or a crawled page's address.")
    sha256: str
    chunks: int
    ingested_at: datetime | None = Field(description="When this content of the file was embedded.")
    skipped: str | None = Field(description="Why the file gave no text, if it gave none.")


class PendingChanges(BaseModel):
    added: list[str]
    changed: list[str]
    removed: list[str]
    settings_changed: bool = Field(description="The embedding model or chunking changed: a full rebuild.")


class SiteOut(BaseModel):
    urls: list[str] = Field(description="KNOWLEDGE_URLS: where each crawl starts.")
    interval_seconds: float = Field(description="CRAWL_INTERVAL; 0: crawled only on request.")
    last_crawl_at: datetime | None = Field(description="When the last crawl ended; null: never crawled.")
    next_crawl_at: datetime | None = Field(description="When the next scheduled crawl is due; null: none.")


class KnowledgeOut(BaseModel):
    version: str | None = Field(description="Knowledge version served (part of the answer-cache key).")
    collection: str | None
    embedding_model: str | None
    chunks: int
    documents: int
    up_to_date: bool | None = Field(description="Whether the folder matches what is served; null if unknown.")
    pending: PendingChanges | None = Field(description="What the next reindex would change.")
    folder_error: str | None = Field(default=None, description="Why the folder could not be read.")
    reindex: ReindexJobOut | None = Field(description="The latest reindex since the service started.")
    site: SiteOut | None = Field(description="The website kept as knowledge; null without KNOWLEDGE_URLS.")
    files: list[KnowledgeFile]
