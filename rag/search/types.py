"""What a search returns: ranked hits with the evidence behind each rank."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from rag.ingest.chunking import Chunk

Mode = Literal["hybrid", "dense", "sentence", "bm25"]


MODES: tuple[str, ...] = ("hybrid", "dense", "sentence", "bm25")


@dataclass
class Hit:
    """One ranked passage with the evidence behind its rank."""

    rank: int
    score: float
    chunk: Chunk
    dense_rank: int | None = None
    bm25_rank: int | None = None
    dense_score: float | None = None
    bm25_score: float | None = None
    sentence_rank: int | None = None
    sentence_score: float | None = None
    row: int | None = None


@dataclass
class SearchResult:
    """A query, its ranked hits and how long retrieval took."""

    query: str
    hits: list[Hit]
    took_ms: float
    mode: str = "hybrid"
    timings: dict[str, float] = field(default_factory=dict)
    vector: np.ndarray | None = None
