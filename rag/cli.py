"""`python -m rag ingest|status|eval|export|import`: manage the knowledge store from a shell."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from rag.backup import BackupError, export_store, import_store
from rag.embedder import Embedder, embedder_for
from rag.errors import EmbeddingError
from rag.ingestion import compare, desired_manifest, desired_parameters, ensure_ingested
from rag.logs import LoggingSettings, configure_logging
from rag.retriever import RetrieverMode
from rag.settings import RagSettings
from rag.store import KnowledgeStore, open_store
from rag.store_lock import StoreInUse, own_embedded_store


def _progress_bar(total: int) -> Callable[[int], None]:
    from tqdm import tqdm

    bar = tqdm(total=total, unit="chunk", desc="embedding", file=sys.stderr, dynamic_ncols=True)

    def advance(n: int) -> None:
        bar.update(n)
        if bar.n >= total:
            bar.close()

    return advance


def _ingest(settings: RagSettings, force: bool) -> int:
    if not settings.chroma_host:
        own_embedded_store(settings.chroma_path)
    store = open_store(settings)
    embedder = embedder_for(settings)
    report = ensure_ingested(store, embedder, settings, progress=_progress_bar, force=force)
    sys.stdout.write(
        f"{report.status}: {report.files} files, {report.chunks} chunks "
        f"({report.embedded} embedded, {report.reused} reused; "
        f"{len(report.added)} added, {len(report.changed)} changed, {len(report.removed)} removed), "
        f"version {report.version}, {report.seconds:.2f}s\n"
    )
    return 0


def _status(settings: RagSettings, as_json: bool) -> int:
    store = open_store(settings)
    active = store.active_build
    wanted = desired_manifest(settings)
    current = active.manifest if active else None
    changes = compare(current, wanted)
    state = {
        "store": f"{settings.chroma_host}:{settings.chroma_port}"
        if settings.chroma_host
        else str(settings.chroma_path),
        "collection": active.name if active else None,
        "version": current.version if current else None,
        "chunks": store.count(),
        "files": len(current.files) if current else 0,
        "embedding_model": current.embedding_model if current else None,
        "up_to_date": current is not None and current.matches(wanted),
        "changes": {
            "added": changes.added,
            "removed": changes.removed,
            "changed": changes.changed,
            "settings_changed": current is not None and changes.rebuild,
        },
    }
    if as_json:
        sys.stdout.write(json.dumps(state, indent=2) + "\n")
    else:
        for key, value in state.items():
            sys.stdout.write(f"{key:>16}: {value}\n")
    return 0 if state["up_to_date"] else 1


def _eval(
    settings: RagSettings,
    dataset_dir: Path,
    modes: list[RetrieverMode],
    limit: int | None,
    store_dir: Path | None,
) -> int:
    from rag.evaluation import CHUNKS_PER_QUERY, document_ids, evaluate, load_beir, write_knowledge_folder
    from rag.retriever import Retriever

    dataset = load_beir(dataset_dir)
    if limit:
        kept = dict(list(dataset.queries.items())[:limit])
        dataset = type(dataset)(dataset.corpus, kept, {q: dataset.qrels[q] for q in kept})
    rows = []
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        knowledge = Path(tmp) / "knowledge"
        write_knowledge_folder(dataset, knowledge)
        # A given store folder is reused: an unchanged corpus is then not embedded again.
        store_path = store_dir or Path(tmp) / "store"
        eval_settings = settings.model_copy(update={"knowledge_dir": knowledge, "chroma_path": store_path})
        own_embedded_store(store_path)
        store = KnowledgeStore.persistent(store_path, settings.collection_prefix)
        embedder = embedder_for(settings)
        ensure_ingested(store, embedder, eval_settings, progress=_progress_bar)
        embedder.embed_query("warm-up")  # the first call pays for lazy set-up, not retrieval
        for mode in modes:
            retriever = Retriever(
                store,
                embedder,
                CHUNKS_PER_QUERY,
                mode=mode,
                lexical_dir=store_path / "lexical",
                fusion=settings.hybrid_fusion,
                alpha=settings.hybrid_alpha,
            )
            retriever.prepare()
            search = partial(retriever.retrieve, k=CHUNKS_PER_QUERY)
            rows.append((mode, evaluate(dataset, search, document_ids(dataset))))
    out = [
        f"{dataset_dir.name}: {len(dataset.corpus)} documents, {rows[0][1].queries} queries",
        "| retriever | nDCG@10 | Recall@5 | Recall@10 | MRR@10 | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, s in rows:
        out.append(
            f"| {mode} | {s.ndcg_at_10:.4f} | {s.recall_at_5:.4f} | {s.recall_at_10:.4f} | "
            f"{s.mrr_at_10:.4f} | {s.latency_p50_ms:.1f} | {s.latency_p95_ms:.1f} |"
        )
    out.append(f"nDCG@10={rows[0][1].ndcg_at_10:.4f}")  # the first mode: the configured one by default
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def _prepare_embedder(settings: RagSettings) -> int:
    """Export (and verify) the embedding model's ONNX graph now, so that no start has to."""
    embedder = Embedder(settings.embedding_model, backend="onnx", cache_dir=settings.embedding_cache_dir)
    try:
        embedder.load()
    except EmbeddingError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    sys.stdout.write(f"{settings.embedding_model}: ONNX graph ready in {settings.embedding_cache_dir}\n")
    return 0


