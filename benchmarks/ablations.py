"""Retrieval ablations: every ranking idea we tried, scored on the dev set and on our own sets.

Run ``python -m benchmarks.ablations`` (or ``make ablations``) after ``make index``; it writes
``benchmarks/ABLATIONS.md``. Each variant is a scoring function over every chunk of the built
index, so the ideas are compared on identical inputs. The first row recomputes the shipped
hybrid ranking and is checked against ``Retriever.search``, so the table cannot drift from what
``rag eval`` reports. Only the shipped ranking lives in ``rag/``; the rest stays here as the
record of what was measured and why it was not kept.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.evaluation import load_questions, normalise, query_for
from rag.index.lexical import BM25_PARAMS, import_bm25s
from rag.ingest.chunking import Chunk
from rag.ingest.profiles import profile_for
from rag.ingest.sentences import passage_sentences
from rag.search.fusion import zscore_sum
from rag.search.ranker import Ranker, duplicate
from rag.search.retriever import Retriever

ROOT = Path(__file__).resolve().parent.parent
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
RRF_K = 60
CANDIDATES = 50  # FusionConfig.candidates


@dataclass
class Query:
    """One evaluation query with everything a variant may score it by."""

    id: str
    text: str
    evidence: list[str]
    vector: np.ndarray
    bm25: np.ndarray  # BM25 score of every chunk, 0 where no term matches
    bm25_order: np.ndarray  # Retriever's BM25 order as scores, -1e9 where no term matches
    # Retriever's own candidate lists as order-preserving scores: exact ties (a sentence shared
    # by two overlapping passages) are broken as FAISS breaks them.
    dense_order: np.ndarray
    sentence_order: np.ndarray
    relevant: np.ndarray  # bool per chunk, by the evidence rule
    # Retriever's candidate lists with their raw scores, for score-based fusion.
    lists: dict[str, list[tuple[int, float]]]


class Lab:
    """The built index loaded into arrays, plus helpers that variants share."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.retriever = Retriever.from_settings(settings)
        index = self.retriever.index
        self.chunks = index.all_chunks()
        self.n = len(self.chunks)
        self.passages = index.faiss.reconstruct_n(0, self.n)
        self.sentences = index.sentences.reconstruct_n(0, index.sentences.ntotal)
        self.owners = np.asarray(index.sentence_rows)
        self.bm25s = import_bm25s()
        import Stemmer

        self.stemmer = Stemmer.Stemmer(BM25_PARAMS["stemmer"])
        subjects = [d.title for d in index.documents()]
        self.sets: dict[str, list[Query]] = {}
        for name, path in SETS.items():
            queries = []
            for q in load_questions(path):
                text = query_for(q, subjects)
                # BM25 scores every chunk once; both candidate lists are cut from that.
                scores = self.retriever.ranker.bm25_scores(text, None)
                bm = np.zeros(self.n) if scores is None else np.asarray(scores, dtype=float)
                bm_order = np.full(self.n, -1e9)
                for pos, (row, _) in enumerate(Ranker.bm25_top(scores, self.n)):
                    bm_order[row] = -pos  # Retriever's order, ties included
                evidence = [normalise(e) for e in q.evidence]
                rel = np.array([any(e in normalise(c.text) for e in evidence) for c in self.chunks])
                vector = self.retriever.encode([text])[0]
                lists = {
                    "dense": self.retriever.ranker.dense(vector, CANDIDATES, None),
                    "sentence": self.retriever.ranker.sentence(vector, CANDIDATES, None),
                    "bm25": Ranker.bm25_top(scores, CANDIDATES),
                }
                dense, sent = self._order(lists["dense"]), self._order(lists["sentence"])
                queries.append(
                    Query(q.id, text, q.evidence, vector, bm, bm_order, dense, sent, rel, lists)
                )
            self.sets[name] = queries
        self._children = self._subsections()

    # ------------------------------------------------------------------ shared signals

    def _order(self, ranking: list[tuple[int, float]]) -> np.ndarray:
        """A ranked candidate list as scores that sort the same way; -1e9 off the list."""
        out = np.full(self.n, -1e9)
        for pos, (row, _) in enumerate(ranking):
            out[row] = -pos
        return out

    def role_prior(self, q: Query, weight: float = 1.0) -> np.ndarray:
        """One RRF vote at rank 1 for the candidates of the guide the query names, if any."""
        named = self.retriever.named_document(q.text)
        if named is None:
            return np.zeros(self.n)
        # Only Retriever's candidates: each ranking's first CANDIDATES passages.
        fetched = np.maximum.reduce([(ranks(s) <= CANDIDATES) & (s > -1e8) for s in self.base(q)])
        mine = np.array([c.doc_id == named for c in self.chunks])
        return np.where(mine & fetched, weight / (RRF_K + 1), 0.0)

    @staticmethod
    def base(q: Query) -> list[np.ndarray]:
        """The three shipped rankings, exactly as Retriever fuses them."""
        return [q.dense_order, q.sentence_order, q.bm25_order]

    def terms(self, text: str) -> set[str]:
        """Stemmed content terms, as BM25 sees them."""
        return set(
            self.bm25s.tokenize(
                text, stopwords=BM25_PARAMS["stopwords"], stemmer=self.stemmer,
                return_ids=False, show_progress=False,
            )[0]
        )  # fmt: skip

    def dense(self, q: Query, vector: np.ndarray | None = None) -> np.ndarray:
        """Cosine of the query with every passage vector, computed by FAISS as Retriever does
        (numpy's rounding differs in the last bits, which reorders near-ties)."""
        return _all_scores(self.retriever.index.faiss, q.vector if vector is None else vector)

    def sentence_max(self, q: Query, vector: np.ndarray | None = None) -> np.ndarray:
        """Each passage scored by its best sentence among the nearest sentences Retriever
        fetches (-1e9 for a passage with none there)."""
        sims = _all_scores(self.retriever.index.sentences, q.vector if vector is None else vector)
        fetched = np.argsort(-sims, kind="stable")[: CANDIDATES * 6]
        out = np.full(self.n, -1e9)
        np.maximum.at(out, self.owners[fetched], sims[fetched])
        return out

    def sentence_lse(self, q: Query, temperature: float = 0.05) -> np.ndarray:
        """Each passage scored by a soft maximum over its sentences (rewards several matches)."""
        sims = self.sentences @ q.vector
        out = np.zeros(self.n)
        np.add.at(out, self.owners, np.exp(sims / temperature))
        return temperature * np.log(np.maximum(out, 1e-300))

    @staticmethod
    def bm25(q: Query) -> np.ndarray:
        """BM25 ranking (ties broken as Retriever breaks them); -1e9 where no term matched."""
        return q.bm25_order

    def _subsections(self) -> dict[int, list[int]]:
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


