"""Structure-aware chunking: sections by heading, then paragraphs packed up to a size budget."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from rag.loading import Document

# Bump whenever a change here changes the chunks: stores built by another version are rebuilt.
CHUNKER_VERSION = 2

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


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


def chunk_document(doc: Document, size: int, overlap: int) -> list[Chunk]:
    pieces: list[tuple[tuple[str, ...], str]] = []
    for headings, body in _sections(doc):
        pieces.extend((headings, text) for text in _pack(_paragraphs(body), size, overlap))
    return [
        Chunk(
            id=_chunk_id(doc.source, index, text),
            source=doc.source,
            title=doc.title,
            headings=headings,
            text=text,
            index=index,
        )
        for index, (headings, text) in enumerate(pieces)
    ]


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
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            lines.append(line)
            continue
        flush()
        level = len(match.group(1))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, match.group(2).strip()))
    flush()
    return sections


def _paragraphs(body: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]


def _pack(paragraphs: list[str], size: int, overlap: int) -> list[str]:
    """Greedily pack paragraphs (long ones as their sentences) up to `size` characters; each new chunk
    starts with the last sentences of the previous one, up to `overlap` characters."""
    units: list[tuple[str, str]] = []  # (text, what joins it to the text before)
    for paragraph in paragraphs:
        pieces = _sentences_within(paragraph, size) if len(paragraph) > size else [paragraph]
        units.extend((piece, " " if i else "\n\n") for i, piece in enumerate(pieces))

    chunks: list[str] = []
    current = ""
    for text, joiner in units:
        candidate = f"{current}{joiner}{text}" if current else text
        if current and len(candidate) > size:
            chunks.append(current)
            tail = _overlap_tail(current, overlap)
            joined = f"{tail}{joiner}{text}"
            current = joined if tail and len(joined) <= size else text
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks


def _sentences_within(text: str, size: int) -> list[str]:
    """The sentences of `text`; a sentence longer than `size` is cut on a space near the budget."""
    parts: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > size:
            cut = sentence.rfind(" ", 0, size)
            cut = cut if cut > size // 2 else size
            parts.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            parts.append(sentence)
    return parts


def _overlap_tail(text: str, overlap: int) -> str:
    """The last whole sentences of `text` that fit in `overlap` characters."""
    if overlap <= 0:
        return ""
    tail = ""
    for sentence in reversed(_SENTENCE_END.split(text)):
        candidate = f"{sentence} {tail}".strip()
        if len(candidate) > overlap:
            break
        tail = candidate
    return tail


def _chunk_id(source: str, index: int, text: str) -> str:
    digest = hashlib.sha256(f"{source}\x00{index}\x00{text}".encode()).hexdigest()
    return digest[:24]
