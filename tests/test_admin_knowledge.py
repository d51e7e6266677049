"""Knowledge administration over HTTP: listing, background reindex, and the answer cache following along."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import KNOWLEDGE, AppFactory

POLLING = {"rate_limit_admin": "1000/minute"}  # the tests poll faster than an operator would


def wait_for_reindex(client: TestClient, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get("/admin/reindex").json()
        if job["status"] != "running":
            return job
        assert time.monotonic() < deadline, "reindex did not finish"
        time.sleep(0.1)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "kb"
    shutil.copytree(KNOWLEDGE, target)
    return target


def test_knowledge_lists_what_is_served(make_client: AppFactory) -> None:
    client = make_client()
    body = client.get("/admin/knowledge").json()

    assert body["up_to_date"] is True and body["folder_error"] is None
    assert body["pending"] == {"added": [], "changed": [], "removed": [], "settings_changed": False}
    assert body["version"] == client.get("/health").json()["knowledge_version"]
    assert body["embedding_model"] == "all-MiniLM-L6-v2"
    files = {f["path"]: f for f in body["files"]}
    assert set(files) == {p.name for p in KNOWLEDGE.glob("*.md")} and body["documents"] == len(files)
    assert sum(f["chunks"] for f in files.values()) == body["chunks"] > len(files)
    for entry in files.values():
        assert len(entry["sha256"]) == 64 and entry["skipped"] is None
        ingested = datetime.fromisoformat(entry["ingested_at"])
        assert ingested.tzinfo is not None and abs((datetime.now(UTC) - ingested).days) < 1
    assert body["reindex"] is None
    missing = client.get("/admin/reindex")
    assert missing.status_code == 404 and "No reindex" in missing.json()["error"]


def test_reindex_picks_up_changes_and_the_cache_follows(make_client: AppFactory, folder: Path) -> None:
    client = make_client(api=POLLING, rag={"knowledge_dir": folder})
    question = {"message": "Do you sell gift vouchers for workshops?"}
    before = client.post("/chat", json=question).json()
    assert client.post("/chat", json=question).json()["cached"] is True
    assert "£150" not in before["response"]
    old_version = client.get("/health").json()["knowledge_version"]

    (folder / "vouchers.md").write_text(
        "# Gift vouchers\n\nGift vouchers for our design workshops cost £150 and never expire.\n"
    )
    (folder / "careers.md").unlink(missing_ok=True)
    pending = client.get("/admin/knowledge").json()
    assert pending["up_to_date"] is False and pending["pending"]["added"] == ["vouchers.md"]

    started = client.post("/admin/reindex")
    assert started.status_code == 202 and started.headers["location"] == "/admin/reindex"
    assert started.json()["status"] == "running"
    job = wait_for_reindex(client)

    assert job["id"] == started.json()["id"] and job["status"] == "succeeded", job
    result = job["result"]
    assert result["status"] == "updated" and result["added"] == ["vouchers.md"]
    assert result["embedded"] == job["to_embed"] == job["embedded"] == 1
    assert result["reused"] == result["chunks"] - 1 > 50
    health = client.get("/health").json()
    assert health["knowledge_version"] == result["version"] != old_version
    assert health["vectors"] == result["chunks"]

    # The version is part of the cache key: the old answer is not served for the new knowledge.
    after = client.post("/chat", json=question).json()
    assert after["cached"] is False
    assert "£150" in after["response"] and after["sources"][0]["source"] == "vouchers.md"
    listed = client.get("/admin/knowledge").json()
    assert listed["up_to_date"] is True and "vouchers.md" in {f["path"] for f in listed["files"]}
    assert listed["reindex"]["id"] == job["id"]


def test_a_second_reindex_while_one_runs_gets_409_with_the_running_job(
    make_client: AppFactory, folder: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    client = make_client(api=POLLING, rag={"knowledge_dir": folder})
    for n in range(150):  # seconds of embedding: long enough for a second request to arrive meanwhile
        (folder / f"note-{n:03d}.md").write_text(
            f"# Note {n}\n\n" + " ".join(f"Detail {i} of topic {n}." for i in range(20))
        )

    first = client.post("/admin/reindex")
    second = client.post("/admin/reindex")
    assert first.status_code == 202
    assert second.status_code == 409
    assert second.json()["error"] == "A reindex is already running."
    assert second.json()["job"]["id"] == first.json()["id"]
    job = wait_for_reindex(client)

    assert job["status"] == "succeeded" and job["result"]["embedded"] == job["to_embed"] >= 150
    # The service logs how far the ingest got (the app's own log handler writes to stderr).
    progress = [line for line in capfd.readouterr().err.splitlines() if "knowledge_ingest_progress" in line]
    assert progress and "percent=100.0" in progress[-1] and "total=" in progress[-1]


def test_a_failed_reindex_is_reported_and_the_old_knowledge_stays(
    make_client: AppFactory, folder: Path
) -> None:
    client = make_client(api=POLLING, rag={"knowledge_dir": folder})
    served = client.get("/admin/knowledge").json()
    shutil.rmtree(folder)

    assert client.post("/admin/reindex").status_code == 202
    job = wait_for_reindex(client)

    assert job["status"] == "failed" and "knowledge folder not found" in job["error"]
    assert job["result"] is None and job["finished_at"] is not None
    now = client.get("/admin/knowledge").json()
    assert now["up_to_date"] is None and "knowledge folder not found" in now["folder_error"]
    assert now["version"] == served["version"] and now["chunks"] == served["chunks"]
    answer = client.post("/chat", json={"message": "What services do you offer?"}).json()
    assert answer["status"] == "success" and answer["sources"]
