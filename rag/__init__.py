"""career-rag: retrieval question answering over career guides, with exact citations."""

from rag.chunking import Chunk, ChunkerSettings, chunk_documents
from rag.config import Settings
from rag.documents import Document, load_corpus
from rag.errors import (
    BadQuery,
    CorpusEmpty,
    DocumentNotFound,
    IndexIncompatible,
    IndexNotFound,
    IndexStale,
    RagError,
)
from rag.index import Index, Manifest, build_index, load_index
from rag.retrieval import Hit, Retriever, SearchResult

__version__ = "0.1.0"

__all__ = [
    "BadQuery",
    "Chunk",
    "ChunkerSettings",
    "CorpusEmpty",
    "Document",
    "DocumentNotFound",
    "Hit",
    "Index",
    "IndexIncompatible",
    "IndexNotFound",
    "IndexStale",
    "Manifest",
    "RagError",
    "Retriever",
    "SearchResult",
    "Settings",
    "build_index",
    "chunk_documents",
    "load_corpus",
    "load_index",
]
