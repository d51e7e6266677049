"""The owner's dashboard (`GET /admin`) in a real browser: Debian's Chromium driven by Playwright, against the
real API run as a process (`python -m api`), its records a SQLite file into which a few days of answers are
scripted. Nothing is mocked: every number on the page comes through the real endpoints."""

from __future__ import annotations

import json
import os
import re
import shutil
import time as clock
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    expect,
)

from agent.records.database import create_records_engine
from agent.records.repository import Records
from agent.records.settings import RecordsSettings
from bench.server import ServerProcess, free_port
from fakes.website import CONTENT, Website
from tests.browser import axe_violations, chromium
from tests.conftest import KNOWLEDGE, NO_ENV_FILE, ROOT
from tests.test_dashboard import BUSY_DAY, QUIET_DAY, TIERS, TOTALS, Row, busy_day, quiet_day, write, zero_day

ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOT = ROOT / "docs" / "dashboard.png"
PHONE_SCREENSHOT = ROOT / "docs" / "dashboard-phone.png"
TOKEN = "owner-dashboard-token-5f2c9a71"
LOAD_TIMEOUT = 30_000  # ms: the first gap report also loads the embedding model
# Ten days back: only the 30-day views see these, enough conversations for a second page of transcripts.
OLDER_DAY = [
    Row("gemini", "answered", 100 + i, sources=("faq.md",), question=f"Question number {i}?")
    for i in range(12)
]
# Chromium logs every refused fetch as a console error; the page asks without a token first on purpose (401),
# a wrong token is a 403, and a service without leads answers 404. Anything else logged is a defect.
EXPECTED_REFUSAL = re.compile(
    r"^Failed to load resource: the server responded with a status of (401|403|404) "
)
DESCRIBE_FOCUSED = """() => {
  const el = document.activeElement;
  return el.id || el.getAttribute('aria-label') || el.textContent.trim();
}"""
HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">Mallory'
# The fake website's pages (its PDF too), as crawled: 8 of them.
SITE_PAGES = sorted({*CONTENT, "/docs/warranty.pdf"})
# Its robots.txt asks for this much between requests: a crawl of some 10 s, long enough to watch it move.
CRAWL_DELAY = 0.4
JOB_TIMEOUT = 120_000  # ms: the crawl, then the ingest of what changed
KNOWLEDGE_FILES = sorted(path.name for path in KNOWLEDGE.iterdir() if path.is_file())


@dataclass
class Servers:
    main: ServerProcess  # ADMIN_TOKEN set; three days of answers scripted into its records
    local: ServerProcess  # no ADMIN_TOKEN (this machine only) and no records at all
    today: datetime


def days_ago(today: datetime, days: int) -> datetime:
    return datetime.combine(today.date() - timedelta(days=days), time(12), tzinfo=UTC)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, knowledge_store_dir: Path) -> Iterator[Servers]:
    ARTIFACTS.mkdir(exist_ok=True)
    base = tmp_path_factory.mktemp("dashboard-servers")

    def start(name: str, **env: str) -> ServerProcess:
        store = base / name
        shutil.copytree(knowledge_store_dir, store)
        full_env = {
            "CHROMA_PATH": str(store),
            "KNOWLEDGE_DIR": str(KNOWLEDGE),
            "GOOGLE_API_KEY": "",
            "LLM_CHAIN": "gemini,extractive",
            "DATA_DIR": str(base / f"{name}-records"),
            "RATE_LIMIT_ADMIN": "10000/minute",  # every dashboard load makes five admin calls
            **env,
        }
        return ServerProcess(full_env, ARTIFACTS / f"server-dashboard-{name}.log")

    started = [
        start(
            "main",
            ADMIN_TOKEN=TOKEN,
            # Nothing listens there: the lead's webhook delivery fails and stays pending, with its error.
            LEAD_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/hook",
            LEAD_WEBHOOK_SECRET="webhook-secret-0123456789",
        ),
        start("local", ADMIN_TOKEN="", RECORD_ANSWERS="false"),
    ]
    try:
        for server in started:
            server.wait_healthy()
        main = started[0]
        # The service has migrated its SQLite file at start: the answers go straight into it, as its record
        # writer would have written them.
        settings = RecordsSettings(**{**NO_ENV_FILE, "data_dir": base / "main-records"})
        records = Records(create_records_engine(settings))
        today = datetime.now(UTC)
        write(records, days_ago(today, 1), BUSY_DAY)
        write(records, days_ago(today, 3), QUIET_DAY)
        write(records, days_ago(today, 10), OLDER_DAY)
        records.close()
        lead = httpx.post(
            f"{main.url}/leads",
            json={
                "name": HOSTILE_NAME,
                "email": "mallory@example.com",
                "message": "Please call me about a new website.\n<script>window.__pwned=2</script>",
                "consent": True,
            },
        )
        assert lead.status_code == 201, lead.text
        yield Servers(main, started[1], today)
    finally:
        for server in started:
            server.stop()


@dataclass
class SiteService:
    """A service that keeps the fake website as knowledge (KNOWLEDGE_URLS), crawled only on request."""

    server: ServerProcess
    website: Website
    knowledge: Path  # its own copy of the knowledge folder, free to change


