"""Conversations: the last turns per session, in the prompt and in retrieval, kept for a while."""

from __future__ import annotations

import asyncio
import time

from agent.conversations import MemoryConversations, Turn
from fakes.gemini_server import FakeGemini
from fakes.llm_server import Reply
from tests.conftest import AppFactory, Clock

SESSION = "3f1c2b8e-0d5a-4c1e-9a7b-2b6f0c1d9e88"


def test_store_keeps_the_last_turns_and_forgets_after_the_ttl() -> None:
    clock = Clock()
    store = MemoryConversations(max_turns=2, ttl=60, clock=clock)

    async def scenario() -> None:
        for n in range(3):
            await store.append("a", Turn(f"q{n}", f"a{n}"))
        assert [t.question for t in await store.turns("a")] == ["q1", "q2"]
        clock.advance(59)
        await store.append("b", Turn("other", "x"))
        assert len(await store.turns("a")) == 2 and len(store) == 2
        clock.advance(2)  # 61 s after a's last turn
        assert await store.turns("a") == [] and len(store) == 1
        assert await store.delete("b") == 1 and await store.delete("b") == 0
        assert await store.turns("unknown") == []

    asyncio.run(scenario())


def test_expired_sessions_are_purged_not_just_hidden() -> None:
    clock = Clock()
    store = MemoryConversations(max_turns=4, ttl=10, clock=clock)

    async def scenario() -> None:
        for n in range(100):
            await store.append(f"s{n}", Turn("q", "a"))
        clock.advance(11)
        await store.append("fresh", Turn("q", "a"))

    asyncio.run(scenario())
    assert len(store._sessions) == 1  # memory is given back, not only made invisible


def test_history_is_returned_and_deleted(make_client: AppFactory) -> None:
    client = make_client()
    first = client.post(
        "/chat", json={"message": "What services do you offer?", "session_id": SESSION}
    ).json()
    client.post("/chat", json={"message": "Do you build mobile apps?", "session_id": SESSION})

    history = client.get(f"/history/{SESSION}").json()
    assert history["session_id"] == SESSION
    roles = [m["role"] for m in history["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert history["messages"][0]["content"] == "What services do you offer?"
    assert history["messages"][1]["content"] == first["response"]
    assert history["messages"][1]["sources"] == first["sources"]

    deleted = client.delete(f"/history/{SESSION}").json()
    assert deleted == {"message": "Conversation deleted. Removed 2 turns", "removed": 2}
    assert client.get(f"/history/{SESSION}").json()["messages"] == []


def test_a_follow_up_is_retrieved_with_the_previous_question(make_client: AppFactory) -> None:
    client = make_client()
    alone = client.post("/chat", json={"message": "How much is it?", "use_cache": False}).json()
    client.post("/chat", json={"message": "Tell me about the Growth website package", "session_id": SESSION})
    follow_up = client.post("/chat", json={"message": "How much is it?", "session_id": SESSION}).json()

    # Alone, the question is about nothing in particular: "I don't know"; after the first question, it asks
    # the Growth package's price.
    assert alone["model_info"]["model"] == "no-match" and not alone["sources"]
    assert follow_up["sources"][0]["source"] == "pricing.md"
    assert "£12,500" in follow_up["response"]


def test_the_conversation_goes_into_the_prompt(make_client: AppFactory, fake_gemini: FakeGemini) -> None:
    fake_gemini.reset(
        Reply(text="The Growth package suits growing businesses."), Reply(text="It costs £12,500.")
    )
    client = make_client(agent={"google_api_key": "k", "gemini_base_url": fake_gemini.url})
    client.post("/chat", json={"message": "Tell me about the Growth package", "session_id": SESSION})
    client.post("/chat", json={"message": "How much is it?", "session_id": SESSION})

    first, second = (r.body["contents"][0]["parts"][0]["text"] for r in fake_gemini.requests)
    assert "<conversation>" not in first
    assert "<conversation>" in second
    assert "Visitor: Tell me about the Growth package" in second
    assert "Assistant: The Growth package suits growing businesses." in second
    assert second.index("</conversation>") < second.index("<question>")


def test_answers_that_depend_on_history_skip_the_shared_cache(make_client: AppFactory) -> None:
    client = make_client()
    client.post("/chat", json={"message": "Tell me about your Care Plans", "session_id": SESSION})
    assert client.get("/cache/stats").json()["total_entries"] == 1  # no history yet: cached as usual

    follow_up = client.post("/chat", json={"message": "How much is it?", "session_id": SESSION}).json()
    assert follow_up["cached"] is False
    assert client.get("/cache/stats").json()["total_entries"] == 1  # not written under a context-free key
    again = client.post("/chat", json={"message": "How much is it?", "session_id": SESSION}).json()
    assert again["cached"] is False  # and not served from it either

    other = client.post(
        "/chat", json={"message": "Tell me about your Care Plans", "session_id": "new-visitor"}
    )
    assert other.json()["cached"] is True  # a first question in a new session still benefits


def test_history_expires_after_its_ttl(make_client: AppFactory) -> None:
    client = make_client(agent={"history_ttl": 1.0})
    client.post("/chat", json={"message": "What services do you offer?", "session_id": SESSION})
    assert len(client.get(f"/history/{SESSION}").json()["messages"]) == 2
    time.sleep(1.2)
    assert client.get(f"/history/{SESSION}").json()["messages"] == []


def test_streamed_answers_join_the_conversation(make_client: AppFactory) -> None:
    client = make_client()
    client.post("/chat/stream", json={"message": "What are your support hours?", "session_id": SESSION})
    messages = client.get(f"/history/{SESSION}").json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert "18:00" in messages[1]["content"] or "8:30" in messages[1]["content"]


def test_bad_session_ids_are_refused(make_client: AppFactory) -> None:
    client = make_client()
    assert client.get("/history/has%20space").status_code == 422
    assert client.delete("/history/" + "x" * 129).status_code == 422
    assert client.post("/chat", json={"message": "hi", "session_id": "a/b"}).status_code == 422
