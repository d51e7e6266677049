"""`python -m rag export|import`: move or restore a store without embedding it again, and refuse a damaged
or hostile file without touching what the store serves."""

from __future__ import annotations

import copy
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rag.backup import BackupError, export_store, import_store
from rag.embedder import Embedder
from rag.ingestion import desired_parameters, ensure_ingested
from rag.store import Build, CompleteBuild, KnowledgeStore
from tests.conftest import ROOT, rag_settings

MIB = 1024 * 1024
Chunks = list[dict[str, Any]]
Damage = Callable[[dict[str, Any], Chunks], bytes]  # a valid export's header and chunks -> the file's bytes


def rag(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHROMA_PATH": str(store), "LOG_FORMAT": "json"}
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


# -- a served store, and a valid export of it to damage ------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, knowledge_store_dir: Path) -> KnowledgeStore:
    """A store serving the bundled knowledge, shared by the in-process refusals (each leaves it as it was)."""
    path = tmp_path_factory.mktemp("served") / "chroma"
    shutil.copytree(knowledge_store_dir, path)
    return KnowledgeStore.persistent(path, "knowledge")


@pytest.fixture(scope="module")
def valid_export(
    served: KnowledgeStore, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Chunks]:
    path = tmp_path_factory.mktemp("export") / "kb.jsonl.gz"
    export_store(served, path)
    header, *chunks = (json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines())
    return header, chunks


def write(header: dict[str, Any], chunks: Chunks) -> bytes:
    return lines(json.dumps(header), *(json.dumps(c) for c in chunks))


def lines(*texts: str | bytes) -> bytes:
    return gzip.compress(b"".join((t.encode() if isinstance(t, str) else t) + b"\n" for t in texts))


def assert_unchanged(store: KnowledgeStore, before: CompleteBuild, chunks: int) -> None:
    """Still serving the same build, and no build of any kind left behind."""
    assert store.refresh() == before and store.count() == chunks
    assert list(store.build_statuses()) == [before.name]  # unfinished builds of any parameters too


# -- the kinds of damage ------------------------------------------------------------------------------


def whole(change: Callable[[bytes], bytes]) -> Damage:
    return lambda header, chunks: change(write(header, chunks))


def raw_line(number: int, raw: bytes) -> Damage:
    """Line `number` (0: the header) replaced by `raw`."""

    def damage(header: dict[str, Any], chunks: Chunks) -> bytes:
        texts: list[str | bytes] = [json.dumps(header), *(json.dumps(c) for c in chunks)]
        texts[number] = raw
        return lines(*texts)

    return damage


def header_with(**values: Any) -> Damage:
    return lambda header, chunks: write({**header, **values}, chunks)


def header_without(key: str) -> Damage:
    return lambda header, chunks: write({k: v for k, v in header.items() if k != key}, chunks)


def manifest_with(**values: Any) -> Damage:
    return lambda header, chunks: write({**header, "manifest": {**header["manifest"], **values}}, chunks)


def manifest_without(key: str) -> Damage:
    return lambda header, chunks: write(
        {**header, "manifest": {k: v for k, v in header["manifest"].items() if k != key}}, chunks
    )


def chunk_with(number: int = 3, **values: Any) -> Damage:
    def damage(header: dict[str, Any], chunks: Chunks) -> bytes:
        chunks[number].update(values)
        return write(header, chunks)

    return damage


def chunk_without(key: str) -> Damage:
    def damage(header: dict[str, Any], chunks: Chunks) -> bytes:
        del chunks[3][key]
        return write(header, chunks)

    return damage


def shorter_vectors(which: slice) -> Damage:
    def damage(header: dict[str, Any], chunks: Chunks) -> bytes:
        for chunk in chunks[which]:
            chunk["embedding"] = chunk["embedding"][:-1]
        return write(header, chunks)

    return damage


def metadata_with(**values: Any) -> Damage:
    def damage(header: dict[str, Any], chunks: Chunks) -> bytes:
        chunks[-1]["metadata"].update(values)  # the last: its batch holds valid chunks before it
        return write(header, chunks)

    return damage


def repeated_id(header: dict[str, Any], chunks: Chunks) -> bytes:
    chunks[5]["id"] = chunks[2]["id"]
    return write(header, chunks)


def with_crc_flipped(data: bytes) -> bytes:
    return data[:-8] + bytes(b ^ 0xFF for b in data[-8:-4]) + data[-4:]


def valid_gzip_header_then_garbage(data: bytes) -> bytes:
    return data[:10] + b"\xff" * 200  # deflate block type 3 does not exist: zlib.error, not an OSError


READABLE = "is not a readable export"
CHUNK = "the chunk on line 5 is damaged"  # chunk 3: line 0 is the header, numbers count from 1
REFUSED = "the store refused the file's chunks"

DAMAGE = [
    # The container.
    pytest.param(whole(lambda d: d[: len(d) // 2]), READABLE, id="truncated-gzip"),
    pytest.param(whole(lambda d: d[:-4]), READABLE, id="gzip-trailer-cut"),
    pytest.param(whole(valid_gzip_header_then_garbage), READABLE, id="corrupt-deflate"),
    pytest.param(whole(with_crc_flipped), READABLE, id="crc-mismatch"),
    pytest.param(whole(gzip.decompress), READABLE, id="not-gzip"),
    pytest.param(lambda h, c: b"", "the file is empty", id="empty-file"),
    pytest.param(lambda h, c: gzip.compress(b""), "the file is empty", id="empty-gzip"),
    pytest.param(raw_line(0, b'{"format": "kb-chatbot-store\xff\xfe"}'), "not UTF-8", id="header-not-utf8"),
    pytest.param(raw_line(4, b'{"id": "\xc3\x28"}'), "line 5 .* is not UTF-8", id="chunk-not-utf8"),
    pytest.param(raw_line(0, b" " * (16 * MIB + 1)), "header .* longer than 16 MiB", id="header-too-long"),
    pytest.param(raw_line(4, b"7" * (MIB + 1)), "chunk line .* longer than 1 MiB", id="chunk-too-long"),
    # The header.
    pytest.param(lambda h, c: write(c[0], c[1:]), "not a knowledge-store export", id="header-missing"),
    pytest.param(raw_line(0, b"{format: kb}"), "no export header", id="header-not-json"),
    pytest.param(raw_line(0, b"[1, 2]"), "not a knowledge-store export", id="header-not-object"),
    pytest.param(raw_line(0, b"[" * 100_000), "no export header", id="header-nested-too-deep"),
    pytest.param(header_with(format="kb-chatbot-stor"), "not a knowledge-store export", id="wrong-format"),
    pytest.param(header_with(version=2), "version 2 is not supported", id="wrong-version"),
    pytest.param(header_with(version="1"), "version '1' is not supported", id="version-a-string"),
    pytest.param(header_with(version=True), "version True is not supported", id="version-a-bool"),
    pytest.param(header_without("version"), "version None is not supported", id="version-missing"),
    pytest.param(header_with(chunks=10_000), "incomplete: .* of 10000 chunks", id="chunk-count-too-high"),
    pytest.param(header_with(chunks=3), "more chunks than the 3 its header counts", id="chunk-count-too-low"),
    pytest.param(header_with(chunks="60"), "chunk count '60' is not a count", id="chunk-count-a-string"),
    pytest.param(header_with(chunks=60.5), "chunk count 60.5 is not a count", id="chunk-count-a-float"),
    pytest.param(header_with(chunks=-1), "chunk count -1 is not a count", id="chunk-count-negative"),
    pytest.param(header_without("chunks"), "chunk count None is not a count", id="chunk-count-missing"),
    pytest.param(header_without("manifest"), "holds no manifest", id="manifest-missing"),
    pytest.param(header_with(manifest=["files"]), "holds no manifest", id="manifest-a-list"),
    pytest.param(manifest_without("embedding_model"), "damaged: KeyError", id="manifest-no-model"),
    pytest.param(manifest_with(files=[]), "manifest is damaged: AttributeError", id="manifest-files-a-list"),
    pytest.param(manifest_with(files={"a.md": 7}), "manifest is damaged: TypeError", id="manifest-entry-int"),
    pytest.param(manifest_with(chunk_size="big"), "manifest is damaged: ValueError", id="manifest-size-text"),
    pytest.param(
        raw_line(
            0,
            b'{"format": "kb-chatbot-store", "version": 1, "chunks": 1, "manifest": '
            b'{"embedding_model": "m", "chunk_size": 1e999, "chunk_overlap": 0, "files": {}}}',
        ),
        "manifest is damaged: OverflowError",
        id="manifest-size-infinite",
    ),
    # The chunks.
    pytest.param(raw_line(4, b"{'id': 'x'}"), f"{CHUNK}: not JSON", id="chunk-not-json"),
    pytest.param(raw_line(4, b""), f"{CHUNK}: not JSON", id="chunk-empty-line"),
    pytest.param(raw_line(4, b"[" * 100_000), f"{CHUNK}: not JSON", id="chunk-nested-too-deep"),
    pytest.param(raw_line(4, b'["id", "document"]'), f"{CHUNK}: not a JSON object", id="chunk-a-list"),
    pytest.param(raw_line(4, b"null"), f"{CHUNK}: not a JSON object", id="chunk-null"),
    pytest.param(chunk_without("embedding"), f"{CHUNK}: no embedding", id="chunk-no-embedding"),
    pytest.param(chunk_without("id"), f"{CHUNK}: no id", id="chunk-no-id"),
    pytest.param(chunk_with(id=17), f"{CHUNK}: its id", id="id-an-int"),
    pytest.param(chunk_with(id=""), f"{CHUNK}: its id", id="id-empty"),
    pytest.param(chunk_with(document=None), f"{CHUNK}: its document", id="document-null"),
    pytest.param(chunk_with(document=["text"]), f"{CHUNK}: its document", id="document-a-list"),
    pytest.param(chunk_with(metadata="source: faq.md"), f"{CHUNK}: its metadata", id="metadata-a-string"),
    pytest.param(chunk_with(metadata={}), f"{CHUNK}: its metadata", id="metadata-empty"),
    pytest.param(chunk_with(metadata={"source": {"a": 1}}), f"{CHUNK}: its metadata", id="metadata-nested"),
    pytest.param(chunk_with(metadata={"source": ["a", "b"]}), f"{CHUNK}: its metadata", id="metadata-a-list"),
    pytest.param(chunk_with(metadata={"source": None}), f"{CHUNK}: its metadata", id="metadata-null-value"),
    pytest.param(chunk_with(embedding="0.1,0.2"), f"{CHUNK}: its embedding", id="embedding-a-string"),
    pytest.param(chunk_with(embedding=["0.1", "0.2"]), f"{CHUNK}: its embedding", id="embedding-strings"),
    pytest.param(chunk_with(embedding=[]), f"{CHUNK}: its embedding", id="embedding-empty"),
    pytest.param(chunk_with(embedding=[[0.1], [0.2]]), f"{CHUNK}: its embedding", id="embedding-nested"),
    pytest.param(chunk_with(embedding=[True] * 384), f"{CHUNK}: its embedding", id="embedding-bools"),
    pytest.param(chunk_with(embedding=[1] * 384), f"{CHUNK}: its embedding", id="embedding-ints"),
    pytest.param(chunk_with(embedding=[float("nan")] * 384), f"{CHUNK}: not JSON .*NaN", id="embedding-nan"),
    pytest.param(chunk_with(embedding=[float("inf")] * 384), f"{CHUNK}: not JSON", id="embedding-infinity"),
    pytest.param(
        raw_line(4, b'{"id":"x","document":"d","metadata":{"a":1},"embedding":[1e999]}'),
        f"{CHUNK}: its embedding",
        id="embedding-overflows",
    ),
    pytest.param(
        shorter_vectors(slice(3, 4)),
        f"{CHUNK}: its vector has 383 dimensions, not 384",
        id="dimension-differs-from-the-others",
    ),
    pytest.param(
        shorter_vectors(slice(None)),
        "line 2 is damaged: its vector has 383 dimensions, not 384",
        id="dimension-differs-from-the-model",
    ),
    pytest.param(repeated_id, "repeats chunk ids", id="duplicate-id"),
    # What passes these checks and Chroma refuses all the same.
    pytest.param(
        metadata_with(**{"chroma:document": "x"}), f"{REFUSED}: ValueError", id="chroma-reserved-key"
    ),
    pytest.param(metadata_with(**{"": "x"}), f"{REFUSED}: InvalidArgumentError", id="chroma-empty-key"),
]


@pytest.mark.parametrize(("damage", "message"), DAMAGE)
def test_a_damaged_file_is_refused_and_the_served_build_stays(
    damage: Damage,
    message: str,
    served: KnowledgeStore,
    valid_export: tuple[dict[str, Any], Chunks],
    tmp_path: Path,
) -> None:
    before, chunks = served.active_build, served.count()
    assert before is not None
    source = tmp_path / "damaged.jsonl.gz"
    source.write_bytes(damage(*copy.deepcopy(valid_export)))

    with pytest.raises(BackupError, match=message) as refused:
        import_store(served, source, expected=desired_parameters(rag_settings()))

    assert "\n" not in str(refused.value) and len(str(refused.value)) <= 300
    assert_unchanged(served, before, chunks)


@pytest.mark.parametrize("name", ["a-directory", "missing.jsonl.gz"])
def test_a_path_that_is_not_a_file_is_refused(name: str, served: KnowledgeStore, tmp_path: Path) -> None:
    (tmp_path / "a-directory").mkdir()
    before, chunks = served.active_build, served.count()
    assert before is not None
    with pytest.raises(BackupError, match=READABLE):
        import_store(served, tmp_path / name)
    assert_unchanged(served, before, chunks)


def test_vectors_of_different_lengths_are_refused_in_an_empty_store_too(
    valid_export: tuple[dict[str, Any], Chunks], tmp_path: Path
) -> None:
    empty = KnowledgeStore.persistent(tmp_path / "empty", "knowledge")
    source = tmp_path / "damaged.jsonl.gz"
    source.write_bytes(shorter_vectors(slice(3, 4))(*copy.deepcopy(valid_export)))
    with pytest.raises(BackupError, match=f"{CHUNK}: its vector has 383 dimensions, not 384"):
        import_store(empty, source)
    assert empty.active_build is None and empty.build_statuses() == {}


def test_batches_are_flushed_by_count_and_by_size_and_ids_are_unique_across_them(
    valid_export: tuple[dict[str, Any], Chunks], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header, chunks = copy.deepcopy(valid_export)
    source = tmp_path / "kb.jsonl.gz"
    source.write_bytes(write(header, chunks))
    target = KnowledgeStore.persistent(tmp_path / "target", "knowledge")
    batches: list[int] = []
    add = Build.add
    monkeypatch.setattr(
        Build, "add", lambda build, records: (batches.append(len(records)), add(build, records))
    )

    monkeypatch.setattr("rag.backup.BATCH_CHUNKS", 10)
    assert import_store(target, source).chunks == len(chunks)
    assert batches == [10] * (len(chunks) // 10) + ([len(chunks) % 10] if len(chunks) % 10 else [])

    batches.clear()
    monkeypatch.setattr("rag.backup.BATCH_BYTES", 1)  # every chunk is over it: each is flushed alone
    assert import_store(target, source).chunks == len(chunks)
    assert batches == [1] * len(chunks)

    # The same id in two batches: Chroma would keep the first silently.
    chunks[-1]["id"] = chunks[0]["id"]
    source.write_bytes(write(header, chunks))
    before = target.active_build
    assert before is not None
    with pytest.raises(
        BackupError, match=f"repeats chunk ids: {len(chunks)} chunks, {len(chunks) - 1} distinct"
    ):
        import_store(target, source)
    assert_unchanged(target, before, len(chunks))


# -- a gzip bomb ---------------------------------------------------------------------------------------

MEASURE = """
import json, resource, sys, time
from pathlib import Path
from rag.backup import BackupError, import_store
from rag.store import KnowledgeStore

store = KnowledgeStore.persistent(Path(sys.argv[1]), "knowledge")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
try:
    import_store(store, Path(sys.argv[2]))
    error = ""
except BackupError as exc:
    error = str(exc)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
seconds = time.perf_counter() - started
sys.stdout.write(json.dumps({"grown_mb": grown / 1024, "seconds": seconds, "error": error}))
"""


def bomb(path: Path, first: bytes, filler: bytes, size: int) -> Path:
    """`first`, then one line of `size` bytes of `filler`, gzipped: a few hundred KB on disk."""
    pack = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
    block = filler * (MIB // len(filler))
    with path.open("wb") as out:
        out.write(pack.compress(first))
        for _ in range(size // len(block)):
            out.write(pack.compress(block))
        out.write(pack.compress(b"\n") + pack.flush())
    return path


@pytest.mark.parametrize(
    ("where", "message"),
    [("chunk", "chunk line .* longer than 1 MiB"), ("header", "header .* longer than 16 MiB")],
)
def test_a_gzip_bomb_is_refused_quickly_with_bounded_memory(
    where: str, message: str, valid_export: tuple[dict[str, Any], Chunks], tmp_path: Path, store_dir: Path
) -> None:
    header = json.dumps(valid_export[0]).encode() + b"\n" if where == "chunk" else b""
    source = bomb(tmp_path / "bomb.jsonl.gz", header, b"1234567890 " if where == "chunk" else b" ", 300 * MIB)
    assert source.stat().st_size < 2 * MIB  # 300 MB once inflated

    run = subprocess.run(
        [sys.executable, "-c", MEASURE, str(store_dir), str(source)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout)
    assert measured["error"] and re.search(message, measured["error"]), measured
    assert measured["grown_mb"] < 50 and measured["seconds"] < 10, measured
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    assert store.active_build is not None and list(store.build_statuses()) == [store.active_build.name]


# -- the commands ---------------------------------------------------------------------------------------


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
    assert list(after.build_statuses()) == [before.name]  # no half-imported build left behind


# The command prints what the import raises: a few kinds of damage show it end to end (every kind is above).
CLI_DAMAGE = [
    pytest.param(whole(valid_gzip_header_then_garbage), READABLE, id="corrupt-deflate"),
    pytest.param(shorter_vectors(slice(None)), "383 dimensions, not 384", id="dimension-of-another-model"),
    pytest.param(metadata_with(**{"chroma:document": "x"}), REFUSED, id="chroma-refuses"),
]


@pytest.mark.parametrize(("damage", "message"), CLI_DAMAGE)
def test_the_import_command_refuses_a_damaged_file_in_one_line(
    damage: Damage, message: str, valid_export: tuple[dict[str, Any], Chunks], tmp_path: Path, store_dir: Path
) -> None:
    source = tmp_path / "damaged.jsonl.gz"
    source.write_bytes(damage(*copy.deepcopy(valid_export)))
    store = KnowledgeStore.persistent(store_dir, "knowledge")
    before, chunks = store.active_build, store.count()
    assert before is not None
    del store  # the command owns the store while it runs

    failed = rag("import", str(source), store=store_dir)

    assert failed.returncode == 2 and failed.stdout == "", failed.stderr
    assert "Traceback" not in failed.stderr
    said = [line for line in failed.stderr.splitlines() if not line.startswith("{")]  # not JSON log lines
    assert len(said) == 1 and re.search(message, said[0]), failed.stderr
    assert_unchanged(KnowledgeStore.persistent(store_dir, "knowledge"), before, chunks)


@pytest.mark.parametrize("name", ["a-directory"])
def test_the_import_command_refuses_a_path_that_is_not_a_file(
    name: str, tmp_path: Path, store_dir: Path
) -> None:
    (tmp_path / "a-directory").mkdir()
    failed = rag("import", str(tmp_path / name), store=store_dir)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert [line for line in failed.stderr.splitlines() if not line.startswith("{")] == [
        f"{tmp_path / name} is not a readable export: "
        + ("[Errno 21] Is a directory" if name == "a-directory" else "[Errno 2] No such file or directory")
        + f": '{tmp_path / name}'"
    ]


def test_an_export_of_another_model_or_a_damaged_file_is_refused(tmp_path: Path, store_dir: Path) -> None:
    backup = tmp_path / "kb.jsonl.gz"
    export_store(KnowledgeStore.persistent(store_dir, "knowledge"), backup)
    target = KnowledgeStore.persistent(tmp_path / "other", "knowledge")

    other_model = desired_parameters(rag_settings(embedding_model=str(tmp_path)))
    with pytest.raises(BackupError, match="vectors would not match"):
        import_store(target, backup, expected=other_model)

    texts = gzip.decompress(backup.read_bytes()).decode().splitlines()
    damaged = tmp_path / "damaged.jsonl.gz"
    damaged.write_bytes(gzip.compress("\n".join([*texts[:5], '{"id": "x"}', *texts[6:]]).encode()))
    with pytest.raises(BackupError, match="line 6 is damaged: no document, metadata, embedding"):
        import_store(target, damaged)
    not_ours = tmp_path / "other.gz"
    not_ours.write_bytes(gzip.compress(b'{"hello": "world"}\n'))
    with pytest.raises(BackupError, match="not a knowledge-store export"):
        import_store(target, not_ours)
    assert target.active_build is None and target.build_statuses() == {}
    shutil.rmtree(tmp_path / "other")


# -- export failures -----------------------------------------------------------------------------------


def failing_midway(store: KnowledgeStore) -> Iterator[dict[str, Any]]:
    chunks = KnowledgeStore.export_chunks(store)  # the real one: the instance's is replaced
    yield next(chunks)
    raise RuntimeError("the store went away")


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("target-is-a-directory", BackupError, "cannot write the export .* Is a directory"),
        ("folder-missing", BackupError, "cannot write the export .* No such file"),
        ("store-fails-midway", RuntimeError, "the store went away"),
        ("store-changes-midway", BackupError, "the store changed during the export"),
    ],
)
def test_a_failed_export_leaves_no_partial_file(
    case: str,
    error: type[Exception],
    message: str,
    served: KnowledgeStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "kb.jsonl.gz"
    if case == "target-is-a-directory":
        target.mkdir()
    elif case == "folder-missing":
        target = tmp_path / "missing" / "kb.jsonl.gz"
    elif case == "store-fails-midway":
        monkeypatch.setattr(served, "export_chunks", lambda: failing_midway(served))
    else:
        monkeypatch.setattr(
            served, "export_chunks", lambda: iter(list(KnowledgeStore.export_chunks(served))[1:])
        )

    with pytest.raises(error, match=message):
        export_store(served, target)

    assert not target.with_name(target.name + ".partial").exists()
    assert target.is_dir() if case == "target-is-a-directory" else not target.exists()


def test_the_export_command_says_in_one_line_why_it_failed(tmp_path: Path, store_dir: Path) -> None:
    failed = rag("export", str(tmp_path / "missing" / "kb.jsonl.gz"), store=store_dir)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    said = [line for line in failed.stderr.splitlines() if not line.startswith("{")]
    assert len(said) == 1 and said[0].startswith("cannot write the export"), failed.stderr
    assert not (tmp_path / "missing").exists()
