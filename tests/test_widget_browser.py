"""The chat widget in a real browser: Debian's Chromium driven by Playwright, against the real API run as a
process (`python -m api`). The widget is embedded with its one tag on pages of another origin, as on a
customer's website; nothing is mocked (the LLM tier, where one is needed, is the fake Gemini over HTTP)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Request, Response, expect

from bench.server import ServerProcess
from fakes.gemini_server import FakeGemini
from fakes.llm_server import Reply
from fakes.thread_server import ThreadServer
from tests.browser import axe_violations, chromium
from tests.conftest import KNOWLEDGE, ROOT

ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOT = ROOT / "docs" / "widget.png"
WIDGET_JS = ROOT / "api" / "static" / "widget.js"
DEMO_HTML = ROOT / "api" / "static" / "demo.html"
DEMO_TAG = '<script src="/widget.js" data-title="Northwind Assistant"'
ANSWER_TIMEOUT = 60_000  # ms: the first question also loads the embedding model
GREETING = "Hi! How can I help you today?"
SERVICES_TEXT = "seven services"  # from the opening of knowledge/services.md
RATE_LIMITED = "You're sending messages a little fast — please wait a moment and try again."
# In sentences: the service releases an answer a sentence at a time, and the widget must show it streaming.
THANKS = "Thanks for your feedback"
COMMENT_LABEL = "What could be better? (optional)"
ANSWER_ID = re.compile(r"[0-9a-f]{32}")
# Nothing in the knowledge is about it: the bot has no answer, and the reply offers the contact form.
NO_ANSWER = "What is the capital of Mongolia?"
CONTACT_OFFER = "Leave your details and a person will get back to you"
CONSENT = "I agree that my details are stored and used to contact me."
LEAD_THANKS = "Thank you! We have your details, and a person will get back to you soon."
SERVER_STARTERS = ["What are your support hours?", "Where is your office?"]
XSS_REPLY = (
    'Hello there. <img src=x onerror="window.__pwned=1"> is an image. <script>window.__pwned=2</script> is a '
    "script. **bold** [link](javascript:alert(1)) https://example.com/ok"
)

# Hostile on purpose: a page whose CSS would wreck any widget that lived in its document.
HOSTILE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>A hostile host page</title>
<style>
  * {{ font-size: 40px !important; color: red !important; line-height: 3 !important; }}
  button {{ display: none !important; }}
  div {{ padding: 30px !important; border: 5px solid lime !important; }}
</style></head>
<body>
  <p id="host-text">The customer's own page.</p>
  <button id="host-button" type="button">A host button</button>
  <script src="{api}/widget.js" data-api="{api}" data-title="Northwind Assistant" defer></script>
</body></html>
"""


# A plain customer page: the one tag, with whatever data-* attributes a test gives it.
EMBED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>A customer's page</title></head>
<body>
  <main><h1>A customer's page</h1><p>Its own content.</p></main>
  <script src="{api}/widget.js" data-api="{api}" data-title="Northwind Assistant"{attributes} defer></script>
</body></html>
"""


class HostSite:
    """The customer's website: its own origin (another port), so the widget's API calls are cross-origin."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        self.policies: dict[str, str] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.pages.get(self.path.split("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                if body is not None:
                    self.send_header("Content-Security-Policy", site.policies[self.path.split("?")[0]])
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadServer(Handler).start()

    @property
    def origin(self) -> str:
        return self._server.url

    def add(self, path: str, html: str, api: str) -> str:
        """A page with the strict policy a careful site owner sets: scripts and calls to the chatbot's origin,
        and the page's own inline styles by hash. The widget must need nothing more (no inline styles)."""
        self.pages[path] = html.encode()
        styles = re.findall(r"<style>(.*?)</style>", html, flags=re.DOTALL)
        digests = [base64.b64encode(hashlib.sha256(style.encode()).digest()).decode() for style in styles]
        style_src = " ".join(f"'sha256-{d}'" for d in digests) or "'none'"
        self.policies[path] = (
            f"default-src 'none'; script-src {api}; connect-src {api}; style-src {style_src}; "
            "img-src data:; base-uri 'none'; form-action 'none'"
        )
        return f"{self.origin}{path}"

    def embed(self, api: str, name: str, **data: str) -> str:
        """A page whose tag carries `data` as data-* attributes (`lang="es"` -> `data-lang="es"`)."""
        attributes = "".join(f' data-{key}="{html.escape(value)}"' for key, value in data.items())
        return self.add(f"/{name}.html", EMBED_PAGE.format(api=api, attributes=attributes), api)

    def hostile(self, api: str, name: str) -> str:
        return self.add(f"/{name}.html", HOSTILE_PAGE.format(api=api), api)

    def demo(self, api: str) -> str:
        """The bundled demo page, its one tag pointed at the API on the other origin."""
        html = DEMO_HTML.read_text()
        assert DEMO_TAG in html, "the demo page's script tag changed: update DEMO_TAG"
        tag = f'<script src="{api}/widget.js" data-api="{api}" data-title="Northwind Assistant"'
        return self.add("/demo.html", html.replace(DEMO_TAG, tag), api)

    def stop(self) -> None:
        self._server.stop()


@dataclass
class Servers:
    plain: ServerProcess  # no API key: the extractive tier answers from the knowledge base
    limited: ServerProcess  # RATE_LIMIT_CHAT=2/minute
    gemini: ServerProcess  # answers come from the fake Gemini
    unrecorded: ServerProcess  # RECORD_ANSWERS=false (so no contact form), and STARTER_QUESTIONS set


