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


class IndexDamaged(IndexIncompatible):
    """A file of the index is missing, truncated or unreadable.

    ``str()`` is the one-line message for the CLI (it may name the index's path); ``public`` says
    the same without paths or library internals, for HTTP clients; ``detail`` keeps the
    underlying error for the log.
    """

    def __init__(self, index_dir: object, file: str, problem: str, detail: str = "") -> None:
        self.index_dir = str(index_dir)
        self.file = file
        self.problem = problem
        self.detail = detail
        super().__init__(
            f"index at {index_dir} is damaged: {file} {problem}; rebuild it with `rag index --full`"
        )

    @property
    def public(self) -> str:
        """The message without the index's path or library internals."""
        return (
            f"the index is damaged: {self.file} {self.problem}; rebuild it with `rag index --full`"
        )


class IndexBusy(RagError):
    """Another build holds the index's lock."""


class CorpusEmpty(RagError):
    """The corpus folder has no readable documents."""


class DocumentNotFound(RagError, KeyError):
    """No document with that id is in the index."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else "document not found"


class BadDocument(RagError):
    """A corpus file that cannot be parsed: corrupt, encrypted, empty or not text."""


class BadSourceConfig(RagError, ValueError):
    """A document source (rag.sources) is configured wrongly: an unknown type, a bad URL..."""


class ConfigError(RagError):
    """The config file cannot be read or says something this program cannot do."""


class CollectionNotFound(RagError):
    """No collection of that name is served."""


class ModelNotFound(RagError):
    """The OpenAI-compatible API was asked for a model (a collection) that is not served."""


class KeyNotFound(RagError):
    """No API key with that id."""
