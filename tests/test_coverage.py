"""The "not covered" decision: its signals, its refusal message and where it reaches users."""

from __future__ import annotations

import re

from rag.ingest.chunking import Chunk
from rag.search.coverage import CoverageConfig, assess, content_words, noun_phrase_heads
from rag.search.retriever import NOT_COVERED, not_covered_message
from rag.search.types import Hit


class Vocab:
    def __init__(self, words: set[str]) -> None:
        self.words = words

    def has(self, token: str) -> bool:
        return token in self.words


def hit(text: str, section: str = "Skills") -> Hit:
    chunk = Chunk(
        "d:1", "d", "Data Engineer", ["Data Engineer", section], "d.md", 0, len(text), text
    )
    return Hit(rank=1, score=1.0, chunk=chunk)


VOCAB = Vocab({"data", "engin", "skill", "pipelin", "build", "spark", "salari"})


def test_content_words_leave_out_question_words_and_stem():
    assert content_words("What skills does a data engineer need?") == [
        ("skills", "skill"), ("data", "data"), ("engineer", "engin"),
    ]  # fmt: skip
    assert content_words("hi, how are you?") == [("hi", "hi")]
    assert content_words("How is it going?") == [("going", "go")]


def test_noun_phrase_heads():
    assert noun_phrase_heads("What skills does a plumber need?") == ["plumber"]
    assert noun_phrase_heads("How much does a registered nurse earn?") == ["nurse"]
    assert noun_phrase_heads("What do engineers build?") == []


def test_close_passage_with_the_questions_words_is_answered():
    cov = assess("What skills does a data engineer need?", [hit("Data engineers need Spark.")],
                 dense=0.7, sentence=0.75, vocabulary=VOCAB)  # fmt: skip
    assert cov.answered and cov.probability > 0.9
    assert cov.lexical == 1.0 and cov.terms == 3 and cov.missing == []


def test_far_passage_is_not_answered_and_names_what_is_missing():
    cov = assess("How do I make a sourdough starter?", [hit("Data engineers need Spark.")],
                 dense=0.12, sentence=0.2, vocabulary=VOCAB)  # fmt: skip
    assert not cov.answered and cov.probability < 0.1
    assert cov.missing == ["sourdough", "starter"]


def test_unknown_subject_must_clear_the_higher_bar():
    args = {"hits": [hit("Communication skills matter.")], "vocabulary": VOCAB}
    config = CoverageConfig()
    # Same evidence; only the subject differs. Tuned so the probability lands between the bars.
    plumber = assess("What skills does a plumber need?", dense=0.42, sentence=0.45, **args)
    assert config.threshold <= plumber.probability < config.unknown_subject_threshold
    assert plumber.unknown_subjects == ["plumber"] and not plumber.answered
    engineer = assess("What skills does an engineer need?", dense=0.42, sentence=0.45, **args)
    assert engineer.unknown_subjects == [] and engineer.answered


def test_no_hits_is_never_answered():
    assert not assess("data", [], dense=0.9, sentence=0.9, vocabulary=VOCAB).answered


def test_not_covered_message_names_missing_words_and_lists_titles():
    cov = assess("How do I make a sourdough starter?", [hit("x")], dense=0.1, sentence=0.1,
                 vocabulary=VOCAB)  # fmt: skip
    titles = [f"Guide {n}" for n in range(10)]
    text = not_covered_message(cov, titles)
    assert text.startswith(NOT_COVERED)
    assert "They don't mention “sourdough” or “starter”." in text
    assert text.endswith("They cover: Guide 0; Guide 1; Guide 2; Guide 3; Guide 4; Guide 5; "
                         "Guide 6; Guide 7; and 2 more.")  # fmt: skip
    assert not_covered_message(cov, ["A"], "Sorry, not in our handbook.").startswith("Sorry")


# --------------------------------------------------------------------------- edges


def test_ask_and_chat_carry_answered_and_note(client):
    body = client.post("/ask", json={"query": "Build ETL pipelines with Spark"}).json()
    assert body["answered"] is True and "note" in body
    assert re.search(r"\[\d\]", body["answer"])
    off = client.post("/ask", json={"query": "zzz qqq"}).json()
    assert off["answered"] is False
    assert off["answer"].startswith(NOT_COVERED) and off["results"]
    chat = client.post("/chat", json={"messages": [{"role": "user", "content": "zzz qqq"}]})
    assert chat.json()["answered"] is False


def test_chat_stream_done_event_says_not_covered(client):
    from tests.test_api import sse

    resp = client.post(
        "/chat", json={"messages": [{"role": "user", "content": "zzz qqq"}], "stream": True}
    )
    events = sse(resp.text)
    done = events[-1][1]
    assert events[-1][0] == "done" and done["answered"] is False
    assert "".join(d["text"] for n, d in events if n == "delta") == done["answer"]
    assert done["answer"].startswith(NOT_COVERED)


def test_not_covered_message_is_a_setting(small_corpus, tmp_path, fake_embedder):
    from rag.config import Settings
    from rag.index import build_index, load_index
    from rag.search import Retriever

    build_index(small_corpus, tmp_path / "index", fake_embedder)
    settings = Settings(model=fake_embedder.model_id, not_covered="Not in our guides.")
    retriever = Retriever(load_index(tmp_path / "index"), fake_embedder,
                          not_covered=settings.not_covered)  # fmt: skip
    answer = retriever.answer(retriever.search("zzz qqq", 3))
    assert not answer.answered and answer.text.startswith("Not in our guides.")


