"""The lab: the built index and its retriever, every question set encoded once, and the scoring.

Every variant is a function from a query to its top passages, and every one asks a real
``Retriever`` (rag/search): the shipped one, or one over the same loaded index with another
fusion configuration, a ``Ranker`` subclass (rankers.py) or some parts of the index replaced
(``VariantIndex``). So a row measures its idea through the code that serves queries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.evaluation import first_relevant_rank, load_questions, query_for, relevance
from rag.index.lexical import BM25_PARAMS, import_bm25s
from rag.index.store import Index
from rag.ingest.chunking import Chunk
from rag.search.fusion import FusionConfig
from rag.search.ranker import Ranker
from rag.search.retriever import Retriever

ROOT = Path(__file__).resolve().parents[2]
SETS = {
    "dev": ROOT / "tests/data/dev_questions.jsonl",
    "own": ROOT / "tests/data/questions.jsonl",
    "multi-turn": ROOT / "tests/data/conversations.jsonl",
    # Written by someone who had not seen any ranking, after the fusion was chosen on our sets:
    # the check that a choice made on "own" and "multi-turn" carries over.
    "held-out": ROOT / "tests/data/holdout_questions.jsonl",
    "held-out multi-turn": ROOT / "tests/data/holdout_conversations.jsonl",
}
# Sets no variant is trained or chosen on.
HELD_OUT = ("dev", "held-out", "held-out multi-turn")
K = 10
# What ships, and what shipped before it: reciprocal-rank fusion of the three rankings weighted
# alike, with one vote at rank 1 for the named guide.
SHIPPED = FusionConfig()
PREVIOUS = FusionConfig(method="rrf", sentence_weight=1.0)


@dataclass
class Query:
    """One evaluation query: the text searched (a conversation resolved), evidence, vector."""

    id: str
    text: str
    evidence: list[str]
    vector: np.ndarray


# A variant: a query's top K passages, best first.
Ranked = Callable[[Query], Sequence[Chunk]]


class VariantIndex(Index):
    """The loaded index with some parts replaced (vectors, BM25, the passages themselves)."""

    def __init__(
        self,
        index: Index,
        *,
        faiss: Any = None,
        sentences: Any = None,
        sentence_rows: np.ndarray | None = None,
        bm25: Any = None,
        chunks: Sequence[Chunk] | None = None,
    ) -> None:
        # Documents, titles and the manifest are read through the loaded index's connection.
        super().__init__(
            index.path, index.manifest,
            index.faiss if faiss is None else faiss,
            index.bm25 if bm25 is None else bm25,
            index._con,
            index.sentences if sentences is None else sentences,
            index.sentence_rows if sentence_rows is None else sentence_rows,
        )  # fmt: skip
        self._lock = index._lock  # one connection, one lock
        self._chunks = None if chunks is None else list(chunks)
        if self._chunks is not None:
            self.size = len(self._chunks)

    def chunks(self, rows: Sequence[int]) -> list[Chunk]:
        """Chunks by row, from the replacement passages when there are some."""
        if self._chunks is None:
            return super().chunks(rows)
        return [self._chunks[int(r)] for r in rows]

    def rows_for_doc(self, doc_id: str) -> np.ndarray:
        """Rows of one document's passages, sorted."""
        if self._chunks is None:
            return super().rows_for_doc(doc_id)
        rows = [i for i, c in enumerate(self._chunks) if c.doc_id == doc_id]
        return np.asarray(rows, dtype=np.int64)

    def rows_where(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """Filters read the stored passages, so they do not apply to replaced ones."""
        if self._chunks is not None:
            raise NotImplementedError("no filters over replaced passages")
        return super().rows_where(*args, **kwargs)


def flat(vectors: np.ndarray) -> Any:
    """An exact inner-product FAISS index over ``vectors``, as the built index keeps its own."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    out = faiss.IndexFlatIP(vectors.shape[1])
    out.add(vectors)
    return out


class Lab:
    """The built index, its retriever and the question sets, plus what variants share."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.retriever = Retriever.from_settings(settings)
        self.index = self.retriever.index
        self.chunks = self.index.all_chunks()
        self.n = len(self.chunks)
        self.passages = self.index.faiss.reconstruct_n(0, self.n)
        self.sentences = self.index.sentences.reconstruct_n(0, self.index.sentences.ntotal)
        self.owners = np.asarray(self.index.sentence_rows)
        import Stemmer

        self._stemmer = Stemmer.Stemmer(BM25_PARAMS["stemmer"])
        subjects = [d.title for d in self.index.documents()]
        self.sets: dict[str, list[Query]] = {}
        for name, path in SETS.items():
            queries = []
            for q in load_questions(path):
                text = query_for(q, subjects)
                # One at a time, as Retriever.search encodes, so the vectors are its own.
                vector = self.retriever.encode([text])[0]
                queries.append(Query(q.id, text, q.evidence, vector))
            self.sets[name] = queries

    def retriever_with(
        self, fusion: FusionConfig | None = None, ranker: Ranker | None = None
    ) -> Retriever:
        """A retriever over the loaded index and its encoder, with another fusion or ranker."""
        return Retriever(self.index, self.retriever.embedder, fusion=fusion, ranker=ranker)

    @staticmethod
    def asking(retriever: Retriever, vector: Callable[[Query], np.ndarray] | None = None) -> Ranked:
        """The variant that searches ``retriever`` with each query's vector (or ``vector(q)``)."""

        def ranked(q: Query) -> list[Chunk]:
            v = q.vector if vector is None else vector(q)
            return [h.chunk for h in retriever.search_vector(q.text, v, K).hits]

        return ranked

    def terms(self, text: str) -> set[str]:
        """Stemmed content terms, as BM25 sees them."""
        return set(
            import_bm25s().tokenize(
                text, stopwords=BM25_PARAMS["stopwords"], stemmer=self._stemmer,
                return_ids=False, show_progress=False,
            )[0]
        )  # fmt: skip

    def subsections(self) -> dict[int, list[int]]:
        """For each chunk, the chunks of sections nested under its section."""
        out: dict[int, list[int]] = {}
        for i, c in enumerate(self.chunks):
            depth = len(c.section_path)
            for j, d in enumerate(self.chunks):
                if (
                    d.doc_id == c.doc_id
                    and len(d.section_path) > depth
                    and d.section_path[:depth] == c.section_path
                ):
                    out.setdefault(i, []).append(j)
        return out


@dataclass
class Score:
    """hit@1, hit@5, MRR@10 and the ids below rank 1."""

    hit1: float
    hit5: float
    mrr: float
    misses: list[str]
    # Over the queries that name one guide's role: the share of the top 5 from that guide.
    role_share: float | None = None
    role_queries: int = 0
    queries: int = 0

    def cell(self) -> str:
        """A table cell."""
        return f"{self.hit1:.2f} / {self.hit5:.2f} / {self.mrr:.3f}"


def relevant(q: Query, chunk: Chunk) -> bool:
    """Whether a passage holds one of the query's evidence strings, as `rag eval` judges."""
    return bool(relevance([chunk.text], q.evidence)[0])


def score(lab: Lab, queries: Sequence[Query], ranked: Ranked) -> Score:
    """One variant on one query set, judged by the rule `rag eval` judges by."""
    h1 = h5 = mrr = 0.0
    misses = []
    shares = []
    for q in queries:
        top = list(ranked(q))[:K]
        named = lab.retriever.named_document(q.text)
        if named is not None and top:
            shares.append(sum(c.doc_id == named for c in top[:5]) / len(top[:5]))
        rank = first_relevant_rank([c.text for c in top], q.evidence)
        h1 += rank == 1
        h5 += bool(rank and rank <= 5)
        mrr += 1 / rank if rank else 0.0
        if rank != 1:
            misses.append(f"{q.id}({rank or '-'})")
    n = len(queries)
    share = sum(shares) / len(shares) if shares else None
    return Score(h1 / n, h5 / n, mrr / n, misses, share, len(shares), n)


def score_sets(lab: Lab, ranked: Ranked) -> dict[str, Score]:
    """One variant on every query set."""
    return {name: score(lab, queries, ranked) for name, queries in lab.sets.items()}
