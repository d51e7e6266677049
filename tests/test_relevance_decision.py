"""The calibrated relevance decision, on a small made-up knowledge base (a bicycle workshop), with the real
embedder, the real store and the real keyword index: questions it cannot answer get "I don't know",
questions it can answer (misspelt, or as a follow-up) get passages, and the calibration follows the
knowledge when it changes."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import structlog

from agent.agent import Agent, Replies
from agent.conversations import Turn
from agent.factory import build_agent
from rag.embedder import Embedder
from rag.evaluation import Question, abstention, load_questions
from rag.ingestion import ensure_ingested
from rag.relevance import Lexicon, RelevanceCheck, select
from rag.retriever import Retriever
from rag.settings import RagSettings
from rag.store import KnowledgeStore
from tests.conftest import agent_settings, rag_settings

WORKSHOP = {
    "services.md": """# Services and prices

Spokes & Sprockets is a bicycle repair workshop on Mill Lane in Ashford, run by two mechanics.

## Servicing

- Safety check: £25, done while you wait, about 30 minutes
- Standard service: £65, gears and brakes adjusted, wheels trued, chain cleaned
- Full service: £120, the bike stripped down, bearings regreased, cables and chain replaced at cost

## Repairs

Puncture repairs cost £12 per wheel, including a new inner tube. We fit tyres, brake pads and chains,
and we rebuild wheels from £45. Electric bike motors and batteries are repaired by the maker: we send them
away and it takes two to three weeks.

## Bike fitting

A bike fit takes 90 minutes and costs £80. We measure your position and adjust the saddle, bars and cleats.
""",
    "hours.md": """# Opening hours and booking

The workshop is open Tuesday to Saturday, 9am to 5:30pm. We are closed on Sundays, Mondays and bank
holidays.

## Booking

Book a service online or by phone on 01632 960 412. Drop your bike off before 10am and it is usually ready
the same afternoon. Bikes not collected within 30 days are charged storage at £2 a day.
""",
    "rentals.md": """# Bike hire

We hire out city bikes, hybrid bikes and tandems.

- City bike: £15 a day or £60 a week
- Hybrid bike: £20 a day or £80 a week
- Tandem: £35 a day or £140 a week

Helmets and locks are included. A deposit of £100 is taken on a card and returned when the bike comes back
undamaged. Hire bikes must be returned by 5pm.
""",
    "about.md": """# About us

Priya Shah and Ollie Brennan opened the workshop in 2016 after ten years as race mechanics. We sponsor the
Ashford Wheelers youth club and run a free maintenance class on the first Saturday of every month.

## Guarantee

