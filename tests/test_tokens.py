"""One tokenisation for BM25 and for the coverage decision's content words: every word counts,
one character long or not ("C", the "3" of "zone 3", "401k"), and both split text the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.index import build_index, load_index
from rag.index.lexical import query_tokens
from rag.search.coverage import content_words
from rag.search.retriever import Retriever


def test_bm25_keeps_words_of_one_character_and_drops_clitics():
    assert query_tokens("Do I need C or C++ in zone 3 for the 401k?") == [
        "do", "need", "c", "c", "zone", "3", "401k",
    ]  # fmt: skip
    assert query_tokens("the engineer's pay, don't") == ["engin", "pay", "don"]


@pytest.mark.parametrize(
    "question",
    ["Which zone 3 allowance applies?", "Is C taught in year 1?", "Can I move my 401k?",
     "What's the engineer's on-call pay?"],
)  # fmt: skip
def test_coverage_reads_a_question_as_bm25_does(question: str):
    tokens = [t for _, t in content_words(question)]
    assert set(tokens) <= set(query_tokens(question))
    assert [t for t in tokens if len(t) == 1 or t == "401k"] == [
        t for t in query_tokens(question) if len(t) == 1 or t == "401k"
    ]


def test_content_words_hold_one_character_words_and_numbers():
    assert content_words("What does zone 3 pay for C developers?") == [
        ("zone", "zone"), ("3", "3"), ("C", "c"), ("developers", "develop"),
    ]  # fmt: skip


def test_bm25_ranks_the_passage_with_the_one_character_word_first(tmp_path: Path, fake_embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "allowances.md").write_text(
        "# Allowances\n\n## Zone 2\n\nStaff in zone 2 receive a housing allowance each month.\n\n"
        "## Zone 3\n\nStaff in zone 3 receive a housing allowance each month.\n",
        encoding="utf-8",
    )
    build_index(corpus, tmp_path / "ix", fake_embedder)
    retriever = Retriever(load_index(tmp_path / "ix"), fake_embedder)
    hits = retriever.search("housing allowance in zone 3", 2, mode="bm25").hits
    assert hits[0].chunk.section_path[-1] == "Zone 3"
