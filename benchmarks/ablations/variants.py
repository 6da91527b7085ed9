"""Every ranking idea we tried, each built as a variant of the shipped retriever.

An idea that changes the fusion is a ``FusionConfig``; one that adds a signal hands the fusion
one more list (rankers.py); one that re-embeds or re-indexes ranks the vectors or BM25 it
builds through the shipped ``Ranker`` over a ``VariantIndex``. Only the shipped ranking lives in
``rag/``; the rest stays here as the record of what was measured and why it was not kept.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.ablations.lab import (
    PREVIOUS,
    SHIPPED,
    Lab,
    Query,
    Ranked,
    Score,
    VariantIndex,
    flat,
    score_sets,
)
from benchmarks.ablations.rankers import (
    FourthRanking,
    HeadingBonus,
    IntroCap,
    SentenceRescore,
    Signal,
    SoftSentences,
)
from rag.config import Settings
from rag.index.lexical import BM25_PARAMS, build_bm25
from rag.ingest.chunking import Chunk
from rag.ingest.profiles import profile_for
from rag.ingest.sentences import passage_sentences
from rag.search.fusion import FusionConfig
from rag.search.ranker import Ranker, duplicate
from rag.search.retriever import Retriever


def fusion(lab: Lab, config: FusionConfig) -> Ranked:
    """The shipped rankings fused another way."""
    return lab.asking(lab.retriever_with(config))


def rrf(lab: Lab, weights: Sequence[float] = (1, 1, 1), k: int = 60, role: float = 1.0) -> Ranked:
    """The fusion shipped before, with other weights, RRF constant or vote for the named guide."""
    # The vote is one at rank 1, as rag.search.fusion gives it: worth more with a smaller k.
    dense, sentence, bm25 = weights
    config = replace(PREVIOUS, dense_weight=dense, sentence_weight=sentence, bm25_weight=bm25,
                     rrf_k=k, role_weight=role)  # fmt: skip
    return fusion(lab, config)


def fourth_ranking(lab: Lab, name: str, weight: float, signal: Signal) -> Ranked:
    """The fusion shipped before with a fourth ranking (the signal's first rows)."""
    config = replace(PREVIOUS, extra_weights={name: weight})
    return lab.asking(lab.retriever_with(ranker=FourthRanking(lab.index, config, name, signal)))


def extra_vectors(lab: Lab, name: str, texts: Sequence[str], weight: float) -> Ranked:
    """A fourth ranking: the query against one extra vector per passage."""
    extra = lab.retriever.encode(list(texts))
    return fourth_ranking(lab, name, weight, lambda query, vector: extra @ vector)


def question_templates(lab: Lab, weight: float) -> Ranked:
    """A fourth ranking against a question made from each passage's headings (query-query)."""

    def template(c: Chunk) -> str:
        if len(c.section_path) == 1:
            return f"What does a {c.title} do?"
        return f"{c.title}: what about {' '.join(c.section_path[1:])}?"

    return extra_vectors(lab, "questions", [template(c) for c in lab.chunks], weight)


def term_coverage(lab: Lab, weight: float) -> Ranked:
    """A fourth ranking: the IDF-weighted share of query terms a passage contains."""
    passage_terms = [lab.terms(c.embedding_text()) for c in lab.chunks]
    df = Counter(t for ts in passage_terms for t in ts)

    def idf(t: str) -> float:
        return math.log(1 + (lab.n - df[t] + 0.5) / (df[t] + 0.5))

    def signal(query: str, vector: np.ndarray) -> np.ndarray:
        qt = lab.terms(query)
        total = sum(idf(t) for t in qt) or 1.0
        return np.array([sum(idf(t) for t in qt if t in ts) / total for ts in passage_terms])

    return fourth_ranking(lab, "coverage", weight, signal)


def maxsim(lab: Lab, weight: float) -> Ranked:
    """A fourth ranking: token-level late interaction (MaxSim) from the model's tokens."""
    # Each passage scores the mean over query tokens of their best passage-token cosine.
    from rag.models.query import load_query_embedder

    # The index's query model through sentence-transformers: ONNX gives pooled vectors only.
    torch_settings = lab.settings.model_copy(update={"query_backend": "torch"})
    model = load_query_embedder(torch_settings, lab.index).model  # type: ignore[attr-defined]

    def tokens(texts: list[str]) -> list[np.ndarray]:
        out = []
        for t in model.encode(texts, output_value="token_embeddings"):
            t = t.numpy()[1:-1]  # [CLS] and [SEP] carry no term
            out.append(t / np.linalg.norm(t, axis=1, keepdims=True))
        return out

    passages = tokens([c.embedding_text() for c in lab.chunks])
    cache: dict[str, np.ndarray] = {}

    def signal(query: str, vector: np.ndarray) -> np.ndarray:
        if query not in cache:
            cache[query] = tokens([query])[0]
        return np.array([(cache[query] @ p.T).max(1).mean() for p in passages])

    return fourth_ranking(lab, "maxsim", weight, signal)


def heading_bonus(lab: Lab, bonus: float) -> Ranked:
    """The fusion shipped before plus a bonus for query terms in the passage's last heading."""
    leaf = [lab.terms(c.section_path[-1]) if len(c.section_path) > 1 else set() for c in lab.chunks]
    ranker = HeadingBonus(lab.index, PREVIOUS, lab.terms, leaf, bonus)
    return lab.asking(lab.retriever_with(ranker=ranker))


def intro_cap(lab: Lab, min_depth: int) -> Ranked:
    """A part's introduction (``min_depth`` deep or more) never outranks its best subsection."""
    capped = {i for i, c in enumerate(lab.chunks) if len(c.section_path) >= min_depth}
    ranker = IntroCap(lab.index, PREVIOUS, lab.subsections(), capped)
    return lab.asking(lab.retriever_with(ranker=ranker))


def sentence_rescore(lab: Lab, head: int, gain: float) -> Ranked:
    """The first passages of the fusion shipped before re-scored by their best sentence."""
    return lab.asking(lab.retriever_with(ranker=SentenceRescore(lab.index, PREVIOUS, head, gain)))


def sentence_lse(lab: Lab, temperature: float) -> Ranked:
    """The sentence ranking by a soft maximum over each passage's sentences."""
    ranker = SoftSentences(lab.index, PREVIOUS, lab.sentences, lab.owners, temperature)
    return lab.asking(lab.retriever_with(ranker=ranker))


def prf(lab: Lab, beta: float, top: int) -> Ranked:
    """Dense pseudo-relevance feedback: the vector moved towards its first hits, searched again."""
    retriever = lab.retriever_with(PREVIOUS)

    def vector(q: Query) -> np.ndarray:
        hits = retriever.search_vector(q.text, q.vector, top).hits
        v = q.vector + beta * lab.passages[[h.row for h in hits]].mean(0)
        return v / np.linalg.norm(v)

    return lab.asking(retriever, vector)


def hubness(lab: Lab, k: int, weight: float) -> Ranked:
    """Hubness reduction (as CSLS, Lample et al., 2018) on both vector rankings."""
    # Each passage's and sentence's cosine less ``weight`` times its mean cosine to the k
    # nearest sentences of other passages, so generic text close to everything stops winning
    # near-ties. The penalty rides as one more coordinate (the query's is 1), so FAISS ranks
    # the corrected cosines through the shipped ranker.
    chunks, owners = lab.chunks, lab.owners
    near = np.array([[duplicate(a, b) for b in chunks] for a in chunks])  # incl. itself
    to_sentences = np.where(near[:, owners], -1.0, lab.passages @ lab.sentences.T)
    between = np.where(near[owners][:, owners], -1.0, lab.sentences @ lab.sentences.T)
    hub_p = np.sort(to_sentences, axis=1)[:, -k:].mean(1)
    hub_s = np.sort(between, axis=1)[:, -k:].mean(1)
    index = VariantIndex(
        lab.index,
        faiss=flat(np.column_stack([lab.passages, -weight * hub_p])),
        sentences=flat(np.column_stack([lab.sentences, -weight * hub_s])),
    )
    retriever = lab.retriever_with(ranker=Ranker(index, SHIPPED))
    return lab.asking(retriever, lambda q: np.append(q.vector, 1.0))


def role_stripped(lab: Lab, mix: float) -> Ranked:
    """A query that names one guide embedded half with the role replaced by "they"."""
    # The bonus already favours the guide; its name should stop pulling in passages that
    # repeat it.
    from rag.search.subjects import SubjectFinder

    finder = SubjectFinder([d.title for d in lab.index.documents()])
    cache: dict[str, np.ndarray] = {}

    def vector(q: Query) -> np.ndarray:
        if lab.retriever.named_document(q.text) is None:
            return q.vector
        if q.text not in cache:
            text, pos = "", 0
            for span in finder.find(q.text):
                text += q.text[pos : span.start] + "they"
                pos = span.end
            cache[q.text] = lab.retriever.encode([text + q.text[pos:]])[0]
        v = mix * cache[q.text] + (1 - mix) * q.vector
        return v / np.linalg.norm(v)

    return lab.asking(lab.retriever, vector)


def reindexed(
    lab: Lab, texts: Sequence[str], sentences: Sequence[tuple[str, int]], config: FusionConfig
) -> Ranked:
    """The same passages ranked by vectors and BM25 of other texts (``sentences``: text, row)."""
    # Sentences one passage after another, as the built index stores them.
    sentences = sorted(sentences, key=lambda s: s[1])
    index = VariantIndex(
        lab.index,
        faiss=flat(lab.retriever.encode(list(texts))),
        sentences=flat(lab.retriever.encode([t for t, _ in sentences])),
        sentence_rows=np.array([row for _, row in sentences], dtype=np.int64),
        bm25=build_bm25(texts),
    )
    return lab.asking(lab.retriever_with(ranker=Ranker(index, config)))


def summaries_to_parent(lab: Lab) -> Ranked:
    """Closing summaries embedded and indexed with their part's introduction."""
    # A summary glued to a part's last subsection ("By adhering to these best practices, ...")
    # is about the whole part.
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
    return reindexed(lab, texts, sentences, SHIPPED)


def bm25(lab: Lab, k1: float, b: float, path_twice: bool = False) -> Ranked:
    """The shipped ranking with BM25 built with other parameters or the heading path twice."""
    texts = [(f"{c.section}\n" if path_twice else "") + c.embedding_text() for c in lab.chunks]
    index = VariantIndex(lab.index, bm25=build_bm25(texts, {**BM25_PARAMS, "k1": k1, "b": b}))
    return lab.asking(lab.retriever_with(ranker=Ranker(index, SHIPPED)))


def merged_sections(lab: Lab, max_chars: int) -> list[tuple[Chunk, list[Chunk]]]:
    """Consecutive small sibling sections packed into one passage of at most max_chars."""
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


def merged(lab: Lab, max_chars: int) -> Ranked:
    """Small sibling sections merged into larger passages, ranked by the fusion shipped before."""
    # Other passages than the index's: the retriever is over a VariantIndex of them.
    groups = merged_sections(lab, max_chars)
    chunks = [c for c, _ in groups]
    sentences = []
    for row, (_, parts) in enumerate(groups):
        for part in parts:  # sentences keep their own subsection as context
            for s in passage_sentences(part.text, profile=profile_for(part.source)) or [part.text]:
                sentences.append((f"{part.section}: {s}", row))
    index = VariantIndex(
        lab.index,
        chunks=chunks,
        faiss=flat(lab.retriever.encode([c.embedding_text() for c in chunks])),
        sentences=flat(lab.retriever.encode([t for t, _ in sentences])),
        sentence_rows=np.array([row for _, row in sentences], dtype=np.int64),
        bm25=build_bm25([c.embedding_text() for c in chunks]),
    )
    return lab.asking(Retriever(index, lab.retriever.embedder, fusion=PREVIOUS))


def unadapted(settings: Settings) -> dict[str, Score]:
    """The shipped retriever over an index built with the base model, not adapted."""
    import tempfile

    from rag.index import build_index
    from rag.models.embedder import load_embedder

    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        embedder = load_embedder(settings.model, settings.batch_size)
        build_index(Path(settings.corpus_dir), index_dir, embedder, adapt=False)
        base = Lab(settings.model_copy(update={"index_dir": index_dir}))
        scores = score_sets(base, base.asking(base.retriever))
        base.index.close()
        return scores