@contextmanager
def site_service(base: Path, store: Path, name: str) -> Iterator[SiteService]:
    website = Website(crawl_delay=CRAWL_DELAY).start()
    knowledge = base / f"{name}-knowledge"
    shutil.copytree(KNOWLEDGE, knowledge)
    shutil.copytree(store, base / f"{name}-store")
    server = ServerProcess(
        {
            "CHROMA_PATH": str(base / f"{name}-store"),
            "KNOWLEDGE_DIR": str(knowledge),
            "GOOGLE_API_KEY": "",
            "LLM_CHAIN": "gemini,extractive",
            "DATA_DIR": str(base / f"{name}-records"),
            "ADMIN_TOKEN": TOKEN,
            "RATE_LIMIT_ADMIN": "10000/minute",
            "KNOWLEDGE_URLS": website.url("/"),
            "CRAWL_MAX_PAGE_MB": "0.1",  # the site's archive and big page: skipped as too large
            "CRAWL_INTERVAL": "0",
        },
        ARTIFACTS / f"server-dashboard-{name}.log",
    )
    try:
        server.wait_healthy()
        yield SiteService(server, website, knowledge)
    finally:
        server.stop()
        website.stop()


def finished_job(server: ServerProcess, timeout: float = JOB_TIMEOUT / 1000) -> dict[str, Any]:
    deadline = clock.monotonic() + timeout
    while True:
        job: dict[str, Any] = admin_get(server, "/admin/reindex")
        if job["status"] != "running":
            return job
        assert clock.monotonic() < deadline, job
        clock.sleep(0.2)


