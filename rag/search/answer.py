"""Extractive answers: the few sentences of the top passages closest to the question, each
marked [n] with the rank of the passage it came from. No language model is involved."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag.index.lexical import query_tokens
from rag.index.store import Index
from rag.ingest.sentences import list_titles
from rag.models.embedder import Embedder
from rag.search.coverage import content_words
from rag.search.types import Hit

# Questions asking for an amount want the sentence that states one.
_QUANTITY_RE = re.compile(
    r"\b(how (much|many|fast|big|large)|salar(y|ies)|pay|paid|earn\w*|compensation|wages?"
    r"|income|percent\w*|rate|growth|market size|range)\b",
    re.IGNORECASE,
)
# An amount starts where its run of digits and separators starts ("1,5" is never tried from its
# "5"): trying every start over "1,1,1,..." was quadratic. Whether a sentence matches is unchanged.
_NUMBER_RE = re.compile(
    r"\$\s?\d|(?<!\d)(?<!\d[.,])\d+(?:[.,]\d+)*\s?(?:%|percent|k\b|billion|million)|\d{2,}"
)
# Signposts talk about the guide, not the role ("Here are the key soft skills:", "This overview
# provides a foundation for ... subsequent sections", "By adhering to these best practices, ..."
# closing a list): they match a question's words and answer nothing on their own, so they only
# get in when nothing else is close.
_SIGNPOST_RE = re.compile(
    r"^(?:here(?:'s|’s| is| are)\b|this (?:overview|guide|section|article|document|summary)\b"
    r"|by (?:\w+ly\s+)?\w+ing (?:(?:to|on|with|from) )?(?:these|those|this|the above)\b)"
    r"|\b(?:subsequent|following|next|later) sections\b",
    re.IGNORECASE,
)
# A line that asks rather than tells ("Can I take PTO during my notice period?" opening an FAQ
# entry, or a question a reviewer is asked): quoted, it reads as an answer and answers nothing.
_QUESTION_LINE_RE = re.compile(r"\?[\"'”’)\]]*$")
# Unless questions are what is asked for ("What questions should I ask at the end?", "Which
# questions does Palantir ask?"): then they are the answer.
_ASKS_FOR_QUESTIONS_RE = re.compile(r"^\W*(?:what|which)\b.*\b(?:questions?|ask)\b", re.IGNORECASE)


@dataclass(frozen=True)
class AnswerConfig:
    """How sentences are chosen for an answer; scores are cosines between unit vectors."""

    max_sentences: int = 4
    min_sentences: int = 2
    # Sentences are taken from this many top passages.
    passages: int = 3
    # Past ``min_sentences``, a sentence this far below the best one is left out.
    margin: float = 0.12
    # Subtracted per rank below the first: the passage ranking already weighed the whole passage.
    rank_prior: float = 0.03
    # Added to a sentence that states an amount, when the question asks for one.
    quantity_bonus: float = 0.15
    # Subtracted from signposts and list titles: they repeat a question's words, answer nothing.
    signpost_penalty: float = 0.2
    # A sentence this close to one already chosen says the same again.
    duplicate_cosine: float = 0.92
    # Added in proportion to the share of the question's content words a sentence carries: of
    # two sentences equally close in meaning, the one that names what was asked answers it.
    term_bonus: float = 0.1


@dataclass
class AnswerSentence:
    """One sentence of the answer and the 1-based rank of the passage it cites."""

    text: str
    ref: int
    score: float


@dataclass
class Answer:
    """The answer text with [n] markers, and its sentences.

    ``answered`` is False when the corpus does not answer the question: ``text`` then says so
    (and what the corpus covers) and ``sentences`` is empty. ``note`` qualifies an answer, e.g.
    that the guide the question names does not mention what it asks about.
    """

    text: str
    sentences: list[AnswerSentence]
    answered: bool = True
    note: str | None = None
    coverage: dict[str, Any] | None = None


def build_answer(
    query: str,
    hits: Sequence[Hit],
    embedder: Embedder,
    *,
    query_vector: np.ndarray | None = None,
    index: Index | None = None,
    config: AnswerConfig | None = None,
) -> Answer:
    """Pick a few sentences from the top passages, most relevant first, each cited as [n].

    The sentences are those the build split each passage into and stored with it, in the
    order of the index's sentence vectors, which are reused.
    """
    c = config or AnswerConfig()
    top = hits[: c.passages]
    keep = _keeps_question_lines(query)
    per_hit = [[s for s in hit.chunk.sentences if keep or not question_line(s)] for hit in top]
    cands = [(s, hit.rank) for hit, sentences in zip(top, per_hit, strict=True) for s in sentences]
    if not cands:
        return Answer("", [])
    # The index keeps a vector per sentence (for the sentence ranking); reusing them spares the
    # model a batch of encodes on every answer. Passages without them are embedded here.
    stored = [
        _kept(_stored_vectors(index, hit, len(hit.chunk.sentences)), hit.chunk.sentences, keep)
        for hit in top
    ]
    texts = [] if query_vector is not None else [query]
    texts += [
        s
        for sentences, vectors in zip(per_hit, stored, strict=True)
        if vectors is None
        for s in sentences
    ]
    fresh = iter(embedder.embed(texts)) if texts else iter(())
    q = query_vector if query_vector is not None else next(fresh)
    rows: list[np.ndarray] = []
    for sentences, vectors in zip(per_hit, stored, strict=True):
        rows.extend(vectors if vectors is not None else [next(fresh) for _ in sentences])
    sv = np.asarray(rows, dtype=np.float32)
    # The passage ranking already weighs the whole passage; a small prior keeps it in play.
    scores = sv @ q - c.rank_prior * np.array([ref - 1 for _, ref in cands], dtype=np.float32)
    if _QUANTITY_RE.search(query):
        scores += c.quantity_bonus * np.array(
            [bool(_NUMBER_RE.search(s)) for s, _ in cands], dtype=np.float32
        )
    # A numbered title over a list ("Data Preparation and Analysis") is passed over like a
    # signpost: its items say what it means.
    titles = {hit.rank: list_titles(hit.chunk.text) for hit in top}
    scores -= c.signpost_penalty * np.array(
        [_signpost(s) or s in titles[ref] for s, ref in cands], dtype=np.float32
    )
    terms = {t for _, t in content_words(query)}
    if terms and c.term_bonus:
        scores += c.term_bonus * np.array(
            [len(terms.intersection(query_tokens(s))) / len(terms) for s, _ in cands],
            dtype=np.float32,
        )
    order = np.argsort(-scores, kind="stable")
    chosen: list[int] = []
    best = float(scores[order[0]])
    for i in order:
        if len(chosen) >= c.max_sentences:
            break
        if len(chosen) >= c.min_sentences and scores[i] < best - c.margin:
            break
        if any(float(sv[i] @ sv[j]) > c.duplicate_cosine for j in chosen):
            continue  # near-duplicate of a sentence already chosen
        chosen.append(int(i))
    sentences = [
        AnswerSentence(_as_sentence(cands[i][0]), cands[i][1], float(scores[i])) for i in chosen
    ]
    text = " ".join(f"{s.text} [{s.ref}]" for s in sentences)
    return Answer(text, sentences)


def question_line(sentence: str) -> bool:
    """A sentence that asks a question (its label aside) rather than stating anything."""
    return bool(_QUESTION_LINE_RE.search(sentence.rstrip()))


def _keeps_question_lines(query: str) -> bool:
    """Whether the question asks for questions, so that questions answer it."""
    return bool(_ASKS_FOR_QUESTIONS_RE.search(query))


def _kept(vectors: np.ndarray | None, sentences: Sequence[str], keep: bool) -> np.ndarray | None:
    """The stored vectors of the sentences an answer may quote, in their order."""
    if vectors is None or keep:
        return vectors
    return vectors[[not question_line(s) for s in sentences]]


def _signpost(sentence: str) -> bool:
    """A sentence about the guide itself; a list item labelled by one ("Here are the key
    skills: SQL") is judged by its own words."""
    label, sep, item = sentence.partition(": ")
    return bool(_SIGNPOST_RE.search((item if sep and item.strip() else label).strip()))


def _stored_vectors(index: Index | None, hit: Hit, n: int) -> np.ndarray | None:
    """The index's vectors of a passage's ``n`` stored sentences (None where it has none; a
    passage without sentences has one vector, of its whole text, which is not a sentence's)."""
    if index is None or hit.row is None:
        return None
    vectors = index.sentence_vectors(hit.row)
    return vectors if vectors is not None and len(vectors) == n else None


def _as_sentence(text: str) -> str:
    text = text.strip()
    return text if text[-1] in ".!?" else text + "."
