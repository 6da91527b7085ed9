"""Blocks: what the parsers of marked-up formats emit, rendered into one plain-text document.

Markdown, HTML, PDF and DOCX parsers each reduce their format to a list of blocks (a heading, a
paragraph, a list, a code block, a table row: rag.ingest.tables). ``render`` joins their texts into the document's
indexed text, markup-free, and builds the sections from the headings, so every passage is an
exact span of that text and every block remembers where in the source file (and on which page)
it came from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rag.ingest.ids import slugify
from rag.ingest.types import Document, Origin, Section

BlockKind = Literal["heading", "text", "code", "row"]

_SPACE_RE = re.compile(r"[ \t\r\f\v]+")


@dataclass(frozen=True)
class Block:
    """One unit of a document: its clean text, and where it came from.

    A heading has a ``level`` (1 is the top); a row's ``path`` is the table's headings below the
    current section (a group row's label, then the row's own header).
    """

    kind: BlockKind
    text: str
    level: int = 0
    path: tuple[str, ...] = ()
    source_start: int | None = None
    source_end: int | None = None
    page: int | None = None
    # The rows of one table share a number (rag.ingest.tables), so passages can tell tables apart.
    table: int | None = None


def clean_line(text: str) -> str:
    """Collapse runs of spaces and tabs and trim; newlines are kept."""
    return "\n".join(_SPACE_RE.sub(" ", line).strip() for line in text.split("\n")).strip()


def render(
    blocks: Sequence[Block], source: str, title: str, meta: dict[str, Any] | None = None
) -> Document | None:
    """One document from its blocks; None when no block has body text.

    ``title`` names the document (front matter, a title style, else the first H1 or the file
    name): a level-1 heading equal to it is not repeated as a section. Other headings are
    written into the text on lines of their own, as a reader sees them, and each section
    remembers where the headings written just before it start (``Section.head``); a section's
    spans hold only its body.
    """
    parts: list[str] = []
    pos = 0
    origins: list[Origin] = []
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    pending: list[tuple[int, int]] = []
    head: int | None = None

    def add(block: Block, text: str) -> tuple[int, int]:
        nonlocal pos
        if parts:
            parts.append("\n\n")
            pos += 2
        start = pos
        parts.append(text)
        pos += len(text)
        origins.append(Origin(start, pos, block.source_start, block.source_end, block.page))
        return start, pos

    def path() -> tuple[str, ...]:
        return (title, *(t for _, t in stack))

    def section(*args: Any, **kwargs: Any) -> None:
        nonlocal head
        sections.append(Section(*args, **kwargs, head=head))
        head = None

    def flush() -> None:
        if pending:
            section(path(), tuple(pending))
            pending.clear()

    for block in blocks:
        text = block.text.strip()
        if not text:
            continue
        if block.kind == "heading":
            flush()
            if block.level == 1 and text == title and not stack:
                continue
            while stack and stack[-1][0] >= block.level:
                stack.pop()
            stack.append((block.level, text))
            start, _ = add(block, text.replace("\n", " "))
            head = start if head is None else head
            continue
        span = add(block, text)
        if block.kind == "text":
            pending.append(span)
            continue
        flush()
        if block.kind == "code":
            section(path(), (span,), "code")
        else:
            section((*path(), *(p for p in block.path if p)), (span,), "row", table=block.table)
    flush()
    if not sections:
        return None
    text = "".join(parts)
    return Document(
        slugify(title), title, source, text, 0, len(text), sections, dict(meta or {}), origins
    )
