"""Structure-aware chunking: sections by heading, then paragraphs packed up to a token budget."""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left
from dataclasses import dataclass

from rag.loading import Document
from rag.markdown import heading
from rag.tokens import TokenCounter

# Bump whenever a change here changes the chunks: stores built by another version are rebuilt.
# 4: headings read by rag.markdown (a closing `#` run needs whitespace before it: `## C#` keeps its `#`);
# chunks bounded in characters as well as tokens.
CHUNKER_VERSION = 4

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SPECIAL_TOKENS = 2  # [CLS] and [SEP] take room in the window too
_MIN_BUDGET = 32  # a heading path longer than the window must still leave room for text
# A "word" the tokenizer cannot split (2 MB of one letter) is a single unknown token: chunks are bounded
# in characters too, so that no passage handed to a model or a visitor is megabytes long.
_MAX_CHARS_PER_TOKEN = 12


@dataclass(frozen=True, slots=True)
class Chunk:
    id: str
    source: str
    title: str
    headings: tuple[str, ...]
    text: str
    index: int

    @property
    def heading_path(self) -> str:
        return " > ".join(self.headings)

    def embedding_text(self) -> str:
        return indexed_text(self.title, self.heading_path, self.text)


def indexed_text(title: str, heading_path: str, text: str) -> str:
    """What gets embedded and indexed: the title and heading path give a short passage its topic."""
    headings = [h for h in heading_path.split(" > ") if h] if heading_path else []
    context = " > ".join(dict.fromkeys(part for part in (title, *headings) if part))
    return f"{context}\n\n{text}" if context else text