Every repair is guaranteed for 3 months. If a part we fitted fails in that time, we replace it free.
""",
}

# In the knowledge's own words: a paraphrase whose key word the knowledge never uses ("Who founded it?")
# must come much closer to it, and may be told "I don't know" (README: what the decision costs).
IN_SCOPE = [
    "How much is a full service?",
    "When are you open?",
    "Can I hire a tandem?",
    "How long is the guarantee on repairs?",
    "Who opened the workshop?",
]
MISSPELT = [
    "how much is a ful servise",
    "wat does a puncure repair cost",
    "how much is it to hire a tandum for a week",
]
OFF_TOPIC = [
    "What is the capital of Peru?",
    "How do I bake a chocolate cake?",
    "Who won Wimbledon in 2019?",
    "What is the boiling point of mercury?",
    "Can you recommend a good podcast about history?",
]
# Near the workshop's trade, but about what its knowledge never mentions.
NEAR_TOPIC = [
    "Do you service Vespa scooters?",
    "Do you sell car insurance?",
    "Can you fix my Nintendo Switch?",
]


def workshop(folder: Path, extra: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {**WORKSHOP, **(extra or {})}.items():
        (folder / name).write_text(text)
    return folder


def open_retriever(embedder: Embedder, knowledge: Path, store: Path) -> tuple[Retriever, RagSettings]:
    settings = rag_settings(knowledge_dir=knowledge, chroma_path=store)
    knowledge_store = KnowledgeStore.persistent(store, settings.collection_prefix)
    ensure_ingested(knowledge_store, embedder, settings)
    retriever = Retriever.of(knowledge_store, embedder, settings)
    retriever.prepare()
    return retriever, settings


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Retriever:
    base = tmp_path_factory.mktemp("workshop")
    return open_retriever(embedder, workshop(base / "knowledge"), base / "store")[0]


@pytest.fixture(scope="module")
def check() -> RelevanceCheck:
    return RelevanceCheck()


def passages_for(retriever: Retriever, check: RelevanceCheck, question: str) -> list[str]:
    return [p.text for p in select(retriever, question, floor=0.0, check=check).passages]


@pytest.mark.parametrize("question", OFF_TOPIC + NEAR_TOPIC)
def test_a_question_the_knowledge_does_not_answer_gets_no_passages(
    shop: Retriever, check: RelevanceCheck, question: str
) -> None:
    assert shop.retrieve(question)  # retrieval alone always finds something
    assert passages_for(shop, check, question) == []


@pytest.mark.parametrize("question", IN_SCOPE + MISSPELT)
def test_a_question_the_knowledge_answers_keeps_its_passages(
    shop: Retriever, check: RelevanceCheck, question: str
) -> None:
    assert passages_for(shop, check, question)


def test_misspellings_of_the_knowledge_s_words_are_read_as_those_words(
    shop: Retriever, check: RelevanceCheck
) -> None:
    calibration = check.calibration(shop)
    assert calibration is not None and calibration.lexicon is not None
    lexicon = calibration.lexicon
    terms = {t.stem: t.known for t in lexicon.content_terms("how much is a ful servise for a tandum")}
    assert terms["servis"] == "servic" and terms["tandum"] == "tandem"
    assert "ful" not in terms  # too short to tell which word it misspells: shorthand, not a foreign word
    # A real word is never taken for a typo of another one: "gold" is not "hold", nor "cake" "take".
    assert {t.stem: t.known for t in lexicon.content_terms("gold cake")} == {"gold": None, "cake": None}
    # Misspelt function words carry no topic: "teh", "hw" and "wat" are dropped, not counted as foreign.
    assert [t.stem for t in lexicon.content_terms("hw much is teh tandem, wat")] == ["tandem"]


def test_a_follow_up_is_judged_with_the_question_before_it(shop: Retriever, embedder: Embedder) -> None:
    agent = build_agent(agent_settings(llm_chain="extractive"), shop)

    question = "How much does it cost to hire a tandem?"

    async def conversation() -> tuple[int, int, str]:
        first = await agent.answer(question)
        follow_up = await agent.answer("And for a whole week?", (Turn(question, first.text),))
        return len(first.sources), len(follow_up.sources), follow_up.text

    first_sources, follow_up_sources, text = asyncio.run(conversation())
    assert first_sources and follow_up_sources
    assert "140" in text  # the tandem's weekly price, found through the question before


def test_the_calibration_follows_the_knowledge_when_it_changes(tmp_path: Path, embedder: Embedder) -> None:
    knowledge, store = workshop(tmp_path / "knowledge"), tmp_path / "store"
    retriever, settings = open_retriever(embedder, knowledge, store)
    check = RelevanceCheck()
    question = "Do you hire out kayaks and paddleboards on the river?"
    assert passages_for(retriever, check, question) == []
    before = check.calibration(retriever)

    (knowledge / "water.md").write_text(
        "# Kayak and paddleboard hire\n\nFrom May to September we also hire out kayaks (£30 a day) and "
        "paddleboards (£25 a day) from our second shop on the river at Ashford Quay, with buoyancy aids.\n"
    )
    ensure_ingested(retriever.store, embedder, settings)

    after = check.calibration(retriever)
    assert before is not None and after is not None
    assert after.build != before.build and after.lexicon is not None
    assert "kayak" in after.lexicon.statistics.frequency
    assert passages_for(retriever, check, question)
    assert check.calibration(retriever) is after  # measured once per knowledge version


def test_the_floor_is_a_hard_minimum_and_decides_alone_without_the_check(
    shop: Retriever, check: RelevanceCheck
) -> None:
    answerable, off_topic = IN_SCOPE[0], OFF_TOPIC[0]
    assert select(shop, answerable, floor=0.99, check=check).passages == []
    assert select(shop, off_topic, floor=0.0, check=None).passages  # no check, no floor: anything goes

    through_settings = build_agent(agent_settings(relevance_floor=0.99), shop)
    without_check = build_agent(agent_settings(relevance_floor=0.0, relevance_check=False), shop)
    assert through_settings.relevance is not None and without_check.relevance is None
    assert asyncio.run(through_settings.answer(answerable)).model == "no-match"
    with structlog.testing.capture_logs() as logs:
        asyncio.run(without_check.answer(off_topic))
    # Its passages went to the generator chain (whose last tier may still find no sentence to give).
    assert not [e for e in logs if e["event"] == "nothing_relevant"]
    assert without_check.chain.stats.snapshot()["tiers"]["extractive"]["attempts"] == 1


def test_the_reason_is_logged_and_the_calibration_runs_off_the_event_loop(
    shop: Retriever, embedder: Embedder
) -> None:
    check = RelevanceCheck()
    agent = Agent(shop, build_agent(agent_settings(llm_chain="extractive"), shop).chain, Replies("Call us."))
    agent.relevance = check
    loop_threads: list[int] = []
    calibrated_in: list[int] = []
    original = check._calibrate

    def recorded(retriever: Retriever, build: str):  # type: ignore[no-untyped-def]
        calibrated_in.append(threading.get_ident())
        return original(retriever, build)

    check._calibrate = recorded  # type: ignore[method-assign]

    async def ask() -> str:
        loop_threads.append(threading.get_ident())
        return (await agent.answer(OFF_TOPIC[0])).model

    assert asyncio.run(ask()) == "no-match"
    assert calibrated_in and calibrated_in[0] != loop_threads[0]
    # What the log line carries (read from the decision itself: whether a test's log capture sees a line
    # depends on which test configured logging first).
    verdict = select(shop, OFF_TOPIC[0], floor=0.0, check=check).verdict
    assert verdict is not None and not verdict.relevant
    assert verdict.log_fields()["reason"] and verdict.log_fields()["foreign"]


def test_the_knobs_are_checked_and_move_the_bars_the_right_way(shop: Retriever) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        RelevanceCheck(1.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        RelevanceCheck(foreign_quantile=1.5)
    lenient = RelevanceCheck(0.5, foreign_quantile=0.1).calibration(shop)
    strict = RelevanceCheck(0.01, foreign_quantile=0.9).calibration(shop)
    assert lenient is not None and strict is not None
    assert strict.unrelated > lenient.unrelated and strict.related > lenient.related
    assert isinstance(strict.lexicon, Lexicon)


def test_the_abstention_report_reads_qa_sets_as_the_agent_asks_them(tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        '{"q": "How much is a tandem?", "facts": ["35"], "scope": "in", "session": "s"}\n'
        '{"q": "And for a week?", "facts": ["140"], "scope": "in", "session": "s"}\n'
        '{"q": "Who won Wimbledon?", "facts": [], "scope": "out"}\n'
    )
    plain = tmp_path / "off_topic.txt"
    plain.write_text("# a comment\nWhat is the capital of Peru?\n\n")

    asked = load_questions(qa)
    assert [(q.text, q.scope) for q in asked] == [
        ("How much is a tandem?", "in"),
        ("How much is a tandem?\nAnd for a week?", "in"),  # a follow-up carries the question before it
        ("Who won Wimbledon?", "out"),
    ]
    assert [q.scope for q in load_questions(qa, "out")] == ["out"] * 3  # asked of another knowledge base
    assert load_questions(plain) == [Question("What is the capital of Peru?", "out")]

    rows = abstention("kb", "qa", asked, old=lambda _: True, new=lambda text: "Wimbledon" not in text)
    assert [(r.scope, r.count, r.old, r.new) for r in rows] == [("in", 2, 2, 2), ("out", 1, 0, 1)]
    assert rows[1].cells() == '| kb | qa | get "I don\'t know" | 0/1 (0%) | 1/1 (100%) |'
