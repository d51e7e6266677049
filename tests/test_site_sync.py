"""The service keeps the owner's website in sync: `POST /admin/crawl` and CRAWL_INTERVAL crawl it in a worker
process, report progress and per-address errors in `/admin/reindex`, ingest what changed, and one replica at a
time crawls a snapshot the replicas share."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from bench.server import ServerProcess
from fakes.website import CONTENT, Website
from rag.crawl.snapshot import CRAWL_FILE, PAGES_FILE, Snapshot
from rag.settings import RagSettings
from tests.conftest import KNOWLEDGE, AppFactory
from tests.servers.chroma_server import ChromaServer
from tests.servers.redis_server import RedisServer
from tests.test_server_process import events

PAGES = {*CONTENT, "/docs/warranty.pdf"}
SITE_QUESTION = {"message": "How much does a full service cost at Northwind Cycles?"}


@pytest.fixture
def site() -> Iterator[Website]:
    website = Website(crawl_delay=0).start()
    yield website
    website.stop()


def _crawling(site: Website, store_dir: Path, **more: Any) -> dict[str, Any]:
    # The site's archive is larger than 0.1 MB on purpose: skipped as too_large.
    return {"knowledge_urls": site.url("/"), "crawl_max_page_mb": 0.1, "chroma_path": store_dir, **more}


# The tests follow a job closely: more often than the admin budget's 60 a minute.
POLLING = {"rate_limit_admin": "10000/minute"}


def _finished(client: TestClient, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        reply = client.get("/admin/reindex")
        if reply.status_code == 200 and reply.json()["status"] != "running":
            return dict(reply.json())
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.1)


def test_a_requested_crawl_is_followed_in_reindex_then_answered_from(
    make_client: AppFactory, store_dir: Path, site: Website
) -> None:
    client = make_client(api=POLLING, rag=_crawling(site, store_dir, crawl_interval=0))
    assert client.get("/admin/reindex").status_code == 404  # CRAWL_INTERVAL=0: nothing crawled by itself
    before = client.post("/chat", json=SITE_QUESTION).json()
    assert not any(source["source"].startswith("http") for source in before["sources"])

    started = client.post("/admin/crawl")
    assert started.status_code == 202, started.text
    assert started.headers["location"] == "/admin/reindex"
    assert started.json()["kind"] == "crawl" and started.json()["scheduled"] is False

    job = _finished(client)
    assert job["status"] == "succeeded", job
    crawl = job["crawl"]
    result = crawl["result"]
    assert (result["pages"], result["new"], result["removed"], result["complete"]) == (8, 8, 0, True)
    assert crawl["pages"] == 8 and crawl["done"] == 8 + sum(result["skipped"].values())
    assert result["skipped"]["robots"] == 1 and result["skipped"]["http_404"] == 2
    errors = {(error["url"], error["reason"]) for error in result["errors"]}
    assert (site.url("/broken"), "http_5xx") in errors and (site.url("/missing-page"), "http_404") in errors
    assert not any(reason == "robots" for _, reason in errors)  # a page's own choice is not an error
    assert sorted(job["result"]["added"]) == sorted(site.url(path) for path in PAGES)

    body = client.post("/chat", json={**SITE_QUESTION, "use_cache": False}).json()
    assert "89 pounds" in body["response"], body
    assert site.url("/services/repairs") in {source["source"] for source in body["sources"]}

    # Again, with nothing changed on the site: every page answered 304, nothing embedded.
    assert client.post("/admin/crawl").status_code == 202
    again = _finished(client)
    assert again["crawl"]["result"]["unchanged"] == 8 and again["result"]["status"] == "up_to_date"
    assert again["result"]["embedded"] == 0


def test_a_crawl_while_another_job_runs_is_refused_with_that_job(
    make_client: AppFactory, store_dir: Path
) -> None:
    slow = Website(crawl_delay=0.3).start()  # robots.txt spaces the requests: a crawl of a few seconds
    try:
        client = make_client(api=POLLING, rag=_crawling(slow, store_dir, crawl_interval=0))
        first = client.post("/admin/crawl").json()
        for path in ("/admin/crawl", "/admin/reindex"):
            refused = client.post(path)
            assert refused.status_code == 409, refused.text
            assert refused.json()["job"]["id"] == first["id"]
            assert refused.json()["error"] == "A crawl is already running."
        running = client.get("/admin/reindex").json()
        assert running["status"] == "running" and running["crawl"]["result"] is None
        deadline = time.monotonic() + 60
        while client.get("/admin/reindex").json()["crawl"]["done"] == 0:  # progress shows while it runs
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert _finished(client)["status"] == "succeeded"
    finally:
        slow.stop()


def test_a_site_that_is_down_fails_the_crawl_and_the_knowledge_stays(
    make_client: AppFactory, store_dir: Path, site: Website
) -> None:
    client = make_client(api=POLLING, rag=_crawling(site, store_dir, crawl_interval=0))
    assert client.post("/admin/crawl").status_code == 202
    assert _finished(client)["status"] == "succeeded"
    site.stop()

    assert client.post("/admin/crawl").status_code == 202
    job = _finished(client)
    assert job["status"] == "failed" and job["error"].startswith("SiteUnreachable: "), job
    result = job["crawl"]["result"]
    assert (result["pages"], result["kept"], result["complete"]) == (0, 8, False)
    assert result["errors"] and job["result"] is None  # nothing ingested
    body = client.post("/chat", json={**SITE_QUESTION, "use_cache": False}).json()
    assert site.url("/services/repairs") in {source["source"] for source in body["sources"]}


def test_nothing_to_crawl_without_knowledge_urls(make_client: AppFactory) -> None:
    client = make_client()
    refused = client.post("/admin/crawl")
    assert refused.status_code == 422
    assert "KNOWLEDGE_URLS" in refused.json()["error"]
    assert client.get("/admin/reindex").status_code == 404  # nothing started
    assert client.get("/admin/knowledge").json()["site"] is None


def test_the_crawl_is_an_admin_call(make_client: AppFactory, store_dir: Path, site: Website) -> None:
    admin = {**POLLING, "admin_token": "a-long-enough-admin-token"}
    client = make_client(api=admin, rag=_crawling(site, store_dir, crawl_interval=0))
    assert client.post("/admin/crawl").status_code == 401
    wrong = {"Authorization": "Bearer wrong-token-wrong"}
    assert client.post("/admin/crawl", headers=wrong).status_code == 403
    assert not site.fetched()


def test_a_crawl_worker_that_dies_fails_the_job_and_the_service_goes_on(
    make_client: AppFactory, store_dir: Path
) -> None:
    slow = Website(crawl_delay=0.3).start()
    try:
        client = make_client(api=POLLING, rag=_crawling(slow, store_dir, crawl_interval=0))
        assert client.post("/admin/crawl").status_code == 202
        worker = _crawl_worker()
        deadline = time.monotonic() + 60
        while not slow.fetched("/about") and not slow.fetched("/services"):  # well into the crawl
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(worker, signal.SIGSEGV)  # as a crash in a C parser would end it
        job = _finished(client)
        assert job["status"] == "failed"
        assert "CrawlFailed" in job["error"] and "signal 11" in job["error"], job["error"]
        assert not (store_dir / "site" / PAGES_FILE).exists()  # nothing half-written
        reply = client.post("/chat", json={"message": "What services do you offer?"})
        assert reply.status_code == 200 and reply.json()["status"] == "success"
    finally:
        slow.stop()


def _crawl_worker() -> int:
    """The pid of this process's crawl worker, read from /proc."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):  # not a process, or gone meanwhile
                continue
            if parent == os.getpid() and b"rag.crawl.worker" in cmdline:
                return int(entry.name)
        time.sleep(0.02)
    raise AssertionError("no crawl worker process")


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":  # ended, not yet waited for
            return True
        time.sleep(0.05)
    return False


