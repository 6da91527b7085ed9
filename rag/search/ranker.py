"""Ranking: passage vectors, sentence vectors and BM25 over one index, fused into one list.

A benchmark ranks with another fusion or weighting (a ``FusionConfig``), or with a subclass
that lists another ranking, overrides ``fuse`` or ranks other vectors, handed to the
``Retriever`` as its ``ranker``: its variants then run through the code that serves queries.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rag.index.ann import filtered_search_params
from rag.index.lexical import query_tokens
from rag.index.store import Index
from rag.ingest.chunking import Chunk
from rag.search.fusion import FusionConfig, fuse
from rag.search.types import Hit

# One ranking: (row, score) pairs, best first.
Ranking = list[tuple[int, float]]

# Consecutive passages of a long section share an item or a sentence for context; they are
# different passages all the same. Only one mostly inside the other repeats it.
DUPLICATE_OVERLAP = 0.5


class Ranker:
    """Ranks the passages of one index three ways and fuses the rankings; thread-safe."""

    def __init__(self, index: Index, fusion: FusionConfig | None = None) -> None:
        self.index = index
        self.fusion = fusion or FusionConfig()

    def candidates(self, k: int) -> int:
        """How many candidates each ranking lists for a top ``k``."""
        return min(self.index.size, max(self.fusion.candidates, 4 * k))

    def rankings(
        self, query: str, vector: np.ndarray | None, n: int, mode: str, rows: np.ndarray | None
    ) -> tuple[dict[str, Ranking], np.ndarray | None]:
        """The rankings ``mode`` fuses, each ``n`` long, over ``rows`` (None: all), and the BM25
        score of every row (None when BM25 is not used or no term of the query is indexed)."""
        if mode != "bm25" and vector is None:
            raise ValueError("dense search needs a query vector")
        out: dict[str, Ranking] = {}
        if mode in ("hybrid", "dense"):
            out["dense"] = self.dense(vector, n, rows)
        if mode in ("hybrid", "sentence") and self.index.sentences is not None:
            out["sentence"] = self.sentence(vector, n, rows)
        bm25 = None
        if mode in ("hybrid", "bm25"):
            bm25 = self.bm25_scores(query, rows)
            out["bm25"] = self.bm25_top(bm25, n)
        return out, bm25

    def fuse(
        self,
        rankings: dict[str, Ranking],
        mode: str,
        prior: np.ndarray | None = None,
        bm25: np.ndarray | None = None,
        *,
        named: np.ndarray | None = None,
    ) -> list[dict[str, Any]]:
        """The shipped fusion (rag.search.fusion) with this ranker's configuration."""
        return fuse(rankings, mode, self.fusion, prior, bm25, named=named)

    def dense(self, vector: np.ndarray, n: int, rows: np.ndarray | None) -> Ranking:
        """Passages by the cosine of their vector with the query's."""
        params = None
        if rows is not None:
            params = filtered_search_params(self.index.faiss, rows, n)
            n = min(n, int(rows.size))
        scores, ids = self.index.faiss.search(
            vector.reshape(1, -1).astype(np.float32), n, params=params
        )
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def sentence(self, vector: np.ndarray, n: int, rows: np.ndarray | None) -> Ranking:
        """Passages ranked by their best-matching sentence (max over sentence vectors)."""
        index = self.index.sentences
        owners = self.index.sentence_rows
        params = None
        n_sent = min(int(index.ntotal), n * 6)
        if rows is not None:
            # Sentence ids are stored chunk by chunk, so each wanted chunk is one sorted run.
            lo = np.searchsorted(owners, rows, side="left")
            hi = np.searchsorted(owners, rows, side="right")
            ids = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)])
            params = filtered_search_params(index, ids, n_sent)
            n_sent = min(n_sent, int(ids.size))
        scores, ids = index.search(vector.reshape(1, -1).astype(np.float32), n_sent, params=params)
        best: dict[int, float] = {}
        for i, score in zip(ids[0], scores[0], strict=True):
            if i < 0:
                continue
            row = int(owners[i])
            if row not in best:  # results come best first, so the first is the max
                best[row] = float(score)
        return list(best.items())[:n]

    def bm25_scores(self, query: str, rows: np.ndarray | None) -> np.ndarray | None:
        """BM25 score of every chunk (0 outside ``rows``); None when no query term is indexable."""
        tokens = query_tokens(query)
        if not tokens:
            return None
        mask = None
        if rows is not None:
            mask = np.zeros(self.index.size, dtype=np.float32)
            mask[rows] = 1.0
        return np.asarray(self.index.bm25.get_scores(tokens, weight_mask=mask))

    @staticmethod
    def bm25_top(scores: np.ndarray | None, n: int) -> Ranking:
        """The ``n`` best rows by BM25, ties in row order, none that no term matched."""
        if scores is None:
            return []
        n = min(n, scores.size)
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def materialise(self, fused: list[dict[str, Any]], k: int) -> list[Hit]:
        """The first ``k`` fused rows as hits, passages that repeat a better one dropped."""
        # Fetch a few more than k: overlapping passages are dropped below.
        pool = fused[: k * 3]
        chunks = self.index.chunks([e["row"] for e in pool])
        hits: list[Hit] = []
        for entry, chunk in zip(pool, chunks, strict=True):
            if any(duplicate(chunk, h.chunk) for h in hits):
                continue
            hits.append(
                Hit(
                    rank=len(hits) + 1,
                    score=float(entry["score"]),
                    chunk=chunk,
                    dense_rank=entry.get("dense_rank"),
                    bm25_rank=entry.get("bm25_rank"),
                    dense_score=entry.get("dense_score"),
                    bm25_score=entry.get("bm25_score"),
                    sentence_rank=entry.get("sentence_rank"),
                    sentence_score=entry.get("sentence_score"),
                    row=int(entry["row"]),
                )
            )
            if len(hits) == k:
                break
        return hits


def duplicate(a: Chunk, b: Chunk) -> bool:
    """Same text, or spans of the same source file that mostly overlap."""
    if a.text == b.text:
        return True
    if a.source != b.source:
        return False
    overlap = min(a.end, b.end) - max(a.start, b.start)
    return overlap > DUPLICATE_OVERLAP * min(a.end - a.start, b.end - b.start)
