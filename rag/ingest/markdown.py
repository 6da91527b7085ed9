"""Markdown parser: ATX headings give sections and levels; the first H1 names the document."""

from __future__ import annotations

import re
from collections.abc import Iterator

from rag.ingest.structure import Event, assemble, blocks, title_from_filename
from rag.ingest.types import Document


def parse_markdown(text: str, source: str) -> list[Document]:
    """Documents of one markdown source (usually one; a second H1 does not start another)."""
    return assemble(markdown_events(text), text, source, title_from_filename(source))


MD_HEADING_RE = re.compile(r"^[ ]{0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")


def markdown_events(text: str) -> Iterator[Event]:
    """Events for markdown: ATX headings give levels; the first H1 names the document."""
    pos = 0
    body_start: int | None = None
    in_fence = False
    titled = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
        m = None if in_fence else MD_HEADING_RE.match(line.rstrip("\n"))
        if m:
            if body_start is not None:
                yield from _body(text, body_start, pos)
                body_start = None
            level = len(m.group(1))
            title = m.group(2).strip()
            if level == 1 and not titled:
                titled = True
                yield ("doc", title, pos)
            else:
                yield ("heading", level, title, pos)
        elif stripped and body_start is None:
            body_start = pos
        pos += len(line)
    if body_start is not None:
        yield from _body(text, body_start, pos)


def _body(text: str, s: int, e: int) -> Iterator[Event]:
    for bs, be in blocks(text, s, e):
        yield ("body", bs, be)
