"""Models: resolving one, the sentence-transformers and ONNX embedders, optional adaptation."""

from rag.models.embedder import (
    Embedder,
    SentenceTransformerEmbedder,
    load_embedder,
    resolve_model,
)
from rag.models.query import load_query_embedder

__all__ = [
    "Embedder",
    "SentenceTransformerEmbedder",
    "load_embedder",
    "load_query_embedder",
    "resolve_model",
]
