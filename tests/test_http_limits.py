"""Request heads are bounded in size and in time, on a real `python -m api` process attacked over raw sockets.

Before the bounds, 20 connections each sending 10 MB of unfinished headers grew the server by 200+ MB, and a
head trickled in a byte a second held its connection forever."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.server import ServerProcess
from fakes.gemini_server import FakeGemini
from fakes.llm_server import Reply
from tests.conftest import KNOWLEDGE

HEADER_TIMEOUT = 2.0
MAX_HEADER_BYTES = 32768  # the default
SLOW_ANSWER = HEADER_TIMEOUT + 1.5  # the model takes longer than a head may: answering is not cut short
SLACK = 2.0


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGemini]:
    fake = FakeGemini()
    fake.start()
    fake.reset(default=Reply(text="We build websites, apps and online shops.", delay=SLOW_ANSWER))
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, knowledge_store_dir: Path, gemini: FakeGemini
) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("http-limits")
    shutil.copytree(knowledge_store_dir, tmp / "db")
    env = {
        "CHROMA_PATH": str(tmp / "db"),
        "KNOWLEDGE_DIR": str(KNOWLEDGE),
        "EMBEDDER_WARMUP": "false",
        "HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "GOOGLE_API_KEY": "k",
        "GEMINI_BASE_URL": gemini.url,
        "LLM_CHAIN": "gemini,extractive",
    }
    process = ServerProcess(env, tmp / "server.log")
    try:
        process.wait_healthy()
        yield process
    finally:
        process.stop()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_reply(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP/1.1 reply with a Content-Length: its status and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed mid-reply: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed mid-body"
        body += chunk
    return int(lines[0].split()[1]), body


def closed_after(sock: socket.socket, trickle: bool) -> tuple[float, bytes]:
    """Seconds until the server closes `sock` (sending a byte a second if `trickle`), and what it said."""
    started = time.monotonic()
    sock.settimeout(1.0)
    said = b""
    while time.monotonic() - started < 30:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            if trickle:
                try:
                    sock.sendall(b"a")
                except OSError:
                    return time.monotonic() - started, said
            continue
        except ConnectionResetError:
            return time.monotonic() - started, said
        if not chunk:
            return time.monotonic() - started, said
        said += chunk
    raise AssertionError("the server never closed the connection")


def test_megabytes_of_unfinished_headers_are_refused_and_not_kept(server: ServerProcess) -> None:
    pid = server.process.pid
    before = rss_mb(pid)
    socks = [connect(server) for _ in range(20)]
    outcomes: list[str] = []
    pad = b"a" * 65536

    def attack(sock: socket.socket) -> None:
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ")
            for _ in range(160):  # 10 MiB, never finished
                sock.sendall(pad)
            outcomes.append("accepted all 10 MiB")
            return
        except OSError:
            pass
        try:
            reply = sock.recv(4096)
        except OSError:
            reply = b""
        # The 431 is written before the close; a reset from the unread bytes may overtake it.
        if reply.startswith(b"HTTP/1.1 431 "):
            outcomes.append("431")
        else:
            outcomes.append("closed" if not reply else repr(reply))

    threads = [threading.Thread(target=attack, args=(sock,)) for sock in socks]
    for thread in threads:
        thread.start()
    peak = before
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, rss_mb(pid))
        time.sleep(0.02)
    for sock in socks:
        sock.close()

    assert set(outcomes) <= {"431", "closed"} and len(outcomes) == 20, outcomes
    assert "431" in outcomes
    assert peak - before < 30, f"RSS grew from {before:.0f} to {peak:.0f} MB"
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    assert '"http_header_too_large"' in server.log()


def test_a_head_trickled_a_byte_a_second_is_cut_off_at_the_deadline(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        seconds, said = closed_after(sock, trickle=True)
    assert HEADER_TIMEOUT - 0.5 < seconds < HEADER_TIMEOUT + SLACK
    assert said.startswith(b"HTTP/1.1 408 ")


def test_a_keep_alive_connection_that_stalls_in_its_second_head_is_closed(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_reply(sock)[0] == 200
        sock.sendall(b"GET /health HTTP/1.1\r\nHo")  # uvicorn's keep-alive timer stops at the first byte
        seconds, said = closed_after(sock, trickle=False)
    assert seconds < HEADER_TIMEOUT + SLACK and said.startswith(b"HTTP/1.1 408 ")


def test_a_connection_that_never_asks_is_closed_quietly(server: ServerProcess) -> None:
    with connect(server) as sock:
        seconds, said = closed_after(sock, trickle=False)
    assert HEADER_TIMEOUT - 0.5 < seconds < HEADER_TIMEOUT + SLACK and said == b""


def test_large_allowed_heads_and_bodies_are_answered(server: ServerProcess) -> None:
    cookie = "session=" + "c" * 8192
    assert httpx.get(f"{server.url}/health", headers={"Cookie": cookie}, timeout=10).status_code == 200
    # Near the limit, arriving in many small reads: each is counted once.
    with connect(server) as sock:
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (MAX_HEADER_BYTES - 200) + b"\r\n\r\n"
        for start in range(0, len(head), 1000):
            sock.sendall(head[start : start + 1000])
            time.sleep(0.001)
        assert read_reply(sock)[0] == 200
    # A body arriving in the same read as its head is not counted as head.
    body = b'{"message": "What services do you offer?", "use_cache": false' + b" " * 50000 + b"}"
    with connect(server) as sock:
        sock.sendall(
            b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        status, _ = read_reply(sock)
    assert status == 200
    # One byte over the limit is refused.
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * MAX_HEADER_BYTES)
        assert read_reply(sock)[0] == 431


def test_answers_slower_than_the_header_timeout_and_keep_alive_are_unaffected(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        started = time.monotonic()
        first = client.post("/chat", json={"message": "How long does a website project take?"})
        assert time.monotonic() - started > HEADER_TIMEOUT  # the model was slower than a head may be
        assert first.status_code == 200 and first.json()["model_info"]["provider"] == "gemini"
        again = client.post("/chat", json={"message": "How long does a website project take?"})
        assert again.status_code == 200 and again.json()["cached"] is True
        assert client.get("/health").status_code == 200
