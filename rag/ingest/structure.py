"""Plain text's structure: the events its parser emits, folded into documents.

Plain text is indexed as it is, so its parser reduces it to events (document start, heading
with a level, body span with character offsets into the source text); the formats with markup
render blocks instead (rag.ingest.blocks). Both give documents of the same shape::

    ("doc", title, start) | ("heading", level, title, start) | ("body", start, end)

A negative heading level is a heading found inside body text (a text profile's inline
headings): it nests under the heading it appeared in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from rag.ingest.ids import slugify
from rag.ingest.types import Document, Section

BULLET_RE = re.compile(r"^\s*(?:[•●▪◦·*+\-–]\s+|\d{1,3}[.)]\s+)")

# ("doc", title, start) | ("heading", level, title, start) | ("body", start, end)
Event = tuple


def blocks(text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
    """Spans of blank-line-separated blocks, trimmed of surrounding whitespace."""
    end = len(text) if end is None else end
    for m in re.finditer(r"\S(?:.|\n(?![ \t]*\n))*", text[start:end]):
        s = start + m.start()
        e = start + m.end()
        while e > s and text[e - 1].isspace():
            e -= 1
        yield s, e


def rstrip_at(text: str, s: int, e: int) -> int:
    while e > s and text[e - 1].isspace():
        e -= 1
    return e


def lstrip_at(text: str, s: int, e: int) -> int:
    while s < e and text[s].isspace():
        s += 1
    return s


def assemble(events: Iterable[Event], text: str, source: str, fallback: str) -> list[Document]:
    """Fold events into documents whose sections carry their full heading path."""
    docs: list[Document] = []
    stack: list[tuple[int, str]] = []
    spans: list[tuple[int, int]] = []
    cur: Document | None = None
    inline_base = 0
    head: int | None = None

    def flush() -> None:
        nonlocal head
        if cur is not None and spans:
            path = (cur.title, *(t for _, t in stack))
            cur.sections.append(Section(path, tuple(spans), head=head))
            head = None
        spans.clear()

    def close(end: int) -> None:
        if cur is not None:
            cur.end = rstrip_at(text, cur.start, end)
            if cur.sections:
                docs.append(cur)

    for ev in events:
        if ev[0] == "doc":
            flush()
            head = None
            close(ev[2])
            cur = Document(slugify(ev[1]), ev[1], source, text, ev[2], len(text))
            stack.clear()
            continue
        if cur is None:
            cur = Document(slugify(fallback), fallback, source, text, 0, len(text))
        if ev[0] == "heading":
            flush()
            head = ev[3] if head is None else head
            level = ev[1]
            if level < 0:
                # Flattened inline markdown: nest under the plain-text heading it appeared in.
                depth = -level
                if not stack or stack[-1][0] < 100:
                    inline_base = stack[-1][0] if stack else 0
                level = 100 + inline_base * 10 + depth
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, ev[2]))
        else:
            spans.append((ev[1], ev[2]))
    flush()
    close(len(text))
    return docs


def title_from_filename(source: str) -> str:
    stem = Path(source).stem
    words = re.sub(r"[_\-]+", " ", stem).strip()
    return words[:1].upper() + words[1:] if words else "Untitled"
