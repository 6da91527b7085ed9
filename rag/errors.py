"""Domain errors. The CLI and the API translate these at their edges; the library only raises."""

from __future__ import annotations


class RagError(Exception):
    """Base class for every error this package raises on purpose."""


class BadQuery(RagError, ValueError):
    """The query or its parameters are not acceptable (empty, too long, k out of range...)."""

    def __init__(self, message: str, field: str = "query") -> None:
        super().__init__(message)
        self.field = field


class IndexNotFound(RagError):
    """No index exists at the given directory."""


class IndexIncompatible(RagError):
    """The index was built by another model, dimension or format version."""


class IndexStale(RagError):
    """The corpus changed since the index was built."""


class CorpusEmpty(RagError):
    """The corpus folder has no readable documents."""


class DocumentNotFound(RagError, KeyError):
    """No document with that id is in the index."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else "document not found"


class BadDocument(RagError):
    """A corpus file that cannot be parsed: corrupt, encrypted, empty or not text."""
