"""The answer records' writer as an operator watches it: `/metrics` lines and `/health`'s `records`, over the
real app, with the records database working, switched off, and unreachable."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from agent.records.writer import RecordWriter, WriterStats
from tests.conftest import AppFactory

QUESTIONS = ("What services do you offer?", "How much does a website cost?", "Where is your office?")
# Nothing listens on port 1: every connection is refused at once.
UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/none"
RECORDS_METRICS = (
    "kb_records_written_total",
    "kb_records_dropped_total",
    "kb_records_queued",
    "kb_records_write_failures_total",
    "kb_records_database_up",
)


def records_metrics(client: TestClient) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name.startswith("kb_records_")
    }


def writer_of(client: TestClient) -> RecordWriter:
    owner = client.app.state.services.owner  # type: ignore[attr-defined]
    assert owner is not None
    writer: RecordWriter = owner.writer
    return writer


def ask(client: TestClient, *questions: str) -> None:
    for question in questions:
        response = client.post("/chat", json={"message": question})
        assert response.status_code == 200, response.text
        assert response.json()["answer_id"]


def failed_once(writer: RecordWriter, timeout: float = 10.0) -> WriterStats:
    """The writer's figures once it has tried (and failed) to write: it tries once a record is queued."""
    deadline = time.monotonic() + timeout
    while (stats := writer.stats()).failures == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stats.failures > 0 and not stats.healthy
    return stats


def test_written_answers_are_counted_and_health_says_ok(make_client: AppFactory) -> None:
    client = make_client()
    assert client.get("/health").json()["records"] == {
        "state": "ok",
        "database": "sqlite",
        "queued": 0,
        "dropped": 0,
    }
    assert records_metrics(client) == {
        "kb_records_written_total": 0,
        "kb_records_dropped_total": 0,
        "kb_records_queued": 0,
        "kb_records_write_failures_total": 0,
        "kb_records_database_up": 1,
    }

    ask(client, *QUESTIONS)
    ask(client, QUESTIONS[0])  # a cached answer is recorded too
    assert writer_of(client).flush(5)

    assert records_metrics(client) == {
        "kb_records_written_total": 4,
        "kb_records_dropped_total": 0,
        "kb_records_queued": 0,
        "kb_records_write_failures_total": 0,
        "kb_records_database_up": 1,
    }
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["records"] == {"state": "ok", "database": "sqlite", "queued": 0, "dropped": 0}


def test_postgresql_records_are_named_in_health(make_client: AppFactory, postgres_url: str) -> None:
    client = make_client(records={"database_url": postgres_url})
    ask(client, QUESTIONS[0])
    assert writer_of(client).flush(5)
    assert client.get("/health").json()["records"] == {
        "state": "ok",
        "database": "postgresql",
        "queued": 0,
        "dropped": 0,
    }
    found = records_metrics(client)
    assert found["kb_records_written_total"] == 1 and found["kb_records_database_up"] == 1


def test_records_switched_off_have_no_metrics_and_health_says_off(make_client: AppFactory) -> None:
    client = make_client(records={"record_answers": False})
    response = client.post("/chat", json={"message": QUESTIONS[0]})
    assert response.status_code == 200 and response.json()["answer_id"] is None

    assert records_metrics(client) == {}
    assert "kb_records_" not in client.get("/metrics").text  # not even HELP or TYPE lines
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["records"] == {"state": "off", "database": None, "queued": 0, "dropped": 0}


def test_an_unreachable_database_is_reported_but_the_service_answers(make_client: AppFactory) -> None:
    client = make_client(records={"database_url": UNREACHABLE})  # the service starts all the same
    ask(client, *QUESTIONS[:2])
    stats = failed_once(writer_of(client))

    health = client.get("/health").json()
    assert health["status"] == "ok"  # a load balancer keeps sending visitors: they are answered
    records = health["records"]
    assert (records["state"], records["database"], records["dropped"]) == ("unavailable", "postgresql", 0)
    assert records["queued"] == 2

    found = records_metrics(client)
    assert set(found) == set(RECORDS_METRICS)
    assert found["kb_records_database_up"] == 0
    assert found["kb_records_written_total"] == 0 and found["kb_records_dropped_total"] == 0
    assert found["kb_records_queued"] == 2
    assert found["kb_records_write_failures_total"] >= stats.failures >= 1

    ask(client, QUESTIONS[2])  # still answered while the writer waits between tries
    assert client.get("/health").json()["records"]["queued"] == 3


def test_a_full_queue_drops_records_and_says_so(make_client: AppFactory) -> None:
    client = make_client(records={"database_url": UNREACHABLE, "record_queue_size": 1})
    ask(client, *QUESTIONS)  # one in the writer's hands, one in the queue, the third dropped
    failed_once(writer_of(client))

    records = client.get("/health").json()["records"]
    assert records["state"] == "unavailable"
    assert records["dropped"] >= 1 and records["queued"] >= 1
    assert records["dropped"] + records["queued"] == len(QUESTIONS)
    found = records_metrics(client)
    assert found["kb_records_dropped_total"] == records["dropped"]
    assert found["kb_records_queued"] == records["queued"]
