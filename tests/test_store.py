"""The store owns Chroma: reads of many chunks go page by page, a build is filled through its handle and
served only once complete, and one writer at a time changes the store."""

from __future__ import annotations

import ast
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from rag.backup import export_store, import_store
from rag.embedder import Embedder
from rag.errors import StoreError
from rag.ingestion import ensure_ingested
from rag.store import STATUS_BUILDING, STATUS_COMPLETE, KnowledgeStore, Record
from tests.conftest import ROOT, rag_settings


def test_only_the_store_imports_chromadb() -> None:
    importers = set()
    for package in ("api", "agent", "rag"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(name.split(".")[0] == "chromadb" for name in names):
                    importers.add(path.relative_to(ROOT).as_posix())
    assert importers == {"rag/store.py"}


def test_reads_go_page_by_page_and_miss_nothing(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    build, total = store.active_build, store.count()
    assert build is not None and total > 50
    # Pages that end mid-way, one page exactly, and one page longer than the build.
    for page in (7, total, total + 1):
        monkeypatch.setattr("rag.store._READ_PAGE", page)
        name, hits = store.chunks()
        assert name == build.name and len({hit.id for hit in hits}) == len(hits) == total
        records = list(store.export_chunks())
        assert [record.id for record in records] == [hit.id for hit in hits]
        assert [record.document for record in records] == [hit.text for hit in hits]
    assert all(len(r.embedding) == 384 and type(r.embedding[0]) is float for r in records)
    assert store.dimension() == 384
    sample = store.sample_texts(5)
    assert len(sample) == 5 and set(sample) <= {hit.text for hit in hits}


def test_a_build_is_served_only_once_complete(store_dir: Path) -> None:
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    served = store.active_build
    assert served is not None
    records = list(store.export_chunks())

    with store.writer() as writer:
        dropped = writer.new_build(served.manifest)
        dropped.add(records[:3])
        dropped.drop()
        build = writer.new_build(served.manifest)
        build.add(records[:10])
        assert build.count() == 10 and sorted(build.ids()) == sorted(r.id for r in records[:10])
        assert store.refresh() == served  # not served while it is being filled
        assert store.build_statuses() == {served.name: STATUS_COMPLETE, build.name: STATUS_BUILDING}
        with pytest.raises(StoreError, match="other embedding parameters"):
            build.complete(replace(served.manifest, embedding_model="another-model"))
        build.add(records[10:])
        build.complete(served.manifest)

    assert store.active_build is not None and store.active_build.name == build.name
    assert store.count() == len(records)
    assert store.build_statuses() == {build.name: STATUS_COMPLETE}  # the one it replaced is gone
    with pytest.raises(StoreError, match="outside its writer"):
        build.add(records[:1])


def test_a_new_build_reuses_what_builds_made_the_same_way_hold(store_dir: Path) -> None:
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    served = store.active_build
    assert served is not None
    records = list(store.export_chunks())
    other = replace(served.manifest, embedding_model="another-model")

    with store.writer() as writer:
        # What interrupted ingests left behind: a build made the same way, and one with another model.
        for manifest, chunk_id, vector in (
            (served.manifest, "in-an-unfinished-build", records[0].embedding),
            (other, "in-a-build-of-another-model", records[1].embedding),
        ):
            writer.new_build(manifest).add([Record(chunk_id, "text", {"source": "x.md"}, vector)])
        asked = [records[2].id, "in-an-unfinished-build", "in-a-build-of-another-model", "nowhere"]

        same = writer.new_build(served.manifest)
        known = same.known_vectors(asked)
        assert set(known) == {records[2].id, "in-an-unfinished-build"}
        assert known[records[2].id] == records[2].embedding
        assert same.copy_from_active({"faq.md"}) == served.manifest.files["faq.md"].chunks == same.count()

        assert set(writer.new_build(other).known_vectors(asked)) == {"in-a-build-of-another-model"}
        assert writer.remove_stale() == 4
    assert list(store.build_statuses()) == [served.name]


@pytest.mark.parametrize("writing", ["ingest", "import"])
def test_one_writer_at_a_time_in_a_process(
    writing: str, store_dir: Path, embedder: Embedder, tmp_path: Path
) -> None:
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    backup = tmp_path / "kb.jsonl.gz"
    export_store(store, backup)
    other = KnowledgeStore.persistent(store_dir, "knowledge")  # another object on the same folder
    done = threading.Event()

    def write() -> None:
        if writing == "ingest":
            ensure_ingested(other, embedder, rag_settings(chroma_path=store_dir))
        else:
            import_store(other, backup)
        done.set()

    thread = threading.Thread(target=write)
    with store.writer():
        thread.start()
        assert not done.wait(1.0), "a second writer went ahead of the first"
    assert done.wait(120)
    thread.join()
    served = store.refresh()
    assert served is not None and list(store.build_statuses()) == [served.name]
