"""Ranker variants: the shipped ``Ranker`` with one more list, a re-scored fusion, or another
sentence ranking. Each overrides one step and leaves the rest to the shipped code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rag.index.store import Index
from rag.search.fusion import FusionConfig
from rag.search.ranker import Ranker, Ranking

# A query's score for every row: (query text, query vector) -> one score per row.
Signal = Callable[[str, np.ndarray], np.ndarray]


def top(scores: np.ndarray, n: int, rows: np.ndarray | None = None) -> Ranking:
    """The ``n`` best rows by ``scores`` (only ``rows`` when given), ties in row order."""
    if rows is not None:
        kept = np.full(scores.shape, -np.inf)
        kept[rows] = scores[rows]
        scores, n = kept, min(n, int(rows.size))
    order = np.argsort(-scores, kind="stable")[:n]
    return [(int(i), float(scores[i])) for i in order]


class FourthRanking(Ranker):
    """The shipped rankings and one more, fused with the weight ``fusion.extra_weights`` names."""

    def __init__(self, index: Index, fusion: FusionConfig, name: str, signal: Signal) -> None:
        if name not in fusion.extra_weights:
            raise ValueError(f"the fusion has no weight for {name!r}")
        super().__init__(index, fusion)
        self.name = name
        self.signal = signal

    def rankings(
        self, query: str, vector: np.ndarray | None, n: int, mode: str, rows: np.ndarray | None
    ) -> tuple[dict[str, Ranking], np.ndarray | None]:
        """The shipped rankings, plus the signal's first ``n`` rows in hybrid mode."""
        out, bm25 = super().rankings(query, vector, n, mode, rows)
        if mode == "hybrid" and vector is not None:
            out[self.name] = top(self.signal(query, vector), n, rows)
        return out, bm25


class Rescored(Ranker):
    """The shipped fusion's list re-scored by ``rescore`` with one more list (``extra``)."""

    # The extra list reaches ``fuse`` beside the rankings, under this name, and is not fused.
    EXTRA = "rescore"

    def extra(self, query: str, vector: np.ndarray, rows: np.ndarray | None) -> Ranking | None:
        """The list ``rescore`` reads (None: it reads none)."""
        return None

    def rescore(self, fused: list[dict[str, Any]], extra: dict[int, float]) -> list[dict[str, Any]]:
        """The fused list re-scored and re-sorted."""
        raise NotImplementedError

    def rankings(
        self, query: str, vector: np.ndarray | None, n: int, mode: str, rows: np.ndarray | None
    ) -> tuple[dict[str, Ranking], np.ndarray | None]:
        """The shipped rankings, plus the extra list in hybrid mode."""
        out, bm25 = super().rankings(query, vector, n, mode, rows)
        extra = self.extra(query, vector, rows) if mode == "hybrid" and vector is not None else None
        if extra is not None:
            out[self.EXTRA] = extra
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
        """The shipped fusion of the rankings, then ``rescore`` in hybrid mode."""
        rankings = dict(rankings)
        extra = dict(rankings.pop(self.EXTRA, []))
        fused = super().fuse(rankings, mode, prior, bm25, named=named)
        return self.rescore(fused, extra) if mode == "hybrid" else fused