def _all_scores(index: object, vector: np.ndarray) -> np.ndarray:
    """Inner product of a vector with every vector of a flat FAISS index, by row."""
    n = index.ntotal  # type: ignore[attr-defined]
    scores, ids = index.search(vector.reshape(1, -1).astype(np.float32), n)  # type: ignore[attr-defined]
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


def rrf(
    signals: Sequence[np.ndarray], weights: Sequence[float] | None = None, k: int = RRF_K
) -> np.ndarray:
    """Reciprocal-rank fusion as Retriever does it: each ranking contributes only for its
    first CANDIDATES passages, and BM25 only where a term matched (scores of -1e9)."""
    weights = weights or [1.0] * len(signals)
    total = np.zeros(len(signals[0]))
    for w, s in zip(weights, signals, strict=True):
        s = np.asarray(s, float)
        r = ranks(s)
        total += np.where((r <= CANDIDATES) & (s > -1e8), w / (k + r), 0.0)
    return total


def zscore(
    lab: Lab,
    q: Query,
    weights: Sequence[float] = (1.0, 1.5, 1.0),
    role: float = 1.0,
    lists: dict[str, list[tuple[int, float]]] | None = None,
    bm25: np.ndarray | None = None,
) -> np.ndarray:
    """Score fusion as Retriever does it: the weighted mean of each ranking's z-scores over the
    candidates (rag.search.fusion.zscore_sum), plus ``role`` for the named guide's passages. The
    candidate lists and BM25 scores are the query's own unless given."""
    lists = q.lists if lists is None else lists
    bm25 = q.bm25 if bm25 is None else bm25
    rows = np.unique(np.concatenate([[r for r, _ in ls] for ls in lists.values()]).astype(int))
    named = dict(zip(("dense", "sentence", "bm25"), weights, strict=True))
    fused = zscore_sum(rows, lists, named, bm25)
    doc = lab.retriever.named_document(q.text)
    if doc is not None:
        fused += np.where(np.isin(rows, lab.retriever.rows_for_doc(doc)), role, 0.0)
    out = np.full(lab.n, -1e9)
    out[rows] = fused
    if doc is not None and lab.retriever.absent_aspect(q.text, doc):
        out = other_guide_third(out, lab.retriever.rows_for_doc(doc))
    return out