def test_answered_flag_is_logged(client):
    import sqlite3
    import time

    client.post("/ask", json={"query": "zzz qqq"})
    client.post("/ask", json={"query": "Build ETL pipelines with Spark"})
    client.post("/search", json={"query": "Spark"})
    from rag.analytics.querylog import db_path

    db = db_path(client.app.state.services.settings.data_dir)
    rows: list = []
    for _ in range(50):
        if db.exists():
            rows = (
                sqlite3.connect(db)
                .execute("SELECT endpoint, answered FROM queries ORDER BY id")
                .fetchall()
            )
            if len(rows) == 3:
                break
        time.sleep(0.1)
    assert rows == [("ask", 0), ("ask", 1), ("search", None)]


# --------------------------------------------------------------------------- specific subjects


def test_specific_subjects_are_names_and_the_words_of_noun_phrases():
    from rag.search.coverage import specific_subjects

    # A name past the start of a sentence, an acronym, a code, a word of a noun phrase.
    assert specific_subjects("Do ML engineers earn more in Berlin?", ["Berlin"]) == ["Berlin"]
    assert specific_subjects("Is there an HSA?", ["HSA"]) == ["HSA"]
    assert specific_subjects("Will you sponsor my H-1B visa?", ["H", "1B"]) == ["H", "1B"]
    assert specific_subjects("How long a sabbatical do I get?", ["sabbatical"]) == ["sabbatical"]
    assert specific_subjects(
        "Is there a signing bonus or recruitment incentive?", ["incentive"]
    ) == ["incentive"]
    # Words that only paraphrase: a verb, an adverb, a capitalised first word, "I".
    assert specific_subjects("Which ideas should I brush up on?", ["brush"]) == []
    assert specific_subjects("Must models respond instantly?", ["instantly"]) == []
    assert specific_subjects("Besides pay, what else?", ["Besides"]) == []
    assert specific_subjects("I wonder what pay is", ["I"]) == []
    assert specific_subjects("What does a plumber earn?", []) == []


def test_an_absent_specific_subject_must_clear_the_higher_bar():
    args = {"hits": [hit("Data engineers build pipelines with Spark.")], "vocabulary": VOCAB}
    config = CoverageConfig()
    # Same evidence; only the missing word differs: the subject of the question, or a verb.
    subject = assess("Do data engineers need a sabbatical?", dense=0.4, sentence=0.4, **args)
    verb = assess("Do data engineers polish much?", dense=0.4, sentence=0.4, **args)
    assert subject.unknown_subjects == ["sabbatical"] and verb.unknown_subjects == []
    assert subject.missing == ["sabbatical"] and verb.missing == ["polish"]
    assert subject.probability == verb.probability
    assert config.threshold <= subject.probability < config.unknown_subject_threshold
    assert not subject.answered and verb.answered
    # Passages that answer it with high confidence in other words still answer it.
    sure = assess("Do data engineers need a sabbatical?", dense=0.9, sentence=0.9, **args)
    assert sure.probability >= config.unknown_subject_threshold and sure.answered


def test_phrase_share_counts_the_questions_word_pairs_the_passages_hold_together():
    from rag.search.coverage import phrase_share

    passages = [["pet", "friend", "trip", "vet"], ["health", "insur", "premium"]]
    assert phrase_share(["health", "insur"], passages) == 1.0
    assert phrase_share(["insur", "health"], passages) == 1.0  # either order
    # "pet" and "insur" are both there, never together: another sense of the question's words.
    assert phrase_share(["pet", "insur"], passages) == 0.0
    assert phrase_share(["pet", "insur", "premium"], passages) == 0.5
    # Within the window, not beyond it.
    assert phrase_share(["pet", "vet"], passages) == 1.0
    assert phrase_share(["pet", "premium"], [["pet", "a", "b", "c", "premium"]]) == 0.0
    assert phrase_share(["salari"], passages) == 1.0  # one word: no phrase to miss


def test_coverage_reports_its_phrase_signal():
    cov = assess("What skills does a data engineer need?", [hit("Data engineers need Spark.")],
                 dense=0.7, sentence=0.75, vocabulary=VOCAB)  # fmt: skip
    assert cov.as_dict()["phrases"] == cov.phrases == 1.0


def test_a_question_none_of_whose_words_the_corpus_uses_must_clear_the_higher_bar():
    config = CoverageConfig()
    cov = assess("Sourdough starter?", [hit("Data engineers build pipelines.")], dense=0.6,
                 sentence=0.65, vocabulary=VOCAB)  # fmt: skip
    # "Sourdough" opens the sentence and stands in no noun phrase: the subject all the same.
    assert cov.unknown_subjects == cov.missing == ["Sourdough", "starter"]
    assert config.threshold <= cov.probability < config.unknown_subject_threshold
    assert not cov.answered


def test_an_acronyms_plural_is_not_missing_where_the_corpus_has_the_acronym():
    vocab = Vocab({"rsu", "offer", "stock"})
    cov = assess("What are RSUs in an offer?", [hit("An RSU is a stock grant.")], dense=0.6,
                 sentence=0.6, vocabulary=vocab)  # fmt: skip
    assert cov.missing == [] and cov.unknown_subjects == []
    assert assess("What are PIPs?", [], dense=0, sentence=0, vocabulary=vocab).missing == ["PIPs"]