def latest_is_a_crawl(service: SiteService) -> None:
    """The service's latest job a crawl that succeeded, whatever the tests before this one did (a reindex,
    a crawl of the site down)."""
    latest = admin_get(service.server, "/admin/reindex")
    if (latest["kind"], latest["status"]) != ("crawl", "succeeded"):
        started = httpx.post(
            f"{service.server.url}/admin/crawl", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert started.status_code == 202, started.text
        assert finished_job(service.server)["status"] == "succeeded"


@pytest.fixture
def fresh_site(tmp_path: Path, knowledge_store_dir: Path) -> Iterator[SiteService]:
    """A website never crawled yet: its first crawl finds every page new."""
    ARTIFACTS.mkdir(exist_ok=True)
    with site_service(tmp_path, knowledge_store_dir, "fresh-site") as service:
        yield service


@pytest.fixture(scope="module")
def crawled_site(
    tmp_path_factory: pytest.TempPathFactory, knowledge_store_dir: Path
) -> Iterator[SiteService]:
    """A website crawled once already (by a call, not through the page): its result is the latest job."""
    ARTIFACTS.mkdir(exist_ok=True)
    with site_service(
        tmp_path_factory.mktemp("crawled-site"), knowledge_store_dir, "crawled-site"
    ) as service:
        started = httpx.post(
            f"{service.server.url}/admin/crawl", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert started.status_code == 202, started.text
        assert finished_job(service.server)["status"] == "succeeded"
        yield service


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US", timezone_id="UTC")
    yield ctx
    ctx.close()


def admin_get(server: ServerProcess, path: str) -> Any:
    response = httpx.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


class Dashboard:
    """The page as the owner sees it, and everything the browser logged or sent meanwhile."""

    def __init__(self, context: BrowserContext, server: ServerProcess) -> None:
        self.page: Page = context.new_page()
        self.errors: list[str] = []
        self.requests: list[Request] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.on("console", self._console)
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.goto(f"{server.url}/admin")
        self.token = self.page.get_by_label("Admin token")
        self.sign_in_error = self.page.locator("#signin-error")
        self.headline = self.page.locator("#headline")

    def _console(self, message: ConsoleMessage) -> None:
        refused = "Content Security Policy" in message.text  # whatever level it is logged at
        if refused or (message.type == "error" and not EXPECTED_REFUSAL.match(message.text)):
            self.errors.append(message.text)

    def sign_in(self, token: str = TOKEN) -> None:
        expect(self.page.get_by_role("heading", name="Sign in")).to_be_visible()
        self.token.fill(token)
        self.page.get_by_role("button", name="Sign in").click()

    def stat(self, label: str) -> str:
        return (
            self.headline.locator(".stat")
            .filter(has=self.page.locator("dt", has_text=label))
            .locator("dd")
            .inner_text()
        )

    def signed_in(self) -> None:
        expect(self.page.locator("#overview-body")).to_be_visible(timeout=LOAD_TIMEOUT)
        expect(self.headline.locator("dd").first).to_have_text(str(TOTALS["answers"]))
        self.page.wait_for_function("() => Object.keys(kbAdmin.charts).length === 5", timeout=LOAD_TIMEOUT)

    def charts(self) -> dict[str, Any]:
        found: dict[str, Any] = self.page.evaluate(
            """() => Object.fromEntries(Object.entries(kbAdmin.charts).map(([id, plot]) => [id, {
                 labels: plot.series.slice(1).map((s) => s.label),
                 data: plot.data.map((values) => Array.from(values)),
                 width: plot.width,
                 box: document.getElementById(id).clientWidth,
               }]))"""
        )
        return found

    def painted(self, chart: str, color: str) -> int:
        """Pixels of the chart's canvas in `color` (#rrggbb): a series drawn, not just the axes."""
        count: int = self.page.evaluate(
            """([id, color]) => {
                 const canvas = document.querySelector('#' + id + ' canvas');
                 const [r, g, b] = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
                 const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                 let n = 0;
                 for (let i = 0; i < pixels.length; i += 4) {
                   if (pixels[i + 3] > 200 && Math.abs(pixels[i] - r) < 12 && Math.abs(pixels[i + 1] - g) < 12
                       && Math.abs(pixels[i + 2] - b) < 12) n++;
                 }
                 return n;
               }""",
            [chart, color],
        )
        return count

    def knowledge_loaded(self) -> None:
        """Signed in, the Knowledge section drawn from GET /admin/knowledge."""
        expect(self.page.locator("#knowledge-files")).to_be_visible(timeout=LOAD_TIMEOUT)
        expect(self.page.locator("#knowledge-table tbody tr").first).to_be_visible()

    def knowledge_stat(self, label: str) -> str:
        return (
            self.page.locator("#knowledge-headline .stat")
            .filter(has=self.page.locator("dt", has_text=re.compile(f"^{label}$")))
            .locator("dd")
            .inner_text()
        )

    def crawl_stat(self, label: str) -> str:
        return (
            self.page.locator("#job-result .stat")
            .filter(has=self.page.locator("dt", has_text=re.compile(f"^{label}$")))
            .locator("dd")
            .inner_text()
        )

    def no_horizontal_scroll(self) -> None:
        widths = self.page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        # What sticks out, when something does: the elements past the right edge, outermost first.
        wide = self.page.evaluate(
            """() => [...document.querySelectorAll('body *')]
                 .filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
                 .slice(0, 5).map((el) => el.tagName + '#' + el.id + '.' + el.className)"""
        )
        assert widths[0] <= widths[1], f"the page scrolls sideways: {widths} {wide}"


def expected_days(today: datetime, count: int) -> list[dict[str, Any]]:
    first = today.date() - timedelta(days=count - 1)
    scripted = {today.date() - timedelta(days=1): busy_day, today.date() - timedelta(days=3): quiet_day}
    return [
        scripted.get(first + timedelta(days=i), zero_day)(first + timedelta(days=i)) for i in range(count)
    ]


def test_signing_in_shows_the_overview_drawn_from_the_recorded_answers(
    servers: Servers, context: BrowserContext
) -> None:
    dashboard = Dashboard(context, servers.main)
    expect(dashboard.page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(dashboard.sign_in_error).to_be_empty()  # no token yet is not an error
    dashboard.sign_in()
    dashboard.signed_in()

    assert dashboard.stat("Answers") == "13"
    assert dashboard.stat("Nothing found") == "15.4% (2)"
    assert dashboard.stat("Withheld") == "7.7% (1)"
    assert dashboard.stat("Errors") == "1"
    assert dashboard.stat("Cache hit rate") == "15.4%"
    assert dashboard.stat("Thumbs up / down") == "4 / 2"
    assert dashboard.stat("p50 time to answer") == "120 ms"
    assert dashboard.stat("p95 time to answer") == "2,500 ms"
    sources = dashboard.page.locator("#top-sources li")
    expect(sources).to_have_text(
        ["services.md 4 answers", "pricing.md 3 answers", "faq.md 2 answers", "about.md 1 answer"]
    )

    days = expected_days(servers.today, 7)
    midnights = [datetime.fromisoformat(d["day"]).replace(tzinfo=UTC).timestamp() for d in days]

    def pct(rate: float | None) -> float | None:
        return None if rate is None else round(rate * 10000) / 100

    charts = dashboard.charts()
    assert charts["chart-tiers"]["labels"] == TIERS
    assert charts["chart-tiers"]["data"] == [midnights, *[[d["tiers"][t] for d in days] for t in TIERS]]
    assert charts["chart-misses"]["data"] == [
        midnights,
        [pct(d["no_answer_rate"]) for d in days],
        [pct(d["withheld_rate"]) for d in days],
    ]
    assert charts["chart-ratings"]["data"] == [
        midnights,
        [d["thumbs_up"] for d in days],
        [d["thumbs_down"] for d in days],
    ]
    assert charts["chart-cache"]["data"] == [midnights, [pct(d["cache_hit_rate"]) for d in days]]
    assert charts["chart-latency"]["data"] == [
        midnights,
        [d["p50_ms"] for d in days],
        [d["p95_ms"] for d in days],
    ]
    # Drawn: each chart's series colour is on its canvas (points and lines, not only the axes).
    for chart, color in [
        ("chart-tiers", "#1a73e8"),  # gemini
        ("chart-tiers", "#5f6368"),  # none
        ("chart-misses", "#c5221f"),
        ("chart-ratings", "#0b8043"),
        ("chart-cache", "#1a73e8"),
        ("chart-latency", "#8e24aa"),
    ]:
        assert dashboard.painted(chart, color) > 20, (chart, color)
    # The numbers per day, as a table, for those who do not read charts.
    dashboard.page.get_by_text("The numbers per day, as a table").click()
    busy_row = dashboard.page.locator("#daily-table tbody tr").nth(5)
    expect(busy_row.locator("th")).to_have_text(days[5]["day"])
    expect(busy_row.locator("td")).to_have_text(
        ["10", "3", "4", "0", "1", "1", "1", "2", "1", "1", "3", "2", "1", "60", "2,500"]
    )

    # Another period: 30 days take in the older answers.
    dashboard.page.locator("#period").select_option("30")
    expect(dashboard.headline.locator("dd").first).to_have_text("25")
    assert len(dashboard.charts()["chart-tiers"]["data"][0]) == 30

    # The token: in this tab's sessionStorage only, sent as a header, never in an address.
    assert dashboard.page.evaluate("sessionStorage.getItem('kb-admin-token')") == TOKEN
    assert dashboard.page.evaluate("localStorage.length") == 0
    calls = [r for r in dashboard.requests if "/admin/" in r.url and "/admin/assets/" not in r.url]
    assert len(calls) >= 6
    assert all(TOKEN not in r.url for r in dashboard.requests)
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in calls[1:])  # the first asks bare
    assert TOKEN not in dashboard.page.url

    # The picture for the docs: the 7-day overview at the top of the page.
    dashboard.page.locator("#period").select_option("7")
    expect(dashboard.headline.locator("dd").first).to_have_text("13")
    dashboard.page.evaluate("window.scrollTo(0, 0)")
    dashboard.page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
    if os.environ.get("UPDATE_SCREENSHOT") == "1":  # refresh the README's picture on purpose, not every run
        shutil.copyfile(ARTIFACTS / "dashboard.png", SCREENSHOT)
    assert dashboard.errors == []


def test_a_wrong_token_is_refused_and_shows_no_data(servers: Servers, context: BrowserContext) -> None:
    dashboard = Dashboard(context, servers.main)
    dashboard.sign_in("not-the-token-" + "x" * 20)
    expect(dashboard.sign_in_error).to_contain_text("Wrong admin token (403)")
    expect(dashboard.sign_in_error).to_contain_text("The admin token is not valid.")
    expect(dashboard.page.locator("#dashboard")).to_be_hidden()
    expect(dashboard.token).to_be_focused()
    assert dashboard.headline.inner_text() == ""
    assert dashboard.page.evaluate("sessionStorage.getItem('kb-admin-token')") is None
    admin_calls = [r.url for r in dashboard.requests if re.search(r"/admin/(?!assets/)", r.url)]
    assert all("/admin/overview" in url for url in admin_calls), admin_calls  # nothing else was asked

    # Then the right one.
    dashboard.sign_in()
    dashboard.signed_in()
    expect(dashboard.sign_in_error).to_be_hidden()
    assert dashboard.errors == []


def test_signing_out_forgets_the_token(servers: Servers, context: BrowserContext) -> None:
    dashboard = Dashboard(context, servers.main)
    dashboard.sign_in()
    dashboard.signed_in()
    dashboard.page.reload()  # the token survives a reload of the tab
    dashboard.signed_in()
    dashboard.page.get_by_role("button", name="Sign out").click()
    expect(dashboard.page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(dashboard.page.locator("#dashboard")).to_be_hidden()
    assert dashboard.page.evaluate("sessionStorage.length") == 0
    assert dashboard.headline.inner_text() == ""
    dashboard.page.reload()
    expect(dashboard.page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert dashboard.errors == []


def test_writing_an_answer_from_a_gap_row_creates_it(servers: Servers, context: BrowserContext) -> None:
    dashboard = Dashboard(context, servers.main)
    dashboard.sign_in()
    dashboard.signed_in()
    page = dashboard.page
    row = page.locator("#gaps-table tbody tr").filter(has_text="Can you groom my dog?")
    expect(row).to_have_count(1, timeout=LOAD_TIMEOUT)
    expect(row).to_contain_text("Do you groom dogs?")  # the other wording, grouped into the same row
    row.get_by_role("button", name="Write an answer").click()
    dialog = page.get_by_role("dialog", name="Write an answer")
    expect(dialog).to_be_visible()
    questions = page.get_by_label("Example questions, one a line")
    expect(questions).to_have_value("Can you groom my dog?\nDo you groom dogs?")
    expect(page.get_by_label("Answer", exact=True)).to_be_focused()
    dialog.get_by_role("button", name="Save answer").click()  # nothing written yet: refused on the page
    expect(page.locator("#write-error")).to_have_text("Write the answer.")
    answer = "We build websites; we do not groom dogs. Try a local pet groomer."
    page.get_by_label("Answer", exact=True).fill(answer)
    page.get_by_label("Sources shown with it, one a line (optional)").fill("services.md")
    dialog.get_by_role("button", name="Save answer").click()
    expect(dialog).to_be_hidden()
    expect(row.locator(".done")).to_have_text("Answer written ✓")
    expect(row.get_by_role("button", name="Write an answer")).to_have_count(0)

    created = admin_get(servers.main, "/admin/answers")["answers"]
    assert [(a["questions"], a["answer"], a["sources"]) for a in created] == [
        (["Can you groom my dog?", "Do you groom dogs?"], answer, ["services.md"])
    ]
    card = page.locator("#answers-list .card").filter(has_text=answer)
    expect(card).to_have_count(1)
    expect(card.get_by_role("heading")).to_have_text("Can you groom my dog?")

    # Deleting takes a second click, and then it is gone from the service too.
    card.get_by_role("button", name="Delete the answer to: Can you groom my dog?").click()
    assert admin_get(servers.main, "/admin/answers")["answers"] != []
    card.get_by_role("button", name="Confirm: delete the answer to: Can you groom my dog?").click()
    expect(page.locator("#answers-status")).to_contain_text("Answer deleted.")
    expect(card).to_have_count(0)
    assert admin_get(servers.main, "/admin/answers")["answers"] == []
    assert dashboard.errors == []


def test_transcripts_filter_page_and_open(servers: Servers, context: BrowserContext) -> None:
    dashboard = Dashboard(context, servers.main)
    dashboard.sign_in()
    dashboard.signed_in()
    page = dashboard.page
    rows = page.locator("#transcripts-table tbody tr")
    status = page.locator("#transcripts-status")
    expect(status).to_have_text("13 conversations.")
    expect(rows).to_have_count(13)

    form = page.locator("#transcripts-form")
    form.get_by_label("Rating").select_option("down")
    form.get_by_role("button", name="Show").click()
    expect(status).to_have_text("2 conversations.")
    expect(rows.locator("td.question")).to_have_text(
        ["Can you groom my dog?", "How much does a website cost?"]
    )

    form.get_by_label("Rating").select_option("")
    form.get_by_label("Tier").select_option("local")
    form.get_by_role("button", name="Show").click()
    expect(status).to_have_text("2 conversations.")
    expect(rows.locator("td.question")).to_have_text(["Do you offer hosting?", "Do you offer hosting?"])

    form.get_by_label("Tier").select_option("")
    form.get_by_label("Nothing found only").check()
    form.get_by_role("button", name="Show").click()
    expect(status).to_have_text("2 conversations.")
    expect(rows.locator("td.question")).to_have_text(["Can you groom my dog?", "Do you groom dogs?"])

    # Open one: its question, answer, tier, outcome and rating.
    rows.get_by_role("button", name="Can you groom my dog?").click()
    turns = page.locator("#conversation-turns li")
    expect(turns).to_have_count(1)
    expect(turns.first).to_contain_text("Can you groom my dog?")
    expect(turns.first).to_contain_text("none / no-match · no match · 45 ms")
    expect(turns.first).to_contain_text("Rated down")
    expect(page.get_by_role("heading", name="Conversation")).to_be_focused()

    # 30 days: 25 conversations, 20 a page.
    form.get_by_label("Nothing found only").uncheck()
    form.get_by_label("Period").select_option("30")
    form.get_by_role("button", name="Show").click()
    expect(status).to_have_text("25 conversations.")
    expect(rows).to_have_count(20)
    expect(page.locator("#tr-page")).to_have_text("Page 1 of 2")
    expect(page.get_by_role("button", name="Previous page").first).to_be_disabled()
    page.locator("#tr-next").click()
    expect(page.locator("#tr-page")).to_have_text("Page 2 of 2")
    expect(rows).to_have_count(5)
    expect(page.locator("#tr-next")).to_be_disabled()
    assert dashboard.errors == []


def test_leads_show_with_their_deliveries_as_text(servers: Servers, context: BrowserContext) -> None:
    dashboard = Dashboard(context, servers.main)
    dashboard.sign_in()
    dashboard.signed_in()
    page = dashboard.page
    expect(page.locator("#leads-status")).to_have_text("1 lead.")
    card = page.locator("#leads-list .card")
    expect(card.get_by_role("heading")).to_have_text(HOSTILE_NAME)  # markup in a visitor's text stays text
    expect(card).to_contain_text("mallory@example.com")
    expect(card.locator(".text")).to_have_text(
        "Please call me about a new website.\n<script>window.__pwned=2</script>"
    )
    delivery = card.locator(".deliveries li")
    expect(delivery).to_have_count(1)
    expect(delivery).to_contain_text("Webhook to http://127.0.0.1:")
    expect(delivery.locator(".status")).to_have_text(re.compile(r"^(pending|failed)$"))
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#leads-list img").count() == 0 and page.locator("#leads-list script").count() == 0
    assert dashboard.errors == []


def test_without_a_token_this_machine_goes_straight_in(servers: Servers, context: BrowserContext) -> None:
    """No ADMIN_TOKEN: calls from this machine need none, so the page asks for none. Records are off on this
    service: each section says what is not available."""
    dashboard = Dashboard(context, servers.local)
    expect(dashboard.page.locator("#dashboard")).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(dashboard.page.get_by_role("heading", name="Sign in")).to_be_hidden()
    expect(dashboard.page.get_by_role("button", name="Sign out")).to_be_hidden()
    expect(dashboard.page.locator("#overview-status")).to_contain_text("RECORD_ANSWERS=false")
    expect(dashboard.page.locator("#leads-status")).to_have_text("Leads are not available on this service.")
    expect(dashboard.page.locator("#gaps-status")).to_contain_text("not recorded")
    assert all(r.headers.get("authorization") is None for r in dashboard.requests)
    assert dashboard.errors == []


def test_a_phone_gets_the_page_without_sideways_scrolling(servers: Servers, browser: Browser) -> None:
    ctx = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="en-US",
        timezone_id="UTC",
    )
    try:
        dashboard = Dashboard(ctx, servers.main)
        dashboard.no_horizontal_scroll()
        dashboard.sign_in()
        dashboard.signed_in()
        expect(dashboard.page.locator("#gaps-table tbody tr").first).to_be_visible(timeout=LOAD_TIMEOUT)
        dashboard.page.get_by_text("The numbers per day, as a table").click()
        dashboard.no_horizontal_scroll()
        for chart in dashboard.charts().values():
            assert chart["width"] <= chart["box"] <= 390
        # Wide tables scroll inside their own box instead.
        scrolls = dashboard.page.evaluate(
            "() => [...document.querySelectorAll('.table-wrap')].map((w) => w.scrollWidth > w.clientWidth)"
        )
        assert any(scrolls)
        dashboard.page.evaluate("window.scrollTo(0, 0)")
        dashboard.page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"))
        if os.environ.get("UPDATE_SCREENSHOT") == "1":
            shutil.copyfile(ARTIFACTS / "dashboard-phone.png", PHONE_SCREENSHOT)

        # Turned into a wide window, the charts follow their boxes.
        dashboard.page.set_viewport_size({"width": 1280, "height": 800})
        dashboard.page.wait_for_function(
            "() => Object.values(kbAdmin.charts).every((c) => c.width > 450)", timeout=5000
        )
        dashboard.no_horizontal_scroll()
        assert dashboard.errors == []
    finally:
        ctx.close()


def test_the_sign_in_screen_and_the_dashboard_have_no_accessibility_violations(
    servers: Servers, browser: Browser
) -> None:
    # The page's CSP would refuse the injected checker: this context lets it in (the CSP has its own test).
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    try:
        dashboard = Dashboard(ctx, servers.main)
        expect(dashboard.page.get_by_role("heading", name="Sign in")).to_be_visible()
        violations = axe_violations(dashboard.page)
        assert violations == [], json.dumps(violations, indent=1)

        dashboard.page.reload()
        dashboard.sign_in()
        dashboard.signed_in()
        page = dashboard.page
        expect(page.locator("#gaps-table tbody tr").first).to_be_visible(timeout=LOAD_TIMEOUT)
        expect(page.locator("#leads-list .card")).to_have_count(1)
        page.get_by_text("The numbers per day, as a table").click()
        page.locator("#transcripts-table tbody tr").first.get_by_role("button").click()
        expect(page.locator("#conversation-turns li").first).to_be_visible()
        violations = axe_violations(page)
        assert violations == [], json.dumps(violations, indent=1)

        page.locator("#gaps-table").get_by_role("button", name="Write an answer").first.click()
        expect(page.get_by_role("dialog", name="Write an answer")).to_be_visible()
        violations = axe_violations(page)
        assert violations == [], json.dumps(violations, indent=1)
    finally:
        ctx.close()


def test_the_keyboard_reaches_everything_in_order(servers: Servers, context: BrowserContext) -> None:
    dashboard = Dashboard(context, servers.main)
    page = dashboard.page
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    expect(dashboard.token).to_be_focused()
    page.keyboard.type(TOKEN)
    page.keyboard.press("Enter")
    dashboard.signed_in()
    expect(page.locator("#title")).to_be_focused()  # the start of the dashboard, after signing in
    page.keyboard.press("Tab")
    expect(page.locator("#period")).to_be_focused()

    # From the top of the page: the skip link, the sections, signing out, then each section's controls.
    page.reload()
    dashboard.signed_in()
    expect(page.locator("#gaps-table tbody tr").first).to_be_visible(timeout=LOAD_TIMEOUT)
    order = []
    for _ in range(13):
        page.keyboard.press("Tab")
        order.append(page.evaluate(DESCRIBE_FOCUSED))
    assert order[:12] == [
        "Skip to content",
        "Overview",
        "Knowledge gaps",
        "Curated answers",
        "Transcripts",
        "Leads",
        "Knowledge",
        "sign-out",
        "period",
        "The numbers per day, as a table",
        "gaps-days",
        "Knowledge gaps table",  # its box scrolls sideways on a phone: the keyboard can reach it
    ]
    assert order[12] == "Write an answer"
    assert dashboard.errors == []


# -- the Knowledge section -----------------------------------------------------------------------------------


def test_the_knowledge_section_lists_the_files_served_and_says_up_to_date(
    servers: Servers, context: BrowserContext
) -> None:
    dashboard = Dashboard(context, servers.main)
    dashboard.sign_in()
    dashboard.knowledge_loaded()
    page = dashboard.page
    served = admin_get(servers.main, "/admin/knowledge")
    rows = page.locator("#knowledge-table tbody tr")
    expect(rows.locator("td:nth-child(1)")).to_have_text(KNOWLEDGE_FILES)
    expect(rows.locator("td:nth-child(2)")).to_have_text([str(f["chunks"]) for f in served["files"]])
    assert [f["path"] for f in served["files"]] == KNOWLEDGE_FILES
    assert dashboard.knowledge_stat("Documents") == str(len(KNOWLEDGE_FILES))
    assert dashboard.knowledge_stat("Chunks") == str(served["chunks"])
    assert dashboard.knowledge_stat("Version") == served["version"]
    assert dashboard.knowledge_stat("Up to date") == "Yes"
    expect(page.locator("#knowledge-state")).to_have_text(
        "Up to date: what is served matches the knowledge folder."
    )
    expect(page.locator("#pending-details")).to_be_hidden()
    # No KNOWLEDGE_URLS: nothing to crawl, no website shown; files are names, not links.
    expect(page.get_by_role("button", name="Reindex now")).to_be_visible()
    expect(page.get_by_role("button", name="Crawl the website now")).to_be_hidden()
    expect(page.locator("#site")).to_be_hidden()
    expect(page.locator("#knowledge-table a")).to_have_count(0)
    expect(page.locator("#job-title")).to_be_hidden()  # no reindex since the service started
    assert not any("/admin/reindex" in r.url for r in dashboard.requests)  # nothing to follow: not asked
    assert dashboard.errors == []


def test_crawling_the_website_shows_its_progress_then_its_result_and_the_pages(
    fresh_site: SiteService, context: BrowserContext
) -> None:
    site = fresh_site.website
    dashboard = Dashboard(context, fresh_site.server)
    dashboard.sign_in()
    dashboard.knowledge_loaded()
    page = dashboard.page
    expect(page.locator("#site")).to_be_visible()
    start = page.locator("#site-urls a")
    expect(start).to_have_text(site.url("/") + " (opens in a new tab)")
    expect(page.locator("#site-interval")).to_have_text("Only when you ask (CRAWL_INTERVAL is off)")
    expect(page.locator("#site-last")).to_have_text("Never")
    expect(page.locator("#site-next")).to_have_text("Not scheduled: only when you ask")

    # By keyboard: the section's link, then its buttons.
    page.get_by_role("link", name="Knowledge", exact=True).focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Reindex now")).to_be_focused()
    page.keyboard.press("Tab")
    crawl = page.get_by_role("button", name="Crawl the website now")
    expect(crawl).to_be_focused()
    started = clock.monotonic()
    page.keyboard.press("Enter")

    status = page.locator("#job-status")
    progress = page.locator("#job-progress")
    expect(status).to_have_attribute("aria-live", "polite")
    expect(page.locator("#job-title")).to_have_text("Running: crawl of the website")
    expect(progress).to_be_visible()
    expect(crawl).to_have_attribute("aria-disabled", "true")
    # It moves: addresses done of those found so far, and pages; the bar (read at the same moment) with them.
    page.wait_for_function(
        """() => {
          const bar = document.getElementById('job-progress');
          return /^Crawling: [1-9][0-9]* of [0-9]+ addresses done, [0-9]+ pages? so far[.]$/
              .test(document.getElementById('job-status').textContent)
            && bar.getAttribute('aria-label') === 'Crawl progress' && !bar.hidden
            && bar.value > 0 && bar.value <= bar.max;
        }""",
        timeout=JOB_TIMEOUT,
    )
    expect(status).to_contain_text("The crawl succeeded.", timeout=JOB_TIMEOUT)
    polled = clock.monotonic() - started
    expect(progress).to_be_hidden()
    expect(status).to_contain_text("Updated: 17 documents")
    expect(status).to_contain_text("8 added, 0 changed, 0 removed.")
    assert dashboard.crawl_stat("New") == "8"
    assert dashboard.crawl_stat("Pages") == "8"
    assert dashboard.crawl_stat("Removed") == "0"
    expect(page.locator("#job-result .reasons")).to_contain_text("robots \u00d71")
    errors = page.locator("#job-result .crawl-errors tbody tr")
    found = {tuple(row.locator("td").all_inner_texts()) for row in errors.all()}
    assert (site.url("/broken"), "http_5xx") in found, found
    assert (site.url("/missing-page"), "http_404") in found, found
    expect(crawl).not_to_have_attribute("aria-disabled", "true")
    expect(crawl).to_be_focused()  # the owner is where they were

    # The table is loaded again: the pages are there, as links that open apart from the dashboard.
    expect(page.locator("#knowledge-table tbody tr")).to_have_count(len(KNOWLEDGE_FILES) + len(SITE_PAGES))
    links = page.locator("#knowledge-table a")
    expect(links).to_have_count(len(SITE_PAGES))
    for path in SITE_PAGES:
        link = page.locator(f'#knowledge-table a[href="{site.url(path)}"]')
        expect(link).to_have_count(1)
        expect(link).to_have_attribute("target", "_blank")
        assert "noopener" in (link.get_attribute("rel") or "").split()
    assert dashboard.knowledge_stat("Documents") == str(len(KNOWLEDGE_FILES) + len(SITE_PAGES))
    expect(page.locator("#site-last")).not_to_have_text("Never")

    # Followed every 3 s, no more: the admin budget is 60 calls a minute.
    polls = [r for r in dashboard.requests if r.method == "GET" and r.url.endswith("/admin/reindex")]
    assert 1 <= len(polls) <= polled / 3 + 1, (len(polls), polled)
    calls = [r for r in dashboard.requests if "/admin/" in r.url and "/admin/assets/" not in r.url]
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in calls[1:])
    assert dashboard.errors == []


def test_reindex_now_brings_in_a_new_file_whose_name_stays_text(
    crawled_site: SiteService, context: BrowserContext
) -> None:
    name = '<img src=x onerror="window.__pwned=3">offer.md'
    (crawled_site.knowledge / name).write_text(
        "# Winter offer\n\nA winter service costs 59 pounds in January.\n"
    )
    try:
        dashboard = Dashboard(context, crawled_site.server)
        dashboard.sign_in()
        dashboard.knowledge_loaded()
        page = dashboard.page
        assert dashboard.knowledge_stat("Up to date") == "No"
        state = page.locator("#knowledge-state")
        expect(state).to_have_text(
            "Not up to date. The next reindex brings in: 1 added, 0 changed, 0 removed."
        )
        page.get_by_text("The pending changes, by name").click()
        expect(page.locator("#pending-list li")).to_have_text([f"Added: {name}"])

        page.get_by_role("button", name="Reindex now").click()
        status = page.locator("#job-status")
        expect(status).to_contain_text("The reindex succeeded. Updated:", timeout=JOB_TIMEOUT)
        expect(status).to_contain_text("1 added, 0 changed, 0 removed.")
        expect(page.locator("#job-title")).to_have_text("Latest job: reindex of the knowledge")
        expect(state).to_contain_text("Up to date")
        row = page.locator("#knowledge-table tbody tr").filter(has_text=name)
        expect(row).to_have_count(1)
        expect(row.locator("a")).to_have_count(0)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#knowledge img").count() == 0
        assert dashboard.errors == []
    finally:
        (crawled_site.knowledge / name).unlink()
        # Back to what the other tests expect: the knowledge without it.
        httpx.post(f"{crawled_site.server.url}/admin/reindex", headers={"Authorization": f"Bearer {TOKEN}"})
        finished_job(crawled_site.server)


def test_a_job_running_already_is_shown_instead_of_an_error(
    crawled_site: SiteService, context: BrowserContext
) -> None:
    dashboard = Dashboard(context, crawled_site.server)
    dashboard.sign_in()
    dashboard.knowledge_loaded()
    page = dashboard.page
    # Another tab (here a call) starts a crawl: this page does not know yet, and asks for a reindex.
    started = httpx.post(
        f"{crawled_site.server.url}/admin/crawl", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert started.status_code == 202, started.text
    page.get_by_role("button", name="Reindex now").click()
    status = page.locator("#job-status")
    expect(status).to_contain_text("A crawl is already running.")
    expect(status).not_to_have_class(re.compile(r"\berror\b"))
    expect(page.locator("#job-title")).to_have_text("Running: crawl of the website")
    expect(page.locator("#job-progress")).to_be_visible()
    expect(status).to_contain_text("The crawl succeeded.", timeout=JOB_TIMEOUT)
    assert dashboard.crawl_stat("Unchanged") == "8"  # nothing changed on the site since
    # Chromium logs the 409 itself as a failed load; nothing else may be logged.
    refused = [e for e in dashboard.errors if re.match(r"^Failed to load resource: .* status of 409 ", e)]
    assert len(refused) == 1 and len(dashboard.errors) == 1, dashboard.errors


def test_a_crawl_of_a_site_that_is_down_shows_why_it_failed(
    crawled_site: SiteService, context: BrowserContext
) -> None:
    site = crawled_site.website
    dashboard = Dashboard(context, crawled_site.server)
    dashboard.sign_in()
    dashboard.knowledge_loaded()
    page = dashboard.page
    site.stop()  # nothing answers at its address now
    try:
        page.get_by_role("button", name="Crawl the website now").click()
        status = page.locator("#job-status")
        expect(status).to_contain_text("The crawl failed: SiteUnreachable", timeout=JOB_TIMEOUT)
        expect(status).to_have_class(re.compile(r"\berror\b"))
        expect(page.locator("#job-progress")).to_be_hidden()
        # And each address that could not be read, with why.
        errors = page.locator("#job-result .crawl-errors tbody tr")
        expect(errors.first).to_be_visible()
        found = {tuple(row.locator("td").all_inner_texts()) for row in errors.all()}
        assert all(url.startswith(site.url("/")) and reason for url, reason in found), found
        assert site.url("/robots.txt") in {url for url, _ in found}, found
        # Nothing is removed when the site cannot be read: its pages are still served.
        expect(page.locator("#knowledge-table a")).to_have_count(len(SITE_PAGES))
        assert dashboard.errors == []
    finally:
        site.start()


def test_the_knowledge_section_after_a_crawl_has_no_accessibility_violations(
    crawled_site: SiteService, browser: Browser
) -> None:
    # The page's CSP would refuse the injected checker: this context lets it in (the CSP has its own test).
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    try:
        dashboard = Dashboard(ctx, crawled_site.server)
        dashboard.sign_in()
        dashboard.knowledge_loaded()
        page = dashboard.page
        page.get_by_role("button", name="Crawl the website now").click()
        expect(page.locator("#job-progress")).to_be_visible()
        violations = axe_violations(page)  # while it runs: the progress bar and the live status
        assert violations == [], json.dumps(violations, indent=1)

        expect(page.locator("#job-status")).to_contain_text("The crawl succeeded.", timeout=JOB_TIMEOUT)
        expect(page.locator("#job-result .crawl-errors tbody tr").first).to_be_visible()
        expect(page.locator("#knowledge-table a").first).to_be_visible()
        page.get_by_role("link", name="Knowledge", exact=True).click()
        violations = axe_violations(page)
        assert violations == [], json.dumps(violations, indent=1)
        page.locator("#knowledge").screenshot(path=str(ARTIFACTS / "dashboard-knowledge.png"))
        assert dashboard.errors == []
    finally:
        ctx.close()


def test_the_knowledge_section_fits_a_phone_with_no_console_or_csp_errors(
    crawled_site: SiteService, browser: Browser
) -> None:
    ctx = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="en-US",
        timezone_id="UTC",
    )
    try:
        latest_is_a_crawl(crawled_site)
        dashboard = Dashboard(ctx, crawled_site.server)
        dashboard.sign_in()
        dashboard.knowledge_loaded()
        page = dashboard.page
        # The latest job, crawled before the page was opened, is shown with its result.
        expect(page.locator("#job-status")).to_contain_text("The crawl succeeded.")
        expect(page.locator("#job-result .crawl-errors tbody tr").first).to_be_visible()
        expect(page.locator("#knowledge-table a")).to_have_count(len(SITE_PAGES))
        page.get_by_role("link", name="Knowledge", exact=True).click()
        dashboard.no_horizontal_scroll()
        # Each part within the screen; the wide tables scroll inside their own box.
        for box in ("#knowledge-headline", "#site", "#job", "#knowledge-table"):
            right = page.locator(box).evaluate(
                "(el) => (el.closest('.table-wrap') || el).getBoundingClientRect().right"
            )
            assert right <= 390, (box, right)
        page.locator("#knowledge").screenshot(path=str(ARTIFACTS / "dashboard-knowledge-phone.png"))
        assert dashboard.errors == []
    finally:
        ctx.close()
