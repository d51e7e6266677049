"""The site owner's loop over the real app and a real database (SQLite, and a PostgreSQL server the tests
start): every answer recorded, feedback, the knowledge-gap report, curated answers, transcripts, retention,
and a database that goes away mid-traffic."""

from __future__ import annotations

import json
import os
import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from agent.records.database import create_records_engine, migrate
from agent.records.repository import AnswerRecord, Records
from agent.records.settings import RecordsSettings
from agent.records.worker import RecordSink
from fakes.llm_server import Reply
from fakes.openai_server import FakeOpenAI
from tests.conftest import NO_ENV_FILE, AppFactory
from tests.servers.postgres import PostgresServer
from tests.test_streaming import sse

MODEL_TEXT = "We design, build and host websites for small businesses."


@pytest.fixture(params=["sqlite", "postgresql"])
def records(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The records' settings: the embedded SQLite file, or a fresh database on a real PostgreSQL server."""
    if request.param == "sqlite":
        return {}
    return {"database_url": request.getfixturevalue("postgres_url")}


def model_chain(openai: FakeOpenAI) -> dict[str, Any]:
    return {
        "llm_chain": "openai,extractive",
        "openai_base_url": openai.base_url,
        "openai_model": "fake-model",
        "openai_timeout": 5.0,
        "max_retries": 0,
        "circuit_breaker_failures": 100,
    }


def ask(client: TestClient, message: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/chat", json={"message": message, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def written(client: TestClient) -> None:
    """Waits until the batch writer has written every answer so far."""
    assert client.app.state.services.owner.writer.flush(15)  # type: ignore[attr-defined]


def rate(client: TestClient, answer_id: str, rating: str, comment: str | None = None) -> int:
    body = {"answer_id": answer_id, "rating": rating, **({"comment": comment} if comment else {})}
    return client.post("/feedback", json=body).status_code


def test_a_day_of_visitors_gives_the_gap_report(
    make_client: AppFactory, fake_openai: FakeOpenAI, records: dict[str, Any]
) -> None:
    client = make_client(agent=model_chain(fake_openai), records=records)
    fake_openai.reset(default=Reply(text=MODEL_TEXT))

    services = ask(client, "What services do you offer?")
    assert services["model_info"]["provider"] == "openai"
    ask(client, "Where are you based?")
    again = ask(client, "What services do you offer?")
    assert again["cached"] is True and again["answer_id"] != services["answer_id"]
    grooming = [
        ask(client, question)
        for question in (
            "Do you offer dog grooming?",
            "Can you groom my dog?",
            "Is dog grooming something you do?",
        )
    ]
    assert {g["model_info"]["model"] for g in grooming} == {"no-match"}
    peru = ask(client, "What is the capital of Peru?")
    assert peru["model_info"]["model"] == "no-match"
    cost = ask(client, "How much does a website cost?")
    assert cost["model_info"]["provider"] == "openai"
    fake_openai.reset(
        Reply(status=400, text=None, body={"error": {"message": "bad request"}}),
        default=Reply(text=MODEL_TEXT),
    )
    fallback = ask(client, "Do you offer website hosting?", use_cache=False)
    assert fallback["model_info"]["provider"] == "extractive"

    assert rate(client, services["answer_id"], "up") == 200
    assert rate(client, cost["answer_id"], "up") == 200
    assert rate(client, cost["answer_id"], "down", "Prices are not on the page") == 200  # replaces the first
    written(client)

    report = client.get("/admin/gaps", params={"days": 1})
    assert report.status_code == 200
    gaps = report.json()["gaps"]
    by_example = {gap["examples"][-1]: gap for gap in gaps}
    assert len(gaps) == 4, [g["examples"] for g in gaps]
    dog = by_example["Do you offer dog grooming?"]
    assert dog["count"] == 3 and dog["reasons"] == {"no_match": 3}
    assert dog["examples"] == [
        "Is dog grooming something you do?",
        "Can you groom my dog?",
        "Do you offer dog grooming?",
    ]
    assert set(dog["answer_ids"]) == {g["answer_id"] for g in grooming}
    assert by_example["What is the capital of Peru?"]["reasons"] == {"no_match": 1}
    assert by_example["How much does a website cost?"]["reasons"] == {"rated_down": 1}
    hosting = by_example["Do you offer website hosting?"]
    assert hosting["reasons"] == {"extractive": 1}
    assert hosting["nearest"]["source"] and 0 < hosting["nearest"]["score"] <= 1
    assert hosting["curate"] == {
        "method": "POST",
        "href": "/admin/answers",
        "body": {"questions": ["Do you offer website hosting?"], "answer": ""},
    }
    assert [g["examples"][0] for g in gaps] == [  # newest first
        "Do you offer website hosting?",
        "How much does a website cost?",
        "What is the capital of Peru?",
        "Is dog grooming something you do?",
    ]

    csv_report = client.get("/admin/gaps", params={"days": 1, "format": "csv"})
    assert csv_report.headers["content-type"].startswith("text/csv")
    lines = csv_report.text.strip().splitlines()
    assert lines[0].startswith("count,last_asked,question") and len(lines) == 5
    assert any(line.startswith("3,") and "dog grooming" in line for line in lines)

    page = client.get("/admin/conversations", params={"days": 1}).json()
    assert page["total"] == 9  # every answer, the cached one too, each its own conversation
    down = client.get("/admin/conversations", params={"rating": "down"}).json()
    assert [c["first_question"] for c in down["conversations"]] == ["How much does a website cost?"]
    missing = client.get("/admin/conversations", params={"no_answer": True}).json()
    assert missing["total"] == 4
    turn = client.get(f"/admin/conversations/{cost['answer_id']}").json()["turns"][0]
    assert (
        turn["feedback"]["rating"] == "down" and turn["feedback"]["comment"] == "Prices are not on the page"
    )
    assert turn["provider"] == "openai" and turn["outcome"] == "answered" and turn["answer"] == MODEL_TEXT
    assert turn["sources"] and turn["retrieval_ms"] > 0 and turn["total_ms"] > 0


def test_every_surface_is_recorded_with_its_answer_id(
    make_client: AppFactory, records: dict[str, Any]
) -> None:
    client = make_client(records=records)
    plain = ask(client, "What services do you offer?", session_id="visitor-1")
    streamed = client.post(
        "/chat/stream", json={"message": "Where are you based?", "session_id": "visitor-1"}
    )
    done = dict(sse(streamed.text))["done"]
    completion = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "Who are you?"}]}
    )
    openai_id = completion.json()["answer_id"]
    written(client)

    ids = [plain["answer_id"], done["answer_id"], openai_id]
    assert all(isinstance(i, str) and len(i) == 32 for i in ids) and len(set(ids)) == 3
    page = client.get("/admin/conversations", params={"days": 1}).json()
    assert page["total"] == 2  # the session's two answers are one conversation
    session = next(c for c in page["conversations"] if c["turns"] == 2)
    assert "visitor-1" not in json.dumps(page)  # the session id is kept hashed only
    turns = client.get(f"/admin/conversations/{session['id']}").json()["turns"]
    assert [(t["surface"], t["answer_id"]) for t in turns] == [("chat", ids[0]), ("chat_stream", ids[1])]
    assert all(rate(client, i, "up") == 200 for i in ids)


