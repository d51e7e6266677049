"""Structure-aware chunking and loading."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from rag.chunking import chunk_document
from rag.loading import Document, load, scan

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
    chunks = chunk_document(doc(MARKDOWN), size=800, overlap=100)
    paths = [c.heading_path for c in chunks]
    assert paths == ["", "Plans > Starter", "Plans > Growth", "Payment terms"]
    assert "# not a heading" in chunks[2].text  # a fenced comment is not a heading
    assert chunks[1].embedding_text().startswith("Pricing > Plans > Starter\n\n")
    assert all(c.title == "Pricing" and c.source == "pricing.md" for c in chunks)


def test_chunks_respect_the_size_budget_and_overlap() -> None:
    sentences = " ".join(f"Sentence number {n} says something useful." for n in range(120))
    chunks = chunk_document(doc(f"# T\n\n{sentences}"), size=300, overlap=80)
    assert len(chunks) > 5
    assert all(len(c.text) <= 300 for c in chunks)
    for earlier, later in pairwise(chunks):
        last_sentence = earlier.text.rsplit(". ", 1)[-1]
        assert later.text.startswith(last_sentence.split(" says")[0]), "the next chunk repeats the tail"


def test_chunk_ids_are_deterministic_and_unique() -> None:
    first = chunk_document(doc(MARKDOWN), size=200, overlap=40)
    second = chunk_document(doc(MARKDOWN), size=200, overlap=40)
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first)
    changed = chunk_document(doc(MARKDOWN.replace("£20", "£25")), size=200, overlap=40)
    assert {c.id for c in changed} != {c.id for c in first}


def test_plain_text_is_one_section() -> None:
    chunks = chunk_document(doc("# not markdown here\n\nJust text.", markdown=False), size=800, overlap=0)
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
