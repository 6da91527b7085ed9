"""What parsing produces: documents with sections at exact offsets, and the files they came from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    """A run of body text under one heading path; ``spans`` are offsets into the source text."""

    path: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]


@dataclass
class Document:
    """One guide: its id, title, source file, full source text and sections."""

    id: str
    title: str
    source: str
    text: str
    start: int
    end: int
    sections: list[Section] = field(default_factory=list)

    @property
    def body(self) -> str:
        """The document's own slice of the source text."""
        return self.text[self.start : self.end]


@dataclass
class SourceFile:
    """A corpus file that was read: its relative path, its text as indexed, and a content hash."""

    path: str
    text: str
    sha256: str
