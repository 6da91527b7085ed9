"""career-rag: retrieval question answering over career guides, with exact citations."""

from rag.config import Settings
from rag.errors import (
    BadQuery,
    CorpusEmpty,
    DocumentNotFound,
    IndexIncompatible,
    IndexNotFound,
    RagError,
)
from rag.index import Index, Manifest, build_index, load_index
from rag.ingest import Chunk, ChunkerSettings, Document, chunk_documents, load_corpus
from rag.search import (
    AnswerConfig,
    FusionConfig,
    Hit,
    Pipeline,
    Question,
    Retriever,
    SearchResult,
)

__version__ = "0.1.0"

__all__ = [
    "AnswerConfig",
    "BadQuery",
    "Chunk",
    "ChunkerSettings",
    "CorpusEmpty",
    "Document",
    "DocumentNotFound",
    "FusionConfig",
    "Hit",
    "Index",
    "IndexIncompatible",
    "IndexNotFound",
    "Manifest",
    "Pipeline",
    "Question",
    "RagError",
    "Retriever",
    "SearchResult",
    "Settings",
    "build_index",
    "chunk_documents",
    "load_corpus",
    "load_index",
]
