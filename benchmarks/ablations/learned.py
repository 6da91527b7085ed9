"""Learned fusion: the first passages of the fusion shipped before, re-ordered by a pairwise
logistic regression over 11 features of each passage, trained on our own sets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.ablations.lab import (
    HELD_OUT,
    PREVIOUS,
    SETS,
    K,
    Lab,
    Query,
    Ranked,
    Score,
    relevant,
    score,
)
from benchmarks.ablations.rankers import LearnedRescore
from rag.search.ranker import Ranker

RRF_K = 60  # the reciprocal-rank features' constant, PREVIOUS.rrf_k
SENTENCES = 6 * PREVIOUS.candidates  # sentences the shipped sentence ranking fetches


def all_scores(index: Any, vector: np.ndarray) -> np.ndarray:
    """Inner product of a vector with every vector of a flat FAISS index, by row."""
    n = index.ntotal
    scores, ids = index.search(vector.reshape(1, -1).astype(np.float32), n)
    out = np.full(n, -1e9)
    keep = ids[0] >= 0
    out[ids[0][keep]] = scores[0][keep]
    return out


def ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of every entry, best first, ties by position."""
    order = np.argsort(-scores, kind="stable")
    out = np.empty(len(scores), dtype=np.int64)
    out[order] = np.arange(1, len(scores) + 1)
    return out


class Features:
    """The 11 features of every passage for a query, each query's computed once."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        chunks = lab.chunks
        children = lab.subsections()
        self.depth = np.array([len(ch.section_path) for ch in chunks], float)
        self.loglen = np.log([len(ch.text) for ch in chunks])
        self.intro = np.array([i in children for i in range(lab.n)], float)
        self.leaf = [
            lab.terms(ch.section_path[-1]) if len(ch.section_path) > 1 else set() for ch in chunks
        ]
        self.path = [lab.terms(" ".join(ch.section_path)) for ch in chunks]
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, query: str, vector: np.ndarray) -> np.ndarray:
        """One row of features per passage."""
        if query not in self._cache:
            self._cache[query] = self._compute(query, vector)
        return self._cache[query]

    def _compute(self, query: str, vector: np.ndarray) -> np.ndarray:
        lab = self.lab
        d = all_scores(lab.index.faiss, vector)
        sims = all_scores(lab.index.sentences, vector)
        fetched = np.argsort(-sims, kind="stable")[:SENTENCES]
        s = np.full(lab.n, -1e9)  # best sentence among those fetched
        np.maximum.at(s, lab.owners[fetched], sims[fetched])
        scores = lab.retriever.ranker.bm25_scores(query, None)
        b = np.zeros(lab.n) if scores is None else np.asarray(scores, dtype=float)
        bm25_order = np.full(lab.n, -1e9)
        for pos, (row, _) in enumerate(Ranker.bm25_top(scores, lab.n)):
            bm25_order[row] = -pos
        qt = lab.terms(query) or {""}
        return np.stack(
            [
                1 / (RRF_K + ranks(d)), 1 / (RRF_K + ranks(s)),
                np.where(b > 0, 1 / (RRF_K + ranks(bm25_order)), 0),
                d - d.max(), s - s.max(), b / b.max() if b.max() > 0 else b,
                np.array([len(qt & t) / len(qt) for t in self.leaf]),
                np.array([len(qt & t) / len(qt) for t in self.path]),
                self.intro, self.depth, self.loglen,
            ],
            axis=1,
        )  # fmt: skip


def run_learned_fusion(lab: Lab, c: float = 0.01, candidates: int = 30) -> dict[str, Score]:
    """The learned fusion's scores: trained on our sets, which are scored by 5-fold CV."""
    # Dev and the held-out sets are scored by the model trained on all of our questions.
    from sklearn.linear_model import LogisticRegression

    features = Features(lab)
    retriever = lab.retriever_with(PREVIOUS)
    ranker = retriever.ranker

    def first(q: Query) -> list[int]:
        """The rows the model re-orders: the fusion's first, the named guide's vote included."""
        # Composed as Retriever.search_vector composes it, stopping before the hits.
        rankings, bm25 = ranker.rankings(q.text, q.vector, ranker.candidates(K), "hybrid", None)
        named = retriever.named_document(q.text)
        prior = retriever.rows_for_doc(named) if named else None
        under = retriever.named_headings(q.text)
        fused = ranker.fuse(rankings, "hybrid", prior, bm25, named=under)
        return [e["row"] for e in fused[:candidates]]

    def fit(queries: Sequence[Query]) -> Ranked:
        rows = [(features(q.text, q.vector), first(q)) for q in queries]
        x = np.vstack([f[cand] for f, cand in rows])
        mu, sd = x.mean(0), x.std(0) + 1e-9
        pairs, target = [], []
        for (f, cand), q in zip(rows, queries, strict=True):
            fs = (f[cand] - mu) / sd
            rel = np.array([relevant(q, lab.chunks[r]) for r in cand])
            for p in fs[rel]:
                for m in fs[~rel]:
                    pairs += [p - m, m - p]
                    target += [1, 0]
        model = LogisticRegression(C=c, fit_intercept=False, max_iter=2000)
        model.fit(np.array(pairs), np.array(target))
        w = model.coef_[0]

        def learned(query: str, vector: np.ndarray) -> np.ndarray:
            return ((features(query, vector) - mu) / sd) @ w

        rescored = LearnedRescore(lab.index, PREVIOUS, candidates, learned)
        return lab.asking(lab.retriever_with(ranker=rescored))

    train = lab.sets["own"] + lab.sets["multi-turn"]
    everything = fit(train)
    out = {name: score(lab, lab.sets[name], everything) for name in SETS if name in HELD_OUT}
    order = np.random.default_rng(0).permutation(len(train))
    held: dict[str, list[Score]] = {"own": [], "multi-turn": []}
    for fold in np.array_split(order, 5):
        test_ids = set(fold.tolist())
        ranked = fit([train[i] for i in order if i not in test_ids])
        for i in fold:
            name = "own" if i < len(lab.sets["own"]) else "multi-turn"
            held[name].append(score(lab, [train[i]], ranked))
    for name, results in held.items():
        n = len(results)
        out[name] = Score(
            sum(s.hit1 for s in results) / n,
            sum(s.hit5 for s in results) / n,
            sum(s.mrr for s in results) / n,
            [m for s in results for m in s.misses],
            queries=n,
        )
    return out
