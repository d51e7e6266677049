"""`python -m agent eval QA.jsonl [--knowledge DIR] [--chain TIERS]...`: answer quality, measured.

The knowledge folder is ingested into a temporary store by the service's own ingestion, and every question is
asked through the agent the service builds (small talk, retrieval, relevance floor, generator chain, the
checks on answers), once per `--chain` (default: `LLM_CHAIN`). Settings come from the environment as the
service reads them, so a tier is configured here exactly as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from agent.evaluation import QAItem, QASetError, ask_all, load_qa, record_json, report
from agent.factory import build_agent
from agent.settings import AgentSettings
from rag.embedder import embedder_for
from rag.ingestion import ensure_ingested
from rag.retriever import Retriever
from rag.settings import RagSettings
from rag.store import open_store


def add_parser(sub: Any) -> None:
    command = sub.add_parser("eval", help="measure answer quality on a QA set", description=__doc__)
    command.add_argument("qa", type=Path, help="QA set: JSON lines with q, facts, scope (in|out), session?")
    command.add_argument(
        "--knowledge", type=Path, default=None, help="knowledge folder (default: KNOWLEDGE_DIR)"
    )
    command.add_argument(
        "--chain",
        action="append",
        default=[],
        metavar="TIERS",
        help="a generator chain to measure, e.g. extractive or local,extractive; repeatable "
        "(default: LLM_CHAIN)",
    )
    command.add_argument("--quiet", action="store_true", help="figures only, no per-question failures")
    command.add_argument(
        "--answers",
        type=Path,
        default=None,
        metavar="FILE",
        help="write every answer with its verdict to FILE as JSON lines (one chain: FILE; several: "
        "FILE with the chain before its suffix)",
    )
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        items = load_qa(args.qa)
    except (OSError, QASetError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    base = AgentSettings()
    chains = [[t.strip() for t in chain.split(",") if t.strip()] for chain in args.chain] or [base.llm_chain]
    configurations = [base.model_copy(update={"llm_chain": chain}) for chain in chains]
    with tempfile.TemporaryDirectory(prefix="kb-answer-eval-") as folder:
        knowledge = args.knowledge or RagSettings().knowledge_dir
        if not knowledge.is_dir():
            sys.stderr.write(f"error: knowledge folder not found: {knowledge}\n")
            return 2
        # Embedded and private: measuring must never touch the store a running service uses.
        rag = RagSettings(knowledge_dir=knowledge, chroma_path=Path(folder), chroma_host=None)
        store = open_store(rag)
        embedder = embedder_for(rag)
        ensure_ingested(store, embedder, rag)
        retriever = Retriever.of(store, embedder, rag)
        retriever.prepare()
        try:
            for settings in configurations:
                answers = _answers_path(args.answers, settings.llm_chain, several=len(configurations) > 1)
                measured = _measure(settings, retriever, items, quiet=args.quiet, answers=answers)
                for line in asyncio.run(measured):
                    sys.stdout.write(line + "\n")
                sys.stdout.flush()
        finally:
            store.close()
    return 0


def _answers_path(path: Path | None, chain: list[str], *, several: bool) -> Path | None:
    if path is None or not several:
        return path
    return path.with_name(f"{path.stem}.{'-'.join(chain)}{path.suffix}")


async def _measure(
    settings: AgentSettings,
    retriever: Retriever,
    items: list[QAItem],
    *,
    quiet: bool,
    answers: Path | None = None,
) -> list[str]:
    agent = build_agent(settings, retriever)
    await asyncio.to_thread(agent.prepare)  # as the service does at start: not part of a question's time
    try:
        fixed = (settings.contact_hint, settings.no_answer_text, settings.assistant_intro)
        records = await ask_all(agent, items, no_answer=settings.no_answer_text, fixed=fixed)
    finally:
        await agent.aclose()
    if answers is not None:
        text = "".join(json.dumps(record_json(r)) + "\n" for r in records)
        await asyncio.to_thread(answers.write_text, text, encoding="utf-8")
    return report(records, ",".join(settings.llm_chain), failures=not quiet)
