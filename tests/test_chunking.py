"""Structure-aware chunking and loading."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from rag.chunking import chunk_document
from rag.embedder import resolve_model_path
from rag.loading import Document, load, scan
from rag.tokens import ModelTokens, WordTokens, tokens_for

TOKENS = tokens_for(resolve_model_path("all-MiniLM-L6-v2"))

MARKDOWN = """# Pricing

Intro paragraph about prices.

## Plans

### Starter

The Starter plan costs £10. It is for small shops.

### Growth

The Growth plan costs £20.

```python
# not a heading
print("code")
```

## Payment terms

We take a 40% deposit.
"""


def doc(text: str, markdown: bool = True) -> Document:
    return Document(source="pricing.md", title="Pricing", text=text, is_markdown=markdown)


def test_sections_keep_their_heading_path() -> None:
    chunks = chunk_document(doc(MARKDOWN), size=200, overlap=30, tokens=TOKENS)
    paths = [c.heading_path for c in chunks]
    assert paths == ["", "Plans > Starter", "Plans > Growth", "Payment terms"]
    assert "# not a heading" in chunks[2].text  # a fenced comment is not a heading
    assert chunks[1].embedding_text().startswith("Pricing > Plans > Starter\n\n")
    assert all(c.title == "Pricing" and c.source == "pricing.md" for c in chunks)


def test_chunks_respect_the_token_budget_and_overlap() -> None:
    sentences = " ".join(f"Sentence number {n} says something useful." for n in range(120))
    chunks = chunk_document(doc(f"# T\n\n{sentences}"), size=60, overlap=20, tokens=TOKENS)
    assert len(chunks) > 5
    counts = TOKENS.count([c.text for c in chunks])
    assert all(n <= 60 for n in counts)
    assert sum(counts) > 0.9 * TOKENS.count([sentences])[0]  # packed, not one sentence per chunk
    for earlier, later in pairwise(chunks):
        tail = earlier.text.rsplit(". ", 2)[-2:]  # about 20 tokens: the last two sentences
        assert later.text.startswith(". ".join(tail)), "the next chunk repeats the tail"


def test_the_heading_path_and_the_text_fit_the_model_window_together() -> None:
    assert TOKENS.window == 256
    headings = "".join(f"{'#' * level} A rather long heading at level {level}\n\n" for level in range(2, 7))
    body = " ".join(f"Fact {n} about the warranty terms of our products." for n in range(200))
    chunks = chunk_document(doc(f"# Pricing\n\n{headings}{body}"), size=400, overlap=0, tokens=TOKENS)
    embedded = TOKENS.count([c.embedding_text() for c in chunks])
    assert max(embedded) <= 256 - 2  # [CLS] and [SEP]: nothing is cut off before the model sees it
    assert max(embedded) > 200  # and the room left is used


def test_a_sentence_longer_than_the_budget_is_cut_between_words() -> None:
    words = " ".join(f"word{n}" for n in range(400))  # no sentence end at all
    chunks = chunk_document(doc(words, markdown=False), size=50, overlap=0, tokens=TOKENS)
    assert all(n <= 50 for n in TOKENS.count([c.text for c in chunks]))
    assert " ".join(c.text for c in chunks).split() == words.split()  # nothing lost, no word split


def test_a_model_without_tokenizer_file_falls_back_to_a_word_estimate(tmp_path: Path) -> None:
    assert isinstance(TOKENS, ModelTokens)
    tokens = tokens_for(tmp_path)
    assert isinstance(tokens, WordTokens) and tokens.window is None
    text = " ".join(f"Sentence number {n} says something useful." for n in range(50))
    chunks = chunk_document(doc(text, markdown=False), size=40, overlap=0, tokens=tokens)
    assert len(chunks) > 5 and all(n <= 40 for n in tokens.count([c.text for c in chunks]))


def test_chunk_ids_are_deterministic_unique_and_follow_the_text() -> None:
    first = chunk_document(doc(MARKDOWN), size=40, overlap=10, tokens=TOKENS)
    second = chunk_document(doc(MARKDOWN), size=40, overlap=10, tokens=TOKENS)
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first)
    changed = chunk_document(doc(MARKDOWN.replace("£20", "£25")), size=40, overlap=10, tokens=TOKENS)
    # Only the edited section's chunk gets a new id: the others keep theirs (and their stored vectors).
    assert len({c.id for c in first} - {c.id for c in changed}) == 1
    repeated = chunk_document(doc("# T\n\n## A\n\nSame.\n\n## A\n\nSame."), size=40, overlap=0, tokens=TOKENS)
    assert len({c.id for c in repeated}) == 2


def test_plain_text_is_one_section() -> None:
    chunks = chunk_document(
        doc("# not markdown here\n\nJust text.", markdown=False), size=200, overlap=0, tokens=TOKENS
    )
    assert [(c.heading_path, c.text) for c in chunks] == [("", "# not markdown here\n\nJust text.")]


def test_scan_skips_unsupported_and_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Alpha\n\nText.")
    (tmp_path / "notes.txt").write_text("plain notes")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / ".draft.md").write_text("# hidden")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.markdown").write_text("Beta without a title")

    found = scan(tmp_path)
    assert [f.relative for f in found] == ["a.md", "notes.txt", "sub/b.markdown"]
    assert [load(f).title for f in found] == ["Alpha", "Notes", "B"]
    assert len({f.sha256 for f in found}) == 3


def test_scan_of_a_missing_folder_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="knowledge folder not found"):
        scan(tmp_path / "missing")
