"""`python -m rag ingest|status|eval|abstention|export|import|crawl`: the knowledge store, from a shell."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import cache, partial
from pathlib import Path

from rag.backup import BackupError, export_store, import_store
from rag.embedder import Embedder, embedder_for
from rag.errors import EmbeddingError
from rag.ingestion import compare, desired_manifest, desired_parameters, ensure_ingested
from rag.logs import LoggingSettings, configure_logging
from rag.retriever import Retriever, RetrieverMode
from rag.settings import DEFAULT_FOREIGN_QUANTILE, DEFAULT_UNRELATED_RATE, RagSettings
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


def _ingested(settings: RagSettings, knowledge: Path, store_path: Path, embedder: Embedder) -> Retriever:
    """The service's retriever over `knowledge`, ingested (or brought up to date) in `store_path`."""
    from rag.retriever import Retriever

    scoped = settings.model_copy(update={"knowledge_dir": knowledge, "chroma_path": store_path})
    own_embedded_store(store_path)
    store = KnowledgeStore.persistent(store_path, settings.collection_prefix)
    ensure_ingested(store, embedder, scoped, progress=_progress_bar)
    retriever = Retriever.of(store, embedder, scoped)
    retriever.prepare()
    return retriever


def _abstention(settings: RagSettings, args: argparse.Namespace) -> int:
    """Old rule (a fixed floor) against the calibrated decision, side by side, on the BEIR set's knowledge
    and on the bundled knowledge, each asked its own questions and the other's."""
    from rag.evaluation import (
        CHUNKS_PER_QUERY,
        abstention,
        answered_ndcg,
        beir_questions,
        document_ids,
        evaluate,
        load_beir,
        load_questions,
        write_knowledge_folder,
    )
    from rag.relevance import RelevanceCheck, select

    dataset = load_beir(args.dataset)
    if args.limit:
        kept_queries = dict(list(dataset.queries.items())[: args.limit])
        dataset = type(dataset)(dataset.corpus, kept_queries, {q: dataset.qrels[q] for q in kept_queries})
    knowledge_dir: Path = args.knowledge or settings.knowledge_dir
    name = args.dataset.name
    embedder = embedder_for(settings)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rag-abstention-") as tmp:
        folder = Path(tmp) / name
        write_knowledge_folder(dataset, folder)
        beir = _ingested(settings, folder, args.store or Path(tmp) / "beir-store", embedder)
        own = _ingested(settings, knowledge_dir, Path(tmp) / "own-store", embedder)
        embedder.embed_query("warm-up")  # the first call pays for lazy set-up, not retrieval

        def rules(
            retriever: Retriever,
        ) -> tuple[Callable[[str], bool], Callable[[str], bool], RelevanceCheck]:
            check = RelevanceCheck(args.unrelated_rate, args.foreign_quantile)

            @cache
            def old(text: str) -> bool:
                return bool(select(retriever, text, floor=args.old_floor, check=None).passages)

            @cache
            def new(text: str) -> bool:
                return bool(select(retriever, text, floor=args.floor, check=check).passages)

            return old, new, check

        beir_old, beir_new, beir_check = rules(beir)
        own_old, own_new, own_check = rules(own)
        ours = knowledge_dir.name
        questions_of_beir = beir_questions(dataset, "in")
        rows += abstention(name, f"{name} test queries", questions_of_beir, beir_old, beir_new)
        qa = load_questions(args.qa) if args.qa else []
        if qa:
            rows += abstention(ours, args.qa.name, qa, own_old, own_new)
        for extra in args.questions:
            rows += abstention(ours, extra.name, load_questions(extra, "out"), own_old, own_new)
        rows += abstention(ours, f"{name} test queries", beir_questions(dataset, "out"), own_old, own_new)
        if qa:
            asked = load_questions(args.qa, "out")
            rows += abstention(name, f"{args.qa.name} (all)", asked, beir_old, beir_new)

        ids = document_ids(dataset)
        search = partial(beir.retrieve, k=CHUNKS_PER_QUERY)
        ranking = evaluate(dataset, search, ids)
        old_ndcg = answered_ndcg(dataset, search, ids, beir_old)
        new_ndcg = answered_ndcg(dataset, search, ids, beir_new)
        decision_ms = []
        for question in questions_of_beir:
            found = beir.search(question.text)
            started = time.perf_counter()
            beir_check.judge(beir, question.text, found)
            decision_ms.append((time.perf_counter() - started) * 1000)
        calibrations = [(ours, own_check.calibration(own)), (name, beir_check.calibration(beir))]
    out = [
        f"old: RELEVANCE_FLOOR={args.old_floor} alone; new: RELEVANCE_FLOOR={args.floor} and the calibrated "
        f"decision (unrelated rate {args.unrelated_rate}, foreign quantile {args.foreign_quantile}); "
        f"{settings.retriever} retrieval, "
        f"top {settings.top_k}",
    ]
    for label, calibration in calibrations:
        if calibration is not None:
            out.append(
                f"calibration {label}: unrelated questions reach {calibration.unrelated:.3f}, its own "
                f"sentences {calibration.related:.3f} ({calibration.seconds:.2f}s)"
            )
    out += [
        "| knowledge | questions | wanted | old: fixed floor | new: calibrated decision |",
        "|---|---|---|---|---|",
        *(row.cells() for row in rows),
        f"{name} nDCG@10 of the ranking (the decision leaves it as it is): {ranking.ndcg_at_10:.4f}; "
        f"counting a question without passages as an empty ranking: old {old_ndcg:.4f}, new {new_ndcg:.4f}",
        f"decision time per question ({name}): p50 {statistics.median(decision_ms):.2f} ms, "
        f"max {max(decision_ms):.2f} ms",
    ]
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


