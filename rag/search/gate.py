"""The coverage gate: whether the documents answer a search's question, and the refusal that
says so when they do not (the decision itself is rag.search.coverage)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from rag.index.store import Index
from rag.search.coverage import Coverage, CoverageConfig, Vocabulary, assess
from rag.search.ranker import Ranker
from rag.search.roles import join_words
from rag.search.types import SearchResult

# What an answer says first when the corpus does not answer the question (RAG_NOT_COVERED).
NOT_COVERED = "The documents don't answer this question."
# A refusal lists this many of the corpus's titles, then how many more there are.
COVERED_TITLES = 8


def not_covered_message(coverage: Coverage, titles: Sequence[str], lead: str = NOT_COVERED) -> str:
    """The refusal: that the documents don't answer it, which words they lack, what they cover."""
    parts = [lead.strip()]
    if coverage.missing:
        parts.append(f"They don't mention {join_words(coverage.missing)}.")
    if titles:
        shown = list(dict.fromkeys(titles))
        more = len(shown) - COVERED_TITLES
        listed = "; ".join(shown[:COVERED_TITLES]) + (f"; and {more} more" if more > 0 else "")
        parts.append(f"They cover: {listed}.")
    return " ".join(parts)


class Gate:
    """Judges coverage over one index; thread-safe, its vocabulary and titles read once."""

    def __init__(
        self,
        index: Index,
        ranker: Ranker,
        config: CoverageConfig | None = None,
        not_covered: str = NOT_COVERED,
    ) -> None:
        self.index = index
        self.ranker = ranker
        self.config = config or CoverageConfig()
        self.not_covered = not_covered
        self._lock = threading.Lock()
        self._vocabulary: Vocabulary | None = None
        self._titles: list[str] | None = None

    def warm(self) -> None:
        """Read the vocabulary and the titles now, so that no query pays for them."""
        self.vocabulary()
        self.titles()

    def vocabulary(self) -> Vocabulary:
        """The corpus's words, read from the BM25 index once."""
        with self._lock:
            if self._vocabulary is None:
                self._vocabulary = Vocabulary(self.index.bm25)
            return self._vocabulary

    def titles(self) -> list[str]:
        """Every document title, in index order."""
        with self._lock:
            if self._titles is None:
                self._titles = [d.title for d in self.index.documents()]
            return self._titles

    def assess(
        self, result: SearchResult, encode: Callable[[Sequence[str]], np.ndarray] | None = None
    ) -> Coverage:
        """Whether the corpus answers the search's question; a search that measured no cosine
        (BM25 only) has it measured now, with ``encode`` (texts -> vectors) if it has no vector."""
        best = dict(result.best)
        if "dense" not in best or ("sentence" not in best and self.index.sentences is not None):
            vector = result.vector
            if vector is None:
                if encode is None:
                    raise ValueError("a search without a query vector needs an encoder")
                vector = encode([result.query])[0]
            if "dense" not in best:
                top = self.ranker.dense(vector, 1, None)
                best["dense"] = top[0][1] if top else 0.0
            if "sentence" not in best and self.index.sentences is not None:
                top = self.ranker.sentence(vector, 1, None)
                best["sentence"] = top[0][1] if top else 0.0
        dense = best.get("dense", 0.0)
        return assess(
            result.query,
            result.hits,
            dense,
            best.get("sentence", dense),
            self.vocabulary(),
            self.config,
        )

    def refusal(self, coverage: Coverage) -> str:
        """What the answer says instead, when the documents do not answer."""
        return not_covered_message(coverage, self.titles(), self.not_covered)
