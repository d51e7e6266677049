"""Ingestion into a real Chroma store: embed only when needed, never serve a half-built collection."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.embedder import Embedder
from rag.ingestion import desired_manifest, ensure_ingested
from rag.store import STATUS_BUILDING, KnowledgeStore
from tests.conftest import KNOWLEDGE, ROOT, rag_settings


def owned(store_dir: Path) -> list[tuple[str, str]]:
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    return [(c.name, (c.metadata or {}).get("status", "")) for c in store._owned()]


def test_first_ingest_builds_a_complete_collection(tmp_path: Path, embedder: Embedder) -> None:
    settings = rag_settings(chroma_path=tmp_path / "db")
    store = KnowledgeStore.persistent(settings.chroma_path, settings.collection_prefix)

    report = ensure_ingested(store, embedder, settings)

    assert report.status == "built"
    assert report.files == len(list(KNOWLEDGE.glob("*.md"))) >= 8
    assert store.count() == report.chunks > report.files
    build = store.active_build
    assert build is not None and build.manifest == desired_manifest(settings)
    assert build.manifest.embedding_model == "all-MiniLM-L6-v2"
    assert (build.manifest.chunk_size, build.manifest.chunk_overlap) == (
        settings.chunk_size,
        settings.chunk_overlap,
    )
    assert set(build.manifest.files) == {p.name for p in KNOWLEDGE.glob("*.md")}


def test_restart_with_unchanged_folder_embeds_nothing(
    store_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = rag_settings(chroma_path=store_dir)
    fresh = Embedder("all-MiniLM-L6-v2")  # a new process would have a new, unloaded embedder
    with caplog.at_level(logging.INFO):
        report = ensure_ingested(KnowledgeStore.persistent(store_dir, "knowledge"), fresh, settings)

    assert report.status == "up_to_date"
    assert fresh.calls == 0 and not fresh.loaded
    assert any("knowledge_up_to_date" in r.getMessage() for r in caplog.records)


def test_changed_file_rebuilds_and_replaces_the_old_collection(
    tmp_path: Path, store_dir: Path, embedder: Embedder
) -> None:
    folder = tmp_path / "kb"
    shutil.copytree(KNOWLEDGE, folder)
    settings = rag_settings(chroma_path=store_dir, knowledge_dir=folder)
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    before = store.active_build
    assert before is not None

    with (folder / "pricing.md").open("a") as handle:
        handle.write("\n\n## Gift vouchers\n\nGift vouchers for design workshops cost £150 each.\n")
    report = ensure_ingested(store, embedder, settings)

    assert report.status == "built" and report.version != before.manifest.version
    assert [status for _, status in owned(store_dir)] == ["complete"]
    hits = store.query(embedder.embed_query("Do you sell gift vouchers?"), 1)
    assert "£150" in hits[0].text


def test_changed_chunking_parameters_rebuild(store_dir: Path, embedder: Embedder) -> None:
    settings = rag_settings(chroma_path=store_dir, chunk_size=400, chunk_overlap=50)
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    old_count = store.count()
    report = ensure_ingested(store, embedder, settings)
    assert report.status == "built"
    assert store.count() == report.chunks > old_count


def _write_bulk_folder(folder: Path, files: int) -> None:
    shutil.copytree(KNOWLEDGE, folder)
    for n in range(files):
        (folder / f"note-{n:04d}.md").write_text(
            f"# Note {n}\n\n" + " ".join(f"Paragraph about topic {n} and item {i}." for i in range(18))
        )


def _kill_ingest_midway(store_dir: Path, folder: Path) -> None:
    env = {**os.environ, "CHROMA_PATH": str(store_dir), "KNOWLEDGE_DIR": str(folder), "LOG_FORMAT": "json"}
    process = subprocess.Popen(
        [sys.executable, "-m", "rag", "ingest"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    for line in process.stderr:
        if "embedding:" in line and "chunk" in line and "/" in line:  # the progress bar has moved
            break
        assert time.monotonic() < deadline, "ingest never started embedding"
    time.sleep(1.0)
    assert process.poll() is None, "ingest finished before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_killed_ingest_keeps_serving_the_previous_build_then_finishes(
    tmp_path: Path, store_dir: Path, embedder: Embedder
) -> None:
    previous = KnowledgeStore.persistent(store_dir, "knowledge").active_build
    assert previous is not None
    folder = tmp_path / "kb"
    _write_bulk_folder(folder, files=300)

    _kill_ingest_midway(store_dir, folder)

    statuses = sorted(status for _, status in owned(store_dir))
    assert statuses == ["building", "complete"]  # the half-built collection is there, but not served
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    assert store.active_build is not None and store.active_build.name == previous.name

    settings = rag_settings(chroma_path=store_dir, knowledge_dir=folder)
    report = ensure_ingested(store, embedder, settings)
    assert report.status == "built"
    assert [status for _, status in owned(store_dir)] == ["complete"]
    ids = store._active.get(include=[])["ids"]
    assert len(ids) == len(set(ids)) == report.chunks == store.count()


def test_killed_first_ingest_serves_nothing_rather_than_a_partial_store(tmp_path: Path) -> None:
    store_dir, folder = tmp_path / "db", tmp_path / "kb"
    _write_bulk_folder(folder, files=300)

    _kill_ingest_midway(store_dir, folder)

    assert [status for _, status in owned(store_dir)] == [STATUS_BUILDING]
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    assert store.active_build is None and store.count() == 0


def test_a_store_built_by_another_chunker_version_is_rebuilt(
    store_dir: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.ingestion

    settings = rag_settings(chroma_path=store_dir)
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    assert ensure_ingested(store, embedder, settings).status == "up_to_date"

    monkeypatch.setattr(rag.ingestion, "CHUNKER_VERSION", rag.ingestion.CHUNKER_VERSION + 1)
    assert ensure_ingested(store, embedder, settings).status == "built"