def _crawl(settings: RagSettings, urls: list[str], snapshot: Path | None) -> int:
    """Crawl the website into its snapshot folder (ingesting the snapshot is a separate step)."""
    import asyncio

    from tqdm import tqdm

    from rag.crawl.crawler import CrawlProgress, crawl
    from rag.crawl.snapshot import SnapshotInUse, site_snapshot_dir

    urls = urls or settings.knowledge_url_list
    if not urls:
        sys.stderr.write("nothing to crawl: give URLs or set KNOWLEDGE_URLS\n")
        return 2
    folder = snapshot or site_snapshot_dir(settings)
    bar = tqdm(total=len(urls), unit="url", desc="crawling", file=sys.stderr, dynamic_ncols=True)

    def advance(progress: CrawlProgress) -> None:
        # The frontier grows as pages are read: the total is what is known so far.
        bar.total = progress.done + progress.queued
        bar.update(1)

    try:
        report = asyncio.run(crawl(urls, folder, settings, progress=advance))
    except (ValueError, SnapshotInUse) as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    finally:
        bar.close()
    skipped = ", ".join(f"{reason} {count}" for reason, count in report.skipped.items()) or "none"
    lines = [
        f"{report.pages} pages in {folder} ({report.new} new, {report.changed} changed, "
        f"{report.unchanged} unchanged), {report.kept} kept, {report.removed} removed; skipped: {skipped}; "
        f"{report.requests} requests, {report.seconds:.2f}s"
    ]
    if not report.complete:
        lines.append("incomplete: a start URL or sitemap could not be read, so no page was removed")
    lines += [f"  {reason}: {url}" for url, reason in report.errors[:20]]
    if len(report.errors) > 20:
        lines.append(f"  ... {len(report.errors) - 20} more in the log")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if report.pages else 1


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
    abstaining = sub.add_parser(
        "abstention",
        help='measure when the agent says "I don\'t know": a fixed floor against the calibrated decision',
    )
    abstaining.add_argument("dataset", type=Path, help="a BEIR-format set: its queries are in scope there")
    abstaining.add_argument(
        "--knowledge", type=Path, help="a second knowledge folder (default: KNOWLEDGE_DIR)"
    )
    abstaining.add_argument(
        "--qa",
        type=Path,
        help="QA set of that knowledge (JSON lines: q, scope, session), as agent eval reads",
    )
    abstaining.add_argument(
        "--questions",
        type=Path,
        action="append",
        default=[],
        help="more out-of-scope questions for that knowledge, one a line (repeatable)",
    )
    abstaining.add_argument("--store", type=Path, help="reuse this store folder for the BEIR set")
    abstaining.add_argument("--limit", type=int, help="only the first N BEIR queries")
    abstaining.add_argument("--floor", type=float, default=0.0, help="RELEVANCE_FLOOR with the decision")
    abstaining.add_argument("--old-floor", type=float, default=0.15, help="the fixed floor compared against")
    abstaining.add_argument(
        "--unrelated-rate",
        type=float,
        default=DEFAULT_UNRELATED_RATE,
        help="RELEVANCE_UNRELATED_RATE of the decision",
    )
    abstaining.add_argument(
        "--foreign-quantile",
        type=float,
        default=DEFAULT_FOREIGN_QUANTILE,
        help="RELEVANCE_FOREIGN_QUANTILE of the decision",
    )
    export = sub.add_parser("export", help="write the store (manifest, chunks, vectors) to a file")
    export.add_argument("file", type=Path, help="target file (gzipped JSON lines)")
    restore = sub.add_parser("import", help="load an export into the store, without embedding")
    restore.add_argument("file", type=Path, help="a file written by `export`")
    sub.add_parser(
        "prepare-embedder", help="export the embedding model to ONNX (verified) into EMBEDDING_CACHE_DIR"
    )
    crawling = sub.add_parser(
        "crawl", help="crawl the website (start pages or sitemaps) into its snapshot folder"
    )
    crawling.add_argument("urls", nargs="*", help="start page or sitemap URLs (default: KNOWLEDGE_URLS)")
    crawling.add_argument("--snapshot", type=Path, help="snapshot folder (default: CHROMA_PATH/site)")
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
        if args.command == "abstention":
            return _abstention(settings, args)
        if args.command == "export":
            return _export(settings, args.file)
        if args.command == "import":
            return _import(settings, args.file)
        if args.command == "prepare-embedder":
            return _prepare_embedder(settings)
        if args.command == "crawl":
            return _crawl(settings, args.urls, args.snapshot)
    except (StoreInUse, BackupError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    return _status(settings, args.json)
