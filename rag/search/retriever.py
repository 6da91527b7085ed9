"""The retriever: one loaded index and its query embedder, with each concern in its own part.

- ``Ranker`` (rag.search.ranker): dense, sentence and BM25 rankings fused into one list;
- ``Roles`` (rag.search.roles): the role a question names, and what that changes;
- ``Gate`` (rag.search.gate): whether the documents answer at all, and the refusal;
- ``build_answer`` (rag.search.answer): the extractive answer from the top passages.

Front-ends go through the query pipeline (rag.search.qa), which checks, resolves and logs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.errors import BadQuery, IndexIncompatible
from rag.index.load import load_index
from rag.index.store import Index
from rag.models.embedder import Embedder
from rag.models.query import load_query_embedder
from rag.search.answer import Answer, AnswerConfig, build_answer
from rag.search.coverage import Coverage, CoverageConfig, Vocabulary
from rag.search.fusion import FusionConfig
from rag.search.gate import COVERED_TITLES, NOT_COVERED, Gate, not_covered_message
from rag.search.names import NameIndex
from rag.search.question import Limits, check_k, check_text
from rag.search.ranker import Ranker
from rag.search.roles import Roles, other_guide_third
from rag.search.types import MODES, Filters, Hit, Mode, SearchResult

__all__ = ["COVERED_TITLES", "NOT_COVERED", "Retriever", "not_covered_message"]


class Retriever:
    """Searches one loaded index with one embedder; safe to share across threads."""

    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        *,
        fusion: FusionConfig | None = None,
        ranker: Ranker | None = None,
        answers: AnswerConfig | None = None,
        coverage: CoverageConfig | None = None,
        not_covered: str = NOT_COVERED,
        max_k: int = Limits.max_k,
        max_query_chars: int = Limits.max_query_chars,
    ) -> None:
        if embedder.dim != index.manifest.dim:
            raise IndexIncompatible(
                f"embedder dimension {embedder.dim} does not match the index ({index.manifest.dim})"
            )
        if ranker is not None and fusion is not None:
            raise ValueError("give the fusion to the ranker, not beside it")
        if ranker is not None and ranker.index.size != index.size:
            raise ValueError("the ranker ranks another index's rows")
        if embedder.model_id != index.manifest.query_model:
            # Same dimension, other weights: every score would be quietly wrong.
            raise IndexIncompatible(
                f"the index is queried with {index.manifest.query_model}, not "
                f"{embedder.model_id}: open it with Retriever.from_index"
            )
        self.index = index
        self.embedder = embedder
        self.answers = answers or AnswerConfig()
        # For ``search`` called directly; the query pipeline checks with the server's settings.
        self.limits = Limits(max_k=max_k, max_query_chars=max_query_chars)
        # A ranker given ranks with another fusion, another ranking or other vectors of the same
        # rows: how benchmarks/ablations measures a variant through the code that serves queries.
        self.ranker = ranker or Ranker(index, fusion)
        self.roles = Roles(index)
        self.names = NameIndex(index)
        self.gate = Gate(index, self.ranker, coverage, not_covered)
        # A document's rows, read from SQLite once: the index never changes under a Retriever.
        self._doc_rows: dict[str, np.ndarray] = {}

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Retriever:
        """Load the configured index and its query embedder (ONNX when the index has one)."""
        settings = settings or Settings()
        return cls.from_index(load_index(Path(settings.index_dir), settings.model), settings)

    @classmethod
    def from_index(cls, index: Index, settings: Settings | None = None) -> Retriever:
        """A retriever over a loaded index, encoding queries with the model the index needs:
        its corpus-adapted one when it has one, through ONNX when it has an export."""
        settings = settings or Settings(model=index.manifest.model)
        return cls(
            index,
            load_query_embedder(settings, index),
            not_covered=settings.not_covered,
            max_k=settings.max_k,
            max_query_chars=settings.max_query_chars,
        )

    @property
    def fusion(self) -> FusionConfig:
        """How the hybrid mode fuses its rankings."""
        return self.ranker.fusion

    @fusion.setter
    def fusion(self, config: FusionConfig) -> None:
        self.ranker.fusion = config

    # ------------------------------------------------------------------ search

    def encode(self, queries: Sequence[str]) -> np.ndarray:
        """Query vectors; the server batches concurrent queries through this."""
        return self.embedder.embed(list(queries))

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        doc_id: str | None = None,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
    ) -> SearchResult:
        """Top-k passages for a query; raises BadQuery for a blank or overlong query or a k out
        of range."""
        t0 = time.perf_counter()
        q = check_text(query, self.limits)
        k = check_k(k, self.limits)
        vector = self.encode([q])[0] if mode != "bm25" else None
        t1 = time.perf_counter()
        result = self.search_vector(q, vector, k, doc_id=doc_id, mode=mode, filters=filters)
        result.timings["encode_ms"] = (t1 - t0) * 1000
        result.took_ms = (time.perf_counter() - t0) * 1000
        return result

    def search_vector(
        self,
        query: str,
        vector: np.ndarray | None,
        k: int = 5,
        *,
        doc_id: str | None = None,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
    ) -> SearchResult:
        """Top-k passages given an already-encoded query (None for BM25 only)."""
        t0 = time.perf_counter()
        if mode not in MODES:
            raise BadQuery(f"mode must be one of {', '.join(MODES)}", field="mode")
        rows = self.filtered_rows(filters or Filters(), doc_id)
        if rows is not None and rows.size == 0:
            return SearchResult(query, [], (time.perf_counter() - t0) * 1000, mode, {}, vector)
        rankings, bm25 = self.ranker.rankings(query, vector, self.ranker.candidates(k), mode, rows)
        named = under = None
        if mode == "hybrid" and rows is None:
            named = self.named_document(query)
            under = self.named_headings(query)
        prior = self.rows_for_doc(named) if named else None
        fused = self.ranker.fuse(rankings, mode, prior, bm25, named=under)
        if named and prior is not None and self.absent_aspect(query, named):
            # The named guide lacks what is asked: the best passage of the other guides, which
            # may have it ("skills" of ML engineers in general), is moved up to third place.
            fused = other_guide_third(fused, prior)
        hits = self.ranker.materialise(fused, k)
        best = {name: rankings[name][0][1] for name in ("dense", "sentence") if rankings.get(name)}
        took = (time.perf_counter() - t0) * 1000
        return SearchResult(query, hits, took, mode, {"search_ms": took}, vector, best)

    def filtered_rows(self, filters: Filters, doc_id: str | None = None) -> np.ndarray | None:
        """The rows a search may return (None: all; empty when the filters match nothing);
        raises BadQuery for an unknown document id."""
        if doc_id is not None:
            filters = Filters((*filters.doc_ids, doc_id), filters.tags, filters.source_prefix)
        if not filters:
            return None
        for one in filters.doc_ids:
            if self.rows_for_doc(one).size == 0:
                raise BadQuery(f"unknown document {one!r}", field="doc_id")
        if len(filters.doc_ids) == 1 and not filters.tags and not filters.source_prefix:
            return self.rows_for_doc(filters.doc_ids[0])
        return self.index.rows_where(filters.doc_ids, filters.tags, filters.source_prefix)

    def rows_for_doc(self, doc_id: str) -> np.ndarray:
        """Index rows of one document's chunks (empty for an unknown id), cached."""
        rows = self._doc_rows.get(doc_id)
        if rows is None:
            rows = self.index.rows_for_doc(doc_id)
            if rows.size:  # only real documents, so requests cannot grow the cache
                rows.setflags(write=False)
                self._doc_rows[doc_id] = rows
        return rows

    # ------------------------------------------------------------------ roles and coverage

    def named_document(self, query: str) -> str | None:
        """The id of the one document whose role the query names, if it names exactly one."""
        return self.roles.named_document(query)

    def named_headings(self, query: str) -> np.ndarray | None:
        """The rows under the titles and headings the query names (rag.search.names)."""
        return self.names.get().rows(query)

    def absent_aspect(self, query: str, named: str | None = None) -> tuple[str, list[str]] | None:
        """(title, words) when the question names one document and asks about words that
        document never uses but others do."""
        return self.roles.absent_aspect(query, self.vocabulary(), named)

    def vocabulary(self) -> Vocabulary:
        """The corpus's words."""
        return self.gate.vocabulary()

    def titles(self) -> list[str]:
        """Every document title, in index order."""
        return self.gate.titles()

    def coverage(self, result: SearchResult) -> Coverage:
        """Whether the corpus answers the search's question (rag.search.coverage)."""
        return self.gate.assess(result, self.encode)

    def warm(self) -> None:
        """Build what queries read from the whole index (the title matcher, the vocabulary), so
        that no query pays for it; safe to call again."""
        self.roles.warm()
        self.names.get()
        self.gate.warm()

    # ------------------------------------------------------------------ answers

    def answer(self, result: SearchResult) -> Answer:
        """The extractive answer to a search, reusing its query vector and stored sentences;
        or, when the corpus does not answer the question, a message that says so."""
        coverage = self.coverage(result)
        if not coverage.answered:
            return Answer(
                self.gate.refusal(coverage), [], answered=False, coverage=coverage.as_dict()
            )
        note = self.roles.unmentioned_note(result.query, self.vocabulary())
        if note is None:
            answer = self._build_answer(result, result.hits, self.answers)
        else:
            # Half from the guide named (what it does say), half from the others (what it lacks).
            named = self.named_document(result.query)
            half = dataclasses.replace(
                self.answers, max_sentences=max(1, self.answers.max_sentences // 2),
                min_sentences=1,
            )  # fmt: skip
            own = [h for h in result.hits if h.chunk.doc_id == named]
            other = [h for h in result.hits if h.chunk.doc_id != named]
            parts = [self._build_answer(result, hits, half) for hits in (own, other) if hits]
            sentences = [s for part in parts for s in part.sentences]
            answer = Answer(" ".join(f"{s.text} [{s.ref}]" for s in sentences), sentences)
        answer.coverage = coverage.as_dict()
        answer.note = note
        return answer

    def _build_answer(
        self, result: SearchResult, hits: Sequence[Hit], config: AnswerConfig
    ) -> Answer:
        return build_answer(
            result.query, hits, self.embedder, query_vector=result.vector, index=self.index,
            config=config,
        )  # fmt: skip
