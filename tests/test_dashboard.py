"""The owner's dashboard: its numbers (`GET /admin/overview`) over a scripted period of answers in a real
database (SQLite, and a PostgreSQL server the tests start), and the page and its files as the API serves
them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.records.database import create_records_engine, migrate
from agent.records.overview import overview
from agent.records.repository import AnswerRecord, Records
from agent.records.settings import RecordsSettings
from tests.conftest import NO_ENV_FILE, ROOT, AppFactory

TOKEN = "dashboard-test-token-0123456789"
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
STATIC = ROOT / "api" / "static"
ASSETS = {
    "admin.js": (STATIC / "admin" / "admin.js", "text/javascript; charset=utf-8"),
    "admin.css": (STATIC / "admin" / "admin.css", "text/css; charset=utf-8"),
    "uPlot.iife.min.js": (
        STATIC / "vendor" / "uplot" / "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
    ),
    "uPlot.min.css": (STATIC / "vendor" / "uplot" / "uPlot.min.css", "text/css; charset=utf-8"),
}
NUMBERS = (
    "answers",
    "tiers",
    "no_answer",
    "withheld",
    "errors",
    "thumbs_up",
    "thumbs_down",
    "cached",
    "no_answer_rate",
    "withheld_rate",
    "cache_hit_rate",
    "p50_ms",
    "p95_ms",
)
_MODELS = {"answered": "a-model", "no_match": "no-match", "withheld": "withheld", "error": "error"}


@dataclass(frozen=True)
class Row:
    """One scripted answer: what the dashboard counts of it."""

    provider: str
    outcome: str
    total_ms: float
    cached: bool = False
    sources: tuple[str, ...] | None = ()
    rating: str | None = None
    question: str = "What services do you offer?"


def write(records: Records, at: datetime, rows: Sequence[Row]) -> list[str]:
    """Writes the rows as answers a second apart from `at` (each its own conversation), then their ratings;
    returns their ids."""
    answers = []
    for i, row in enumerate(rows):
        answer_id = f"{int(at.timestamp()):010x}{i:022x}"
        answers.append(
            AnswerRecord(
                id=answer_id,
                created_at=at + timedelta(seconds=i),
                conversation=answer_id,
                surface="chat",
                question=row.question,
                answer=f"Answer {i}",
                provider=row.provider,
                model=_MODELS.get(row.outcome, row.provider),
                outcome=row.outcome,
                degraded=False,
                cached=row.cached,
                sources=None
                if row.sources is None
                else [
                    {"source": s, "title": s.removesuffix(".md").title(), "score": 0.8} for s in row.sources
                ],
                retrieval_ms=None if row.cached else 5.0,
                total_ms=row.total_ms,
            )
        )
    records.add_answers(answers)
    for answer, row in zip(answers, rows, strict=True):
        if row.rating is not None:
            assert records.rate(answer.id, row.rating, None, at)  # type: ignore[arg-type]
    return [answer.id for answer in answers]


# A busy day: every tier and outcome, a cached answer, ratings both ways, a source cited twice by one answer.
BUSY_DAY = [
    Row("gemini", "answered", 120, sources=("services.md", "pricing.md"), rating="up"),
    Row(
        "gemini",
        "answered",
        340,
        sources=("services.md",),
        rating="up",
        question="Do you build online shops?",
    ),
    Row("gemini", "answered", 4, cached=True, sources=("services.md",)),
    Row(
        "openai",
        "answered",
        800,
        sources=("pricing.md", "pricing.md"),
        rating="down",
        question="How much does a website cost?",
    ),
    Row("extractive", "extractive", 60, sources=("about.md",), question="Who founded the company?"),
    Row("curated", "curated", 30, rating="up", question="What are your opening hours?"),
    Row("none", "no_match", 50, sources=None, question="Do you groom dogs?"),
    Row("none", "no_match", 45, sources=None, question="Can you groom my dog?", rating="down"),
    Row(
        "none", "withheld", 900, sources=("pricing.md",), question="Can you guarantee first place on Google?"
    ),
    Row("none", "error", 2500, sources=None, question="Tell me about hosting plans"),
]
# A quieter day, two days earlier: another tier, a cached answer.
QUIET_DAY = [
    Row("local", "answered", 1000, sources=("faq.md",), rating="up", question="Do you offer hosting?"),
    Row("local", "answered", 10, cached=True, sources=("faq.md",), question="Do you offer hosting?"),
    Row("gemini", "answered", 200, sources=("services.md",), question="What is the Growth package?"),
]
TIERS = ["gemini", "none", "local", "curated", "extractive", "openai"]  # most answers first, then by name


def zero_day(day: date) -> dict[str, Any]:
    return {
        "day": day.isoformat(),
        "answers": 0,
        "tiers": dict.fromkeys(TIERS, 0),
        "no_answer": 0,
        "withheld": 0,
        "errors": 0,
        "thumbs_up": 0,
        "thumbs_down": 0,
        "cached": 0,
        "no_answer_rate": None,
        "withheld_rate": None,
        "cache_hit_rate": None,
        "p50_ms": None,
        "p95_ms": None,
    }


def busy_day(day: date) -> dict[str, Any]:
    # Latencies sorted: 4 30 45 50 60 120 340 800 900 2500: p50 is the 5th (60), p95 the 10th (2500).
    return {
        "day": day.isoformat(),
        "answers": 10,
        "tiers": {"gemini": 3, "none": 4, "local": 0, "curated": 1, "extractive": 1, "openai": 1},
        "no_answer": 2,
        "withheld": 1,
        "errors": 1,
        "thumbs_up": 3,
        "thumbs_down": 2,
        "cached": 1,
        "no_answer_rate": 0.2,
        "withheld_rate": 0.1,
        "cache_hit_rate": 0.1,
        "p50_ms": 60.0,
        "p95_ms": 2500.0,
    }


def quiet_day(day: date) -> dict[str, Any]:
    # Latencies sorted: 10 200 1000: p50 is the 2nd, p95 the 3rd.
    return {
        **zero_day(day),
        "answers": 3,
        "tiers": {**dict.fromkeys(TIERS, 0), "local": 2, "gemini": 1},
        "thumbs_up": 1,
        "cached": 1,
        "no_answer_rate": 0.0,
        "withheld_rate": 0.0,
        "cache_hit_rate": 1 / 3,
        "p50_ms": 200.0,
        "p95_ms": 1000.0,
    }


# Both days together: 13 latencies, p50 the 7th (120), p95 the 13th (2500).
TOTALS = {
    "answers": 13,
    "tiers": {"gemini": 4, "none": 4, "local": 2, "curated": 1, "extractive": 1, "openai": 1},
    "no_answer": 2,
    "withheld": 1,
    "errors": 1,
    "thumbs_up": 4,
    "thumbs_down": 2,
    "cached": 2,
    "no_answer_rate": 2 / 13,
    "withheld_rate": 1 / 13,
    "cache_hit_rate": 2 / 13,
    "p50_ms": 120.0,
    "p95_ms": 2500.0,
}
# An answer citing one page twice counts once for it.
TOP_SOURCES = [
    {"source": "services.md", "answers": 4},
    {"source": "pricing.md", "answers": 3},
    {"source": "faq.md", "answers": 2},
    {"source": "about.md", "answers": 1},
]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Records:
    """The records on the embedded SQLite file, or in a fresh database on a real PostgreSQL server."""
    extra = {} if request.param == "sqlite" else {"database_url": request.getfixturevalue("postgres_url")}
    records = Records(
        create_records_engine(RecordsSettings(**{**NO_ENV_FILE, "data_dir": tmp_path, **extra}))
    )
    migrate(records.engine)
    request.addfinalizer(records.close)
    return records


def test_a_scripted_period_gives_exact_numbers_per_day_and_in_total(database: Records) -> None:
    now = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    write(database, datetime(2026, 3, 10, 9, 0, tzinfo=UTC), BUSY_DAY)
    write(database, datetime(2026, 3, 8, 23, 59, 57, tzinfo=UTC), QUIET_DAY)  # its last answer: 23:59:59
    # Outside the five days: the second before the first day, and after the moment the numbers are read.
    write(database, datetime(2026, 3, 5, 23, 59, 59, tzinfo=UTC), [Row("gemini", "answered", 9, rating="up")])
    write(database, now + timedelta(seconds=1), [Row("openai", "no_match", 9, sources=("late.md",))])

    numbers = overview(database.engine, 5, now)

    assert numbers.since == datetime(2026, 3, 6, tzinfo=UTC) and numbers.until == now
    assert numbers.tiers == tuple(TIERS)
    days = [{"day": d.day.isoformat(), **_as_dict(d.numbers)} for d in numbers.days]
    assert days == [
        zero_day(date(2026, 3, 6)),
        zero_day(date(2026, 3, 7)),
        quiet_day(date(2026, 3, 8)),
        zero_day(date(2026, 3, 9)),
        busy_day(date(2026, 3, 10)),
    ]
    assert _as_dict(numbers.totals) == TOTALS
    assert [{"source": s, "answers": n} for s, n in numbers.top_sources] == TOP_SOURCES


def test_a_period_without_answers_is_all_zero_days(database: Records) -> None:
    numbers = overview(database.engine, 3, datetime(2026, 3, 10, 0, 0, 1, tzinfo=UTC))
    assert [d.day for d in numbers.days] == [date(2026, 3, 8), date(2026, 3, 9), date(2026, 3, 10)]
    assert all(d.numbers.answers == 0 and d.numbers.p50_ms is None for d in numbers.days)
    assert numbers.totals.answers == 0 and numbers.totals.p95_ms is None and numbers.tiers == ()
    assert numbers.top_sources == []


def test_top_sources_are_the_ten_cited_by_most_answers(tmp_path: Path) -> None:
    records = Records(create_records_engine(RecordsSettings(**{**NO_ENV_FILE, "data_dir": tmp_path})))
    migrate(records.engine)
    rows = [Row("gemini", "answered", 1, sources=(f"page-{n:02d}.md",)) for n in range(12) for _ in range(n)]
    rows += [Row("gemini", "answered", 1, sources=("page-05.md", "page-11.md", "page-11.md"))]
    write(records, datetime(2026, 3, 10, 8, tzinfo=UTC), rows)
    numbers = overview(records.engine, 1, datetime(2026, 3, 10, 9, tzinfo=UTC))
    assert numbers.top_sources == [
        ("page-11.md", 12),
        ("page-10.md", 10),
        ("page-09.md", 9),
        ("page-08.md", 8),
        ("page-07.md", 7),
        ("page-05.md", 6),  # ties by name
        ("page-06.md", 6),
        ("page-04.md", 4),
        ("page-03.md", 3),
        ("page-02.md", 2),
    ]
    records.close()


def test_the_period_must_be_1_to_365_days(tmp_path: Path) -> None:
    records = Records(create_records_engine(RecordsSettings(**{**NO_ENV_FILE, "data_dir": tmp_path})))
    with pytest.raises(ValueError, match=r"days must be 1\.\.365"):
        overview(records.engine, 0, datetime.now(UTC))
    with pytest.raises(ValueError, match=r"days must be 1\.\.365"):
        overview(records.engine, 366, datetime.now(UTC))
    records.close()


# -- the endpoint over the real app ------------------------------------------------------------------------


def _owner_records(client: TestClient) -> Records:
    records: Records = client.app.state.services.owner.records  # type: ignore[attr-defined]
    return records


def test_overview_endpoint_gives_the_numbers_of_the_chosen_period(make_client: AppFactory) -> None:
    client = make_client()
    today = datetime.now(UTC).date()
    noon = time(12, tzinfo=UTC)
    write(_owner_records(client), datetime.combine(today - timedelta(days=1), noon), BUSY_DAY)
    write(_owner_records(client), datetime.combine(today - timedelta(days=3), noon), QUIET_DAY)
    write(
        _owner_records(client), datetime.combine(today - timedelta(days=8), noon), QUIET_DAY
    )  # not in 7 days

    response = client.get("/admin/overview", params={"days": 7})
    assert response.status_code == 200, response.text
    body = response.json()
    first = today - timedelta(days=6)
    assert body["days"] == 7
    assert body["since"].startswith(first.isoformat() + "T00:00:00")
    assert body["tiers"] == TIERS
    expected = {today - timedelta(days=1): busy_day, today - timedelta(days=3): quiet_day}
    assert body["per_day"] == [
        expected.get(first + timedelta(days=i), zero_day)(first + timedelta(days=i)) for i in range(7)
    ]
    assert body["totals"] == TOTALS
    assert body["top_sources"] == TOP_SOURCES

    default = client.get("/admin/overview").json()  # 7 days unless told
    assert default["days"] == 7 and default["totals"] == TOTALS
    longer = client.get("/admin/overview", params={"days": 30}).json()
    assert len(longer["per_day"]) == 30 and longer["totals"]["answers"] == 16


def test_a_bad_period_is_422(make_client: AppFactory) -> None:
    client = make_client()
    for days in ("0", "366", "-1", "seven", "7.5", ""):
        response = client.get("/admin/overview", params={"days": days})
        assert response.status_code == 422, days
        assert response.json()["error"].startswith("Invalid request: query.days"), days


def test_overview_needs_the_admin_token(make_client: AppFactory) -> None:
    client = make_client(api={"admin_token": TOKEN})
    missing = client.get("/admin/overview")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = client.get("/admin/overview", headers={"Authorization": "Bearer " + "x" * len(TOKEN)})
    assert wrong.status_code == 403
    assert wrong.json() == {"error": "The admin token is not valid."}
    right = client.get("/admin/overview", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200 and right.json()["days"] == 7
    # The page and its files hold no data: they load without a token (the page asks for it).
    assert client.get("/admin").status_code == 200
    assert client.get("/admin/assets/admin.js").status_code == 200


def test_without_a_token_only_this_machine_gets_the_numbers(make_client: AppFactory) -> None:
    client = make_client()
    assert client.get("/admin/overview").status_code == 200  # from 127.0.0.1
    remote = TestClient(client.app, client=("203.0.113.7", 50000))
    response = remote.get("/admin/overview")
    assert response.status_code == 403
    assert "from this machine only" in response.json()["error"]
    assert remote.get("/admin").status_code == 200


def test_overview_spends_the_admin_records_budget(make_client: AppFactory) -> None:
    client = make_client(api={"rate_limit_admin": "3/minute"})
    assert client.get("/admin/overview").status_code == 200
    assert client.get("/admin/answers").status_code == 200  # the same budget as the other owner routes
    assert client.get("/admin/overview").status_code == 200
    limited = client.get("/admin/overview")
    assert limited.status_code == 429
    assert limited.json()["error"].startswith("Rate limit exceeded")
    assert client.get("/admin").status_code == 200  # the page is not counted


def test_records_off_is_the_same_404_as_the_other_owner_routes(make_client: AppFactory) -> None:
    client = make_client(records={"record_answers": False})
    response = client.get("/admin/overview")
    assert response.status_code == 404
    assert response.json() == client.get("/admin/gaps").json()
    assert "RECORD_ANSWERS=false" in response.json()["error"]


def test_the_page_is_served_under_a_strict_policy(make_client: AppFactory) -> None:
    response = make_client().get("/admin")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == PAGE_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    page = response.text
    # Nothing inline for the policy to refuse: every script and style is one of the served files.
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", page)
    assert "<style" not in page and not re.search(r"\sstyle\s*=", page)
    assert not re.search(r"\son[a-z]+\s*=", page), "an inline event handler"
    assert "javascript:" not in page
    linked = re.findall(r'(?:src|href)="(/admin/assets/[^"]+)"', page)
    assert sorted(linked) == sorted(f"/admin/assets/{name}" for name in ASSETS)


def test_the_pages_script_writes_data_as_text_only() -> None:
    script = (STATIC / "admin" / "admin.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "localStorage"):
        assert sink not in script, sink


def test_assets_are_served_with_their_type(make_client: AppFactory) -> None:
    client = make_client()
    for name, (path, media_type) in ASSETS.items():
        response = client.get(f"/admin/assets/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == media_type
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.content == path.read_bytes()
        again = client.get(f"/admin/assets/{name}", headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304 and again.content == b""


UNKNOWN_ASSETS = (
    "/admin/assets/admin.html",  # a real file, but not one of the assets
    "/admin/assets/README.md",
    "/admin/assets/LICENSE",
    "/admin/assets/dashboard.py",
    "/admin/assets/..%2Fadmin.html",
    "/admin/assets/..%2F..%2Fdashboard.py",
    "/admin/assets/%2e%2e%2f%2e%2e%2fapp.py",
    "/admin/assets/..%5c..%5capp.py",
    "/admin/assets/admin.js%00.html",
    "/admin/assets/%2Fetc%2Fpasswd",
    "/admin/assets/ADMIN.JS",
)


def test_unknown_assets_and_traversal_are_404(make_client: AppFactory) -> None:
    client = make_client()
    for path in UNKNOWN_ASSETS:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/json"
    for path in ("/admin/assets/../../dashboard.py", "/admin/assets/../admin/admin.html"):
        response = client.get(path)  # the client resolves the dots: another path, no file either
        assert response.status_code in (401, 404), (path, response.status_code)
        assert b"import" not in response.content and b"<html" not in response.content


def test_the_overview_is_in_the_api_description_and_the_page_is_not(make_client: AppFactory) -> None:
    paths = make_client().get("/openapi.json").json()["paths"]
    assert "/admin/overview" in paths
    assert set(paths["/admin/overview"]["get"]["responses"]) >= {"200", "401", "403", "404", "422", "429"}
    assert "/admin" not in paths and "/admin/assets/{name}" not in paths


def _as_dict(numbers: Any) -> dict[str, Any]:
    return {name: getattr(numbers, name) for name in NUMBERS}