def _export(settings: RagSettings, target: Path) -> int:
    summary = export_store(open_store(settings), target)
    sys.stdout.write(f"exported {summary.files} files, {summary.chunks} chunks, version {summary.version}\n")
    return 0


def _import(settings: RagSettings, source: Path) -> int:
    if not settings.chroma_host:
        own_embedded_store(settings.chroma_path)
    summary = import_store(open_store(settings), source, expected=desired_parameters(settings))
    sys.stdout.write(f"imported {summary.files} files, {summary.chunks} chunks, version {summary.version}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ingest = sub.add_parser("ingest", help="embed the knowledge folder into the store if it changed")
    ingest.add_argument("--force", action="store_true", help="rebuild even if the store is up to date")
    status = sub.add_parser("status", help="show what the store holds; exit 1 if it is out of date")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    evaluation = sub.add_parser(
        "eval", help="measure retrieval on a BEIR-format set (corpus, queries, qrels)"
    )
    evaluation.add_argument(
        "dataset", type=Path, help="folder with corpus.jsonl, queries.jsonl, qrels/test.tsv"
    )
    evaluation.add_argument(
        "--retriever",
        action="append",
        choices=["dense", "lexical", "hybrid"],
        help="retriever to measure (repeat to compare side by side; default: RETRIEVER)",
    )
    evaluation.add_argument("--limit", type=int, help="evaluate only the first N queries")
    evaluation.add_argument("--store", type=Path, help="reuse this store folder between runs")
    export = sub.add_parser("export", help="write the store (manifest, chunks, vectors) to a file")
    export.add_argument("file", type=Path, help="target file (gzipped JSON lines)")
    restore = sub.add_parser("import", help="load an export into the store, without embedding")
    restore.add_argument("file", type=Path, help="a file written by `export`")
    sub.add_parser(
        "prepare-embedder", help="export the embedding model to ONNX (verified) into EMBEDDING_CACHE_DIR"
    )
    args = parser.parse_args(argv)

    settings = RagSettings()
    configure_logging(LoggingSettings())
    try:
        if args.command == "ingest":
            return _ingest(settings, args.force)
        if args.command == "eval":
            return _eval(
                settings, args.dataset, args.retriever or [settings.retriever], args.limit, args.store
            )
        if args.command == "export":
            return _export(settings, args.file)
        if args.command == "import":
            return _import(settings, args.file)
        if args.command == "prepare-embedder":
            return _prepare_embedder(settings)
    except (StoreInUse, BackupError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    return _status(settings, args.json)
