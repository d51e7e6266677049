"""`python -m rag ingest|status` as an operator runs them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import KNOWLEDGE, ROOT


def rag(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rag", *args],
        cwd=ROOT,
        env={**os.environ, "LOG_FORMAT": "json", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_status_and_ingest(tmp_path: Path, knowledge_store_dir: Path) -> None:
    store, folder = tmp_path / "db", tmp_path / "kb"
    shutil.copytree(knowledge_store_dir, store)
    shutil.copytree(KNOWLEDGE, folder)
    env = {"CHROMA_PATH": str(store), "KNOWLEDGE_DIR": str(folder)}

    status = rag("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["up_to_date"] is True and state["chunks"] > 50 and state["files"] >= 8

    (folder / "faq.md").write_text((folder / "faq.md").read_text() + "\n\nNew answer.\n")
    (folder / "careers.md").write_text("# Careers\n\nWe are hiring two developers in Bristol.\n")
    stale = rag("status", "--json", env=env)
    assert stale.returncode == 1
    changes = json.loads(stale.stdout)["changes"]
    assert (
        changes["changed"] == ["faq.md"] and changes["added"] == ["careers.md"] and changes["removed"] == []
    )

    ingest = rag("ingest", env=env)
    assert ingest.returncode == 0, ingest.stderr
    summary = re.match(
        r"updated: 10 files, (\d+) chunks \((\d+) embedded, (\d+) reused; 1 added, 1 changed, 0 removed\)",
        ingest.stdout,
    )
    assert summary, ingest.stdout
    chunks, embedded, reused = map(int, summary.groups())
    assert 2 <= embedded <= 3 and embedded + reused == chunks  # the new file and faq.md's changed end
    assert "embedding" in ingest.stderr  # the progress bar

    again = rag("ingest", env=env)
    assert again.returncode == 0 and again.stdout.startswith("up_to_date:")
    assert "embedding" not in again.stderr
    assert rag("status", env=env).returncode == 0


def test_prepare_embedder_exports_once_and_the_next_start_needs_no_torch(tmp_path: Path) -> None:
    env = {"EMBEDDING_CACHE_DIR": str(tmp_path / "embeddings")}
    first = rag("prepare-embedder", env=env)
    assert first.returncode == 0, first.stderr
    graphs = list((tmp_path / "embeddings").rglob("model.onnx"))
    assert len(graphs) == 1 and not list((tmp_path / "embeddings").rglob("*.tmp"))
    assert "onnx_export_ready" in first.stderr and "min_cosine" in first.stderr

    made = graphs[0].stat().st_mtime_ns
    again = rag("prepare-embedder", env=env)
    assert again.returncode == 0 and graphs[0].stat().st_mtime_ns == made  # verified once, then reused
    assert "onnx_export_started" not in again.stderr