@pytest.fixture(scope="module")
def site() -> Iterator[HostSite]:
    server = HostSite()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
    knowledge_store_dir: Path,
    fake_gemini_server: FakeGemini,
    site: HostSite,
) -> Iterator[Servers]:
    """Four real API processes, started together: each takes seconds to come up."""
    ARTIFACTS.mkdir(exist_ok=True)
    base = tmp_path_factory.mktemp("widget-servers")

    def start(name: str, **env: str) -> ServerProcess:
        store = base / name
        shutil.copytree(knowledge_store_dir, store)
        full_env = {
            "CHROMA_PATH": str(store),
            "KNOWLEDGE_DIR": str(KNOWLEDGE),
            "GOOGLE_API_KEY": "",
            "LLM_CHAIN": "gemini,extractive",
            "ALLOWED_ORIGINS": site.origin,
            "DATA_DIR": str(base / f"{name}-records"),  # the answers' records (SQLite), not in the checkout
            **env,
        }
        return ServerProcess(full_env, ARTIFACTS / f"server-{name}.log")

    started = [
        # Most tests ask it something, within a minute or so: more than the default 20/minute in all.
        start("plain", RATE_LIMIT_CHAT="200/minute"),
        start("limited", RATE_LIMIT_CHAT="2/minute"),
        # Hostile model output must reach the widget to show that it renders as text: no fact check, and
        # no relevance check in front of the model ("Say hello" is about nothing in the knowledge).
        start(
            "gemini",
            GOOGLE_API_KEY="test-key",
            GEMINI_BASE_URL=fake_gemini_server.url,
            GROUNDING="off",
            RELEVANCE_CHECK="false",
        ),
        start("unrecorded", RECORD_ANSWERS="false", STARTER_QUESTIONS=json.dumps(SERVER_STARTERS)),
    ]
    try:
        for server in started:
            server.wait_healthy()
        yield Servers(*started)
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh profile per test: its own localStorage, so its own conversation."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    yield ctx
    ctx.close()


