"""The service as a user runs it: `python -m api`, a real process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.server import ServerProcess
from fakes.gemini_server import FakeGemini
from fakes.llm_server import Reply
from tests.conftest import KNOWLEDGE, ROOT


def events(log: str) -> list[str]:
    found = []
    for line in log.splitlines():
        try:
            found.append(json.loads(line)["event"])
        except (ValueError, KeyError):
            continue
    return found


def test_first_start_embeds_and_a_restart_embeds_nothing(tmp_path: Path) -> None:
    env = {
        "CHROMA_PATH": str(tmp_path / "db"),
        "KNOWLEDGE_DIR": str(KNOWLEDGE),
        "EMBEDDER_WARMUP": "false",
        "DATA_DIR": str(tmp_path / "records"),  # no curated answers (whose questions are embedded at start)
    }

    first = ServerProcess(env, tmp_path / "first.log")
    try:
        first.wait_healthy()
        answer = httpx.post(
            f"{first.url}/chat", json={"message": "What services do you offer?"}, timeout=60
        ).json()
        assert answer["status"] == "success" and answer["sources"][0]["source"] == "services.md"
    finally:
        first.stop()
    assert "knowledge_ingest_done" in events(first.log())

    second = ServerProcess(env, tmp_path / "second.log")
    try:
        second.wait_healthy()
        health = httpx.get(f"{second.url}/health").json()
        # The store matched the folder: no model was even loaded to get here.
        assert health["embedder"] == "not loaded" and health["vectors"] > 50
    finally:
        second.stop()
    log = events(second.log())
    assert "knowledge_up_to_date" in log
    assert "knowledge_ingest_started" not in log and "embedder_loading" not in log


def test_served_answers_cache_limits_and_gemini(tmp_path: Path, knowledge_store_dir: Path) -> None:

    store = tmp_path / "db"
    shutil.copytree(knowledge_store_dir, store)
    fake = FakeGemini().start()
    fake.reset(default=Reply(text="We build websites, apps and online shops."))
    server = ServerProcess(
        {
            "CHROMA_PATH": str(store),
            "KNOWLEDGE_DIR": str(KNOWLEDGE),
            "GOOGLE_API_KEY": "sentinel-key-4242",
            "GEMINI_BASE_URL": fake.url,
        },
        tmp_path / "server.log",
    )
    try:
        server.wait_healthy()
        chat = f"{server.url}/chat"
        first = httpx.post(chat, json={"message": "What services do you offer?"}, timeout=60).json()
        assert first["model_info"]["provider"] == "gemini" and first["cached"] is False
        again = httpx.post(chat, json={"message": "WHAT services do you offer?"}, timeout=60).json()
        assert again["cached"] is True
        # A visitor who makes up X-Forwarded-For headers still has one budget: no proxy is trusted.
        statuses = [
            httpx.post(
                chat,
                json={"message": f"question {n}"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
                timeout=60,
            ).status_code
            for n in range(19)
        ]
        assert statuses == [200] * 18 + [429]
    finally:
        server.stop()
        fake.stop()
    log = server.log()
    assert "sentinel-key-4242" not in log
    answered = [json.loads(line) for line in log.splitlines() if '"chat_answered"' in line]
    assert len(answered) == 20 and all(len(entry["request_id"]) == 32 for entry in answered)
    assert [entry["provider"] for entry in answered[:2]] == ["gemini", "gemini"]
    assert "What services do you offer?" not in log and "question 7" not in log


def test_behind_a_trusted_proxy_limits_and_admin_follow_the_visitor(
    tmp_path: Path, knowledge_store_dir: Path
) -> None:

    store = tmp_path / "db"
    shutil.copytree(knowledge_store_dir, store)
    env = {
        "CHROMA_PATH": str(store),
        "KNOWLEDGE_DIR": str(KNOWLEDGE),
        "TRUSTED_PROXIES": "127.0.0.1",  # as if nginx ran on this machine
        "RATE_LIMIT_CHAT": "3/minute",
        "EMBEDDER_WARMUP": "false",
    }
    server = ServerProcess(env, tmp_path / "server.log")
    try:
        server.wait_healthy()
        chat = f"{server.url}/chat"

        def ask(visitor: str) -> int:
            body = {"message": "What services do you offer?"}
            return httpx.post(chat, json=body, headers={"X-Forwarded-For": visitor}, timeout=60).status_code

        assert [ask("198.51.100.1") for _ in range(4)] == [200, 200, 200, 429]
        assert ask("198.51.100.2") == 200  # another visitor behind the same proxy has a budget of their own
        # The proxy is on this machine, the visitor is not: without ADMIN_TOKEN, admin calls are refused.
        remote = httpx.get(f"{server.url}/cache/stats", headers={"X-Forwarded-For": "198.51.100.1"})
        assert remote.status_code == 403 and "ADMIN_TOKEN" in remote.json()["error"]
        assert httpx.get(f"{server.url}/cache/stats").status_code == 200  # the operator, on the machine
    finally:
        server.stop()


def test_a_second_process_on_the_same_embedded_store_is_refused(
    tmp_path: Path, knowledge_store_dir: Path
) -> None:
    store = tmp_path / "db"
    shutil.copytree(knowledge_store_dir, store)
    env = {"CHROMA_PATH": str(store), "KNOWLEDGE_DIR": str(KNOWLEDGE), "EMBEDDER_WARMUP": "false"}
    first = ServerProcess(env, tmp_path / "first.log")
    try:
        first.wait_healthy()
        second = ServerProcess(env, tmp_path / "second.log")
        assert second.process.wait(timeout=60) == 1
        assert f"in use by process {first.process.pid}" in second.log()
        assert "CHROMA_HOST" in second.log()
        second.stop()

        ingest = subprocess.run(
            [sys.executable, "-m", "rag", "ingest"],
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ingest.returncode == 2 and "in use by process" in ingest.stderr
        assert httpx.get(f"{first.url}/health").status_code == 200  # the first one never noticed
    finally:
        first.stop()


def test_sigterm_lets_answers_in_flight_finish(tmp_path: Path, knowledge_store_dir: Path) -> None:
    import threading

    store = tmp_path / "db"
    shutil.copytree(knowledge_store_dir, store)
    fake = FakeGemini().start()
    fake.reset(default=Reply(text="We build websites.", delay=2.0))  # a slow model: the answer is in flight
    env = {
        "CHROMA_PATH": str(store),
        "KNOWLEDGE_DIR": str(KNOWLEDGE),
        "GOOGLE_API_KEY": "k",
        "GEMINI_BASE_URL": fake.url,
        "LLM_CHAIN": "gemini,extractive",
        "EMBEDDER_WARMUP": "false",
    }
    server = ServerProcess(env, tmp_path / "server.log")
    answers: list[httpx.Response] = []
    try:
        server.wait_healthy()
        httpx.post(f"{server.url}/chat", json={"message": "warm up", "use_cache": False}, timeout=60)
        before = fake.calls  # "warm up" is about nothing in the knowledge: it may never reach the model
        asking = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{server.url}/chat", json={"message": "What services do you offer?"}, timeout=60)
            )
        )
        asking.start()
        reached_by = time.monotonic() + 60
        while fake.calls <= before:  # the question has reached the model
            assert time.monotonic() < reached_by, "the question never reached the model"
            time.sleep(0.02)
        server.process.terminate()  # SIGTERM, as docker stop and Kubernetes send it
        asking.join(timeout=30)
        # uvicorn finishes the request, then exits by the signal it caught (-15), as a process should.
        assert server.process.wait(timeout=30) in {0, -15}
    finally:
        server.stop()
        fake.stop()
    assert answers and answers[0].status_code == 200
    assert (
        answers[0].json()["response"] == "We build websites."
        and answers[0].json()["model_info"]["provider"] == "gemini"
    )
    assert "service_stopped" in events(server.log())
