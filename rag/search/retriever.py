"""Dense, sentence and BM25 retrieval over one index, fused into one ranking of passages."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.errors import BadQuery, IndexIncompatible
from rag.index.ann import filtered_search_params
from rag.index.lexical import query_tokens
from rag.index.store import Index, load_index
from rag.ingest.chunking import Chunk
from rag.models.embedder import Embedder
from rag.models.query import load_query_embedder
from rag.search.answer import Answer, AnswerConfig, build_answer
from rag.search.coverage import Coverage, CoverageConfig, Vocabulary, assess, content_words
from rag.search.fusion import FusionConfig, fuse
from rag.search.subjects import SubjectFinder
from rag.search.types import MODES, Filters, Hit, Mode, SearchResult

# What an answer says first when the corpus does not answer the question (RAG_NOT_COVERED).
NOT_COVERED = "The documents don't answer this question."
# A refusal lists this many of the corpus's titles, then how many more there are.
COVERED_TITLES = 8


def not_covered_message(coverage: Coverage, titles: Sequence[str], lead: str = NOT_COVERED) -> str:
    """The refusal: that the documents don't answer it, which words they lack, what they cover."""
    parts = [lead.strip()]
    if coverage.missing:
        parts.append(f"They don't mention {_join(coverage.missing)}.")
    if titles:
        shown = list(dict.fromkeys(titles))
        more = len(shown) - COVERED_TITLES
        listed = "; ".join(shown[:COVERED_TITLES]) + (f"; and {more} more" if more > 0 else "")
        parts.append(f"They cover: {listed}.")
    return " ".join(parts)


def _other_guide_third(fused: list[dict[str, Any]], own: set[int]) -> list[dict[str, Any]]:
    """``fused`` with its best row outside ``own`` at index 2 at the latest."""
    place = 2
    for i, entry in enumerate(fused):
        if entry["row"] not in own:
            if i > place:
                fused = [*fused[:place], entry, *fused[place:i], *fused[i + 1 :]]
            break
    return fused


def _join(words: Sequence[str]) -> str:
    quoted = [f"“{w}”" for w in words]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