def by_score(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fused entries best first, ties in row order, as the shipped fusion sorts them."""
    return sorted(entries, key=lambda e: (-e["score"], e["row"]))


class HeadingBonus(Rescored):
    """Each passage's fused score plus a bonus for the query's terms in its last heading."""

    def __init__(
        self,
        index: Index,
        fusion: FusionConfig,
        terms: Callable[[str], set[str]],
        headings: list[set[str]],
        bonus: float,
    ) -> None:
        super().__init__(index, fusion)
        self.terms, self.headings, self.bonus = terms, headings, bonus

    def extra(self, query: str, vector: np.ndarray, rows: np.ndarray | None) -> Ranking:
        """Each passage's share of the query's terms in its last heading, where not 0."""
        qt = self.terms(query) or {""}
        shares = ((row, len(qt & h) / len(qt)) for row, h in enumerate(self.headings))
        return [(row, share) for row, share in shares if share > 0]

    def rescore(self, fused: list[dict[str, Any]], extra: dict[int, float]) -> list[dict[str, Any]]:
        """Every fused entry plus its bonus, and the unfused passages that have one."""
        # An unfused passage starts from 0, its score under RRF.
        table = {e["row"]: dict(e) for e in fused}
        for row, share in extra.items():
            table.setdefault(row, {"row": row, "score": 0.0})["score"] += self.bonus * share
        return by_score(list(table.values()))


class IntroCap(Rescored):
    """The ``capped`` introductions never outrank their best subsection."""

    def __init__(
        self, index: Index, fusion: FusionConfig, children: dict[int, list[int]], capped: set[int]
    ) -> None:
        super().__init__(index, fusion)
        self.children, self.capped = children, capped

    def rescore(self, fused: list[dict[str, Any]], extra: dict[int, float]) -> list[dict[str, Any]]:
        """Introductions at most just below their best subsection, shallowest first."""
        table = {e["row"]: dict(e) for e in fused}
        # A subsection the fusion did not list scores 0, its score under RRF.
        for row, kids in self.children.items():
            if row in table and row in self.capped:
                best = max(table[j]["score"] if j in table else 0.0 for j in kids)
                table[row]["score"] = min(table[row]["score"], best - 1e-9)
        return by_score(list(table.values()))


class SentenceRescore(Rescored):
    """The first ``head`` fused passages re-scored by their best sentence's cosine."""

    def __init__(self, index: Index, fusion: FusionConfig, head: int, gain: float) -> None:
        super().__init__(index, fusion)
        self.head, self.gain = head, gain

    def extra(self, query: str, vector: np.ndarray, rows: np.ndarray | None) -> Ranking:
        """Every passage's best sentence cosine: the sentence ranking, all passages long."""
        return self.sentence(vector, self.index.size, rows)

    def rescore(self, fused: list[dict[str, Any]], extra: dict[int, float]) -> list[dict[str, Any]]:
        """The head by fused score plus ``gain`` times its best sentence's gap to the best."""
        # The rest follows as fused.
        head = [dict(e) for e in fused[: self.head]]
        floor = min(extra.values(), default=0.0)
        best = [extra.get(e["row"], floor) for e in head]
        for entry, cosine in zip(head, best, strict=True):
            entry["score"] += self.gain * (cosine - max(best))
        return by_score(head) + fused[self.head :]


class LearnedRescore(Rescored):
    """The first ``head`` fused passages ordered by a learned score (``signal``: one per row)."""

    def __init__(self, index: Index, fusion: FusionConfig, head: int, signal: Signal) -> None:
        super().__init__(index, fusion)
        self.head, self.signal = head, signal

    def extra(self, query: str, vector: np.ndarray, rows: np.ndarray | None) -> Ranking:
        """The learned score of every row."""
        return list(enumerate(self.signal(query, vector).tolist()))

    def rescore(self, fused: list[dict[str, Any]], extra: dict[int, float]) -> list[dict[str, Any]]:
        """The head by learned score, the rest after it as fused."""
        head = [{**e, "score": extra[e["row"]]} for e in fused[: self.head]]
        return by_score(head) + fused[self.head :]


class SoftSentences(Ranker):
    """Passages ranked by a soft maximum over all their sentences instead of the best one."""

    def __init__(
        self,
        index: Index,
        fusion: FusionConfig,
        sentences: np.ndarray,
        owners: np.ndarray,
        temperature: float,
    ) -> None:
        super().__init__(index, fusion)
        self.sentence_vectors, self.owners, self.temperature = sentences, owners, temperature

    def sentence(self, vector: np.ndarray, n: int, rows: np.ndarray | None) -> Ranking:
        """The ``n`` passages with the highest log-sum-exp of their sentences' cosines."""
        t = self.temperature
        total = np.zeros(self.index.size)
        np.add.at(total, self.owners, np.exp(self.sentence_vectors @ vector / t))
        return top(t * np.log(np.maximum(total, 1e-300)), n, rows)
