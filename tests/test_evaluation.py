"""The retrieval evaluation: metrics computed as BEIR does, and `python -m rag eval` end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.evaluation import load_beir, mrr_at, ndcg_at, rank_documents, recall_at
from rag.retriever import Passage
from tests.conftest import ROOT

DOCS = {
    "d1": ("Volcanoes", "Lava erupts from volcanoes when magma rises through the crust of the earth."),
    "d2": ("Baking bread", "Knead the dough, let the yeast rise, then bake the loaf in a hot oven."),
    "d3": ("Chess openings", "The Sicilian defence answers white's king pawn opening with the c-pawn."),
    "d4": ("Honey bees", "Worker bees collect nectar from flowers and turn it into honey in the hive."),
    "d5": ("Tides", "Ocean tides are caused by the gravitational pull of the moon and the sun."),
}
QUERIES = {
    "q1": ("What makes magma come out of a volcano?", {"d1": 1}),
    "q2": ("How do bees make honey?", {"d4": 2}),
    "q3": ("Why does the sea level rise and fall each day?", {"d5": 1}),
    "q4": ("unjudged query", {}),
}


def write_set(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir()
    with (folder / "corpus.jsonl").open("w") as corpus:
        for doc_id, (title, text) in DOCS.items():
            corpus.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as queries:
        for query_id, (text, _) in QUERIES.items():
            queries.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{q}\t{d}\t{r}" for q, (_, judged) in QUERIES.items() for d, r in judged.items()]
    lines.append("q3\td2\t0")  # judged not relevant: must not count
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_metrics_match_hand_computed_values() -> None:
    judged = {"a": 2, "b": 1}
    ranking = ["x", "a", "y", "b"]
    ideal = (2**2 - 1) / math.log2(2) + (2**1 - 1) / math.log2(3)
    got = (2**2 - 1) / math.log2(3) + (2**1 - 1) / math.log2(5)
    assert ndcg_at(ranking, judged, 10) == pytest.approx(got / ideal)
    assert ndcg_at(["a", "b"], judged, 10) == pytest.approx(1.0)
    assert ndcg_at(ranking, judged, 1) == 0.0
    assert recall_at(ranking, judged, 2) == 0.5 and recall_at(ranking, judged, 4) == 1.0
    assert mrr_at(ranking, judged, 10) == 0.5 and mrr_at(ranking, judged, 1) == 0.0


def test_chunks_fold_into_documents_by_best_rank() -> None:
    def hit(source: str) -> Passage:
        return Passage("id", source, "t", "", "text", 0.5)

    ids = {"0000000.md": "d1", "0000001.md": "d2"}
    assert rank_documents([hit("0000001.md"), hit("0000000.md"), hit("0000001.md")], ids) == ["d2", "d1"]


def test_loader_keeps_judged_queries_and_positive_judgements(tmp_path: Path) -> None:
    dataset = load_beir(write_set(tmp_path / "set"))
    assert set(dataset.queries) == {"q1", "q2", "q3"}  # q4 has no judgement
    assert dataset.qrels["q3"] == {"d5": 1} and dataset.qrels["q2"] == {"d4": 2}
    assert dataset.corpus["d2"] == DOCS["d2"]


def test_eval_command_measures_the_services_retrieval(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rag",
            "eval",
            str(write_set(tmp_path / "set")),
            "--retriever",
            "hybrid",
            "--retriever",
            "dense",
            "--retriever",
            "lexical",
        ],
        cwd=ROOT,
        env={**os.environ, "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "set: 5 documents, 3 queries"
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ") and "---" not in line}
    assert list(rows) == ["retriever", "hybrid", "dense", "lexical"]  # side by side, in the order asked
    figures = {
        mode: [float(v) for v in rows[mode].split("|")[2:6]] for mode in ("hybrid", "dense", "lexical")
    }
    # Five unrelated topics: dense retrieval puts each judged document first.
    assert figures["dense"] == [1.0, 1.0, 1.0, 1.0]
    assert all(0.0 <= value <= 1.0 for values in figures.values() for value in values)
    assert lines[-1] == f"nDCG@10={figures['hybrid'][0]:.4f}"  # the first retriever asked for
