"""What parsing produces: documents with sections at exact offsets, and the files they came from.

Every offset is into the document's *text as indexed*: the source file itself for plain text,
and the file rendered to plain text for formats with markup (markdown, HTML, PDF, DOCX). Each
rendered block keeps where it came from (``Origin``): its span in the source file and, for a
PDF, its page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SectionKind = Literal["text", "code", "row"]


@dataclass(frozen=True)
class Section:
    """A run of body text under one heading path; ``spans`` are offsets into the indexed text.

    ``kind`` is "code" for a code block (retrievable, never quoted as an answer sentence) and
    "row" for one table row rendered as "column header, row header: cell" lines.
    """

    path: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    kind: SectionKind = "text"
    # Where the headings that open this section start in the text, when they are in it (plain
    # text, and rendered formats, which write them): a passage that takes in a small section
    # starts there, so that section's heading stays inline.
    head: int | None = None
    # The table a row belongs to (rows of one table share it); None for text and code.
    table: int | None = None


@dataclass(frozen=True)
class Origin:
    """Where a span of the indexed text came from: offsets in the source file, and its page."""

    start: int
    end: int
    source_start: int | None = None
    source_end: int | None = None
    page: int | None = None


@dataclass
class Document:
    """One guide: its id, title, source file, full indexed text, sections and metadata."""

    id: str
    title: str
    source: str
    text: str
    start: int
    end: int
    sections: list[Section] = field(default_factory=list)
    # Front matter and the like: description, tags, keywords (never part of a passage).
    meta: dict[str, Any] = field(default_factory=dict)
    # Where each rendered block came from, in text order; empty when text is the file itself.
    origins: list[Origin] = field(default_factory=list)
    # The text profile its text was read with (rag.ingest.profiles): its sentences split by it.
    profile: str = "plain"

    @property
    def body(self) -> str:
        """The document's own slice of the indexed text."""
        return self.text[self.start : self.end]

    def origin_of(self, start: int, end: int) -> dict[str, Any]:
        """The source-file span and first page behind ``text[start:end]`` (empty if unknown)."""
        hits = [o for o in self.origins if o.start < end and start < o.end]
        if not hits:
            return {}
        out: dict[str, Any] = {}
        starts = [o.source_start for o in hits if o.source_start is not None]
        ends = [o.source_end for o in hits if o.source_end is not None]
        if starts and ends:
            out["source_start"], out["source_end"] = min(starts), max(ends)
        pages = [o.page for o in hits if o.page is not None]
        if pages:
            out["page"] = min(pages)
        return out


@dataclass
class SourceFile:
    """A corpus file that was read: its relative path, its text as indexed, and a content hash.

    ``error`` says why a file was skipped (corrupt, encrypted, empty, not text).
    """

    path: str
    text: str
    sha256: str
    error: str | None = None
