"""Extractive answers: they quote answers, never the questions an FAQ lists, and prefer the
sentences that name what was asked."""

from __future__ import annotations

import pytest

from rag.ingest.chunking import Chunk
from rag.search.answer import AnswerConfig, build_answer, question_line
from rag.search.types import Hit
from tests.conftest import FakeEmbedder


def hit(rank: int, sentences: list[str], section: str = "FAQ") -> Hit:
    text = "\n".join(sentences)
    chunk = Chunk(f"d:{rank}", "d", "Leave", ["Leave", section], "d.md", 0, len(text), text)
    chunk.sentences = sentences
    return Hit(rank=rank, score=1.0, chunk=chunk)


FAQ = [
    "Can I carry unused vacation days over into the next year?",
    "Unused vacation days carry over up to a limit of five days.",
    "Does unused vacation expire at the end of the year?",
    "Vacation beyond the five days carried over lapses on January 1.",
]


@pytest.mark.parametrize(
    ("sentence", "asks"),
    [
        ("Can I carry unused vacation days over?", True),
        ("Q: How do we hire the best talent regardless of location?", True),
        ('He asked: "Where do I sign?"', True),
        ("Peer review question: What should this teammate keep doing?", True),
        ("Unused vacation days carry over up to a limit of five days.", False),
        ("Why it matters: teams ship faster.", False),
    ],
)
def test_a_question_line_is_a_sentence_that_asks(sentence: str, asks: bool) -> None:
    assert question_line(sentence) is asks


def test_an_answer_never_quotes_a_question_line() -> None:
    # The FAQ's questions repeat the user's words most closely; its answers are what to quote.
    query = "Can I carry unused vacation days over into the next year?"
    answer = build_answer(query, [hit(1, FAQ), hit(2, FAQ[::-1], "More")], FakeEmbedder())
    assert answer.sentences
    assert not any(s.text.endswith("?") for s in answer.sentences), answer.text
    assert "Unused vacation days carry over up to a limit of five days. [1]" in answer.text


def test_questions_are_quoted_when_questions_are_asked_for() -> None:
    questions = [
        "What does a typical day look like in this role?",
        "What would be the most important problem you would want me to solve?",
        "Asking good questions shows what you care about.",
    ]
    answer = build_answer(
        "What questions should I ask about the role?", [hit(1, questions)], FakeEmbedder()
    )
    assert any(s.text.endswith("?") for s in answer.sentences), answer.text


def test_a_passage_of_questions_alone_gives_an_empty_answer_not_a_question() -> None:
    answer = build_answer("How is pay set?", [hit(1, [FAQ[0], FAQ[2]])], FakeEmbedder())
    assert answer.sentences == [] and answer.text == ""


def test_of_two_sentences_the_one_naming_the_questions_words_comes_first() -> None:
    sentences = [
        "Teammates choose their own schedule within reason.",
        "Parental leave lasts sixteen weeks at full pay.",
    ]
    query = "How long is parental leave?"
    embedder = FakeEmbedder()
    plain = build_answer(query, [hit(1, sentences)], embedder, config=AnswerConfig(term_bonus=0))
    named = build_answer(query, [hit(1, sentences)], embedder)
    assert named.sentences[0].text == "Parental leave lasts sixteen weeks at full pay."
    by_text = {s.text: s.score for s in plain.sentences}
    # The bonus is the share of the question's content words ("long", "parental", "leave").
    assert named.sentences[0].score == pytest.approx(
        by_text[named.sentences[0].text] + AnswerConfig().term_bonus * 2 / 3, abs=1e-6
    )
