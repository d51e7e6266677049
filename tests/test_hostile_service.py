"""The service as it runs (`python -m api`), with every hostile knowledge file present and hostile visitors:
it starts and answers, `/health` stays quick while hostile files are ingested, memory stays bounded, no
input gets a 5xx, and no secret or contact detail reaches an answer or the default (console) log."""

from __future__ import annotations

import shutil
import statistics
import threading
import time
from pathlib import Path

import httpx

from bench.server import ServerProcess
from tests.conftest import KNOWLEDGE
from tests.hostile_files import (
    ENV_SECRET,
    heading_bomb,
    pdf_bomb,
    pdf_mutants,
    random_bytes,
    write_hostile_files,
)

TOKEN = "hostile-suite-admin-token-5f1c"
EMAIL = "victim.person@example.net"
PHONE = "+44 20 7946 0958"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_the_service_starts_answers_and_stays_responsive_among_hostile_files(
    tmp_path: Path, knowledge_store_dir: Path
) -> None:
    knowledge = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, knowledge)
    skipped, unlisted = write_hostile_files(knowledge / "hostile")
    store = tmp_path / "db"
    shutil.copytree(knowledge_store_dir, store)
    server = ServerProcess(
        {
            "CHROMA_PATH": str(store),
            "KNOWLEDGE_DIR": str(knowledge),
            "ADMIN_TOKEN": TOKEN,
            "DATABASE_PASSWORD": ENV_SECRET,  # what a link to /proc/self/environ would have published
            "LOG_FORMAT": "console",  # the default, where tracebacks once printed every local variable
            "LOG_MESSAGES": "true",
            "ACCESS_LOG": "true",
            "RATE_LIMIT_CHAT": "1000/minute",
        },
        tmp_path / "server.log",
    )
    admin = {"Authorization": f"Bearer {TOKEN}"}
    statuses: list[int] = []
    try:
        server.wait_healthy(timeout=180)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            answer = client.post("/chat", json={"message": "What services do you offer?"}).json()
            assert answer["status"] == "success" and answer["sources"]
            for probe in ("root:x:0:0", "DATABASE_PASSWORD", "What is in /etc/passwd?"):
                reply = client.post("/chat", json={"message": probe, "use_cache": False})
                statuses.append(reply.status_code)
                assert ENV_SECRET not in reply.text and "root:x:0" not in reply.text
                assert not any(
                    "passwd" in s["source"] or "environ" in s["source"] for s in reply.json()["sources"]
                )

            knowledge_view = client.get("/admin/knowledge", headers=admin).json()
            files = {f["path"]: f for f in knowledge_view["files"]}
            for name in skipped:
                assert files[f"hostile/{name}"]["skipped"], name
            assert not {f"hostile/{name}" for name in unlisted} & set(files)

            statuses += hostile_requests(client)
            assert_health_stays_quick_during_a_hostile_reindex(client, server, knowledge, admin)
            # Wrong admin tokens run out.
            wrong = [
                client.get("/cache/stats", headers={"Authorization": "Bearer guess-guess-guess"})
                for _ in range(11)
            ]
            assert [r.status_code for r in wrong] == [403] * 10 + [429]
    finally:
        server.stop()
    assert max(statuses) < 500, statuses
    log = server.log()
    for leaked in (TOKEN, ENV_SECRET, EMAIL, PHONE, "victim.person"):
        assert leaked not in log, leaked
    assert "[email]" in log and "[phone]" in log  # the messages were logged, masked


def hostile_requests(client: httpx.Client) -> list[int]:
    statuses = []
    json_headers = {"content-type": "application/json"}
    for path in ("/chat", "/chat/stream", "/v1/chat/completions"):
        for body in (
            rb'{"message": "hi \ud800"}',
            rb'{"messages": [{"role": "user", "content": "hi \ud800"}]}',
            rb'{"messages": [{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]}',
            b"[" * 20_000 + b"]" * 20_000,
            b"\xff\xfe\xfa",
        ):
            statuses.append(client.post(path, content=body, headers=json_headers).status_code)
    # Contact details in messages (logged with LOG_MESSAGES=true, masked) and in an answer's question.
    for message in (f"Please mail {EMAIL} or call {PHONE}", f"{EMAIL}: what are your prices?"):
        statuses.append(client.post("/chat", json={"message": message}).status_code)
        statuses.append(
            client.post(
                "/v1/chat/completions", json={"messages": [{"role": "user", "content": message}]}
            ).status_code
        )
    # A quadratic mask once held the event loop 8.8 s on this, with ACCESS_LOG=true.
    started = time.perf_counter()
    statuses.append(client.get("/health", params={"q": "a" * 60_000 + "@"}).status_code)
    statuses.append(client.get("/health", params={"q": "1 " * 30_000 + "x"}).status_code)
    assert time.perf_counter() - started < 1.0
    return statuses


def assert_health_stays_quick_during_a_hostile_reindex(
    client: httpx.Client, server: ServerProcess, knowledge: Path, admin: dict[str, str]
) -> None:
    """A second wave of hostile files (new bytes, so they are read again), ingested while /health is asked
    every few milliseconds from another connection."""
    wave = knowledge / "wave"
    wave.mkdir()
    (wave / "heading-bomb-2.md").write_text(heading_bomb(60_000))
    (wave / "zip-bomb-2.pdf").write_bytes(pdf_bomb(150))
    for number, mutant in enumerate(pdf_mutants(20, seed=99)):
        (wave / f"mutant-{number:02d}.pdf").write_bytes(mutant)
    (wave / "noise.md").write_bytes(random_bytes(1_000_000, seed=8))
    (wave / "page.html").write_text("<p " + "a=b " * 2_000_000 + ">x</p>")  # ~1 GB to parse

    baseline = rss_mb(server.process.pid)
    latencies: list[float] = []
    peak = [baseline]
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as health:
            while not done.is_set():
                started = time.perf_counter()
                assert health.get("/health").status_code == 200
                latencies.append(time.perf_counter() - started)
                peak[0] = max(peak[0], rss_mb(server.process.pid))
                time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        assert client.post("/admin/reindex", headers=admin).status_code == 202
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            job = client.get("/admin/reindex", headers=admin).json()
            if job["status"] != "running":
                break
            time.sleep(0.2)
    finally:
        done.set()
        poller.join()
    assert job["status"] == "succeeded", job
    assert len(latencies) > 20
    # Measured: median ~5 ms, worst 45-115 ms. What remains is Chroma: its embedded writes hold the GIL for
    # their whole call (~25-50 ms a batch of 16), and two cores are shared with the parser, the embedder
    # and this poller. Before: 7.9 s on one hostile heading; seconds per large batch written.
    ordered = sorted(latencies)
    p95, worst = ordered[int(len(ordered) * 0.95)], ordered[-1]
    figures = (
        f"median {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.0f}, worst {worst * 1000:.0f}"
    )
    assert p95 < 0.1 and worst < 0.25, figures
    assert peak[0] - baseline < 150, f"RSS {baseline:.0f} -> {peak[0]:.0f} MB"
    files = {f["path"]: f for f in client.get("/admin/knowledge", headers=admin).json()["files"]}
    assert files["wave/zip-bomb-2.pdf"]["skipped"] and files["wave/page.html"]["skipped"]
    assert "memory" in files["wave/page.html"]["skipped"]
    assert files["wave/heading-bomb-2.md"]["chunks"] >= 1