def test_the_service_stopping_ends_its_crawl(make_client: AppFactory, store_dir: Path) -> None:
    slow = Website(crawl_delay=0.3).start()
    try:
        client = make_client(api=POLLING, rag=_crawling(slow, store_dir, crawl_interval=0))
        assert client.post("/admin/crawl").status_code == 202
        worker = _crawl_worker()
        client.__exit__(None, None, None)  # the lifespan's shutdown
        assert _gone(worker, timeout=3)  # the crawl itself would take several seconds more
    finally:
        slow.stop()


def test_crawl_interval_crawls_a_site_never_crawled_at_start_and_not_again_after_a_restart(
    make_client: AppFactory, store_dir: Path, site: Website
) -> None:
    client = make_client(api=POLLING, rag=_crawling(site, store_dir, crawl_interval="1h"))
    job = _finished(client)
    assert job["kind"] == "crawl" and job["scheduled"] is True and job["status"] == "succeeded", job
    assert job["crawl"]["result"]["new"] == 8
    finished = Snapshot(store_dir / "site").last_crawl()
    assert finished is not None and time.time() - finished < 60
    client.__exit__(None, None, None)

    site.clear_requests()
    restarted = make_client(api=POLLING, rag=_crawling(site, store_dir, crawl_interval="1h"))
    time.sleep(1.0)
    assert restarted.get("/admin/reindex").status_code == 404  # due in an hour, not now
    assert not site.fetched()
    kept = restarted.get("/admin/knowledge").json()["site"]
    assert kept["urls"] == [site.url("/")] and kept["interval_seconds"] == 3600
    last = datetime.fromisoformat(kept["last_crawl_at"]).timestamp()
    assert abs(last - finished) < 1
    assert abs(datetime.fromisoformat(kept["next_crawl_at"]).timestamp() - (last + 3600)) < 1
    body = restarted.post("/chat", json=SITE_QUESTION).json()
    assert site.url("/services/repairs") in {source["source"] for source in body["sources"]}


