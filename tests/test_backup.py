"""`python -m rag export|import`: move or restore a store without embedding it again."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.backup import BackupError, export_store, import_store
from rag.embedder import Embedder
from rag.ingestion import desired_parameters, ensure_ingested
from rag.store import KnowledgeStore
from tests.conftest import ROOT, rag_settings


def rag(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHROMA_PATH": str(store), "LOG_FORMAT": "json"}
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_export_then_import_serves_the_same_knowledge_without_embedding(
    tmp_path: Path, store_dir: Path, embedder: Embedder
) -> None:
    source = KnowledgeStore.persistent(store_dir, "knowledge")
    exported = export_store(source, tmp_path / "kb.jsonl.gz")
    assert exported.chunks == source.count() > 50 and not (tmp_path / "kb.jsonl.gz.partial").exists()

    target_dir = tmp_path / "restored"
    target = KnowledgeStore.persistent(target_dir, "knowledge")
    imported = import_store(target, tmp_path / "kb.jsonl.gz", expected=desired_parameters(rag_settings()))

    assert imported == exported
    assert target.active_build is not None and source.active_build is not None
    assert target.active_build.manifest == source.active_build.manifest  # hashes, counts, ingest times
    question = embedder.embed_query("How much is the Growth package?")
    assert [h.id for h in target.query(question, 3)] == [h.id for h in source.query(question, 3)]
    fresh = Embedder("all-MiniLM-L6-v2")
    report = ensure_ingested(target, fresh, rag_settings(chroma_path=target_dir))
    assert report.status == "up_to_date" and not fresh.loaded  # nothing to embed after a restore


def test_the_commands_round_trip_and_a_broken_file_changes_nothing(tmp_path: Path, store_dir: Path) -> None:
    backup = tmp_path / "kb.jsonl.gz"
    out = rag("export", str(backup), store=store_dir)
    assert out.returncode == 0 and out.stdout.startswith("exported 9 files"), out.stderr

    restored = tmp_path / "restored"
    done = rag("import", str(backup), store=restored)
    assert done.returncode == 0 and done.stdout.replace("imported", "exported") == out.stdout
    assert rag("status", store=restored).returncode == 0  # up to date with the knowledge folder

    # A file cut short: refused, and the restored store still serves what it had.
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(backup.read_bytes()[: len(backup.read_bytes()) // 2])
    before = KnowledgeStore.persistent(restored, "knowledge").active_build
    failed = rag("import", str(truncated), store=restored)
    assert failed.returncode == 2 and "not a readable export" in failed.stderr
    after = KnowledgeStore.persistent(restored, "knowledge")
    assert after.active_build is not None and before is not None and after.active_build.name == before.name
    assert [c.name for c in after._owned()] == [before.name]  # no half-imported build left behind


def test_an_export_of_another_model_or_a_damaged_file_is_refused(tmp_path: Path, store_dir: Path) -> None:
    backup = tmp_path / "kb.jsonl.gz"
    export_store(KnowledgeStore.persistent(store_dir, "knowledge"), backup)
    target = KnowledgeStore.persistent(tmp_path / "other", "knowledge")

    other_model = desired_parameters(rag_settings(embedding_model=str(tmp_path)))
    with pytest.raises(BackupError, match="vectors would not match"):
        import_store(target, backup, expected=other_model)

    lines = gzip.decompress(backup.read_bytes()).decode().splitlines()
    damaged = tmp_path / "damaged.jsonl.gz"
    damaged.write_bytes(gzip.compress("\n".join([*lines[:5], '{"id": "x"}', *lines[6:]]).encode()))
    with pytest.raises(BackupError, match="chunk line is damaged"):
        import_store(target, damaged)
    not_ours = tmp_path / "other.gz"
    not_ours.write_bytes(gzip.compress(b'{"hello": "world"}\n'))
    with pytest.raises(BackupError, match="not a knowledge-store export"):
        import_store(target, not_ours)
    assert target.active_build is None and target._owned() == []
    shutil.rmtree(tmp_path / "other")
