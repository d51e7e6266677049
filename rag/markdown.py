"""Markdown structure read with plain string operations: knowledge files are outside input, and a
backtracking regex over a heading line is cubic in its runs of spaces (`# a` + 4,000 spaces + `x` held the
interpreter for most of a minute)."""

from __future__ import annotations

_MAX_LEVEL = 6


def heading(line: str) -> tuple[int, str] | None:
    """(level, text) of an ATX heading line (`## Plans ##`), or None when the line is not one.

    1 to 6 `#` at the start of the line, then whitespace (`#5` and `#hashtag` are text); the closing run
    of `#` is dropped only where whitespace precedes it, as CommonMark says (`# Learn C#` keeps its `#`).
    A heading with no text is None: it names no section. Each step is one linear pass over the line."""
    level = len(line) - len(line.lstrip("#"))
    if not 1 <= level <= _MAX_LEVEL or level == len(line) or not line[level].isspace():
        return None
    text = line[level:].strip()
    content = text.rstrip("#")
    if not content:
        return None  # only a closing run: `## ##`
    if content != text and content[-1].isspace():
        text = content.rstrip()
    return level, text