def test_feedback_is_checked_and_rate_limited_apart_from_questions(make_client: AppFactory) -> None:
    client = make_client(api={"rate_limit_chat": "3/minute"}, records={"feedback_comment_chars": 10})
    answer_id = ask(client, "What services do you offer?")["answer_id"]

    assert rate(client, "0" * 32, "up") == 404
    assert client.post("/feedback", json={"answer_id": answer_id, "rating": "meh"}).status_code == 422
    assert client.post("/feedback", json={"answer_id": "../etc", "rating": "up"}).status_code == 422
    assert rate(client, answer_id, "down", "Far too long a comment to keep whole") == 200
    written(client)
    turn = client.get(f"/admin/conversations/{answer_id}").json()["turns"][0]
    assert turn["feedback"]["comment"] == "Far too lo"
    assert rate(client, answer_id, "up") == 200
    assert rate(client, answer_id, "up") == 429  # the chat limit, counted for feedback alone
    assert ask(client, "Where are you based?")["status"] == "success"  # ratings spent no questions


def test_a_curated_answer_is_served_for_a_paraphrase_only(
    make_client: AppFactory, records: dict[str, Any]
) -> None:
    client = make_client(records=records)
    before = ask(client, "Can I buy a submarine from you?")
    assert before["model_info"]["model"] == "no-match"
    unrelated_first = ask(client, "What services do you offer?")
    assert ask(client, "Can I buy a submarine from you?")["cached"] is True

    created = client.post(
        "/admin/answers",
        json={
            "questions": ["Do you sell submarines?"],
            "answer": "No, we build websites, not submarines.",
            "sources": ["faq.md"],
        },
    )
    assert created.status_code == 201
    entry = created.json()
    assert created.headers["location"] == f"/admin/answers/{entry['id']}"

    served = ask(client, "Can I buy a submarine from you?")  # its cached no-match was dropped
    assert served["cached"] is False
    assert served["model_info"] == {**served["model_info"], "provider": "curated", "model": entry["id"]}
    assert served["response"] == "No, we build websites, not submarines."
    assert [s["source"] for s in served["sources"]] == ["faq.md"]
    unrelated = ask(client, "What services do you offer?")
    assert unrelated["cached"] is True and unrelated["response"] == unrelated_first["response"]  # left cached
    assert ask(client, "Where are you based?")["model_info"]["provider"] != "curated"

    changed = client.put(
        f"/admin/answers/{entry['id']}",
        json={
            "questions": ["Do you sell submarines?", "Do you make boats?"],
            "answer": "We only build websites.",
        },
    )
    assert changed.status_code == 200 and changed.json()["questions"] == [
        "Do you sell submarines?",
        "Do you make boats?",
    ]
    assert ask(client, "Can I buy a submarine from you?")["response"] == "We only build websites."
    assert [a["id"] for a in client.get("/admin/answers").json()["answers"]] == [entry["id"]]

    assert client.delete(f"/admin/answers/{entry['id']}").status_code == 204
    assert client.delete(f"/admin/answers/{entry['id']}").status_code == 404
    assert client.get(f"/admin/answers/{entry['id']}").status_code == 404
    assert ask(client, "Can I buy a submarine from you?")["model_info"]["model"] == "no-match"
    assert client.post("/admin/answers", json={"questions": [" "], "answer": "x"}).status_code == 422
    assert client.post("/admin/answers", json={"questions": [], "answer": "x"}).status_code == 422


