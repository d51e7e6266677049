"""Settings of the knowledge layer, read from the environment (or `.env`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
# The calibrated relevance decision's defaults (rag.relevance; the agent's RELEVANCE_* settings): here, so
# that reading settings does not import the retrieval code.
DEFAULT_UNRELATED_RATE = 0.05
# The median: a question made only of words the knowledge never uses must be as similar to it as the
# knowledge's own sentences typically are. Lower answers more paraphrased questions, and more near-topic
# ones that it should not (README: the measured trade-off).
DEFAULT_FOREIGN_QUANTILE = 0.5


# A site re-crawled more often than this is being hammered, not kept in sync.
MIN_CRAWL_INTERVAL = 60
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds of "90", "90s", "15m", "12h", "7d"; "off" is 0. ValueError for anything else."""
    value = text.strip().lower()
    if value in {"off", "never", "none"}:
        return 0.0
    unit = _DURATION_UNITS.get(value[-1:], 0)
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (seconds, or a number with s, m, h or d)") from None
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"not a duration: {text!r}")
    return seconds


class RagSettings(BaseSettings):
    # A blank variable means the default: docker-compose passes `KEY: ${KEY:-}` through as "".
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    knowledge_dir: Path = Field(default=Path("knowledge"), description="Folder of documents to answer from.")
    chroma_path: Path = Field(default=Path("chroma_db"), description="Folder of the persistent Chroma store.")
    chroma_host: str | None = Field(
        default=None,
        description="A Chroma server (`chroma run`) shared by replicas; unset: the embedded store.",
    )
    chroma_port: int = Field(default=8000, ge=1, le=65535, description="The Chroma server's port.")
    collection_prefix: str = Field(
        default="knowledge",
        min_length=3,
        max_length=40,
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$",
        description="Prefix of the Chroma collections this service owns.",
    )
    embedding_model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        description="Sentence-transformers model: the bundled default or a local folder.",
    )
    embedding_batch_size: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Texts per embedding batch (16 was fastest on CPU in bench.ingest).",
    )
    embedding_backend: Literal["auto", "onnx", "torch"] = Field(
        default="auto",
        description=(
            "auto: ONNX Runtime once the model's graph is exported (no torch import), else torch while it is "
            "exported in the background; onnx: export now if needed, fail if impossible; torch: never export."
        ),
    )
    embedding_cache_dir: Path = Field(
        default=Path("models/embeddings"),
        description="Folder of exported ONNX graphs, one subfolder per model fingerprint.",
    )
    embedding_threads: int = Field(
        default=0, ge=0, description="ONNX Runtime threads per embedding call; 0: one per physical core."
    )
    chunk_size: int = Field(
        default=200,
        ge=32,
        le=8192,
        description="Tokens per chunk, at most (fewer where the title and headings need room in the window).",
    )
    chunk_overlap: int = Field(
        default=32, ge=0, description="Tokens of whole sentences carried into the next chunk."
    )
    knowledge_max_file_mb: float = Field(
        default=25, gt=0, description="Largest knowledge file read; a larger one is skipped with a log line."
    )
    knowledge_max_text_chars: int = Field(
        default=2_000_000,
        ge=1000,
        description="Most text one file may give (a PDF can inflate); more: skipped.",
    )
    parser_timeout: float = Field(
        default=60, gt=0, description="Seconds a PDF or HTML file may take to parse; longer: skipped."
    )
    parser_memory_mb: int = Field(
        default=1024, ge=128, description="Memory the process parsing one PDF or HTML file may use."
    )
    top_k: int = Field(default=4, ge=1, le=50, description="Passages retrieved per question.")
    retriever: Literal["dense", "lexical", "hybrid"] = Field(
        default="hybrid", description="dense (MiniLM), lexical (BM25) or hybrid (both, fused)."
    )
    hybrid_fusion: Literal["rrf", "convex"] = Field(
        default="convex", description="How hybrid fuses: reciprocal ranks, or a weighted sum of scores."
    )
    hybrid_alpha: float = Field(
        default=0.5, ge=0, le=1, description="Weight of the dense score in convex fusion."
    )

    knowledge_urls: str = Field(
        default="",
        description="Comma-separated start pages or sitemaps of the owner's website, crawled as knowledge.",
    )
    crawl_max_pages: int = Field(default=500, ge=1, description="Most pages one crawl asks for.")
    crawl_max_depth: int = Field(
        default=5, ge=0, description="Most link hops from a start page (pages listed in a sitemap: none)."
    )
    crawl_max_page_mb: float = Field(
        default=5, gt=0, description="Largest page or PDF fetched; a larger one is skipped with a log line."
    )
    crawl_concurrency: int = Field(default=4, ge=1, le=64, description="Requests in flight at once.")
    crawl_timeout: float = Field(default=15, gt=0, description="Seconds one request may take, body included.")
    crawl_user_agent: str = Field(
        default="kb-chatbot-crawler/1",
        min_length=1,
        max_length=200,
        # Sent as a header: printable ASCII only, so it cannot carry a line break into the request.
        pattern=r"^[!-~][ -~]*$",
        description="User-Agent the crawler sends, and the name robots.txt rules are matched against.",
    )
    crawl_delay_max: float = Field(
        default=10,
        ge=0,
        description="Most seconds of a robots.txt Crawl-delay honoured; a longer one is capped (logged).",
    )
    crawl_interval: float = Field(
        default=24 * 3600,
        ge=0,
        description=(
            "How often the service re-crawls KNOWLEDGE_URLS and ingests what changed: seconds, or a number "
            "with s, m, h or d (`12h`, `7d`); 0 or `off`: only on request (POST /admin/crawl)."
        ),
    )
    site_dir: Path | None = Field(
        default=None,
        description="Folder of the website snapshot; unset: CHROMA_PATH/site. Replicas share one.",
    )

    @field_validator("crawl_interval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        seconds = parse_duration(value) if isinstance(value, str) else value
        if isinstance(seconds, int | float) and 0 < seconds < MIN_CRAWL_INTERVAL:
            raise ValueError(f"CRAWL_INTERVAL must be 0 (off) or at least {MIN_CRAWL_INTERVAL} seconds")
        return seconds

    @field_validator("knowledge_urls")
    @classmethod
    def _http_urls(cls, value: str) -> str:
        # Imported here: the crawler imports these settings.
        from rag.crawl.urls import check_start_url, split_urls

        for url in split_urls(value):
            try:
                check_start_url(url)
            except ValueError as exc:
                raise ValueError(f"KNOWLEDGE_URLS: {exc}") from None
        return value

    @property
    def knowledge_url_list(self) -> list[str]:
        """KNOWLEDGE_URLS as a list."""
        from rag.crawl.urls import split_urls

        return split_urls(self.knowledge_urls)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> RagSettings:
        if self.chunk_overlap >= self.chunk_size // 2:
            raise ValueError("CHUNK_OVERLAP must be less than half of CHUNK_SIZE")
        return self
