"""Everything that reads outside text with a pattern runs in linear time: a knowledge file, a visitor's
message, a header or a query built to make a regex backtrack must not hold the interpreter (and with it
every request) for seconds. The old patterns are kept here as the reference for normal input."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from agent.generators.extractive import _sentences, _strip_links, select_sentences
from agent.prompting import Prompt
from agent.scrub import LeakGuard
from agent.smalltalk import recognise
from api.cache import normalize_question
from api.middleware import _VALID_ID
from api.schemas import clean_text
from rag.chunking import chunk_document
from rag.formats import html_to_text
from rag.loading import Document, load, scan
from rag.logs import Redactor, mask_emails, mask_phones
from rag.markdown import heading
from rag.retriever import Passage
from rag.tokens import WordTokens
from tests.conftest import AppFactory

# CPU seconds (not wall time: other work on the machine does not count). On these inputs the quadratic
# patterns took 3 to 25 s and the cubic heading patterns minutes; linear code takes milliseconds.
LIMIT = 0.5
N = 60_000

OLD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
OLD_TITLE = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)
OLD_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
OLD_PHONE = re.compile(r"(?<![\w.])\+?\(?\d(?:[\s().-]{0,2}\d){6,}(?![\w.])")
OLD_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")


def assert_fast(function: Callable[[str], object], text: str) -> None:
    started = time.process_time()
    function(text)
    elapsed = time.process_time() - started
    assert elapsed < LIMIT, f"{elapsed:.2f} s on {len(text):,} characters starting {text[:20]!r}"


def old_heading(line: str) -> tuple[int, str] | None:
    match = OLD_HEADING.match(line)
    return (len(match.group(1)), match.group(2).strip()) if match else None


# --- Markdown headings (rag.markdown, used by the chunker and the loader's title) ---

HOSTILE_HEADINGS = [
    "# a" + " " * N + "x",  # cubic for the old patterns: 4,000 spaces took 54 s
    "## a" + " \t" * (N // 2) + "x",
    "# a " + "#" * N + " x",
    "# a" + " " * N + "#" * N + " x",
    "#" * N,
    "# " + "# " * (N // 2) + "x",
    "#" * 6 + " " * N,
]


@pytest.mark.parametrize("line", HOSTILE_HEADINGS, ids=lambda line: repr(line[:5]))
def test_heading_is_linear(line: str) -> None:
    assert_fast(heading, line)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("# Title", (1, "Title")),
        ("## Sub ##", (2, "Sub")),
        ("###   spaced   ###", (3, "spaced")),
        ("#NoSpace", None),
        ("# Title #hash", (1, "Title #hash")),
        ("####### seven", None),
        ("###### six", (6, "six")),
        ("#\tTabbed\t#\t", (1, "Tabbed")),
        ("##\t\tTabs  and spaces \t##  \t", (2, "Tabs  and spaces")),
        ("# Title ## ##", (1, "Title ##")),
        ("# £10 (beta) & more", (1, "£10 (beta) & more")),
        ("  # indented", None),
        ("", None),
        ("#", None),
        ("# ", None),
        ("#5 on the list", None),
    ],
)
def test_heading_reads_ordinary_headings_as_the_old_pattern_did(
    line: str, expected: tuple[int, str] | None
) -> None:
    assert heading(line) == expected == old_heading(line)


@pytest.mark.parametrize(
    ("line", "old", "new"),
    [
        ("## Learn C#", (2, "Learn C"), (2, "Learn C#")),  # a closing run needs whitespace before it
        ("# Title##", (1, "Title"), (1, "Title##")),
        ("#  ", (1, ""), None),  # no text, no section
        ("## ##", (2, "#"), None),  # only a closing run: an empty heading
    ],
)
def test_heading_follows_commonmark_where_the_old_pattern_did_not(
    line: str, old: tuple[int, str] | None, new: tuple[int, str] | None
) -> None:
    assert old_heading(line) == old
    assert heading(line) == new


def test_heading_equals_the_old_pattern_on_generated_ordinary_lines() -> None:
    rnd = random.Random(20260101)
    words = ["Plans", "Q&A", "£10", "(beta)", "x", "3.5", "a#b", "#tag", "*bold*", "C++", "--", "Ünïcode"]
    spaces = ["", " ", "  ", "\t", " \t", "\u00a0"]
    compared = 0
    for _ in range(20_000):
        text = rnd.choice(["", " ", "\t"]).join(rnd.choice(words) for _ in range(rnd.randint(1, 4)))
        closing = rnd.choice(["", "", " #", " ##", "  ###  ", "\t#", " " + "#" * rnd.randint(1, 9)])
        line = "#" * rnd.randint(0, 8) + rnd.choice(spaces) + text + closing + rnd.choice(spaces)
        assert heading(line) == old_heading(line), line
        compared += heading(line) is not None
    assert compared > 5_000


def test_the_bundled_knowledge_reads_as_before() -> None:
    sources = scan(Path("knowledge"))
    assert sources
    for source in sources:
        document = load(source)
        title = OLD_TITLE.search(document.text)
        assert title is not None and document.title == title.group(1).strip()
        for line in document.text.split("\n"):
            assert heading(line) == old_heading(line), (source.relative, line)


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("intro\n## Sub\n# Real Title ##\n# Second\n", "Real Title"),
        ("## Only a sub-heading\n", "Hostile Notes"),
        ("#\nNot a title\n", "Hostile Notes"),  # the old pattern's `\s+` ran on into the next line
        ("#Hashtag\n#  \n# Found\n", "Found"),
    ],
)
def test_the_title_is_the_first_level_one_heading(tmp_path: Path, text: str, title: str) -> None:
    (tmp_path / "hostile-notes.md").write_text(text, encoding="utf-8")
    assert load(scan(tmp_path)[0]).title == title


def test_a_hostile_knowledge_file_loads_and_chunks_in_linear_time(tmp_path: Path) -> None:
    # Not the bare run of 60,000 `#`: as body text it is one sentence of 60,000 tokens, and cutting that to
    # the budget recounts what is left at each cut, a cost of token counting that no pattern here has.
    headings = [line for line in HOSTILE_HEADINGS if line != "#" * N]
    body = "\n".join(["Some text.", *headings, "## Plans", "The Starter plan costs £10."])
    (tmp_path / "hostile.md").write_text(body + "\n\n" + " \n" * N + "\n" + "x" * N, encoding="utf-8")
    started = time.process_time()
    document = load(scan(tmp_path)[0])
    chunks = chunk_document(document, 256, 32, WordTokens())
    elapsed = time.process_time() - started
    assert elapsed < 4 * LIMIT, f"{elapsed:.2f} s"
    assert document.title == "a" + " " * N + "x"
    assert any(c.headings == ("Plans",) and "Starter" in c.text for c in chunks)


@pytest.mark.parametrize(
    "text",
    [
        "\n" + " " * N + "x",  # paragraphs: `\n\s*\n`
        "\n " * (N // 2) + "x",
        "a\n" + " \t" * (N // 2) + "\nb",
        ". " * N,  # sentences: `(?<=[.!?])\s+`
        "." + " " * N + "a",
        ("word " * 300 + ". ") * 200,
    ],
    ids=["newline-spaces", "newline-space-pairs", "blank-line", "dots", "dot-spaces", "long-sentences"],
)
def test_plain_text_chunking_is_linear(text: str) -> None:
    document = Document("notes.txt", "Notes", text, is_markdown=False)
    assert_fast(lambda t: chunk_document(document, 256, 32, WordTokens()), text)


# --- Log masking (rag.logs): every log line, including the access log's URL and query ---

HOSTILE_LOG_TEXT = [
    "a" * N + "@",  # the old `_EMAIL`: 8.8 s from one `GET /health?q=...`
    "a@" * (N // 2),
    "a." * (N // 2) + "@x",
    "x@" + "a-a." * (N // 4) + "@",
    "a@b" + ".c" * (N // 2) + "-@",
    ".+-" * (N // 3) + "@",
    "1. " * (N // 3),  # the old `_PHONE`: a numbered list of 20,000 characters took 5 s
    "1.(" * (N // 3),
    "+(1" * (N // 3) + ".",
    "1" * N + "x",
    "1 " * (N // 2) + ".",
    "1-." * (N // 3),
    "(1) " * (N // 4) + "x",
    "1 .( 2" * (N // 6),
    "12345678." * (N // 9),
]


@pytest.mark.parametrize("text", HOSTILE_LOG_TEXT, ids=lambda text: repr(text[:6]))
def test_the_redactor_is_linear(text: str) -> None:
    assert_fast(Redactor(("sentinel-key",)).clean, text)


def test_masking_equals_the_old_patterns_on_random_text() -> None:
    rnd = random.Random(7)
    masked = 0
    pieces = ["a", "b.", "@", "@c.d", "1", "23", "456", "x", "_", "\u0661", " ", "\n", *"()+-."]
    for alphabet in (list("a@.b-+_ x"), list("1 .()-+x2"), list("1\u0661 \t\n.-a"), pieces):
        for _ in range(10_000):
            text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30)))
            emails, phones = mask_emails(text), mask_phones(text)
            assert emails == OLD_EMAIL.sub("[email]", text), text
            assert phones == OLD_PHONE.sub("[phone]", text), text
            masked += emails != text or phones != text
    assert masked > 5_000


@pytest.mark.parametrize(
    "text",
    [
        "I'm jane.doe+web@example.co.uk, call me on +44 117 496 0738: what services do you offer?",
        "mail a.b@c.org or 07700 900123 or (0117) 496-0738; price £12,500 in 2026, 21/11/2026",
        "+(0)20 7946 0958, 020-7946-0958, 0800.123.4567, 1234567x, v1.2.3.4.5.6.7, #12345678",
        "GET /health?q=a@b.c&r=x@y HTTP/1.1, first.last@sub.example.com; me@localhost; @user",
        "ids 12345678901234567890 and 4111 1111 1111 1111, at 12:30:45 on 2026-01-01",
    ],
)
def test_masking_equals_the_old_patterns_on_ordinary_text(text: str) -> None:
    assert mask_emails(text) == OLD_EMAIL.sub("[email]", text)
    assert mask_phones(text) == OLD_PHONE.sub("[phone]", text)


def test_the_apps_log_lines_are_masked_in_linear_time(
    make_client: AppFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    """The app's logging set-up (its Redactor among the processors), fed what an access log line and a
    logged message would carry: uvicorn writes the first, so a test client never does."""
    make_client(api={"access_log": True}, logs={"log_messages": True})
    capfd.readouterr()
    log = structlog.get_logger("uvicorn.access")
    for hostile in ("a" * N + "@", "1. " * (N // 3)):
        assert_fast(lambda text: log.info("request", path=f"/health?q={text}"), hostile)
    log.info("request", path="/health?q=jane@example.com&tel=%2B44+117+496+0738", message="+44 117 496 0738")
    lines = [line for line in capfd.readouterr().err.splitlines() if "request" in line]
    assert len(lines) == 3
    assert "[email]" in lines[-1] and "jane@" not in lines[-1] and "496 0738" not in lines[-1]


# --- Answers without a model, prompts, small talk, HTML, headers ---

HOSTILE_PASSAGES = [
    "[" * N,  # the old `_LINK`: 20,000 `[` took 3 s
    "[a](" * (N // 4),
    "[a" * (N // 2) + "]",
    "[a](b" * (N // 5) + ")",
    "[]" * (N // 2),
    "*" * N,
    "_" * N,
    "`" * N,
    "**a*" * (N // 4),
    "*a" * (N // 2),
    "_a" * (N // 2) + "__",
    "**" + "a" * N,
    ". " + " " * N + "a",
    ". a" * (N // 3),
    " " * N + "1" * N + "x",
    "- " * (N // 2),
    "a'" * (N // 2),
    "Aa " * (N // 3),  # capitalised runs, read for their initials ("Chief Executive Officer": CEO)
    "Aa" + " " * N + "Ab",
    "Ab" * (N // 2),
    " A" * (N // 2),
    "1." * (N // 2),  # numbers and the kinds of fact they are
    "£1:" * (N // 3),
    "+0 " * (N // 3),
    "1,1" * (N // 3) + "%",
    "**1** (" * (N // 7),  # markup that, stripped, would join numbers: the fact check reads the unit
    "| 1 | 2 |\n" * (N // 10),  # table rows
    "|a|\n|---|\n" + "| 1 |\n" * (N // 6),
    "Note:\n" * (N // 6),  # sentences that introduce what follows them
    "- a\n  b\n" * (N // 8),
    "```\n" * (N // 4),
]


@pytest.mark.parametrize("text", HOSTILE_PASSAGES, ids=lambda text: repr(text[:6]))
def test_extractive_sentences_are_linear(text: str) -> None:
    assert_fast(_sentences, text)
    passage = Passage("id", "hostile.md", "Hostile", "Plans", text, 0.5)
    assert_fast(lambda question: select_sentences(question, (passage,), 4), "what does the plan cost?")
    other = Passage("id", "hostile.md", text[:N], text[:N], "A plan costs £10. " + text, 0.5)
    assert_fast(lambda question: select_sentences(question, (other,), 4), "When? How much? Aa Aa a 1 b?")


def test_links_are_stripped_as_the_old_pattern_did() -> None:
    rnd = random.Random(11)
    changed = 0
    for alphabet in ("[]()a", "[]()ab\n", "[](a"):
        for _ in range(10_000):
            text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 16)))
            expected = OLD_LINK.sub(r"\1", text)
            assert _strip_links(text) == expected, text
            changed += expected != text
    assert changed > 100
    ordinary = 'See [our pricing](https://example.com/pricing) and [the FAQ](faq.md "FAQ"), [not a link].'
    assert _strip_links(ordinary) == OLD_LINK.sub(r"\1", ordinary)


@pytest.mark.parametrize(
    "text",
    ["</document" * (N // 10), "<" * N, "</question " * (N // 11), "</conversationx" * (N // 15)],
    ids=["tags", "angles", "question-tags", "near-tags"],
)
def test_prompt_neutralizing_is_linear(text: str) -> None:
    passage = Passage("id", "a.md", "A", "B", text, 0.5)
    assert_fast(lambda question: Prompt(question, (passage,)).user_message(), text)


@pytest.mark.parametrize(
    "text", ["hi " * (N // 3), "!" * N, "h" + "i" * N, "hello " + " " * N + "there", "ok thanks " * (N // 10)]
)
def test_small_talk_recognition_is_linear(text: str) -> None:
    # Only a message of 60 characters or fewer (after punctuation is removed) meets the small-talk patterns.
    assert_fast(recognise, text)


@pytest.mark.parametrize(
    "html",
    [
        '<p style="display' + " " * N + '">x</p>',
        '<p style="' + "display: " * (N // 9) + '">x</p>',
        "<p>" + "\n" * N + "x</p>",
        "<h1>" + " " * N + "x</h1>",
        "<p>" + " \t\n" * (N // 3) + "</p>",
    ],
    ids=["display-spaces", "display-repeated", "newlines", "heading-spaces", "whitespace"],
)
def test_html_text_extraction_is_linear(html: str) -> None:
    assert_fast(html_to_text, html)


@pytest.mark.parametrize(
    ("function", "text"),
    [
        (normalize_question, " \t" * (N // 2) + "x"),
        (clean_text, "\u200b" * N + "a\u202e" * (N // 2)),
        (_VALID_ID.match, "a" * N + "!"),
        (lambda text: WordTokens().count([text]), "a!" * (N // 2)),
        (LeakGuard("You are the assistant on a company's website.").leaks, "a' " * (N // 3)),
    ],
    ids=["cache-key", "invisible-characters", "request-id", "word-tokens", "leak-guard"],
)
def test_other_patterns_on_outside_text_are_linear(function: Callable[[str], object], text: str) -> None:
    assert_fast(function, text)