def other_guide_third(scores: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Retriever's rule for a named guide that lacks what is asked, on a score array: the best
    row outside ``own`` is scored just above the third row, unless it ranks higher already."""
    order = np.argsort(-scores, kind="stable")
    outside = np.flatnonzero(~np.isin(order, own))
    if outside.size == 0 or outside[0] <= 2 or order.size < 3:
        return scores
    out = scores.copy()
    out[order[outside[0]]] = (scores[order[1]] + scores[order[2]]) / 2
    return out


def zfuse(
    lab: Lab,
    q: Query,
    dense: np.ndarray,
    sentences: np.ndarray,
    bm25: np.ndarray,
    owners: np.ndarray | None = None,
) -> np.ndarray:
    """The shipped z-score fusion over full score arrays (a cosine per passage, a cosine per
    sentence, a BM25 score per passage), each cut to candidates as Retriever cuts them."""
    owners = lab.owners if owners is None else owners
    order = np.argsort(-dense, kind="stable")[:CANDIDATES]
    best: dict[int, float] = {}
    for i in np.argsort(-sentences, kind="stable")[: CANDIDATES * 6]:
        best.setdefault(int(owners[i]), float(sentences[i]))
    lists = {
        "dense": [(int(i), float(dense[i])) for i in order],
        "sentence": list(best.items())[:CANDIDATES],
        # No matching term: all zeros, an empty list, and BM25 sits the fusion out.
        "bm25": Ranker.bm25_top(bm25, CANDIDATES),
    }
    return zscore(lab, q, lists=lists, bm25=bm25)


def shipped(lab: Lab, q: Query) -> np.ndarray:
    """What `rag` ships: z-score fusion of passage vectors, best sentence vectors and BM25
    (weights 1 : 1.5 : 1), plus a bonus for the passages of the guide whose role the query
    names."""
    return zscore(lab, q)


def previous(lab: Lab, q: Query) -> np.ndarray:
    """What shipped before: RRF (k=60) of the same three rankings plus one vote at rank 1."""
    return rrf([*lab.base(q)]) + lab.role_prior(q)


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


def ranked_rows(chunks: Sequence[Chunk], scores: np.ndarray, k: int = K) -> list[int]:
    """Top-k rows with overlapping passages dropped, as Retriever does."""
    out: list[int] = []
    for row in np.argsort(-scores, kind="stable"):
        if any(duplicate(chunks[row], chunks[j]) for j in out):
            continue
        out.append(int(row))
        if len(out) == k:
            break
    return out


def score(
    lab: Lab,
    queries: Sequence[Query],
    fn: Callable[[Query], np.ndarray],
    chunks: Sequence[Chunk] | None = None,
    relevant: Callable[[Query, int], bool] | None = None,
) -> Score:
    """Evaluate one scoring function on one query set."""
    chunks = chunks or lab.chunks
    relevant = relevant or (lambda q, row: bool(q.relevant[row]))
    h1 = h5 = mrr = 0.0
    misses = []
    shares = []
    for q in queries:
        rows = ranked_rows(chunks, fn(q))
        named = lab.retriever.named_document(q.text)
        if named is not None:
            top = rows[:5]
            shares.append(sum(chunks[r].doc_id == named for r in top) / len(top))
        rank = next((i for i, row in enumerate(rows, 1) if relevant(q, row)), None)
        h1 += rank == 1
        h5 += bool(rank and rank <= 5)
        mrr += 1 / rank if rank else 0.0
        if rank != 1:
            misses.append(f"{q.id}({rank or '-'})")
    n = len(queries)
    share = sum(shares) / len(shares) if shares else None
    return Score(h1 / n, h5 / n, mrr / n, misses, share, len(shares), n)


# ---------------------------------------------------------------------- variants


def v_fusion(lab: Lab, weights: Sequence[float], k: int) -> Callable[[Query], np.ndarray]:
    """Shipped signals with other fusion weights or RRF constant."""
    return lambda q: rrf([*lab.base(q)], weights, k) + lab.role_prior(q)


def v_extra_ranking(lab: Lab, texts: Sequence[str], weight: float):
    """A fourth ranking: the query against one extra vector per passage."""
    extra = lab.retriever.encode(list(texts))
    return lambda q: rrf([*lab.base(q), extra @ q.vector], [1, 1, 1, weight]) + lab.role_prior(q)


def v_question_templates(lab: Lab, weight: float):
    """A fourth ranking against a question made from each passage's headings (query-query)."""

    def template(c: Chunk) -> str:
        if len(c.section_path) == 1:
            return f"What does a {c.title} do?"
        return f"{c.title}: what about {' '.join(c.section_path[1:])}?"

    return v_extra_ranking(lab, [template(c) for c in lab.chunks], weight)


def v_coverage(lab: Lab, weight: float):
    """A fourth ranking: the IDF-weighted share of query terms a passage contains."""
    passage_terms = [lab.terms(c.embedding_text()) for c in lab.chunks]
    df: dict[str, int] = {}
    for ts in passage_terms:
        for t in ts:
            df[t] = df.get(t, 0) + 1

    def idf(t: str) -> float:
        return math.log(1 + (lab.n - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5))

    def fn(q: Query) -> np.ndarray:
        qt = lab.terms(q.text)
        total = sum(idf(t) for t in qt) or 1.0
        cov = np.array([sum(idf(t) for t in qt if t in ts) / total for ts in passage_terms])
        return rrf([*lab.base(q), cov], [1, 1, 1, weight]) + lab.role_prior(q)

    return fn


def v_leaf_heading_boost(lab: Lab, boost: float):
    """Shipped score plus a bonus for query terms in the passage's own (last) heading."""
    leaf = [lab.terms(c.section_path[-1]) if len(c.section_path) > 1 else set() for c in lab.chunks]

    def fn(q: Query) -> np.ndarray:
        qt = lab.terms(q.text) or {""}
        share = np.array([len(qt & lt) / len(qt) for lt in leaf])
        return previous(lab, q) + boost * share

    return fn


def v_intro_cap(lab: Lab, min_depth: int):
    """A part's introduction never outranks its best subsection."""

    def fn(q: Query) -> np.ndarray:
        s = previous(lab, q)
        for i, kids in lab._children.items():
            if len(lab.chunks[i].section_path) >= min_depth:
                s[i] = min(s[i], max(s[j] for j in kids) - 1e-9)
        return s

    return fn


def v_prf(lab: Lab, beta: float, top: int):
    """Dense pseudo-relevance feedback: move the query towards the first passages, search again."""

    def fn(q: Query) -> np.ndarray:
        first = np.argsort(-previous(lab, q))[:top]
        v = q.vector + beta * lab.passages[first].mean(0)
        v = v / np.linalg.norm(v)
        return rrf([lab.dense(q, v), lab.sentence_max(q, v), lab.bm25(q)]) + lab.role_prior(q)

    return fn


def v_sentence_rescore(lab: Lab, top: int, gain: float):
    """Re-score the top passages by their best sentence's cosine on top of the fused score."""

    def fn(q: Query) -> np.ndarray:
        s = previous(lab, q)
        first = np.argsort(-s)[:top]
        best = lab.sentence_max(q)[first]
        out = np.full(lab.n, -1e9)
        out[first] = s[first] + gain * (best - best.max())
        return out

    return fn


def v_sentence_lse(lab: Lab):
    """Sentence ranking by a soft maximum instead of the maximum."""
    return lambda q: rrf([lab.base(q)[0], lab.sentence_lse(q), lab.bm25(q)]) + lab.role_prior(q)


def v_maxsim(lab: Lab, weight: float):
    """A fourth ranking: token-level late interaction (mean over query tokens of the best
    passage token cosine) from the same model's token embeddings."""
    from rag.models.query import load_query_embedder

    # The index's query model through sentence-transformers: ONNX gives pooled vectors only.
    torch_settings = lab.settings.model_copy(update={"query_backend": "torch"})
    model = load_query_embedder(torch_settings, lab.retriever.index).model  # type: ignore[attr-defined]

    def tokens(texts: list[str]) -> list[np.ndarray]:
        out = []
        for t in model.encode(texts, output_value="token_embeddings"):
            t = t.numpy()[1:-1]  # [CLS] and [SEP] carry no term
            out.append(t / np.linalg.norm(t, axis=1, keepdims=True))
        return out

    passages = tokens([c.embedding_text() for c in lab.chunks])
    cache: dict[str, np.ndarray] = {}

    def fn(q: Query) -> np.ndarray:
        if q.text not in cache:
            cache[q.text] = tokens([q.text])[0]
        qt = cache[q.text]
        late = np.array([(qt @ p.T).max(1).mean() for p in passages])
        return rrf([*lab.base(q), late], [1, 1, 1, weight]) + lab.role_prior(q)

    return fn


def v_hubness(lab: Lab, k: int, weight: float):
    """Hubness reduction (as CSLS, Lample et al., 2018): each passage's and sentence's cosine
    minus ``weight`` times its mean cosine to the k nearest sentences of other passages, so
    generic text that is close to everything stops winning near-ties."""
    chunks, owners = lab.chunks, lab.owners
    near = np.array([[duplicate(a, b) for b in chunks] for a in chunks])  # incl. itself
    to_sentences = np.where(near[:, owners], -1.0, lab.passages @ lab.sentences.T)
    between = np.where(near[owners][:, owners], -1.0, lab.sentences @ lab.sentences.T)
    hub_p = np.sort(to_sentences, axis=1)[:, -k:].mean(1)
    hub_s = np.sort(between, axis=1)[:, -k:].mean(1)

    def fn(q: Query) -> np.ndarray:
        dense = lab.passages @ q.vector - weight * hub_p
        sentences = lab.sentences @ q.vector - weight * hub_s
        return zfuse(lab, q, dense, sentences, q.bm25)

    return fn


def v_role_stripped(lab: Lab, mix: float):
    """When the query names one guide (which the bonus already favours), embed it half with the
    role replaced by "they", so the role's name stops pulling in passages that repeat it."""
    from rag.search.subjects import SubjectFinder

    finder = SubjectFinder([d.title for d in lab.retriever.index.documents()])
    cache: dict[str, np.ndarray] = {}

    def fn(q: Query) -> np.ndarray:
        if lab.retriever.named_document(q.text) is None:
            return shipped(lab, q)
        if q.text not in cache:
            text, pos = "", 0
            for span in finder.find(q.text):
                text += q.text[pos : span.start] + "they"
                pos = span.end
            cache[q.text] = lab.retriever.encode([text + q.text[pos:]])[0]
        v = mix * cache[q.text] + (1 - mix) * q.vector
        v = v / np.linalg.norm(v)
        return zfuse(lab, q, lab.passages @ v, lab.sentences @ v, q.bm25)

    return fn


def v_summaries_to_parent(lab: Lab):
    """A closing summary glued to a part's last subsection ("By adhering to these best
    practices, ...") is about the whole part: embed and index it with the part's introduction."""
    from rag.index.lexical import build_bm25
    from rag.ingest.profiles import _GLUE_RE

    texts = [c.embedding_text() for c in lab.chunks]
    sentences: list[tuple[str, int]] = []
    moved: dict[int, list[str]] = {}
    for row, c in enumerate(lab.chunks):
        body, summaries = [], []
        for line in c.text.split("\n"):
            head, *tail = _GLUE_RE.split(line.rstrip())
            body.append(head)
            summaries += [t.strip() for t in tail]
        parent = next(
            (
                j
                for j, d in enumerate(lab.chunks)
                if d.doc_id == c.doc_id and d.section_path == c.section_path[:-1]
            ),
            None,
        )
        if summaries and parent is not None:
            text = "\n".join(body)
            texts[row] = f"{c.section}\n{text}"
            moved.setdefault(parent, []).extend(summaries)
        else:
            text = c.text
        sentences += [
            (f"{c.section}: {s}", row)
            for s in passage_sentences(text, profile=profile_for(c.source)) or [text]
        ]
    for row, summaries in moved.items():
        texts[row] += "\n" + " ".join(summaries)
        sentences += [(f"{lab.chunks[row].section}: {s}", row) for s in summaries]
    passages = lab.retriever.encode(texts)
    vectors = lab.retriever.encode([t for t, _ in sentences])
    owners = np.array([row for _, row in sentences])
    bm = build_bm25(texts)

    def fn(q: Query) -> np.ndarray:
        terms = list(lab.terms(q.text))
        b = np.asarray(bm.get_scores(terms)) if terms else np.zeros(lab.n)
        return zfuse(lab, q, passages @ q.vector, vectors @ q.vector, b, owners)

    return fn


def v_bm25(lab: Lab, k1: float, b: float, path_twice: bool = False):
    """The shipped fusion with BM25 built with other parameters or the heading path twice."""
    from rag.index.lexical import build_bm25

    texts = [(f"{c.section}\n" if path_twice else "") + c.embedding_text() for c in lab.chunks]
    bm = build_bm25(texts, {**BM25_PARAMS, "k1": k1, "b": b})

    def fn(q: Query) -> np.ndarray:
        terms = list(lab.terms(q.text))
        scores = np.asarray(bm.get_scores(terms)) if terms else np.zeros(lab.n)
        return zfuse(lab, q, lab.passages @ q.vector, lab.sentences @ q.vector, scores)

    return fn


def merged_sections(lab: Lab, max_chars: int) -> list[tuple[Chunk, list[Chunk]]]:
    """Consecutive small sibling sections packed into one passage of at most max_chars."""
    from collections import Counter

    from rag.ingest.loader import load_corpus

    docs, _ = load_corpus(Path(lab.settings.corpus_dir))
    source = {d.source: d.text for d in docs}
    parts = Counter((c.doc_id, tuple(c.section_path)) for c in lab.chunks)

    def whole(c: Chunk) -> bool:
        return parts[(c.doc_id, tuple(c.section_path))] == 1

    groups: list[list[Chunk]] = []
    for c in lab.chunks:
        cur = groups[-1] if groups else []
        if (
            cur
            and len(c.section_path) > 1
            and whole(c)
            and all(whole(x) for x in cur)
            and cur[0].doc_id == c.doc_id
            and cur[0].section_path[:-1] == c.section_path[:-1]
            and c.end - cur[0].start <= max_chars
        ):
            cur.append(c)
        else:
            groups.append([c])
    out = []
    for g in groups:
        a, z = g[0], g[-1]
        path = a.section_path if len(g) == 1 else a.section_path[:-1]
        text = source[a.source][a.start : z.end]
        out.append((Chunk(a.id, a.doc_id, a.title, list(path), a.source, a.start, z.end, text), g))
    return out


def run_merged(lab: Lab, max_chars: int) -> dict[str, Score]:
    """Re-embed and re-index with small sibling sections merged, then score like shipped."""
    groups = merged_sections(lab, max_chars)
    chunks = [c for c, _ in groups]
    vectors = lab.retriever.encode([c.embedding_text() for c in chunks])
    sent_texts, owners = [], []
    for row, (_, parts) in enumerate(groups):
        for part in parts:  # sentences keep their own subsection as context
            for s in passage_sentences(part.text, profile=profile_for(part.source)) or [part.text]:
                sent_texts.append(f"{part.section}: {s}")
                owners.append(row)
    sent = lab.retriever.encode(sent_texts)
    owner = np.asarray(owners)
    from rag.index.lexical import build_bm25

    bm = build_bm25([c.embedding_text() for c in chunks])

    def fn(q: Query) -> np.ndarray:
        best = np.full(len(chunks), -1.0)
        np.maximum.at(best, owner, sent @ q.vector)
        qt = list(lab.terms(q.text))
        b = np.asarray(bm.get_scores(qt)) if qt else np.zeros(len(chunks))
        named = lab.retriever.named_document(q.text)
        prior = np.array([c.doc_id == named for c in chunks]) / (RRF_K + 1)
        return rrf([vectors @ q.vector, best, np.where(b > 0, b, -1e9)]) + prior

    def rel(q: Query, row: int) -> bool:
        text = normalise(chunks[row].text)
        return any(normalise(e) in text for e in q.evidence)

    return {name: score(lab, qs, fn, chunks, rel) for name, qs in lab.sets.items()}


def run_unadapted(settings: Settings) -> dict[str, Score]:
    """The shipped ranking over an index built with the base model, not adapted."""
    import tempfile

    from rag.index import build_index
    from rag.models.embedder import load_embedder

    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        embedder = load_embedder(settings.model, settings.batch_size)
        build_index(Path(settings.corpus_dir), index_dir, embedder, adapt=False)
        base = Lab(settings.model_copy(update={"index_dir": index_dir}))
        scores = {n: score(base, qs, lambda q: shipped(base, q)) for n, qs in base.sets.items()}
        base.retriever.index.close()
        return scores


def run_learned_fusion(lab: Lab, c: float = 0.01, candidates: int = 30) -> dict[str, Score]:
    """Pairwise logistic regression over 11 ranking features, trained on our own and
    multi-turn sets; dev is held out, and our sets are scored by 5-fold cross-validation."""
    from sklearn.linear_model import LogisticRegression

    depth = np.array([len(ch.section_path) for ch in lab.chunks], float)
    loglen = np.log([len(ch.text) for ch in lab.chunks])
    intro = np.array([i in lab._children for i in range(lab.n)], float)
    leaf = [
        lab.terms(ch.section_path[-1]) if len(ch.section_path) > 1 else set() for ch in lab.chunks
    ]
    path = [lab.terms(" ".join(ch.section_path)) for ch in lab.chunks]

    def features(q: Query) -> tuple[np.ndarray, np.ndarray]:
        d, s, b = lab.dense(q), lab.sentence_max(q), q.bm25
        qt = lab.terms(q.text) or {""}
        f = np.stack(
            [
                1 / (RRF_K + ranks(d)), 1 / (RRF_K + ranks(s)),
                np.where(b > 0, 1 / (RRF_K + ranks(lab.bm25(q))), 0),
                d - d.max(), s - s.max(), b / b.max() if b.max() > 0 else b,
                np.array([len(qt & t) / len(qt) for t in leaf]),
                np.array([len(qt & t) / len(qt) for t in path]),
                intro, depth, loglen,
            ],
            axis=1,
        )  # fmt: skip
        return f, np.argsort(-previous(lab, q))[:candidates]

    def fit(queries: Sequence[Query]) -> Callable[[Query], np.ndarray]:
        rows = [features(q) for q in queries]
        x = np.vstack([f[cand] for f, cand in rows])
        mu, sd = x.mean(0), x.std(0) + 1e-9
        pairs, target = [], []
        for (f, cand), q in zip(rows, queries, strict=True):
            fs = (f[cand] - mu) / sd
            rel = q.relevant[cand]
            for p in fs[rel]:
                for m in fs[~rel]:
                    pairs += [p - m, m - p]
                    target += [1, 0]
        model = LogisticRegression(C=c, fit_intercept=False, max_iter=2000)
        model.fit(np.array(pairs), np.array(target))
        w = model.coef_[0]

        def fn(q: Query) -> np.ndarray:
            f, cand = features(q)
            out = np.full(lab.n, -1e9)
            out[cand] = ((f[cand] - mu) / sd) @ w
            return out

        return fn

    train = lab.sets["own"] + lab.sets["multi-turn"]
    everything = fit(train)
    out = {name: score(lab, lab.sets[name], everything) for name in SETS if name in HELD_OUT}
    order = np.random.default_rng(0).permutation(len(train))
    folds = np.array_split(order, 5)
    held: dict[str, list[tuple[Query, Score]]] = {"own": [], "multi-turn": []}
    for fold in folds:
        test_ids = set(fold.tolist())
        fn = fit([train[i] for i in order if i not in test_ids])
        for i in fold:
            q = train[i]
            name = "own" if i < len(lab.sets["own"]) else "multi-turn"
            held[name].append((q, score(lab, [q], fn)))
    for name, results in held.items():
        n = len(results)
        out[name] = Score(
            sum(s.hit1 for _, s in results) / n,
            sum(s.hit5 for _, s in results) / n,
            sum(s.mrr for _, s in results) / n,
            [m for _, s in results for m in s.misses],
            queries=n,
        )
    return out


# ---------------------------------------------------------------------- report


def main(argv: Sequence[str] | None = None) -> None:
    """Score every variant and write the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/ABLATIONS.md")
    args = parser.parse_args(argv)
    settings = Settings()
    t0 = time.perf_counter()
    lab = Lab(settings)
    check_shipped(lab)

    simple: list[tuple[str, Callable[[Query], np.ndarray]]] = [
        ("**shipped**: model adapted to the corpus; z-score fusion (weights 1 : 1.5 : 1) of passage, best-sentence and BM25 scores, + 1 for the named guide", lambda q: shipped(lab, q)),
        ("z-score fusion, equal weights", lambda q: zscore(lab, q, (1, 1, 1))),
        ("z-score fusion, weights 1 : 2 : 1", lambda q: zscore(lab, q, (1, 2, 1))),
        ("z-score fusion without the bonus for the named guide", lambda q: zscore(lab, q, role=0.0)),
        ("z-score fusion, named-guide bonus 0.5", lambda q: zscore(lab, q, role=0.5)),
        ("z-score fusion, hubness reduction on both vector rankings (CSLS-style, k=10, weight 0.25)", v_hubness(lab, 10, 0.25)),
        ("z-score fusion, query embedded half with the named role replaced by \"they\"", v_role_stripped(lab, 0.5)),
        ("z-score fusion, closing summaries moved from a part's last subsection to its introduction", v_summaries_to_parent(lab)),
        ("z-score fusion, BM25 k1=0.9, b=0.4", v_bm25(lab, 0.9, 0.4)),
        ("z-score fusion, BM25 with the heading path counted twice", v_bm25(lab, 1.2, 0.75, path_twice=True)),
        ("previously shipped: RRF (k=60) of the same rankings + one vote for the named guide", lambda q: previous(lab, q)),
        ("RRF without the vote for the named guide", lambda q: rrf(lab.base(q))),
        ("RRF constant k=10", v_fusion(lab, (1, 1, 1), 10)),
        ("RRF constant k=30", v_fusion(lab, (1, 1, 1), 30)),
        ("RRF weights chosen on our set (sentence 2, k=5)", v_fusion(lab, (1, 2, 1), 5)),
        ("RRF, BM25 weight 0.5", v_fusion(lab, (1, 1, 0.5), RRF_K)),
        ("RRF, BM25 weight 1.5", v_fusion(lab, (1, 1, 1.5), RRF_K)),
        ("RRF without BM25", v_fusion(lab, (1, 1, 0), RRF_K)),
        ("RRF without sentence vectors", v_fusion(lab, (1, 0, 1), RRF_K)),
        ("RRF + heading-path vectors (4th ranking, weight 1)", v_extra_ranking(lab, [c.section for c in lab.chunks], 1.0)),
        ("RRF + last-heading vectors (4th ranking, weight 0.5)", v_extra_ranking(lab, [c.section_path[-1] for c in lab.chunks], 0.5)),
        ("RRF + questions made from headings (4th ranking, weight 0.5)", v_question_templates(lab, 0.5)),
        ("RRF + IDF-weighted query-term coverage (4th ranking, weight 0.5)", v_coverage(lab, 0.5)),
        ("RRF + bonus for query terms in the last heading (0.005)", v_leaf_heading_boost(lab, 0.005)),
        ("RRF, part introductions capped below their best subsection", v_intro_cap(lab, 2)),
        ("RRF, dense pseudo-relevance feedback (beta 0.3, top 3)", v_prf(lab, 0.3, 3)),
        ("RRF, top-10 re-scored by best-sentence cosine (gain 0.05)", v_sentence_rescore(lab, 10, 0.05)),
        ("RRF, sentence ranking by soft maximum (log-sum-exp, T=0.05)", v_sentence_lse(lab)),
        ("RRF + token-level late interaction, MaxSim (4th ranking, weight 0.5)", v_maxsim(lab, 0.5)),
    ]  # fmt: skip
    rows: list[tuple[str, dict[str, Score]]] = []
    for label, fn in simple:
        rows.append((label, {name: score(lab, qs, fn) for name, qs in lab.sets.items()}))
        print(f"{label}: {rows[-1][1]['dev'].cell()}", flush=True)
    for max_chars in (500, 800):
        label = (
            f"RRF, small sibling sections merged into passages of at most {max_chars} characters"
        )
        rows.append((label, run_merged(lab, max_chars)))
        print(f"{label}: {rows[-1][1]['dev'].cell()}", flush=True)
    label = "learned fusion: pairwise logistic regression on 11 features (trained on our sets)"
    rows.append((label, run_learned_fusion(lab)))
    print(f"{label}: {rows[-1][1]['dev'].cell()}", flush=True)
    if lab.retriever.index.manifest.extra.get("adapted"):
        label = "without adapting the model to the corpus (the base model as it ships)"
        rows.append((label, run_unadapted(settings)))
        print(f"{label}: {rows[-1][1]['dev'].cell()}", flush=True)
    write_report(args.out, rows, time.perf_counter() - t0)
    print(f"wrote {args.out}")


def check_shipped(lab: Lab) -> None:
    """The recomputed shipped ranking must match Retriever.search exactly."""
    for queries in lab.sets.values():
        for q in queries:
            want = [h.chunk.id for h in lab.retriever.search(q.text, K).hits]
            got = [lab.chunks[r].id for r in ranked_rows(lab.chunks, shipped(lab, q))]
            if want != got:
                raise SystemExit(
                    f"recomputed ranking differs from Retriever.search for {q.id}: {want} {got}"
                )


def write_report(path: Path, rows: Sequence[tuple[str, dict[str, Score]]], seconds: float) -> None:
    """Markdown table, one row per variant; the first row is what ships."""
    base = rows[0][1]
    lines = [
        "# Retrieval ablations",
        "",
        "Written by `make ablations` (`python -m benchmarks.ablations`) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, Python "
        f"{platform.python_version()}, in {seconds:.0f} s. Cells are hit@1 / hit@5 / MRR@10; "
        "a passage is a hit if it contains an evidence string once both are normalised. "
        "The dev set is the shared one (20 questions); *own* (48 questions) and *multi-turn* "
        "(18 conversations, resolved as `/chat` resolves them) are the sets fusion settings were "
        "chosen on; *held-out* (40 questions) and *held-out multi-turn* (10 conversations) were "
        "written by someone who had seen no ranking, and were scored only after the choice. "
        "Every variant scores every chunk of the same index with the same query vectors; the "
        "first row is checked against `Retriever.search`.",
        "",
        "| variant | " + " | ".join(SETS) + " | named guide in top 5 | dev below rank 1 |",
        "|---|" + "---|" * (len(SETS) + 2),
    ]
    role_queries = sum(s.role_queries for s in base.values())
    for label, scores in rows:
        cells = []
        for name in SETS:
            s = scores[name]
            mark = ""
            if scores is not base:
                diff = s.mrr - base[name].mrr
                mark = f" ({diff:+.3f})" if abs(diff) >= 0.0005 else " (=)"
            cells.append(s.cell() + mark)
        counted = [s for s in scores.values() if s.role_share is not None]
        n = sum(s.role_queries for s in counted)
        role = f"{sum(s.role_share * s.role_queries for s in counted) / n:.2f}" if n else "-"
        misses = ", ".join(scores["dev"].misses) or "none"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {role} | {misses} |")
    lines += [
        "",
        "The bracket is the MRR@10 change against the shipped row. *Named guide in top 5*: over "
        f"the questions of all sets that name exactly one guide's role ({role_queries} of "
        f"{sum(s.queries for s in base.values())}), the share of the top 5 passages that come "
        "from that guide. The learned-fusion row scores dev and the held-out sets with a model "
        "trained on all of our questions, and our sets by 5-fold cross-validation (each question "
        "scored by a model that did not see it). Rows marked RRF are variants of the fusion "
        "shipped before z-score fusion, each measured against it when it was tried.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