class Retriever:
    """Searches one loaded index with one embedder; safe to share across threads."""

    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        *,
        fusion: FusionConfig | None = None,
        answers: AnswerConfig | None = None,
        coverage: CoverageConfig | None = None,
        not_covered: str = NOT_COVERED,
        max_k: int = 50,
        max_query_chars: int = 1000,
    ) -> None:
        if embedder.dim != index.manifest.dim:
            raise IndexIncompatible(
                f"embedder dimension {embedder.dim} does not match the index ({index.manifest.dim})"
            )
        if embedder.model_id != index.manifest.query_model:
            # Same dimension, other weights: every score would be quietly wrong.
            raise IndexIncompatible(
                f"the index is queried with {index.manifest.query_model}, not "
                f"{embedder.model_id}: open it with Retriever.from_index"
            )
        self.index = index
        self.embedder = embedder
        self.fusion = fusion or FusionConfig()
        self.answers = answers or AnswerConfig()
        self.max_k = max_k
        self.max_query_chars = max_query_chars
        self._roles: tuple[Any, dict[str, str]] | None = None
        # Concurrent first queries build the title matcher and the vocabulary once, not each.
        self._warm_lock = threading.Lock()
        self.coverage_config = coverage or CoverageConfig()
        self.not_covered = not_covered
        self._vocabulary: Vocabulary | None = None
        self._titles: list[str] | None = None
        # A document's rows, read from SQLite once: the index never changes under a Retriever.
        self._doc_rows: dict[str, np.ndarray] = {}
        # Only documents a query named (ids come from the index's titles), so bounded by them.
        self._doc_words: dict[str, tuple[str, frozenset[str]]] = {}

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
            max_k=settings.max_k,
            max_query_chars=settings.max_query_chars,
            not_covered=settings.not_covered,
        )

    def answer(self, result: SearchResult) -> Answer:
        """The extractive answer to a search, reusing its query vector and stored sentences;
        or, when the corpus does not answer the question, a message that says so."""
        coverage = self.coverage(result)
        if not coverage.answered:
            text = not_covered_message(coverage, self.titles(), self.not_covered)
            return Answer(text, [], answered=False, coverage=coverage.as_dict())
        note = self._unmentioned_aspect(result.query)
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
            result.query,
            hits,
            self.embedder,
            query_vector=result.vector,
            index=self.index,
            config=config,
            text_profile=self.index.manifest.text_profile,
        )

    def coverage(self, result: SearchResult) -> Coverage:
        """Whether the corpus answers the search's question (rag.search.coverage)."""
        best = dict(result.best)
        if "dense" not in best or ("sentence" not in best and self.index.sentences is not None):
            # A BM25-only (or sentence-only) search measured no cosine: measure it now.
            vector = result.vector if result.vector is not None else self.encode([result.query])[0]
            if "dense" not in best:
                top = self._dense(vector, 1, None)
                best["dense"] = top[0][1] if top else 0.0
            if "sentence" not in best and self.index.sentences is not None:
                top = self._sentence(vector, 1, None)
                best["sentence"] = top[0][1] if top else 0.0
        dense = best.get("dense", 0.0)
        return assess(
            result.query,
            result.hits,
            dense,
            best.get("sentence", dense),
            self.vocabulary(),
            self.coverage_config,
        )

    def vocabulary(self) -> Vocabulary:
        """The corpus's words, read from the BM25 index once."""
        with self._warm_lock:
            if self._vocabulary is None:
                self._vocabulary = Vocabulary(self.index.bm25)
            return self._vocabulary

    def titles(self) -> list[str]:
        """Every document title, in index order."""
        if self._titles is None:
            self._titles = [d.title for d in self.index.documents()]
        return self._titles

    def absent_aspect(self, query: str, named: str | None = None) -> tuple[str, list[str]] | None:
        """(title, words) when the question names one document and asks about words that
        document never uses but others do ("skills" of a guide that lists none)."""
        named = named or self.named_document(query)
        if named is None:
            return None
        title, doc_tokens = self._document_words(named)
        title_tokens = {t for _, t in content_words(title)}
        vocab = self.vocabulary()
        absent = [
            w
            for w, t in content_words(query)
            # Words no document uses are no aspect of this one in particular.
            if t not in title_tokens and t not in doc_tokens and vocab.has(t)
        ]
        return (title, absent) if absent else None

    def _document_words(self, doc_id: str) -> tuple[str, frozenset[str]]:
        """A named document's title and BM25 tokens, read once. Kept on the instance, not in a
        class-level cache, so a retriever replaced by a reload takes its index with it."""
        words = self._doc_words.get(doc_id)
        if words is None:
            doc = self.index.document(doc_id)
            words = self._doc_words[doc_id] = (doc.title, frozenset(query_tokens(doc.text)))
        return words

    def _unmentioned_aspect(self, query: str) -> str | None:
        """The answer's note when the named guide lacks what the question asks about."""
        found = self.absent_aspect(query)
        if found is None:
            return None
        title, words = found
        return f"The {title} guide does not mention {_join(words)}; the passages below are the closest."

    # ------------------------------------------------------------------ validation

    def check(self, query: object, k: object = 5) -> str:
        """Validate a query and k, returning the stripped query; raises BadQuery."""
        if not isinstance(query, str):
            raise BadQuery("query must be a string")
        q = query.strip()
        if not q:
            raise BadQuery("query must not be empty")
        if len(q) > self.max_query_chars:
            raise BadQuery(f"query is longer than {self.max_query_chars} characters")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.max_k:
            raise BadQuery(f"k must be an integer from 1 to {self.max_k}", field="k")
        return q

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
        """Top-k passages for a query."""
        t0 = time.perf_counter()
        q = self.check(query, k)
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
        n_cand = min(self.index.size, max(self.fusion.candidates, 4 * k))
        rankings: dict[str, list[tuple[int, float]]] = {}
        if mode != "bm25" and vector is None:
            raise ValueError("dense search needs a query vector")
        if mode in ("hybrid", "dense"):
            rankings["dense"] = self._dense(vector, n_cand, rows)
        if mode in ("hybrid", "sentence") and self.index.sentences is not None:
            rankings["sentence"] = self._sentence(vector, n_cand, rows)
        bm25 = None
        if mode in ("hybrid", "bm25"):
            bm25 = self._bm25_scores(query, rows)
            rankings["bm25"] = self._bm25_top(bm25, n_cand)
        named = self.named_document(query) if mode == "hybrid" and rows is None else None
        prior = self.rows_for_doc(named) if named else None
        fused = fuse(rankings, mode, self.fusion, prior, bm25)
        if named and prior is not None and self.absent_aspect(query, named):
            # The named guide lacks what is asked: the best passage of the other guides, which
            # may have it ("skills" of ML engineers in general), is moved up to third place.
            fused = _other_guide_third(fused, set(prior.tolist()))
        hits = self._materialise(fused, k)
        best = {name: rankings[name][0][1] for name in ("dense", "sentence") if rankings.get(name)}
        took = (time.perf_counter() - t0) * 1000
        return SearchResult(query, hits, took, mode, {"search_ms": took}, vector, best)

    def _dense(
        self, vector: np.ndarray, n: int, rows: np.ndarray | None
    ) -> list[tuple[int, float]]:
        params = None
        if rows is not None:
            params = filtered_search_params(self.index.faiss, rows, n)
            n = min(n, int(rows.size))
        scores, ids = self.index.faiss.search(
            vector.reshape(1, -1).astype(np.float32), n, params=params
        )
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def _sentence(
        self, vector: np.ndarray, n: int, rows: np.ndarray | None
    ) -> list[tuple[int, float]]:
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

    def _bm25_scores(self, query: str, rows: np.ndarray | None) -> np.ndarray | None:
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
    def _bm25_top(scores: np.ndarray | None, n: int) -> list[tuple[int, float]]:
        if scores is None:
            return []
        n = min(n, scores.size)
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

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

    def warm(self) -> None:
        """Build what queries read from the whole index (the title matcher, the vocabulary), so
        that no query pays for it; safe to call again."""
        self._title_matcher()
        self.vocabulary()
        self.titles()

    def _title_matcher(self) -> tuple[SubjectFinder, dict[str, str]]:
        with self._warm_lock:
            if self._roles is None:
                docs = self.index.documents()
                self._roles = (SubjectFinder([d.title for d in docs]),
                               {d.title: d.id for d in docs})  # fmt: skip
            return self._roles

    def named_document(self, query: str) -> str | None:
        """The id of the one document whose role the query names, if it names exactly one."""
        finder, ids = self._title_matcher()
        titles = finder.named_titles(query)
        return ids[titles[0]] if len(titles) == 1 else None

    def _materialise(self, fused: list[dict[str, Any]], k: int) -> list[Hit]:
        # Fetch a few more than k: overlapping passages are dropped below.
        pool = fused[: k * 3]
        chunks = self.index.chunks([e["row"] for e in pool])
        hits: list[Hit] = []
        for entry, chunk in zip(pool, chunks, strict=True):
            if any(_duplicate(chunk, h.chunk) for h in hits):
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


# Consecutive passages of a long section share an item or a sentence for context; they are
# different passages all the same. Only one mostly inside the other repeats it.
DUPLICATE_OVERLAP = 0.5


def _duplicate(a: Chunk, b: Chunk) -> bool:
    """Same text, or spans of the same source file that mostly overlap."""
    if a.text == b.text:
        return True
    if a.source != b.source:
        return False
    overlap = min(a.end, b.end) - max(a.start, b.start)
    return overlap > DUPLICATE_OVERLAP * min(a.end - a.start, b.end - b.start)