def test_crawl_interval_crawls_again_once_the_interval_has_passed(
    make_client: AppFactory, store_dir: Path, site: Website
) -> None:
    folder = store_dir / "site"
    folder.mkdir()
    # The last crawl ended 56 s ago and the interval is a minute: the next is due in 4 s, not before.
    due = time.time() + 4
    (folder / CRAWL_FILE).write_text(json.dumps({"finished_at": due - 60, "complete": True}))
    client = make_client(api=POLLING, rag=_crawling(site, store_dir, crawl_interval=60))
    job = _finished(client, timeout=60)
    assert job["scheduled"] is True and job["crawl"]["result"]["new"] == 8
    started = datetime.fromisoformat(job["started_at"]).timestamp()
    assert due - 0.05 <= started < due + 30, (started, due)


def test_crawl_interval_is_read_as_a_duration() -> None:
    assert RagSettings(_env_file=None, crawl_interval="12h").crawl_interval == 12 * 3600
    assert RagSettings(_env_file=None, crawl_interval="7d").crawl_interval == 7 * 86400
    assert RagSettings(_env_file=None, crawl_interval="off").crawl_interval == 0
    assert RagSettings(_env_file=None, crawl_interval="90").crawl_interval == 90
    for bad in ("5", "-1h", "weekly", "1w"):
        with pytest.raises(ValueError, match=r"CRAWL_INTERVAL|duration"):
            RagSettings(_env_file=None, crawl_interval=bad)


def test_the_command_line_crawl_shows_a_progress_bar(site: Website, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rag", "crawl", site.url("/"), "--snapshot", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CRAWL_MAX_PAGE_MB": "0.1", "CHROMA_PATH": str(tmp_path / "store")},
    )
    assert done.returncode == 0, done.stderr
    bar = done.stderr.replace("\r", "\n")
    assert "crawling:" in bar and "url/s" in bar  # tqdm's line: what is done of what is known so far
    final = [line for line in bar.splitlines() if line.startswith("crawling: 100%")]
    assert final, bar
    assert done.stdout.startswith("8 pages in ")


def test_replicas_sharing_the_snapshot_crawl_it_once(
    tmp_path: Path, redis_server: RedisServer, site: Website
) -> None:
    redis_server.flush()
    chroma = ChromaServer(tmp_path)
    knowledge = tmp_path / "kb"
    shutil.copytree(KNOWLEDGE, knowledge)
    replicas = []
    for name in ("a", "b"):  # started together, both due to crawl a site never crawled
        env = {
            "CHROMA_HOST": chroma.host,
            "CHROMA_PORT": str(chroma.port),
            "CHROMA_PATH": str(tmp_path / f"local-{name}"),
            "SITE_DIR": str(tmp_path / "site"),  # one folder for both, as a shared volume would be
            "KNOWLEDGE_DIR": str(knowledge),
            "KNOWLEDGE_URLS": site.url("/"),
            "CRAWL_MAX_PAGE_MB": "0.1",
            "CRAWL_INTERVAL": "1h",
            "REDIS_URL": redis_server.url,
            "EMBEDDER_WARMUP": "false",
        }
        replicas.append(ServerProcess(env, tmp_path / f"{name}.log"))
    try:
        for replica in replicas:
            replica.wait_healthy(timeout=300)
        jobs = []
        deadline = time.monotonic() + 180
        for replica in replicas:
            while (reply := httpx.get(f"{replica.url}/admin/reindex")).status_code == 404 or (
                reply.json()["status"] == "running"
            ):
                assert time.monotonic() < deadline, replica.log()
                time.sleep(0.2)
            jobs.append(reply.json())
        assert all(job["status"] == "succeeded" and job["scheduled"] for job in jobs), jobs
        crawled = [job for job in jobs if job["crawl"]["result"] is not None]
        assert len(crawled) == 1 and crawled[0]["crawl"]["result"]["new"] == 8
        assert [job["crawl"]["not_due"] for job in jobs if job not in crawled] == [True]
        assert len(site.fetched("/robots.txt")) == 1  # one crawl of the site, not two
        assert all(len(site.fetched(path)) == 1 for path in ("/about", "/pricing")), site.fetched()
        assert sum(events(replica.log()).count("crawl_not_due") for replica in replicas) == 1
        for replica in replicas:
            body = httpx.post(f"{replica.url}/chat", json=SITE_QUESTION, timeout=60).json()
            assert site.url("/services/repairs") in {source["source"] for source in body["sources"]}, body
    finally:
        for replica in replicas:
            replica.stop()
        chroma.stop()
