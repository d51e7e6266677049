"""Replicas share state through a real Redis: answer cache, rate limits and conversations."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import httpx
import redis.asyncio

from agent.agent import Answer
from agent.conversations import RedisConversations, Turn
from api.cache import RedisAnswerCache
from bench.server import ServerProcess
from rag.retriever import Passage
from tests.conftest import KNOWLEDGE
from tests.servers.chroma_server import ChromaServer
from tests.servers.redis_server import RedisServer
from tests.test_server_process import events

QUESTION = {"message": "What services do you offer?"}


def test_redis_cache_round_trip_stats_and_clear(redis_url: str) -> None:
    async def scenario() -> None:
        client = redis.asyncio.from_url(redis_url)
        cache = RedisAnswerCache(client, "t", ttl=60)
        passage = Passage("c1", "services.md", "Services", "Web", "We build websites.", 0.61)
        answer = Answer("We build websites.", "success", "gemini", "m", 0.2, (passage,), degraded=False)
        assert await cache.get("k1") is None
        await cache.set("k1", answer)
        await cache.set("k2", answer)
        assert await cache.get("k1") == answer  # sources and all, as they were
        counts = await cache.counts()
        assert (counts.valid, counts.hits, counts.misses) == (2, 1, 1)
        assert 55 <= await client.ttl("t:answer:k1") <= 60  # Redis expires entries by itself
        assert await cache.clear() == 2 and await cache.get("k1") is None
        other = RedisAnswerCache(client, "other", ttl=60)  # another deployment on the same Redis
        await other.set("k1", answer)
        assert await cache.clear() == 0 and await other.get("k1") == answer
        await client.aclose()

    asyncio.run(scenario())


def test_redis_conversations_keep_the_last_turns_and_expire(redis_url: str) -> None:
    async def scenario() -> None:
        client = redis.asyncio.from_url(redis_url)
        store = RedisConversations(client, "t", max_turns=2, ttl=30)
        for n in range(3):
            await store.append("s1", Turn(f"q{n}", f"a{n}", ({"id": f"c{n}"},)))
        assert await store.turns("s1") == [
            Turn("q1", "a1", ({"id": "c1"},)),
            Turn("q2", "a2", ({"id": "c2"},)),
        ]
        assert 25 <= await client.ttl("t:conversation:s1") <= 30
        assert await store.delete("s1") == 2 and await store.turns("s1") == []
        assert await store.turns("never-seen") == []
        await client.aclose()

    asyncio.run(scenario())


def test_two_replicas_share_limits_cache_and_conversations(tmp_path: Path, redis_server: RedisServer) -> None:
    redis_server.flush()
    chroma = ChromaServer(tmp_path)
    knowledge = tmp_path / "kb"  # one folder for both, as a mounted volume would be
    shutil.copytree(KNOWLEDGE, knowledge)
    replicas = []
    for name in ("a", "b"):  # started together, on an empty Chroma server
        env = {
            "CHROMA_HOST": chroma.host,
            "CHROMA_PORT": str(chroma.port),
            "CHROMA_PATH": str(tmp_path / f"local-{name}"),  # only the keyword index lives here
            "KNOWLEDGE_DIR": str(knowledge),
            "REDIS_URL": redis_server.url,
            "EMBEDDER_WARMUP": "false",
        }
        replicas.append(ServerProcess(env, tmp_path / f"{name}.log"))
    a, b = replicas
    try:
        for replica in replicas:
            replica.wait_healthy(timeout=300)
        # The Redis lock let one replica embed; the other found the store up to date.
        logs = [events(replica.log()) for replica in replicas]
        assert sum(log.count("knowledge_ingest_started") for log in logs) == 1, logs
        assert sum(log.count("knowledge_up_to_date") for log in logs) == 1
        assert (
            httpx.get(f"{a.url}/health").json()["vectors"]
            == httpx.get(f"{b.url}/health").json()["vectors"]
            > 50
        )

        # One budget for both replicas: 20 of 25 alternating requests get through.
        statuses = [
            httpx.post(f"{(a, b)[n % 2].url}/chat", json=QUESTION, timeout=60).status_code for n in range(25)
        ]
        assert statuses.count(200) == 20 and statuses.count(429) == 5
        assert statuses[:20] == [200] * 20

        redis_server.flush()  # a new minute, in effect: counters and cache start empty
        first = httpx.post(f"{a.url}/chat", json=QUESTION, timeout=60).json()
        again = httpx.post(f"{b.url}/chat", json=QUESTION, timeout=60).json()
        assert first["cached"] is False and again["cached"] is True
        assert again["response"] == first["response"] and again["sources"] == first["sources"]
        stats = httpx.get(f"{b.url}/cache/stats")
        assert stats.json()["valid_entries"] == 1, stats.text
        assert httpx.delete(f"{a.url}/cache").json()["removed"] == 1
        assert httpx.get(f"{b.url}/cache/stats").json()["valid_entries"] == 0
        assert httpx.post(f"{b.url}/chat", json=QUESTION, timeout=60).json()["cached"] is False

        # A conversation started on one replica continues on the other.
        session = {"session_id": "visitor-42"}
        httpx.post(
            f"{a.url}/chat", json={"message": "How much is the Growth package?", **session}, timeout=60
        )
        follow_up = httpx.post(
            f"{b.url}/chat", json={"message": "What does it include?", **session}, timeout=60
        )
        assert follow_up.json()["status"] == "success"
        for replica in replicas:
            messages = httpx.get(f"{replica.url}/history/visitor-42").json()["messages"]
            assert [m["content"] for m in messages if m["role"] == "user"] == [
                "How much is the Growth package?",
                "What does it include?",
            ]

        # A reindex on one replica is served by the other within a few seconds.
        (knowledge / "vouchers.md").write_text("# Gift vouchers\n\nGift vouchers for workshops cost £150.\n")
        assert httpx.post(f"{a.url}/admin/reindex").status_code == 202
        deadline = time.monotonic() + 120
        while httpx.get(f"{a.url}/admin/reindex").json()["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        version = httpx.get(f"{a.url}/health").json()["knowledge_version"]
        while httpx.get(f"{b.url}/health").json()["knowledge_version"] != version:
            assert time.monotonic() < deadline, "replica b never switched to the new build"
            time.sleep(0.5)
        voucher = httpx.post(
            f"{b.url}/chat", json={"message": "Do you sell gift vouchers?"}, timeout=60
        ).json()
        assert "£150" in voucher["response"] and voucher["sources"][0]["source"] == "vouchers.md"
    finally:
        for replica in replicas:
            replica.stop()
        chroma.stop()


def test_a_service_killed_mid_answer_restarts_with_nothing_lost_or_doubled(
    tmp_path: Path, knowledge_store_dir: Path, redis_server: RedisServer
) -> None:
    import signal
    import threading

    from fakes.gemini_server import FakeGemini
    from fakes.llm_server import Reply

    redis_server.flush()
    store = tmp_path / "db"
    shutil.copytree(knowledge_store_dir, store)
    fake = FakeGemini().start()
    env = {
        "CHROMA_PATH": str(store),
        "KNOWLEDGE_DIR": str(KNOWLEDGE),
        "REDIS_URL": redis_server.url,
        "GOOGLE_API_KEY": "k",
        "GEMINI_BASE_URL": fake.url,
        "LLM_CHAIN": "gemini,extractive",
        "EMBEDDER_WARMUP": "false",
    }
    session = {"session_id": "crash-1"}
    first = ServerProcess(env, tmp_path / "first.log")
    try:
        first.wait_healthy()
        fake.reset(default=Reply(text="The Growth package costs £12,500."))
        httpx.post(f"{first.url}/chat", json={"message": "How much is Growth?", **session}, timeout=60)
        # The next answer is in flight...
        fake.reset(default=Reply(text="It includes a blog or news section.", delay=5.0))
        cut_off: list[Exception] = []

        def ask_and_lose_the_connection() -> None:
            try:
                httpx.post(
                    f"{first.url}/chat", json={"message": "What does it include?", **session}, timeout=30
                )
            except httpx.TransportError as exc:  # the server is killed under it
                cut_off.append(exc)

        asking = threading.Thread(target=ask_and_lose_the_connection)
        asking.start()
        while fake.calls < 1:
            time.sleep(0.02)
        first.process.send_signal(signal.SIGKILL)  # ...when the process dies
        first.process.wait(timeout=30)
        asking.join(timeout=30)
        assert cut_off, "the visitor's request should have been cut off"
    finally:
        first.stop()

    second = ServerProcess(env, tmp_path / "second.log")
    try:
        second.wait_healthy()
        assert httpx.get(f"{second.url}/health").json()["vectors"] > 50  # the store is whole
        messages = httpx.get(f"{second.url}/history/crash-1").json()["messages"]
        assert [m["content"] for m in messages] == [
            "How much is Growth?",
            "The Growth package costs £12,500.",
        ]
        fake.reset(default=Reply(text="It includes a blog or news section."))
        again = httpx.post(
            f"{second.url}/chat", json={"message": "What does it include?", **session}, timeout=60
        )
        assert again.json()["response"] == "It includes a blog or news section."
        assert len(httpx.get(f"{second.url}/history/crash-1").json()["messages"]) == 4
    finally:
        second.stop()
        fake.stop()