class Widget:
    """The widget as a visitor sees it; Playwright's locators reach into its open shadow root."""

    def __init__(self, context: BrowserContext, url: str) -> None:
        self.page = context.new_page()
        self.errors: list[str] = []
        self.chat_requests: list[dict[str, Any]] = []
        self.feedback_requests: list[dict[str, Any]] = []
        self.lead_requests: list[dict[str, Any]] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        # The demo page has a strict CSP: anything it blocks (an inline style, a stray script) is a defect.
        self.page.on(
            "console",
            lambda message: (
                self.errors.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        self.page.on("request", self._record)
        self.page.goto(url)
        self.launcher = self.page.locator("[data-kbchat] .launcher")
        self.dialog = self.page.get_by_role("dialog", name="Northwind Assistant")
        self.log = self.page.get_by_role("log")
        self.box = self.page.get_by_role("textbox", name="Message", exact=True)
        self.send_button = self.page.get_by_role("button", name="Send", exact=True)
        self.user_messages = self.page.locator(".msg.user .bubble")
        self.assistant_messages = self.page.locator(".msg.assistant")
        self.starters = self.page.get_by_role("group", name="Suggested questions").get_by_role("button")
        self.offers = self.page.get_by_role("button", name=CONTACT_OFFER)
        self.contact = self.page.get_by_role("form", name="Leave your details")

    def _record(self, request: Request) -> None:
        if request.url.endswith("/chat/stream"):
            self.chat_requests.append(json.loads(request.post_data or "{}"))
        elif request.url.endswith("/feedback") and request.method == "POST":
            self.feedback_requests.append(json.loads(request.post_data or "{}"))
        elif request.url.endswith("/leads") and request.method == "POST":
            self.lead_requests.append(json.loads(request.post_data or "{}"))

    def open(self) -> None:
        self.page.get_by_role("button", name="Open chat").click()
        expect(self.dialog).to_be_visible()
        expect(self.dialog).to_have_css("transform", "none")  # the opening animation has finished

    def ask(self, question: str) -> None:
        """Types a question, sends it with Enter and waits until the reply has finished streaming."""
        self.box.fill(question)
        self.box.press("Enter")
        expect(self.log).to_have_attribute("aria-busy", "false", timeout=ANSWER_TIMEOUT)

    def ask_recorded(self, question: str) -> str:
        """Asks like `ask`, and returns the answer id that the stream's `done` event carried."""
        with self.page.expect_response(lambda response: response.url.endswith("/chat/stream")) as streamed:
            self.ask(question)
        return answer_id_of(streamed.value)

    def rate(self, action: Callable[[], None]) -> tuple[Any, int, Any]:
        """Does `action` (a click, a key press) and returns the POST /feedback it sent: its JSON body, and
        the real API's status and JSON answer."""
        with self.page.expect_request(
            lambda request: request.url.endswith("/feedback") and request.method == "POST"
        ) as sent:
            action()
        response = sent.value.response()
        assert response is not None, "the feedback request got no response"
        return sent.value.post_data_json, response.status, response.json()

    def settled(self) -> None:
        """Waits for the conversation restored from history (or for the reply in flight)."""
        expect(self.log).to_have_attribute("aria-busy", "false", timeout=ANSWER_TIMEOUT)

    def watch_reply(self) -> None:
        """Records, from inside the page, what the next reply looked like while it came in."""
        self.page.evaluate(
            """() => {
              const log = document.querySelector('[data-kbchat]').shadowRoot.querySelector('.log');
              window.__seen = {typing: false, lengths: []};
              new MutationObserver(() => {
                if (log.querySelector('.typing')) window.__seen.typing = true;
                const bubbles = log.querySelectorAll('.msg.assistant .bubble');
                const last = bubbles[bubbles.length - 1];
                const length = last && !last.querySelector('.typing') ? last.textContent.length : 0;
                const seen = window.__seen.lengths;
                if (length && seen[seen.length - 1] !== length) seen.push(length);
              }).observe(log, {childList: true, subtree: true, characterData: true});
            }"""
        )

    def seen(self) -> dict[str, Any]:
        seen: dict[str, Any] = self.page.evaluate("() => window.__seen")
        return seen

    def in_log(self, script: str) -> Any:
        """Evaluates `script` with `log`, the shadow root's message log, in scope."""
        return self.page.evaluate(
            f"() => {{ const log = document.querySelector('[data-kbchat]').shadowRoot"
            f".querySelector('[role=log]'); return {script}; }}"
        )

    def session_id(self) -> str:
        value: str = self.page.evaluate("() => localStorage.getItem('kbchat:session')")
        return value

    def submit_lead(self, action: Callable[[], None]) -> tuple[Any, int, Any]:
        """Does `action` and returns the POST /leads it sent: its JSON body, and the API's status and JSON."""
        with self.page.expect_request(
            lambda request: request.url.endswith("/leads") and request.method == "POST"
        ) as sent:
            action()
        response = sent.value.response()
        assert response is not None, "the lead request got no response"
        return sent.value.post_data_json, response.status, response.json()

    def field(self, label: str) -> Locator:
        return self.contact.get_by_label(label, exact=True)


def answer_id_of(stream: Response) -> str:
    """The answer id in the `done` event of a `/chat/stream` response."""
    data = done_event(stream)
    answer_id = data.get("answer_id")
    assert isinstance(answer_id, str) and ANSWER_ID.fullmatch(answer_id), f"no answer id: {data}"
    return answer_id


def thumbs(message: Locator) -> tuple[Locator, Locator]:
    """The "Helpful" and "Not helpful" buttons under one answer."""
    return (
        message.get_by_role("button", name="Helpful", exact=True),
        message.get_by_role("button", name="Not helpful", exact=True),
    )


def done_event(stream: Response) -> dict[str, Any]:
    """The data of the `done` event of a `/chat/stream` response."""
    for block in stream.text().replace("\r\n", "\n").split("\n\n"):
        lines = block.split("\n")
        if "event: done" in lines:
            data: dict[str, Any] = json.loads(
                "\n".join(line[5:].lstrip() for line in lines if line.startswith("data:"))
            )
            return data
    raise AssertionError(f"the stream has no done event: {stream.text()!r}")


def box_of(locator: Any) -> dict[str, float]:
    box: dict[str, float] | None = locator.bounding_box()
    assert box is not None, "element is not rendered"
    return box


def test_widget_is_served_by_the_api(servers: Servers) -> None:
    script = httpx.get(f"{servers.plain.url}/widget.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "application/javascript; charset=utf-8"
    assert script.headers["cache-control"] == "public, max-age=300"
    assert script.content == WIDGET_JS.read_bytes()
    demo = httpx.get(f"{servers.plain.url}/demo")
    assert demo.status_code == 200 and demo.headers["content-type"].startswith("text/html")
    assert "Northwind Digital" in demo.text and 'src="/widget.js"' in demo.text
    policy = demo.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "'sha256-" in policy and "unsafe-inline" not in policy
    assert script.headers["cross-origin-resource-policy"] == "cross-origin"  # other sites load it


def test_the_demo_page_works_under_its_own_strict_policy(servers: Servers, context: BrowserContext) -> None:
    widget = Widget(context, f"{servers.plain.url}/demo")
    expect(widget.page.locator("h1")).to_have_css(
        "letter-spacing", re.compile(r"^-")
    )  # its inline style applies
    widget.open()
    widget.ask("What services do you offer?")
    expect(widget.assistant_messages.nth(1).locator(".bubble")).to_contain_text(SERVICES_TEXT)
    assert widget.errors == []


def test_streams_answers_follows_up_and_restores_after_reload(
    servers: Servers, site: HostSite, context: BrowserContext
) -> None:
    widget = Widget(context, site.demo(servers.plain.url))
    expect(widget.dialog).to_be_hidden()
    widget.open()
    expect(widget.box).to_be_focused()
    expect(widget.send_button).to_be_disabled()  # nothing typed yet
    expect(widget.assistant_messages).to_have_count(1)  # the greeting

    widget.watch_reply()
    widget.ask("What services do you offer?")
    services = widget.assistant_messages.nth(1)
    expect(services.locator(".bubble")).to_contain_text(SERVICES_TEXT)
    expect(services.locator(".chip").filter(has_text="Our Services")).to_have_count(1)
    chips = services.locator(".chip").all_inner_texts()
    assert len(chips) == len(set(chips)), f"source titles are shown once each: {chips}"
    assert widget.seen()["typing"], "no typing indicator before the first token"

    widget.ask("How much is the Growth package?")
    expect(widget.assistant_messages.nth(2).locator(".bubble")).to_contain_text("12,500")
    expect(widget.user_messages).to_have_text(
        ["What services do you offer?", "How much is the Growth package?"]
    )
    session = widget.session_id()
    assert [request["session_id"] for request in widget.chat_requests] == [session, session]
    assert all(request["use_cache"] is True for request in widget.chat_requests)

    widget.page.reload()
    expect(widget.dialog).to_be_visible()  # it stays open across the reload
    widget.settled()
    expect(widget.user_messages).to_have_text(
        ["What services do you offer?", "How much is the Growth package?"]
    )
    expect(widget.assistant_messages).to_have_count(3)
    expect(widget.assistant_messages.nth(1)).to_contain_text(SERVICES_TEXT)
    expect(widget.assistant_messages.nth(1).locator(".chip").filter(has_text="Our Services")).to_have_count(1)
    expect(widget.assistant_messages.nth(2)).to_contain_text("12,500")
    assert widget.session_id() == session

    # The picture for the docs: the panel at rest, scrolled to show the first answer's sources above the
    # follow-up question and the start of its answer.
    expect(widget.dialog).to_have_css("transform", "none")
    widget.in_log(
        "(log.scrollTop = [...log.querySelectorAll('.msg.user')].pop().offsetTop - log.offsetTop - 110)"
    )
    SCREENSHOT.parent.mkdir(exist_ok=True)
    widget.page.screenshot(path=str(ARTIFACTS / "widget.png"))
    if os.environ.get("UPDATE_SCREENSHOT") == "1":  # refresh the README's picture on purpose, not every run
        shutil.copyfile(ARTIFACTS / "widget.png", SCREENSHOT)
    assert widget.errors == []


def test_rate_limit_is_a_friendly_line(servers: Servers, site: HostSite, context: BrowserContext) -> None:
    widget = Widget(context, site.hostile(servers.limited.url, "limited"))
    widget.open()
    widget.ask("What services do you offer?")
    widget.ask("Where is your office?")
    expect(widget.page.locator(".notice")).to_have_count(0)
    widget.ask("Do you build mobile apps?")

    last = widget.assistant_messages.last
    expect(last.locator(".notice")).to_have_text(RATE_LIMITED)
    expect(last.get_by_role("button", name="Helpful", exact=True)).to_have_count(0)  # no answer to rate
    log_text = widget.log.inner_text()
    assert "429" not in log_text and "{" not in log_text and "Rate limit" not in log_text
    expect(widget.send_button).to_be_disabled()  # the box was emptied; it is usable again once typed in
    widget.box.fill("again")
    expect(widget.send_button).to_be_enabled()
    assert widget.errors == []


def test_model_output_cannot_inject_markup(
    servers: Servers, site: HostSite, context: BrowserContext, fake_gemini: FakeGemini
) -> None:
    fake_gemini.reset(default=Reply(text=XSS_REPLY))
    widget = Widget(context, site.hostile(servers.gemini.url, "xss"))
    widget.open()
    widget.watch_reply()
    widget.ask("Say hello")
    assert fake_gemini.calls >= 1, "the fake Gemini was not asked: the test would prove nothing"
    lengths = widget.seen()["lengths"]
    assert len(lengths) >= 2, f"the answer did not stream in pieces: {lengths}"

    for when in ("streamed", "restored from history"):
        answer = widget.assistant_messages.nth(1).locator(".bubble")
        expect(answer, when).to_contain_text('<img src=x onerror="window.__pwned=1">')
        expect(answer, when).to_contain_text("<script>window.__pwned=2</script>")
        assert widget.page.evaluate("() => window.__pwned") is None, when
        assert widget.in_log("log.querySelectorAll('img, script, iframe, object').length") == 0, when
        assert widget.in_log("[...log.querySelectorAll('[onerror], [onclick]')].length") == 0, when
        expect(answer.locator("strong"), when).to_have_text("bold")
        links = answer.locator("a")
        expect(links, when).to_have_count(1)
        expect(links, when).to_have_attribute("href", "https://example.com/ok")
        expect(links, when).to_have_attribute("target", "_blank")
        expect(links, when).to_have_attribute("rel", "noopener noreferrer nofollow")
        assert (
            widget.in_log("[...log.querySelectorAll('a')].filter(a => /javascript/i.test(a.href)).length")
            == 0
        )
        expect(answer, when).to_contain_text("link")  # the label stays, as plain text
        widget.page.reload()
        expect(widget.dialog).to_be_visible()
        widget.settled()
    assert widget.errors == []


def test_host_page_css_does_not_reach_the_widget(
    servers: Servers, site: HostSite, context: BrowserContext
) -> None:
    widget = Widget(context, site.hostile(servers.plain.url, "hostile"))
    # The hostile CSS is live on the page itself...
    expect(widget.page.locator("#host-button")).to_be_hidden()
    assert widget.page.locator("#host-text").evaluate("e => getComputedStyle(e).fontSize") == "40px"

    # ...and does not reach inside the widget.
    expect(widget.launcher).to_be_visible()
    launcher = box_of(widget.launcher)
    assert 40 <= launcher["width"] <= 80 and 40 <= launcher["height"] <= 80
    widget.open()
    expect(widget.send_button).to_be_visible()
    send = box_of(widget.send_button)
    assert send["width"] > 0 and send["height"] > 0
    greeting = widget.assistant_messages.first.locator(".bubble")
    expect(greeting).to_have_text(GREETING)
    style = greeting.evaluate("e => [getComputedStyle(e).fontSize, getComputedStyle(e).color]")
    assert style[0] != "40px" and style[0] == "15px", style
    assert style[1] != "rgb(255, 0, 0)", style
    dialog = box_of(widget.dialog)
    assert dialog["width"] < 500 and dialog["height"] > 400  # the floating panel, not stretched or squashed
    assert widget.errors == []


def test_keyboard_only(servers: Servers, site: HostSite, context: BrowserContext) -> None:
    widget = Widget(context, site.hostile(servers.plain.url, "keyboard"))
    widget.launcher.focus()
    widget.page.keyboard.press("Enter")
    expect(widget.dialog).to_be_visible()
    expect(widget.box).to_be_focused()
    expect(widget.page.get_by_role("button", name="Close chat")).to_have_attribute("aria-expanded", "true")

    widget.page.keyboard.type("   ")
    expect(widget.send_button).to_be_disabled()  # whitespace is not a question
    widget.page.keyboard.type("line one")
    widget.page.keyboard.press("Shift+Enter")
    widget.page.keyboard.type("line two")
    expect(widget.box).to_have_value("   line one\nline two")
    expect(widget.user_messages).to_have_count(0)  # Shift+Enter did not send
    expect(widget.send_button).to_be_enabled()
    outline = widget.launcher.evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline == "none"  # not focused now; the ring is checked below on the focused launcher

    widget.page.keyboard.press("Escape")
    expect(widget.dialog).to_be_hidden()
    expect(widget.launcher).to_be_focused()
    expect(widget.launcher).to_have_accessible_name("Open chat")
    ring = widget.launcher.evaluate(
        "e => [getComputedStyle(e).outlineStyle, getComputedStyle(e).outlineWidth]"
    )
    assert ring == ["solid", "2px"], f"no visible focus ring: {ring}"
    assert widget.errors == []


def test_phone_sized_screen_gets_a_full_screen_panel(
    servers: Servers, site: HostSite, browser: Browser
) -> None:
    phone = browser.new_context(viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True)
    try:
        widget = Widget(phone, site.hostile(servers.plain.url, "phone"))
        widget.open()
        panel = box_of(widget.dialog)
        assert panel["x"] <= 1 and panel["width"] >= 373, panel
        assert panel["y"] <= 1 and panel["height"] >= 660, panel
        expect(widget.send_button).to_be_in_viewport()
        expect(widget.page.get_by_role("button", name="Close", exact=True)).to_be_in_viewport()
        assert widget.errors == []
    finally:
        phone.close()


def test_new_conversation_clears_the_log_and_the_server_side_history(
    servers: Servers, site: HostSite, context: BrowserContext
) -> None:
    widget = Widget(context, site.hostile(servers.plain.url, "fresh"))
    widget.open()
    widget.ask("What are your support hours?")
    expect(widget.assistant_messages).to_have_count(2)
    old = widget.session_id()

    def old_history() -> Any:
        return httpx.get(f"{servers.plain.url}/history/{old}").raise_for_status().json()

    assert len(old_history()["messages"]) == 2

    widget.page.get_by_role("button", name="New conversation").click()
    expect(widget.assistant_messages).to_have_count(1)
    expect(widget.assistant_messages.first.locator(".bubble")).to_have_text(GREETING)
    expect(widget.user_messages).to_have_count(0)
    new = widget.session_id()
    assert new != old and len(new) == 36
    # The DELETE is fire-and-forget (keepalive): give it a moment, at a pace the history limit allows.
    deadline = time.monotonic() + 5
    while old_history()["messages"] and time.monotonic() < deadline:
        time.sleep(0.25)
    assert old_history() == {"session_id": old, "messages": []}

    with widget.page.expect_response(lambda response: f"/history/{new}" in response.url):
        widget.page.reload()
    expect(widget.dialog).to_be_visible()
    widget.settled()
    expect(widget.assistant_messages).to_have_count(1)
    expect(widget.assistant_messages.first.locator(".bubble")).to_have_text(GREETING)
    expect(widget.user_messages).to_have_count(0)
    assert widget.errors == []


def test_thumbs_under_an_answer_work_by_keyboard_and_send_the_rating(
    servers: Servers, site: HostSite, context: BrowserContext
) -> None:
    widget = Widget(context, site.hostile(servers.plain.url, "thumbs"))
    widget.open()
    answer_id = widget.ask_recorded("What services do you offer?")
    answer = widget.assistant_messages.nth(1)
    up, down = thumbs(answer)
    expect(up).to_be_visible()
    expect(down).to_be_visible()
    expect(widget.page.get_by_role("button", name="Helpful", exact=True)).to_have_count(1)  # not the greeting
    expect(answer.get_by_role("group", name="Rate this answer")).to_be_visible()
    for button, name in ((up, "Helpful"), (down, "Not helpful")):
        expect(button).to_have_accessible_name(name)
        expect(button).to_have_attribute("aria-pressed", "false")
        assert button.evaluate("e => [e.tagName, e.type]") == ["BUTTON", "button"]
    # Under the sources, not between the answer and its sources.
    parts = answer.evaluate("e => [...e.children].map(c => c.className)")
    assert parts[-2:] == ["sources", "feedback"], parts
    status = answer.get_by_role("status")
    expect(status).to_have_attribute("aria-live", "polite")
    expect(status).to_have_text("")

    # From the message box, Shift+Tab goes back to the last answer's thumbs.
    widget.box.focus()
    widget.page.keyboard.press("Shift+Tab")
    expect(down).to_be_focused()
    widget.page.keyboard.press("Shift+Tab")
    expect(up).to_be_focused()
    ring = up.evaluate("e => [getComputedStyle(e).outlineStyle, getComputedStyle(e).outlineWidth]")
    assert ring == ["solid", "2px"], f"no visible focus ring: {ring}"

    sent, code, body = widget.rate(lambda: widget.page.keyboard.press("Enter"))
    assert sent == {"answer_id": answer_id, "rating": "up"}
    assert code == 200 and body == {"answer_id": answer_id, "rating": "up"}
    expect(up).to_have_attribute("aria-pressed", "true")
    expect(down).to_have_attribute("aria-pressed", "false")
    expect(status).to_have_text(THANKS)

    # A changed vote is sent again; thumbs-down opens the comment box, and Escape closes only that.
    widget.page.keyboard.press("Tab")
    expect(down).to_be_focused()
    sent, code, _ = widget.rate(lambda: widget.page.keyboard.press("Space"))
    assert sent == {"answer_id": answer_id, "rating": "down"} and code == 200
    expect(down).to_have_attribute("aria-pressed", "true")
    expect(up).to_have_attribute("aria-pressed", "false")
    comment = answer.get_by_role("textbox", name=COMMENT_LABEL)
    expect(comment).to_be_focused()
    widget.page.keyboard.press("Escape")
    expect(comment).to_have_count(0)
    expect(down).to_be_focused()
    expect(widget.dialog).to_be_visible()
    expect(status).to_have_text(THANKS)
    assert len(widget.feedback_requests) == 2

    # Restored history carries no answer ids: nothing to rate there.
    widget.page.reload()
    expect(widget.dialog).to_be_visible()
    widget.settled()
    expect(widget.assistant_messages).to_have_count(2)
    expect(widget.page.get_by_role("button", name="Helpful", exact=True)).to_have_count(0)
    assert widget.errors == []


def test_thumbs_down_takes_an_optional_comment(
    servers: Servers, site: HostSite, context: BrowserContext
) -> None:
    widget = Widget(context, site.hostile(servers.plain.url, "comment"))
    widget.open()
    answer_id = widget.ask_recorded("How much is the Growth package?")
    answer = widget.assistant_messages.nth(1)
    up, down = thumbs(answer)

    sent, code, _ = widget.rate(down.click)
    assert sent == {"answer_id": answer_id, "rating": "down"} and code == 200
    comment = answer.get_by_role("textbox", name=COMMENT_LABEL)
    expect(comment).to_be_focused()
    expect(comment).to_have_attribute("maxlength", "1000")
    send = answer.get_by_role("button", name="Send feedback")
    expect(send).to_have_text("Send")
    expect(send).to_be_disabled()  # nothing written yet: Skip is the way out
    answer.get_by_role("button", name="Skip").click()
    expect(comment).to_have_count(0)
    expect(down).to_be_focused()
    expect(down).to_have_attribute("aria-pressed", "true")  # skipping the comment keeps the vote

    down.click()  # already the rating: the box opens again, nothing is sent again
    expect(comment).to_be_focused()
    widget.page.keyboard.type("The monthly price is missing.")
    sent, code, body = widget.rate(send.click)
    assert sent == {"answer_id": answer_id, "rating": "down", "comment": "The monthly price is missing."}
    assert code == 200 and body == {"answer_id": answer_id, "rating": "down"}
    expect(comment).to_have_count(0)
    expect(down).to_be_focused()
    expect(answer.get_by_role("status")).to_have_text(THANKS)

    sent, code, _ = widget.rate(up.click)  # a second thought replaces the first
    assert sent == {"answer_id": answer_id, "rating": "up"} and code == 200
    expect(up).to_have_attribute("aria-pressed", "true")
    expect(down).to_have_attribute("aria-pressed", "false")
    assert [request["rating"] for request in widget.feedback_requests] == ["down", "down", "up"]
    assert widget.errors == []


def test_error_replies_get_no_thumbs(
    servers: Servers, site: HostSite, context: BrowserContext, fake_gemini: FakeGemini
) -> None:
    # The model breaks off after its first piece: the visitor has seen part of an answer, then the apology.
    fake_gemini.reset(default=Reply(text="We build sites. And we host them too, for years.", break_after=1))
    widget = Widget(context, site.hostile(servers.gemini.url, "broken"))
    widget.open()
    widget.ask("Say something nice")  # not a question an earlier test asked: its answer would be cached
    broken = widget.assistant_messages.nth(1)
    expect(broken.locator(".notice")).to_contain_text("Sorry, the answer was interrupted.")
    expect(broken.get_by_role("button", name="Helpful", exact=True)).to_have_count(0)
    expect(broken.get_by_role("button", name="Not helpful", exact=True)).to_have_count(0)

    # The next, whole answer does get them: the test above would prove nothing otherwise.
    fake_gemini.reset(default=Reply(text="Hello there. How can I help?"))
    widget.ask("Say something nice again")
    up, down = thumbs(widget.assistant_messages.nth(2))
    expect(up).to_be_visible()
    expect(down).to_be_visible()
    expect(widget.page.get_by_role("button", name="Helpful", exact=True)).to_have_count(1)
    assert widget.errors == []


def test_the_open_widget_with_an_answer_has_no_accessibility_violations(
    servers: Servers, browser: Browser
) -> None:
    # The page's CSP would refuse the injected checker: this context lets it in (the CSP has its own test).
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    try:
        widget = Widget(ctx, f"{servers.plain.url}/demo")
        widget.open()
        widget.ask_recorded("What services do you offer?")
        violations = axe_violations(widget.page)
        assert violations == [], json.dumps(violations, indent=1)
    finally:
        ctx.close()


def test_starters_from_the_tag_are_asked_with_a_click_and_then_vanish(
    servers: Servers, site: HostSite, context: BrowserContext
) -> None:
    long = "Could you tell me, " + "in as much detail as you can, " * 4 + "what a website costs?"
    listed = [
        "What services do you offer?",
        "What services do you offer?",  # said twice: shown once
        "  ",
        long,
        "Do you build mobile apps?",
        "Where is your office?",
        "How much is the Growth package?",  # a fifth: too many for the panel
    ]
    # The server has STARTER_QUESTIONS of its own: the page's list wins.
    widget = Widget(context, site.embed(servers.unrecorded.url, "starters", starters="|".join(listed)))
    widget.open()
    expect(widget.starters).to_have_count(4)
    shown = widget.starters.all_inner_texts()
    assert shown[0] == "What services do you offer?" and shown[2:] == [listed[4], listed[5]], shown
    assert len(shown[1]) == 100 and shown[1].endswith("…") and long.startswith(shown[1][:-1]), shown[1]
    expect(widget.starters.nth(1)).to_have_attribute("title", long)
    expect(widget.assistant_messages).to_have_count(1)  # the greeting; the starters are no message

    # By keyboard: from the conversation log, Tab reaches the first one, Enter asks it.
    widget.log.focus()
    widget.page.keyboard.press("Tab")
    expect(widget.starters.first).to_be_focused()
    with widget.page.expect_response(lambda response: response.url.endswith("/chat/stream")):
        widget.page.keyboard.press("Enter")
    widget.settled()
    expect(widget.user_messages).to_have_text(["What services do you offer?"])
    assert widget.chat_requests[0]["message"] == "What services do you offer?"
    expect(widget.assistant_messages.nth(1).locator(".bubble")).to_contain_text(SERVICES_TEXT)
    expect(widget.starters).to_have_count(0)
    expect(widget.box).to_be_focused()  # not lost with the button that had it

    widget.page.get_by_role("button", name="New conversation").click()
    expect(widget.starters).to_have_count(4)  # an empty conversation again
    widget.starters.nth(2).click()
    widget.settled()
    expect(widget.user_messages).to_have_text(["Do you build mobile apps?"])
    expect(widget.starters).to_have_count(0)
    assert widget.errors == []


def test_starters_from_the_server_setting_and_none_in_a_restored_conversation(
    servers: Servers, site: HostSite, context: BrowserContext
) -> None:
    widget = Widget(context, site.embed(servers.unrecorded.url, "server-starters"))
    widget.open()
    expect(widget.starters).to_have_text(SERVER_STARTERS)
    widget.starters.nth(1).click()
    widget.settled()
    expect(widget.user_messages).to_have_text([SERVER_STARTERS[1]])
    expect(widget.starters).to_have_count(0)

    widget.page.reload()
    expect(widget.dialog).to_be_visible()
    widget.settled()
    expect(widget.user_messages).to_have_text([SERVER_STARTERS[1]])
    # The restored conversation is not empty: no starters, even once the server's config has come.
    widget.page.wait_for_load_state("networkidle")
    expect(widget.starters).to_have_count(0)
    assert widget.errors == []


def test_the_interface_speaks_spanish(servers: Servers, site: HostSite, context: BrowserContext) -> None:
    widget = Widget(context, site.embed(servers.plain.url, "es", lang="es"))
    page = widget.page
    launcher = page.get_by_role("button", name="Abrir chat")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    launcher.click()
    expect(widget.dialog).to_be_visible()
    expect(page.locator("[data-kbchat] .kb")).to_have_attribute("lang", "es")
    box = page.get_by_role("textbox", name="Mensaje", exact=True)
    expect(box).to_be_focused()
    expect(box).to_have_attribute("placeholder", "Escribe tu pregunta…")
    expect(page.get_by_role("button", name="Cerrar chat")).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("button", name="Nueva conversación")).to_be_visible()
    expect(page.get_by_role("log", name="Conversación")).to_be_visible()
    expect(widget.assistant_messages.first.locator(".bubble")).to_have_text(
        "¡Hola! ¿En qué puedo ayudarte hoy?"
    )
    expect(page.locator(".foot")).to_have_text("Asistente de IA · sus respuestas no siempre son perfectas")

    box.fill("What services do you offer?")
    page.get_by_role("button", name="Enviar", exact=True).click()
    widget.settled()
    answer = widget.assistant_messages.nth(1)
    expect(answer.locator(".sources-label")).to_have_text("Fuentes")
    expect(answer.get_by_role("group", name="Valora esta respuesta")).to_be_visible()
    answer.get_by_role("button", name="No útil", exact=True).click()
    expect(answer.get_by_role("status")).to_have_text("Gracias por tu opinión")
    expect(answer.get_by_role("textbox", name="¿Qué podríamos mejorar? (opcional)")).to_be_focused()
    offer = answer.get_by_role("button", name="Deja tus datos y una persona se pondrá en contacto contigo")
    offer.click()
    form = page.get_by_role("form", name="Deja tus datos")
    expect(form.get_by_label("Nombre", exact=True)).to_be_focused()
    form.get_by_role("button", name="Enviar datos").click()  # empty: the widget's own checks answer
    email = form.get_by_label("Correo electrónico", exact=True)
    expect(email).to_have_accessible_description("Escribe tu correo electrónico.")
    consent = form.get_by_role("checkbox", name="Acepto que mis datos se guarden y se usen para contactarme.")
    expect(consent).to_have_accessible_description("Marca la casilla para que podamos contactarte.")
    form.get_by_role("button", name="Cancelar").click()
    expect(offer).to_be_focused()
    assert widget.lead_requests == [] and widget.errors == []


def test_unknown_languages_get_english(servers: Servers, site: HostSite, context: BrowserContext) -> None:
    for lang in ("xx", "constructor"):  # the second is a key every JS object has: still no language
        widget = Widget(context, site.embed(servers.plain.url, f"lang-{lang}", lang=lang))
        widget.open()  # by its English name
        expect(widget.page.locator("[data-kbchat] .kb")).to_have_attribute("lang", "en")
        expect(widget.box).to_have_attribute("placeholder", "Type your question…")
        expect(widget.assistant_messages.first.locator(".bubble")).to_have_text(GREETING)
        expect(widget.page.get_by_role("button", name="New conversation")).to_be_visible()
        assert widget.errors == []
        widget.page.close()


# Every string the widget shows or gives to screen readers, outside the conversation's content.
INTERFACE_STRINGS = """() => {
  const root = document.querySelector('[data-kbchat]').shadowRoot;
  const found = new Set();
  for (const el of root.querySelectorAll('*')) {
    if (el.closest('.bubble, .chip, .starters, .title')) continue;
    for (const name of ['aria-label', 'placeholder', 'title']) {
      const value = el.getAttribute(name);
      if (value) found.add(value.trim());
    }
    for (const node of el.childNodes) {
      if (node.nodeType === Node.TEXT_NODE && node.textContent.trim()) found.add(node.textContent.trim());
    }
  }
  return [...found];
}"""


def interface_strings(context: BrowserContext, page_url: str) -> tuple[set[str], str]:
    """Walks the widget through its states (an answer, rated down, the contact form with its errors) by
    class names only, and collects its words there; returns them with the root's `lang`."""
    page = context.new_page()
    page.goto(page_url)
    kb = page.locator("[data-kbchat] .kb")
    kb.locator(".launcher").click()
    log = page.get_by_role("log")
    expect(log).to_have_attribute("aria-busy", "false")
    kb.locator(".composer textarea").fill("What services do you offer?")
    kb.locator(".composer textarea").press("Enter")
    expect(log).to_have_attribute("aria-busy", "false", timeout=ANSWER_TIMEOUT)
    kb.locator(".thumb.down").click()
    expect(kb.locator(".fb-status")).not_to_be_empty()
    kb.locator(".offer").click()
    kb.locator(".contact-send").click()
    expect(kb.locator(".contact .field-error").first).not_to_be_empty()
    found = set(page.evaluate(INTERFACE_STRINGS)) - {"Northwind Assistant"}  # the page's own title
    lang = kb.get_attribute("lang") or ""
    page.close()
    return found, lang


def test_every_interface_string_is_translated(
    servers: Servers, site: HostSite, context: BrowserContext
) -> None:
    english, lang = interface_strings(context, site.embed(servers.plain.url, "walk-en"))
    assert lang == "en"
    assert {"Close chat", "Helpful", "Sources", CONTACT_OFFER, "Please enter your name."} <= english, english
    for code, same in (("es", set()), ("de", {"Name"})):  # German's word for a name is the same
        translated, lang = interface_strings(
            context, site.embed(servers.plain.url, f"walk-{code}", lang=code)
        )
        assert lang == code
        assert len(translated) >= len(english) - 1, (code, translated)
        assert english & translated == same, (code, english & translated)


WIDGET_SOURCE = WIDGET_JS.read_text()


def test_the_string_table_has_every_key_in_every_language() -> None:
    """The table in widget.js: a key missing from a language would silently show English there."""
    block = re.search(r"const STRINGS = \{\n(.*?)\n  \};\n", WIDGET_SOURCE, flags=re.DOTALL)
    assert block is not None, "no STRINGS table in widget.js"
    languages = dict(
        re.findall(r"^    (\w+): \{\n(.*?)\n    \},$", block.group(1), flags=re.DOTALL | re.MULTILINE)
    )
    assert set(languages) == {"en", "es", "fr", "de"}
    keys = {code: re.findall(r"^      (\w+): ", body, flags=re.MULTILINE) for code, body in languages.items()}
    assert len(keys["en"]) > 40
    for code, found in keys.items():
        assert sorted(found) == sorted(keys["en"]), code


def test_contact_form_after_a_reply_without_an_answer(
    servers: Servers, site: HostSite, context: BrowserContext
) -> None:
    widget = Widget(context, site.hostile(servers.plain.url, "lead"))
    widget.open()
    with widget.page.expect_response(lambda response: response.url.endswith("/chat/stream")) as streamed:
        widget.ask(NO_ANSWER)
    assert done_event(streamed.value)["offer_contact"] is True
    reply = widget.assistant_messages.nth(1)
    offer = reply.get_by_role("button", name=CONTACT_OFFER)
    expect(offer).to_be_visible()
    expect(widget.offers).to_have_count(1)

    offer.click()
    expect(widget.contact).to_be_visible()
    expect(offer).to_be_hidden()  # the form takes its place
    name, email = widget.field("Name"), widget.field("E-mail")
    message = widget.field("How can we help?")
    consent = widget.contact.get_by_role("checkbox", name=CONSENT)
    expect(name).to_be_focused()
    expect(email).to_have_attribute("type", "email")
    assert message.evaluate("e => e.tagName") == "TEXTAREA"
    expect(message).to_have_value("")
    expect(consent).not_to_be_checked()

    # An address the browser's own check would let through: the server's 422 names the field, and the
    # widget says so beside it.
    name.fill("Ann Example")
    email.fill("ann@localhost")
    message.fill("Please call me about a new website.")
    consent.check()
    sent, code, body = widget.submit_lead(widget.contact.get_by_role("button", name="Send details").click)
    assert code == 422 and [error["field"] for error in body["detail"]] == ["email"], body
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_accessible_description("Please enter a valid e-mail address.")
    expect(widget.contact.locator(".field-error").filter(has_text="valid e-mail")).to_be_visible()
    expect(email).to_be_focused()
    expect(name).not_to_have_attribute("aria-invalid", "true")

    email.fill("ann@example.com")
    expect(email).not_to_have_attribute("aria-invalid", "true")  # the message goes as the field changes
    sent, code, body = widget.submit_lead(lambda: widget.page.keyboard.press("Enter"))
    session = widget.session_id()
    assert sent == {
        "name": "Ann Example",
        "email": "ann@example.com",
        "message": "Please call me about a new website.",
        "consent": True,
        "session_id": session,
    }
    assert code == 201, body
    thanks = reply.locator(".lead-done")
    expect(thanks).to_have_text(LEAD_THANKS)
    expect(thanks).to_be_focused()
    expect(widget.contact).to_have_count(0)
    expect(widget.offers).to_have_count(0)

    # The owner has it, with the conversation it came from.
    leads = httpx.get(f"{servers.plain.url}/admin/leads").raise_for_status().json()["leads"]
    mine = next(lead for lead in leads if lead["id"] == body["lead_id"])
    assert (mine["name"], mine["email"], mine["message"]) == (
        "Ann Example",
        "ann@example.com",
        "Please call me about a new website.",
    )
    assert mine["conversation"] is not None

    # Not offered again in this conversation, even for another reply that would offer it, nor after a reload.
    with widget.page.expect_response(lambda response: response.url.endswith("/chat/stream")) as streamed:
        widget.ask(NO_ANSWER)
    assert done_event(streamed.value)["offer_contact"] is True
    expect(widget.assistant_messages).to_have_count(3)
    widget.page.reload()
    expect(widget.dialog).to_be_visible()
    widget.settled()
    widget.ask(NO_ANSWER)
    expect(widget.user_messages.last).to_have_text(NO_ANSWER)
    expect(widget.offers).to_have_count(0)
    # A new conversation may have it again.
    widget.page.get_by_role("button", name="New conversation").click()
    widget.ask(NO_ANSWER)
    expect(widget.offers).to_have_count(1)
    assert widget.errors == []


def test_contact_form_after_thumbs_down_by_keyboard_with_its_own_checks(
    servers: Servers, site: HostSite, context: BrowserContext
) -> None:
    widget = Widget(context, site.hostile(servers.plain.url, "lead-thumbs"))
    widget.open()
    widget.ask_recorded("Where is your office?")
    answer = widget.assistant_messages.nth(1)
    expect(widget.offers).to_have_count(0)  # an answer: nothing to offer yet
    _, down = thumbs(answer)
    widget.rate(down.click)
    comment = answer.get_by_role("textbox", name=COMMENT_LABEL)
    expect(comment).to_be_focused()  # the comment first; the offer waits below it
    offer = answer.get_by_role("button", name=CONTACT_OFFER)
    expect(offer).to_be_visible()
    parts = answer.evaluate("e => [...e.children].map(c => c.className)")
    assert parts[-2:] == ["feedback", "contact-offer"], parts

    offer.focus()
    widget.page.keyboard.press("Enter")
    name = widget.field("Name")
    expect(name).to_be_focused()
    widget.page.keyboard.press("Escape")  # closes the form, not the chat
    expect(widget.contact).to_have_count(0)
    expect(offer).to_be_focused()
    expect(widget.dialog).to_be_visible()

    widget.page.keyboard.press("Enter")
    expect(name).to_be_focused()
    # Nothing filled in: the widget's own checks, no request.
    widget.contact.get_by_role("button", name="Send details").click()
    expect(name).to_be_focused()
    expected = {
        "Name": "Please enter your name.",
        "E-mail": "Please enter your e-mail address.",
        "How can we help?": "Please tell us briefly what you need.",
        CONSENT: "Please tick the box so that we may contact you.",
    }
    for label, error in expected.items():
        field = widget.field(label)
        expect(field).to_have_attribute("aria-invalid", "true")
        expect(field).to_have_accessible_description(error)
    widget.field("E-mail").fill("not an address")
    widget.contact.get_by_role("button", name="Send details").click()
    expect(widget.field("E-mail")).to_have_accessible_description("Please enter a valid e-mail address.")
    widget.contact.get_by_role("button", name="Cancel").click()
    expect(widget.contact).to_have_count(0)
    expect(offer).to_be_focused()
    assert widget.lead_requests == []
    assert widget.errors == []


def test_no_contact_form_where_the_server_takes_no_details(
    servers: Servers, site: HostSite, context: BrowserContext
) -> None:
    widget = Widget(context, site.hostile(servers.unrecorded.url, "no-leads"))
    widget.open()
    with widget.page.expect_response(lambda response: response.url.endswith("/chat/stream")) as streamed:
        widget.ask(NO_ANSWER)
    assert done_event(streamed.value)["offer_contact"] is True  # it would be offered, with records on
    expect(widget.assistant_messages).to_have_count(2)
    expect(widget.offers).to_have_count(0)
    assert widget.errors == []


def test_starters_and_the_contact_form_have_no_accessibility_violations(
    servers: Servers, browser: Browser
) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    try:
        widget = Widget(ctx, f"{servers.plain.url}/demo")  # the demo page's tag lists starters
        widget.open()
        expect(widget.starters).to_have_count(3)
        violations = axe_violations(widget.page)
        assert violations == [], json.dumps(violations, indent=1)

        widget.ask(NO_ANSWER)
        widget.offers.click()
        expect(widget.contact).to_be_visible()
        violations = axe_violations(widget.page)
        assert violations == [], json.dumps(violations, indent=1)
        widget.contact.get_by_role("button", name="Send details").click()  # every field's error shown
        expect(widget.field("Name")).to_have_attribute("aria-invalid", "true")
        violations = axe_violations(widget.page)
        assert violations == [], json.dumps(violations, indent=1)
    finally:
        ctx.close()


def test_a_source_that_is_a_web_page_links_to_it_in_a_new_tab(
    servers: Servers, site: HostSite, context: BrowserContext
) -> None:
    # The owner's answer cites a page of the site, a file, and a script URL that must stay text.
    sources = ["https://www.example.com/pricing#growth", "pricing.md", "javascript:alert(1)"]
    entry = {"questions": ["Do you sell gift vouchers?"], "answer": "Yes: in any amount.", "sources": sources}
    created = httpx.post(f"{servers.plain.url}/admin/answers", json=entry, timeout=30)
    assert created.status_code == 201, created.text
    try:
        widget = Widget(context, site.hostile(servers.plain.url, "page-links"))
        widget.open()
        widget.ask("Do you sell gift vouchers?")
        answer = widget.assistant_messages.nth(1)
        expect(answer).to_contain_text("Yes: in any amount.")
        link = answer.get_by_role("link", name="https://www.example.com/pricing#growth")
        expect(link).to_have_attribute("href", "https://www.example.com/pricing#growth")
        expect(link).to_have_attribute("target", "_blank")
        assert "noopener" in (link.get_attribute("rel") or "").split()
        chips = answer.locator(".chip")
        expect(chips).to_have_count(3)
        expect(chips.nth(1)).to_have_text("pricing.md")
        expect(chips.nth(2)).to_have_text("javascript:alert(1)")
        expect(answer.locator(".chip a")).to_have_count(1)  # a file and a script URL are text
        assert widget.errors == []
    finally:
        httpx.delete(f"{servers.plain.url}/admin/answers/{created.json()['id']}", timeout=30)
