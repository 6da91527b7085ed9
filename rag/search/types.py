"""What a search returns: ranked hits with the evidence behind each rank."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rag.ingest.chunking import Chunk
from rag.modes import MODES, Mode

__all__ = ["MODES", "Filters", "Hit", "Mode", "SearchResult"]


@dataclass(frozen=True)
class Filters:
    """Which passages a search may return, decided before ranking; empty fields allow all.

    A passage passes when its document is one of ``doc_ids``, has one of ``tags`` (front
    matter tags or keywords), and its source file's path starts with ``source_prefix``.
    """

    doc_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    source_prefix: str | None = None

    def __bool__(self) -> bool:
        return bool(self.doc_ids or self.tags or self.source_prefix)


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
    # The best passage and sentence cosines among the rows searched: evidence of coverage.
    best: dict[str, float] = field(default_factory=dict)
