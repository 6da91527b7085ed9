"""Extractive answers: the few sentences of the top passages closest to the question, each
marked [n] with the rank of the passage it came from. No language model is involved."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.chunking import passage_sentences
from rag.embedding import Embedder
from rag.retrieval import Hit


@dataclass
class AnswerSentence:
    """One sentence of the answer and the 1-based rank of the passage it cites."""

    text: str
    ref: int
    score: float


@dataclass
class Answer:
    """The answer text with [n] markers, and its sentences."""

    text: str
    sentences: list[AnswerSentence]


def build_answer(
    query: str,
    hits: Sequence[Hit],
    embedder: Embedder,
    *,
    max_sentences: int = 4,
    min_sentences: int = 2,
    passages: int = 3,
    margin: float = 0.12,
) -> Answer:
    """Pick 2-4 sentences from the top passages, most relevant first, each cited as [n]."""
    cands: list[tuple[str, int]] = []
    for hit in hits[:passages]:
        cands.extend((s, hit.rank) for s in passage_sentences(hit.chunk.text))
    if not cands:
        return Answer("", [])
    vectors = embedder.embed([query] + [s for s, _ in cands])
    q, sv = vectors[0], vectors[1:]
    # The passage ranking already weighs the whole passage; a small prior keeps it in play.
    scores = sv @ q - 0.03 * np.array([ref - 1 for _, ref in cands], dtype=np.float32)
    order = np.argsort(-scores, kind="stable")
    chosen: list[int] = []
    best = float(scores[order[0]])
    for i in order:
        if len(chosen) >= max_sentences:
            break
        if len(chosen) >= min_sentences and scores[i] < best - margin:
            break
        if any(float(sv[i] @ sv[j]) > 0.92 for j in chosen):
            continue  # near-duplicate of a sentence already chosen
        chosen.append(int(i))
    sentences = [
        AnswerSentence(_as_sentence(cands[i][0]), cands[i][1], float(scores[i])) for i in chosen
    ]
    text = " ".join(f"{s.text} [{s.ref}]" for s in sentences)
    return Answer(text, sentences)


def _as_sentence(text: str) -> str:
    text = text.strip()
    return text if text[-1] in ".!?" else text + "."
