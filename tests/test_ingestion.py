"""Ingestion into a real Chroma store: embed only when needed, never serve a half-built collection."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.embedder import Embedder, resolve_model_path
from rag.ingestion import desired_manifest, ensure_ingested
from rag.store import STATUS_BUILDING, KnowledgeStore
from tests.conftest import KNOWLEDGE, ROOT, rag_settings
from tests.servers.chroma_server import ChromaServer


def owned(store_dir: Path) -> list[tuple[str, str]]:
    return list(KnowledgeStore.persistent(store_dir, "knowledge").build_statuses().items())


def test_first_ingest_builds_a_complete_collection(tmp_path: Path, embedder: Embedder) -> None:
    settings = rag_settings(chroma_path=tmp_path / "db")
    store = KnowledgeStore.persistent(settings.chroma_path, settings.collection_prefix)

    report = ensure_ingested(store, embedder, settings)

    assert report.status == "rebuilt"
    assert report.files == len(list(KNOWLEDGE.glob("*.md"))) >= 8
    assert store.count() == report.chunks == report.embedded > report.files
    build = store.active_build
    assert build is not None and build.manifest.matches(desired_manifest(settings))
    assert sum(entry.chunks for entry in build.manifest.files.values()) == report.chunks
    assert build.manifest.embedding_model == "all-MiniLM-L6-v2"
    assert (build.manifest.chunk_size, build.manifest.chunk_overlap) == (
        settings.chunk_size,
        settings.chunk_overlap,
    )
    assert set(build.manifest.files) == {p.name for p in KNOWLEDGE.glob("*.md")}


def test_restart_with_unchanged_folder_embeds_nothing(
    store_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = rag_settings(chroma_path=store_dir)
    fresh = Embedder("all-MiniLM-L6-v2")  # a new process would have a new, unloaded embedder
    report = ensure_ingested(KnowledgeStore.persistent(store_dir, "knowledge"), fresh, settings)

    assert report.status == "up_to_date"
    assert fresh.calls == 0 and not fresh.loaded
    assert "knowledge_up_to_date" in capfd.readouterr().err


def test_add_change_delete_cycles_embed_only_what_changed(
    tmp_path: Path, store_dir: Path, embedder: Embedder
) -> None:
    folder = tmp_path / "kb"
    shutil.copytree(KNOWLEDGE, folder)
    settings = rag_settings(chroma_path=store_dir, knowledge_dir=folder)
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    before = store.active_build
    assert before is not None
    total = store.count()

    # Add a file: only its chunks are embedded, everything else is copied with its vector.
    (folder / "vouchers.md").write_text("# Gift vouchers\n\nGift vouchers for design workshops cost £150.\n")
    added = ensure_ingested(store, embedder, settings)
    assert (added.status, added.added, added.embedded, added.reused) == ("updated", ["vouchers.md"], 1, total)
    assert store.count() == total + 1 and added.version != before.manifest.version
    assert [status for _, status in owned(store_dir)] == ["complete"]
    assert "£150" in store.query(embedder.embed_query("Do you sell gift vouchers?"), 1)[0].text

    # Change a file: the sections that did not change keep their vectors.
    pricing = (folder / "pricing.md").read_text()
    (folder / "pricing.md").write_text(pricing.replace("40%", "35%", 1))
    changed = ensure_ingested(store, embedder, settings)
    assert changed.changed == ["pricing.md"] and changed.status == "updated"
    pricing_chunks = before.manifest.files["pricing.md"].chunks
    assert 1 <= changed.embedded < pricing_chunks
    assert changed.embedded + changed.reused == changed.chunks == store.count() == total + 1
    hits = store.query(embedder.embed_query("How big is the deposit?"), 3)
    assert any("35%" in h.text for h in hits) and not any("40% deposit" in h.text for h in hits)

    # Delete a file: nothing is embedded and its chunks are gone.
    faq_chunks = before.manifest.files["faq.md"].chunks
    (folder / "faq.md").unlink()
    removed = ensure_ingested(store, embedder, settings)
    assert (removed.removed, removed.embedded) == (["faq.md"], 0)
    assert store.count() == total + 1 - faq_chunks
    assert not [hit for hit in store.chunks()[1] if hit.metadata["source"] == "faq.md"]

    # The manifest tells when each file's current bytes were ingested.
    build = store.active_build
    assert build is not None and "faq.md" not in build.manifest.files
    entries = build.manifest.files
    assert entries["services.md"].ingested_at == before.manifest.files["services.md"].ingested_at
    assert entries["pricing.md"].ingested_at > before.manifest.files["pricing.md"].ingested_at
    assert ensure_ingested(store, embedder, settings).status == "up_to_date"
    ids = [hit.id for hit in store.chunks()[1]]
    assert len(ids) == len(set(ids)) == store.count()


def test_a_different_embedding_model_rebuilds_everything(
    tmp_path: Path, store_dir: Path, embedder: Embedder
) -> None:
    other_model = tmp_path / "minilm-copy"  # a local model folder: vectors from it must not be mixed
    shutil.copytree(resolve_model_path("all-MiniLM-L6-v2"), other_model)
    settings = rag_settings(chroma_path=store_dir, embedding_model=str(other_model))
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    total = store.count()

    other = Embedder(str(other_model))
    report = ensure_ingested(store, other, settings)

    assert (report.status, report.reused, report.embedded) == ("rebuilt", 0, total)
    assert other.calls == total
    build = store.active_build
    assert build is not None and build.manifest.embedding_model == str(other_model)


def test_changed_chunking_parameters_rebuild(store_dir: Path, embedder: Embedder) -> None:
    settings = rag_settings(chroma_path=store_dir, chunk_size=80, chunk_overlap=16)
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    old_count = store.count()
    report = ensure_ingested(store, embedder, settings)
    assert report.status == "rebuilt" and report.reused == 0
    assert store.count() == report.chunks > old_count


def _write_bulk_folder(folder: Path, files: int) -> None:
    shutil.copytree(KNOWLEDGE, folder)
    for n in range(files):
        (folder / f"note-{n:04d}.md").write_text(
            f"# Note {n}\n\n" + " ".join(f"Paragraph about topic {n} and item {i}." for i in range(36))
        )


def _kill_ingest_midway(
    store_dir: Path, folder: Path, after: int = 1, server: dict[str, str] | None = None
) -> None:
    """SIGKILL a real `python -m rag ingest` once its progress bar shows `after` chunks embedded."""
    env = {
        **os.environ,
        "CHROMA_PATH": str(store_dir),
        "KNOWLEDGE_DIR": str(folder),
        "LOG_FORMAT": "json",
        "EMBEDDING_BATCH_SIZE": "8",  # small groups: some are written before the kill
        **(server or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "rag", "ingest"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 180
    for line in process.stderr:  # tqdm's carriage returns end lines too in text mode
        progress = re.search(r"embedding:.*?(\d+)/(\d+)", line)
        if progress and int(progress.group(1)) >= after:
            assert int(progress.group(1)) < int(progress.group(2)), "ingest finished before the kill"
            break
        assert time.monotonic() < deadline, "ingest never got that far"
    assert process.poll() is None, "ingest finished before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_killed_ingest_keeps_serving_the_previous_build_then_finishes(
    tmp_path: Path, store_dir: Path, embedder: Embedder
) -> None:
    previous_store = KnowledgeStore.persistent(store_dir, "knowledge")
    previous, previous_count = previous_store.active_build, previous_store.count()
    assert previous is not None
    folder = tmp_path / "kb"
    _write_bulk_folder(folder, files=300)

    _kill_ingest_midway(store_dir, folder, after=300)

    statuses = sorted(status for _, status in owned(store_dir))
    assert statuses == ["building", "complete"]  # the half-built collection is there, but not served
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    assert store.active_build is not None and store.active_build.name == previous.name

    settings = rag_settings(chroma_path=store_dir, knowledge_dir=folder)
    report = ensure_ingested(store, embedder, settings)
    assert report.status == "updated"
    assert [status for _, status in owned(store_dir)] == ["complete"]
    ids = [hit.id for hit in store.chunks()[1]]
    assert len(ids) == len(set(ids)) == report.chunks == store.count()
    # The killed run's work is not lost: what it had written is taken over, not embedded again.
    assert report.reused >= previous_count + 256 and report.embedded < report.chunks - previous_count


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
    assert ensure_ingested(store, embedder, settings).status == "rebuilt"


def test_a_killed_ingest_against_a_chroma_server_recovers_the_same_way(
    tmp_path: Path, embedder: Embedder
) -> None:
    chroma = ChromaServer(tmp_path)
    try:
        server = {"CHROMA_HOST": chroma.host, "CHROMA_PORT": str(chroma.port)}
        first = rag_settings(chroma_host=chroma.host, chroma_port=chroma.port)
        store = KnowledgeStore.server(chroma.host, chroma.port, "knowledge")
        ensure_ingested(store, embedder, first)
        previous, previous_count = store.active_build, store.count()
        assert previous is not None
        folder = tmp_path / "kb"
        _write_bulk_folder(folder, files=300)

        _kill_ingest_midway(tmp_path / "local", folder, after=300, server=server)

        store.refresh()
        assert store.active_build is not None and store.active_build.name == previous.name  # still served
        assert sorted(status for _, status in _statuses(store)) == ["building", "complete"]
        settings = rag_settings(chroma_host=chroma.host, chroma_port=chroma.port, knowledge_dir=folder)
        report = ensure_ingested(store, embedder, settings)
        assert report.status == "updated" and [s for _, s in _statuses(store)] == ["complete"]
        ids = [hit.id for hit in store.chunks()[1]]
        assert len(ids) == len(set(ids)) == report.chunks == store.count()
        assert report.reused >= previous_count + 256  # the killed run's vectors were kept
        store.close()
    finally:
        chroma.stop()


def _statuses(store: KnowledgeStore) -> list[tuple[str, str]]:
    return list(store.build_statuses().items())