def test_a_replica_picks_up_curated_answers_changed_elsewhere(
    make_client: AppFactory, postgres_url: str
) -> None:
    records = {"database_url": postgres_url, "curated_refresh_seconds": 0.2}
    one, two = make_client(records=records), make_client(records=records)
    assert ask(two, "Can I buy a submarine from you?")["model_info"]["model"] == "no-match"
    one.post(
        "/admin/answers", json={"questions": ["Do you sell submarines?"], "answer": "No submarines here."}
    )

    for _ in range(50):
        reply = ask(two, "Can I buy a submarine from you?", use_cache=False)
        if reply["model_info"]["provider"] == "curated":
            break
        threading.Event().wait(0.1)
    assert reply["response"] == "No submarines here."


def test_the_database_stopped_mid_traffic_loses_no_answer(
    make_client: AppFactory, postgres_url: str, postgres_server: PostgresServer
) -> None:
    client = make_client(records={"database_url": postgres_url})
    questions = ["What services do you offer?", "Where are you based?", "Do you offer website hosting?"]
    first = [ask(client, q, use_cache=False) for q in questions]
    written(client)

    postgres_server.stop()
    try:
        during = [ask(client, q, use_cache=False) for q in questions * 2]
        assert all(r["status"] == "success" and r["answer_id"] for r in during)  # visitors never notice
        assert rate(client, first[0]["answer_id"], "up") == 503  # the owner's side says so
        assert client.get("/admin/gaps").status_code == 503
    finally:
        postgres_server.start()
    written(client)  # the waiting records go in once the database is back
    page = client.get("/admin/conversations", params={"days": 1, "per_page": 200}).json()
    assert page["total"] == len(first) + len(during)
    assert client.app.state.services.owner.writer.stats().dropped == 0  # type: ignore[attr-defined]


def test_transcripts_off_keeps_only_what_is_counted(make_client: AppFactory) -> None:
    client = make_client(records={"store_transcripts": False})
    reply = ask(client, "Do you offer dog grooming? Mail me at jo@example.com", session_id="visitor-2")
    written(client)
    turn = client.get(f"/admin/conversations/{reply['answer_id']}").json()["turns"][0]
    assert turn["question"] is None and turn["answer"] is None and turn["sources"] is None
    assert turn["outcome"] == "no_match" and turn["total_ms"] > 0
    assert client.get("/admin/gaps").json()["gaps"] == []
    assert rate(client, reply["answer_id"], "down") == 200


def test_contact_details_are_masked_in_the_record(make_client: AppFactory) -> None:
    client = make_client()
    reply = ask(client, "Can you call me on +44 117 496 0738 or mail jo@example.com about pricing?")
    written(client)
    question = client.get(f"/admin/conversations/{reply['answer_id']}").json()["turns"][0]["question"]
    assert "jo@example.com" not in question and "496 0738" not in question and "pricing" in question


