"""The grounding guard: a model's invented fact never reaches a visitor, in a plain answer or a stream.

The tiers here are the real Gemini SDK against the fake Gemini server over HTTP; the service tests go
through the app with its real store and embedder.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from agent.chain import GeneratorChain, StreamStart, Tier
from agent.errors import AllTiersFailed
from agent.generators.extractive import ExtractiveGenerator
from agent.generators.gemini import GeminiGenerator
from agent.grounding import GroundingGuard, Ungrounded, strip_markup
from agent.prompting import Prompt
from fakes.gemini_server import FakeGemini
from fakes.llm_server import Reply
from rag.retriever import Passage
from tests.conftest import AppFactory

PASSAGE = Passage(
    id="p1",
    source="pricing.md",
    title="Pricing",
    headings="Website Packages",
    text=(
        "The Growth package costs £12,500 and takes twelve weeks. Sarah Chen leads every project. "
        "Write to hello@northwind.example or call 0117 496 0738."
    ),
    score=0.8,
)
PROMPT = Prompt("How much is the Growth package?", (PASSAGE,))


def chain(fake: FakeGemini, mode: str = "strict") -> GeneratorChain:
    gemini = GeminiGenerator("test-key-123", "gemini-test", base_url=fake.url)
    gemini.warm_up()  # as the service does at start: the SDK's import is not part of an answer's time
    return GeneratorChain(
        [Tier(gemini, 5.0), Tier(ExtractiveGenerator(), 5.0, last_resort=True, checked=False)],
        guard=GroundingGuard(mode),  # type: ignore[arg-type]
    )


def streamed(generators: GeneratorChain, prompt: Prompt = PROMPT) -> tuple[str, str]:
    async def collect() -> tuple[str, str]:
        provider, text = "", ""
        async for event in generators.stream(prompt):
            if isinstance(event, StreamStart):
                provider = event.provider
            else:
                text += event
        return provider, text

    return asyncio.run(collect())


# --- the gate on its own ---


def feed_all(pieces: list[str], prompt: Prompt = PROMPT) -> tuple[list[str], bool]:
    gate = GroundingGuard().gate(prompt, "test")
    shown = [gate.feed(piece) for piece in pieces] + [gate.flush()]
    return shown, gate.closed


def test_grounded_sentences_are_released_whole_as_they_end() -> None:
    shown, closed = feed_all(["The Growth pack", "age costs £12", ",500. It takes twelve", " weeks."])
    assert shown == ["", "", "The Growth package costs £12,500. ", "", "It takes twelve weeks."]
    assert not closed


def test_a_decimal_point_at_the_end_of_a_piece_does_not_end_a_sentence() -> None:
    shown, _ = feed_all(["It costs £12,500.", "00 in total."])
    assert shown == ["", "", "It costs £12,500.00 in total."]


def test_an_invented_first_sentence_withholds_the_whole_answer() -> None:
    gate = GroundingGuard().gate(PROMPT, "test")
    assert gate.feed("The Growth package costs £9,000") == ""
    with pytest.raises(Ungrounded) as raised:
        gate.feed(". It takes twelve weeks.")
    assert raised.value.reason == "ungrounded" and [f.text for f in raised.value.facts] == ["£9,000"]
    assert gate.feed("More text.") == "" and gate.flush() == ""


@pytest.mark.parametrize(
    "invented",
    [
        "Call us on 0800 123 4567.",  # a phone number
        "Tom Marsh will call you back.",  # a person
        "Write to sales@northwind.example for a quote.",  # an e-mail address
        "It comes with a 10% discount.",  # a percentage
        "Book at northwind.example/booking today.",  # a URL on a host the sources never name
        "We opened on 12 March 2021.",  # a date
    ],
)
def test_a_later_invented_sentence_ends_the_answer_before_it(invented: str) -> None:
    shown, closed = feed_all(["The Growth package costs £12,500. ", invented, " It takes twelve weeks."])
    assert "".join(shown) == "The Growth package costs £12,500. " and closed


def test_facts_from_the_question_the_conversation_and_trusted_texts_are_grounded() -> None:
    from agent.conversations import Turn

    prompt = Prompt(
        "Is order #48213 late?", (PASSAGE,), history=(Turn("I ordered on 3 May.", "Thanks, noted."),)
    )
    gate = GroundingGuard(trusted=("Our phone line: 0800 111 2222.",)).gate(prompt, "test")
    text = "Order #48213 was placed on 3 May. Call 0800 111 2222 or 0117 496 0738, Sarah Chen can help."
    assert gate.feed(text) + gate.flush() == text


def test_off_only_removes_markup() -> None:
    gate = GroundingGuard("off").gate(PROMPT, "test")
    assert gate.feed("It costs £9,000 </conversation>[2]. ") + gate.flush() == "It costs £9,000. "


def test_prompt_markup_is_removed() -> None:
    echoed = (
        '<document index="5" title="Meet the Team">Sarah Chen leads it [1].</document>\n'
        "Fees are &gt; £500 &amp; VAT [Document 2, 3].</conversation>\n<question>"
    )
    assert strip_markup(echoed) == "Sarah Chen leads it.\nFees are > £500 & VAT.\n"
    assert strip_markup("  - indented list item") == "  - indented list item"


# --- the chain: the next tier answers, every way of asking ---


def test_an_invented_answer_falls_through_to_the_next_tier(fake_gemini: FakeGemini) -> None:
    fake_gemini.reset(default=Reply(text="The Growth package costs £9,000."))
    generators = chain(fake_gemini)
    result = asyncio.run(generators.generate(PROMPT))
    assert result.provider == "extractive" and "£12,500" in result.text and "£9,000" not in result.text
    assert fake_gemini.calls == 1  # withheld, not retried: the same prompt would invent again
    stats = generators.stats.snapshot()["tiers"]["gemini"]
    assert stats["ungrounded"] == 1 and stats["failures"] == {"ungrounded": 1}

    provider, text = streamed(generators)
    assert provider == "extractive" and "£9,000" not in text
    assert generators.stats.snapshot()["tiers"]["gemini"]["ungrounded"] == 2


def test_a_stream_never_shows_an_invented_sentence(fake_gemini: FakeGemini) -> None:
    # The fake streams three words a piece: the phone number arrives split over two pieces.
    text = "The Growth package costs £12,500. Call 0800 123 4567 today. It takes twelve weeks."
    fake_gemini.reset(default=Reply(text=text))
    generators = chain(fake_gemini)
    provider, text = streamed(generators)
    assert provider == "gemini" and text.strip() == "The Growth package costs £12,500."
    plain = asyncio.run(generators.generate(PROMPT))  # the same rule for a plain answer
    assert (plain.provider, plain.text) == ("gemini", "The Growth package costs £12,500.")
    tier = generators.stats.snapshot()["tiers"]["gemini"]
    assert tier["ungrounded"] == 2 and tier["failures"] == {} and tier["answered"] == 2


def test_a_grounded_answer_passes_unchanged(fake_gemini: FakeGemini) -> None:
    text = (
        "Sarah Chen leads every project; the Growth package is £12,500 (twelve weeks). "
        "Write to hello@northwind.example."
    )
    fake_gemini.reset(default=Reply(text=text))
    assert asyncio.run(chain(fake_gemini).generate(PROMPT)).text == text


def test_with_the_guard_off_the_answer_is_shown(fake_gemini: FakeGemini) -> None:
    fake_gemini.reset(default=Reply(text="The Growth package costs £9,000."))
    result = asyncio.run(chain(fake_gemini, "off").generate(PROMPT))
    assert (result.provider, result.text) == ("gemini", "The Growth package costs £9,000.")


def test_an_answer_of_markup_only_falls_through(fake_gemini: FakeGemini) -> None:
    fake_gemini.reset(default=Reply(text="</conversation>"))
    assert asyncio.run(chain(fake_gemini).generate(PROMPT)).provider == "extractive"


def test_the_extractive_tier_is_never_withheld() -> None:
    generators = GeneratorChain([Tier(ExtractiveGenerator(), 5.0, last_resort=True, checked=False)])
    assert asyncio.run(generators.generate(PROMPT)).provider == "extractive"
    broken = GeneratorChain([Tier(ExtractiveGenerator(), 5.0, last_resort=True)])
    with pytest.raises(AllTiersFailed):  # checked, with nothing it may say: the chain has nothing left
        asyncio.run(broken.generate(Prompt("Who?", ())))


# --- the service ---


def sse_events(body: str) -> list[tuple[str, Any]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((lines.get("event", "message"), json.loads(lines.get("data", "null"))))
    return events


def test_the_service_shows_and_counts_ungrounded_answers(
    make_client: AppFactory, fake_gemini: FakeGemini
) -> None:
    client = make_client(
        agent={"google_api_key": "test-key-123", "gemini_base_url": fake_gemini.url, "llm_chain": "gemini"}
    )
    fake_gemini.reset(default=Reply(text="The Growth package costs £700 and includes a free logo."))
    reply = client.post("/chat", json={"message": "How much is the Growth package?"}).json()
    assert reply["model_info"]["provider"] == "extractive" and "£700" not in reply["response"]

    with client.stream("POST", "/chat/stream", json={"message": "Growth package price?"}) as response:
        body = "".join(response.iter_text())
    assert "£700" not in body
    done = [data for name, data in sse_events(body) if name == "done"][-1]
    assert done["model_info"]["provider"] == "extractive"

    stats = client.get("/stats/llm").json()["tiers"]["gemini"]
    assert stats["ungrounded"] == 2 and stats["failures"]["ungrounded"] == 2
    metrics = client.get("/metrics").text
    assert 'kb_llm_ungrounded_total{provider="gemini"} 2.0' in metrics


def test_a_run_on_answer_is_checked_and_shown_in_parts() -> None:
    gate = GroundingGuard().gate(PROMPT, "test")
    words = ["the growth package"] * 200
    shown = [gate.feed(w + " ") for w in words]
    assert sum(1 for s in shown if s) >= 3  # not held to the end
    assert "".join(shown) + gate.flush() == " ".join(words) + " "


def test_when_no_sentence_bears_on_the_question_the_visitor_gets_the_no_answer_reply(
    make_client: AppFactory,
) -> None:
    client = make_client(agent={"llm_chain": "extractive", "relevance_check": False})
    no_answer = "Sorry, I couldn't find anything about that in our information."
    reply = client.post("/chat", json={"message": "Zebra xylophone quasar?"}).json()
    assert reply["response"].startswith(no_answer) and reply["model_info"]["model"] == "no-match"
    with client.stream("POST", "/chat/stream", json={"message": "Quasar zebra xylophone?"}) as response:
        body = "".join(response.iter_text())
    events = sse_events(body)
    text = "".join(data["text"] for name, data in events if name == "token")
    assert text.startswith(no_answer) and events[-1][1]["model_info"]["model"] == "no-match"


def test_a_held_answer_that_does_not_state_what_was_asked_falls_through(fake_gemini: FakeGemini) -> None:
    gemini = GeminiGenerator("test-key-123", "gemini-test", base_url=fake_gemini.url)
    gemini.warm_up()
    generators = GeneratorChain(
        [Tier(gemini, 5.0, hold=True), Tier(ExtractiveGenerator(), 5.0, last_resort=True, checked=False)]
    )
    # Its words are the passage's, but "How much ...?" asks for an amount.
    fake_gemini.reset(default=Reply(text="The Growth package takes twelve weeks."))
    result = asyncio.run(generators.generate(PROMPT))
    assert result.provider == "extractive" and "£12,500" in result.text
    provider, text = streamed(generators)
    assert provider == "extractive" and text.count("twelve weeks") <= 1
    assert generators.stats.snapshot()["tiers"]["gemini"]["failures"] == {"unanswered": 2}

    # Words of its own, no checkable fact among them: no sentence of it rephrases what it was shown.
    fake_gemini.reset(default=Reply(text="It is a great choice for growing businesses like yours."))
    provider, text = streamed(generators)
    assert provider == "extractive" and "great choice" not in text
    gemini_stats = generators.stats.snapshot()["tiers"]["gemini"]
    assert gemini_stats["failures"] == {"unanswered": 2, "ungrounded": 1} and gemini_stats["ungrounded"] == 1

    fake_gemini.reset(default=Reply(text="It costs £12,500. It takes twelve weeks."))
    provider, text = streamed(generators)
    assert (provider, text) == ("gemini", "It costs £12,500. It takes twelve weeks.")  # one piece, whole


def test_with_the_guard_off_a_held_answer_is_shown_as_written(fake_gemini: FakeGemini) -> None:
    gemini = GeminiGenerator("test-key-123", "gemini-test", base_url=fake_gemini.url)
    gemini.warm_up()
    generators = GeneratorChain(
        [Tier(gemini, 5.0, hold=True), Tier(ExtractiveGenerator(), 5.0, last_resort=True, checked=False)],
        guard=GroundingGuard("off"),
    )
    fake_gemini.reset(default=Reply(text="The Growth package is a great choice for growing businesses."))
    assert asyncio.run(generators.generate(PROMPT)).provider == "gemini"
