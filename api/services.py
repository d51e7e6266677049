"""The long-lived objects the routes use, built once in the lifespan."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import structlog

from agent.agent import Agent
from agent.conversations import ConversationStore
from agent.factory import build_agent
from agent.generators.gemini import GeminiGenerator
from agent.generators.local import LocalGenerator
from agent.generators.openai_compat import OpenAICompatGenerator
from agent.leads.desk import LeadDesk, open_leads
from agent.records.owner import OwnerRecords, open_records
from api.cache import AnswerCache
from api.ingest_lock import ingest_guard
from api.metrics import Metrics
from api.settings import Settings
from api.site_crawl import SiteCrawler
from rag.embedder import Embedder, embedder_for
from rag.errors import RetrievalError
from rag.ingestion import IngestReport, ProgressFactory, ensure_ingested
from rag.reindex import Reindexer, logged_progress
from rag.retriever import Retriever
from rag.store import KnowledgeStore, open_store
from rag.store_lock import own_embedded_store

log = structlog.get_logger(__name__)


@dataclass
class Services:
    settings: Settings
    store: KnowledgeStore
    embedder: Embedder
    agent: Agent
    cache: AnswerCache
    conversations: ConversationStore
    reindexer: Reindexer
    metrics: Metrics
    owner: OwnerRecords | None = None  # None: RECORD_ANSWERS=false
    leads: LeadDesk | None = None  # on the records database: None when it is off
    site: SiteCrawler | None = None  # None: no KNOWLEDGE_URLS

    async def aclose(self) -> None:
        if self.site is not None:
            self.site.stop()  # a crawl in progress ends now; its previous snapshot stays as it was
        await self.agent.aclose()
        if self.leads is not None:
            await self.leads.courier.aclose()
        if self.owner is not None:
            await asyncio.to_thread(self.owner.close)  # writes what is queued, for a few seconds at most
        self.store.close()


def build_services(
    settings: Settings, cache: AnswerCache, conversations: ConversationStore, metrics: Metrics
) -> Services:
    """Blocking (opens the store, may embed): run it in a worker thread."""
    rag = settings.rag
    if not rag.chroma_host:
        own_embedded_store(rag.chroma_path)  # a second worker on the same folder stops here, clearly
    store = open_store(rag)
    embedder = embedder_for(rag)
    guard = ingest_guard(settings)

    def ingest(progress: ProgressFactory) -> IngestReport:
        try:
            with guard():
                report = ensure_ingested(store, embedder, rag, progress=progress)
        except Exception:
            metrics.ingests.labels("failed").inc()
            raise
        metrics.ingests.labels(report.status).inc()
        metrics.embedded.inc(report.embedded)
        return report

    if settings.api.ingest_on_start:
        ingest(logged_progress())
    retriever = Retriever.of(store, embedder, rag)
    retriever.prepare()

    def reindex(progress: ProgressFactory) -> IngestReport:
        report = ingest(progress)
        retriever.prepare()  # the new build's keyword index, before a visitor's question needs it
        agent.prepare()  # and the relevance calibration of the new knowledge
        return report

    crawler = SiteCrawler(settings, guard) if rag.knowledge_url_list else None

    owner = (
        open_records(settings.records, embedder, settings.logging, settings.secrets())
        if settings.records.record_answers
        else None
    )
    agent = build_agent(
        settings.agent,
        retriever,
        settings.secrets(),
        curated=owner.curated if owner else None,
        contact_form=owner is not None,
    )
    agent.chain.describe()  # each tier resolves what it can do (file look-ups) here, not in a request
    if settings.agent.local_model_preload:
        for tier in agent.chain.tiers:
            if isinstance(tier.generator, LocalGenerator):
                tier.generator.preload()
    remote = [
        t.generator
        for t in agent.chain.tiers
        if isinstance(t.generator, GeminiGenerator | OpenAICompatGenerator)
    ]
    if remote:  # their SDKs take a second to import: not on a visitor's first question
        threading.Thread(target=_warm_clients, args=(remote,), name="client-warmup", daemon=True).start()
    if settings.api.embedder_warmup:
        # The first question would otherwise wait seconds for the model and the relevance calibration;
        # health says "loading" meanwhile.
        threading.Thread(target=_warm, args=(embedder, agent), name="embedder-warmup", daemon=True).start()
    metrics.watch_chain(agent.chain)
    metrics.watch_records(owner.writer if owner is not None else None)
    leads = (
        open_leads(owner.records.engine, settings.leads, metrics.lead_deliveries_counter())
        if owner is not None
        else None
    )
    reindexer = Reindexer(reindex, crawler.crawl if crawler else None)
    return Services(
        settings, store, embedder, agent, cache, conversations, reindexer, metrics, owner, leads, crawler
    )


def _warm_clients(generators: list[GeminiGenerator | OpenAICompatGenerator]) -> None:
    for generator in generators:
        try:
            generator.warm_up()
        except (ImportError, ValueError) as exc:  # the first request tries again and reports what fails
            log.warning("client_warmup_failed", tier=generator.provider, error=str(exc))


def _warm(embedder: Embedder, agent: Agent) -> None:
    try:
        embedder.load()
        agent.prepare()
    except RetrievalError as exc:  # an embedding error too
        log.error("embedder_warmup_failed", error=str(exc))