def chunk_document(doc: Document, size: int, overlap: int, tokens: TokenCounter) -> list[Chunk]:
    """Sections by heading, then paragraphs packed up to `size` tokens of the embedding model, each chunk
    opening with up to `overlap` tokens of whole sentences from the one before."""
    tokens = _Remembered(tokens)  # sentences are counted when split, then again as overlap
    pieces: list[tuple[tuple[str, ...], str]] = []
    for headings, body in _sections(doc):
        budget = _budget(doc.title, headings, size, tokens)
        packed = _pack(_paragraphs(body), budget, min(overlap, budget // 2), tokens)
        pieces.extend((headings, text) for text in packed)
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for index, (headings, text) in enumerate(pieces):
        embedded = indexed_text(doc.title, " > ".join(headings), text)
        occurrence = seen[embedded] = seen.get(embedded, -1) + 1
        chunks.append(
            Chunk(
                id=_chunk_id(doc.source, embedded, occurrence),
                source=doc.source,
                title=doc.title,
                headings=headings,
                text=text,
                index=index,
            )
        )
    return chunks


def _budget(title: str, headings: tuple[str, ...], size: int, tokens: TokenCounter) -> int:
    """`size`, or less where the title and heading path would otherwise push the end of a chunk past
    what the model reads: a truncated tail is invisible to dense search."""
    if tokens.window is None:
        return size
    context = tokens.count([indexed_text(title, " > ".join(headings), "")])[0]
    return max(_MIN_BUDGET, min(size, tokens.window - _SPECIAL_TOKENS - context))


def _sections(doc: Document) -> list[tuple[tuple[str, ...], str]]:
    if not doc.is_markdown:
        return [((), doc.text)]
    sections: list[tuple[tuple[str, ...], str]] = []
    stack: list[tuple[int, str]] = []
    lines: list[str] = []
    in_fence = False

    def flush() -> None:
        body = "\n".join(lines).strip()
        if body:
            # The document title (a lone level-1 heading) is kept as metadata, not as a heading level.
            sections.append((tuple(text for level, text in stack if level > 1), body))
        lines.clear()

    for line in doc.text.split("\n"):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        found = None if in_fence else heading(line)
        if found is None:
            lines.append(line)
            continue
        flush()
        level, title = found
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
    flush()
    return sections


def _paragraphs(body: str) -> list[str]:
    # Linear: a failed try from a newline means its run of whitespace holds no other newline to start from.
    return [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]


def _pack(paragraphs: list[str], budget: int, overlap: int, tokens: TokenCounter) -> list[str]:
    """Greedily pack paragraphs (long ones as their sentences) up to `budget` tokens."""
    units: list[tuple[str, str, int]] = []  # (text, what joins it to the text before, tokens)
    # Every word is at least one token: a paragraph with more words than the budget needs no count.
    short = [p for p in paragraphs if len(p.split()) <= budget]
    counted = dict(zip(short, tokens.count(short), strict=True))
    for paragraph in paragraphs:
        count = counted.get(paragraph, budget + 1)
        if count <= budget and len(paragraph) <= budget * _MAX_CHARS_PER_TOKEN:
            units.append((paragraph, "\n\n", count))
            continue
        pieces = _sentences_within(paragraph, budget, tokens)
        units.extend(
            (piece, " " if i else "\n\n", n)
            for i, (piece, n) in enumerate(zip(pieces, tokens.count(pieces), strict=True))
        )

    chunks: list[str] = []
    current, used = "", 0
    most = budget * _MAX_CHARS_PER_TOKEN
    for text, joiner, count in units:
        if current and (used + count > budget or len(current) + len(text) > most):
            chunks.append(current)
            tail, tail_tokens = _overlap_tail(current, overlap, tokens)
            if tail and tail_tokens + count <= budget and len(tail) + len(text) <= most:
                current, used = f"{tail}{joiner}{text}", tail_tokens + count
            else:
                current, used = text, count
        else:
            current, used = (f"{current}{joiner}{text}" if current else text), used + count
    if current:
        chunks.append(current)
    return chunks


def _sentences_within(text: str, budget: int, tokens: TokenCounter) -> list[str]:
    """The sentences of `text`; a sentence over the budget is cut on a space near it."""
    sentences = [s for s in _SENTENCE_END.split(text) if s.strip()]
    parts: list[str] = []
    for sentence, count in zip(sentences, tokens.count(sentences), strict=True):
        if count > budget or len(sentence) > budget * _MAX_CHARS_PER_TOKEN:
            parts.extend(_cut(sentence, budget, tokens))
        else:
            parts.append(sentence)
    return parts


def _cut(sentence: str, budget: int, tokens: TokenCounter) -> list[str]:
    """`sentence` in pieces of at most `budget` tokens, each cut on a space near its end where there is one.

    The sentence is tokenized once and cut along those offsets: re-tokenizing the rest after every cut was
    quadratic, and one long run without a full stop (a file of 2 million characters) would stall an ingest
    for hours."""
    starts = tokens.starts(sentence)
    most = budget * _MAX_CHARS_PER_TOKEN
    pieces: list[str] = []
    begin, first = 0, 0  # where the rest begins: a character offset, and its first token
    while True:
        by_tokens = starts[first + budget] if len(starts) - first > budget else len(sentence)
        cut = min(by_tokens, begin + most)
        if cut >= len(sentence):
            break
        space = sentence.rfind(" ", begin, cut)
        if space > begin + (cut - begin) // 2:
            cut = space
        pieces.append(sentence[begin:cut].strip())
        begin, first = cut, bisect_left(starts, cut, lo=first)
    rest = sentence[begin:].strip()
    return [piece for piece in (*pieces, rest) if piece]


def _overlap_tail(text: str, overlap: int, tokens: TokenCounter) -> tuple[str, int]:
    """The last whole sentences of `text` that fit in `overlap` tokens, and their token count."""
    if overlap <= 0:
        return "", 0
    sentences = _SENTENCE_END.split(text)
    kept: list[str] = []
    used = 0
    for sentence, count in zip(reversed(sentences), reversed(tokens.count(sentences)), strict=True):
        if used + count > overlap:
            break
        kept.insert(0, sentence)
        used += count
    return " ".join(kept).strip(), used


class _Remembered:
    """A token counter that counts each distinct text once."""

    def __init__(self, tokens: TokenCounter) -> None:
        self._tokens = tokens
        self._known: dict[str, int] = {}
        self.window = tokens.window

    def count(self, texts: list[str]) -> list[int]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._known))
        self._known.update(zip(missing, self._tokens.count(missing), strict=True))
        return [self._known[t] for t in texts]

    def starts(self, text: str) -> list[int]:
        return self._tokens.starts(text)


def _chunk_id(source: str, embedded: str, occurrence: int) -> str:
    """From what the chunk is, not where it sits: an edit elsewhere in the file leaves the id (and the
    vector stored under it) as it was."""
    digest = hashlib.sha256(f"{source}\x00{occurrence}\x00{embedded}".encode()).hexdigest()
    return digest[:24]
