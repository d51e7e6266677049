"""Prometheus metrics (prometheus-client), one registry per app: `GET /metrics`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from agent.chain import GeneratorChain
    from agent.records.writer import RecordWriter

_CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "kb_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "kb_http_request_duration_seconds",
            "Time to the end of the response (streams included), by route.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.cache_lookups = Counter(
            "kb_answer_cache_lookups", "Answer-cache lookups.", ["result"], registry=r
        )
        self.answers = Counter(
            "kb_answers",
            "Answers given, by the tier that gave them.",
            ["provider", "status", "cached"],
            registry=r,
        )
        self.rate_limited = Counter(
            "kb_rate_limited_requests", "Requests refused with 429.", ["route"], registry=r
        )
        self.ingests = Counter("kb_ingest_runs", "Ingests, by outcome.", ["status"], registry=r)
        self.embedded = Counter("kb_ingest_chunks_embedded", "Chunks embedded by ingests.", registry=r)
        self.lead_deliveries = Counter(
            "kb_lead_deliveries",
            "Attempts to deliver contact requests, by channel and result (delivered, retry, failed).",
            ["channel", "result"],
            registry=r,
        )

    def lead_deliveries_counter(self) -> Callable[[str, str], None]:
        return lambda channel, result: self.lead_deliveries.labels(channel, result).inc()

    def watch_chain(self, chain: GeneratorChain) -> None:
        """Tier attempts, failures, retries and circuits, read from the chain's own figures at scrape time."""
        self.registry.register(_ChainCollector(chain))

    def watch_records(self, writer: RecordWriter | None) -> None:
        """The answer records' writer (written, dropped, queued, failures, database up), read from its own
        figures at scrape time; nothing when answers are not recorded (None)."""
        if writer is not None:
            self.registry.register(_RecordsCollector(writer))


class _ChainCollector(Collector):
    def __init__(self, chain: GeneratorChain) -> None:
        self._chain = chain

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        snapshot = self._chain.stats.snapshot()
        attempts = CounterMetricFamily("kb_llm_attempts", "Calls to each tier.", labels=["provider"])
        retries = CounterMetricFamily("kb_llm_retries", "Retries of each tier.", labels=["provider"])
        failures = CounterMetricFamily(
            "kb_llm_failures", "Tier failures by reason.", labels=["provider", "reason"]
        )
        ungrounded = CounterMetricFamily(
            "kb_llm_ungrounded",
            "Answers holding a fact their sources do not: withheld (the next tier answered) or cut short.",
            labels=["provider"],
        )
        for provider, tier in snapshot["tiers"].items():
            attempts.add_metric([provider], tier["attempts"])
            ungrounded.add_metric([provider], tier["ungrounded"])
            retries.add_metric([provider], tier["retries"])
            for reason, count in tier["failures"].items():
                failures.add_metric([provider, reason], count)
        circuits = GaugeMetricFamily(
            "kb_llm_circuit_state",
            "Circuit of each remote tier: 0 closed, 1 half open, 2 open.",
            labels=["provider"],
        )
        for view in self._chain.describe():
            if view.circuit is not None:
                circuits.add_metric([view.generator.provider], _CIRCUIT_STATES.get(view.circuit, 0))
        yield from (attempts, retries, failures, ungrounded, circuits)


class _RecordsCollector(Collector):
    def __init__(self, writer: RecordWriter) -> None:
        self._writer = writer

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._writer.stats()
        yield CounterMetricFamily(
            "kb_records_written", "Answer records written to the records database.", value=stats.written
        )
        yield CounterMetricFamily(
            "kb_records_dropped",
            "Answer records dropped: too many waiting (the database down for long), refused by the database, "
            "or lost with a record writer process that died.",
            value=stats.dropped,
        )
        yield GaugeMetricFamily(
            "kb_records_queued", "Answer records waiting to be written.", value=stats.queued
        )
        yield CounterMetricFamily(
            "kb_records_write_failures",
            "Failed writes of a batch of answer records (each retried).",
            value=stats.failures,
        )
        yield GaugeMetricFamily(
            "kb_records_database_up",
            "1 when the latest write to the records database succeeded (or none was tried yet), else 0.",
            value=1 if stats.healthy else 0,
        )


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template (never the raw path: ids and made-up
    URLs would make a label per request)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # Each label set's children, looked up once: a handful of routes x methods x statuses.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before it answers

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            key = (getattr(scope.get("route"), "path", "unmatched"), scope["method"], status)
            children = self._children.get(key)
            if children is None:
                route, method, _ = key
                children = (
                    self.metrics.requests.labels(route, method, str(status)),
                    self.metrics.latency.labels(route, method),
                )
                self._children[key] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - started)