def test_recording_off_means_no_database_and_no_ids(make_client: AppFactory) -> None:
    client = make_client(records={"record_answers": False})
    reply = ask(client, "What services do you offer?")
    assert reply["answer_id"] is None
    assert client.get("/admin/gaps").status_code == 404
    assert client.post("/feedback", json={"answer_id": "a" * 32, "rating": "up"}).status_code == 404


def _record(answer_id: str, at: datetime) -> AnswerRecord:
    return AnswerRecord(
        answer_id,
        at,
        answer_id,
        "chat",
        "q",
        "a",
        "extractive",
        "extractive",
        "extractive",
        False,
        False,
        [],
        1.0,
        2.0,
    )


def test_records_past_their_retention_are_purged_daily(records: dict[str, Any], tmp_path: Any) -> None:
    settings = RecordsSettings(
        **{**NO_ENV_FILE, "data_dir": tmp_path, "transcript_retention_days": 30, **records}
    )
    store = Records(create_records_engine(settings))
    migrate(store.engine)
    now = [datetime(2026, 6, 1, 12, tzinfo=UTC)]
    old, young = "a" * 32, "b" * 32
    store.add_answers(
        [_record(old, now[0] - timedelta(days=31)), _record(young, now[0] - timedelta(days=29))]
    )
    store.rate(old, "down", "old", now[0])
    sink = RecordSink(store, settings, prepare=lambda: None, clock=lambda: now[0])
    try:
        sink.purge_when_due()  # the first, at start
        assert not store.answer_exists(old) and store.answer_exists(young)
        now[0] += timedelta(hours=23)  # "young" is 30 days old now, but the day is not over
        sink.purge_when_due()
        assert store.answer_exists(young)
        now[0] += timedelta(hours=1, minutes=1)
        sink.purge_when_due()
        assert not store.answer_exists(young)
    finally:
        store.close()


def test_the_writer_process_purges_at_start(
    make_client: AppFactory, records: dict[str, Any], tmp_path: Any
) -> None:
    settings = RecordsSettings(**{**NO_ENV_FILE, "data_dir": tmp_path / "records", **records})
    store = Records(create_records_engine(settings))
    migrate(store.engine)
    store.add_answers([_record("c" * 32, datetime.now(UTC) - timedelta(days=31))])
    client = make_client(records={"data_dir": tmp_path / "records", **records})
    for _ in range(100):
        if not store.answer_exists("c" * 32):
            break
        threading.Event().wait(0.1)
    assert not store.answer_exists("c" * 32)
    assert ask(client, "Where are you based?")["status"] == "success"
    store.close()


def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    settings = RecordsSettings(**{**NO_ENV_FILE, "database_url": postgres_url})
    engines = [create_records_engine(settings) for _ in range(4)]
    failures: list[BaseException] = []

    def start(engine: Any) -> None:
        try:
            migrate(engine)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    with create_engine(postgres_url).connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0002"]
    for engine in engines:
        engine.dispose()


def test_a_record_the_database_refuses_holds_up_no_other(make_client: AppFactory, postgres_url: str) -> None:
    client = make_client(records={"database_url": postgres_url})
    with create_engine(postgres_url).begin() as connection:  # a rule of the owner's own database
        connection.execute(
            text("ALTER TABLE answers ADD CONSTRAINT polite CHECK (question NOT LIKE '%rude%')")
        )
    replies = [
        ask(client, q, use_cache=False) for q in ("Where are you based?", "A rude question?", "Who are you?")
    ]
    written(client)

    assert all(r["status"] == "success" for r in replies)
    page = client.get("/admin/conversations", params={"days": 1}).json()
    assert sorted(c["first_question"] for c in page["conversations"]) == [
        "Where are you based?",
        "Who are you?",
    ]
    stats = client.app.state.services.owner.writer.stats()  # type: ignore[attr-defined]
    assert stats.dropped == 1 and stats.written == 2 and stats.healthy


def test_a_record_writer_that_dies_is_replaced(make_client: AppFactory) -> None:
    client = make_client()
    writer = client.app.state.services.owner.writer  # type: ignore[attr-defined]
    first = ask(client, "Where are you based?")["answer_id"]
    written(client)
    dead = writer.pid
    os.kill(dead, signal.SIGKILL)
    for _ in range(100):
        if writer.pid != dead:
            break
        threading.Event().wait(0.05)
    assert writer.pid != dead and not writer.stats().healthy  # said in /health until the next write

    later = ask(client, "Who are you?", use_cache=False)["answer_id"]
    written(client)
    assert writer.stats().healthy
    assert client.get(f"/admin/conversations/{first}").status_code == 200
    assert client.get(f"/admin/conversations/{later}").status_code == 200
