"""The evidence rule and the metrics, checked against ranx."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.errors import RagError
from rag.evaluation import Question, evaluate, first_relevant_rank, load_questions, normalise
from rag.evaluation import normalise as norm
from tests.conftest import CORPUS, DEV_QUESTIONS, ROOT


def test_normalise_drops_markup_and_collapses_space():
    assert normalise("  **Feedback Loop**:\n  • Incorporates `outcomes`_#  ") == (
        "feedback loop: incorporates outcomes"
    )


def test_evidence_matches_across_markdown_and_bullets():
    texts = ["nothing here", "- **Feedback Loop**: Incorporates outcomes to improve"]
    assert first_relevant_rank(texts, ["Feedback Loop: Incorporates outcomes"]) == 2
    assert first_relevant_rank(texts, ["absent"]) is None


def test_metrics_agree_with_ranx():
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    docs = {f"d{i}": f"passage {i}" for i in range(10)}
    questions = [
        Question("a", "qa", ["passage 3"]),
        Question("b", "qb", ["passage 0", "passage 5"]),
        Question("c", "qc", ["passage 9"]),
        Question("d", "qd", ["missing"]),
    ]
    orders = {
        "a": ["d1", "d2", "d3", "d0"],
        "b": ["d5", "d4", "d0"],
        "c": ["d0", "d1", "d2", "d4", "d6", "d7", "d8", "d9"],
        "d": ["d0"],
    }
    report = evaluate("t", questions, lambda q: [docs[d] for d in orders[q.id]], k=10)
    qrels = Qrels(
        {
            q.id: {d: 1 for d, t in docs.items() if any(norm(e) in norm(t) for e in q.evidence)}
            or {"none": 1}
            for q in questions
        }  # fmt: skip
    )
    run = Run({qid: {d: 10.0 - i for i, d in enumerate(ds)} for qid, ds in orders.items()})
    want = ranx_evaluate(qrels, run, ["hit_rate@1", "hit_rate@5", "mrr@10", "ndcg@10"])
    assert report.hit_at_1 == pytest.approx(want["hit_rate@1"])
    assert report.hit_at_5 == pytest.approx(want["hit_rate@5"])
    assert report.mrr_at_10 == pytest.approx(want["mrr@10"])
    assert report.ndcg_at_10 == pytest.approx(want["ndcg@10"])
    assert [m["id"] for m in report.misses] == ["a", "c", "d"]


@pytest.mark.parametrize(
    "path",
    [DEV_QUESTIONS]
    + [
        ROOT / "tests" / "data" / name
        for name in (
            "questions.jsonl",
            "conversations.jsonl",
            "holdout_questions.jsonl",
            "holdout_conversations.jsonl",
        )
    ],
    ids=lambda p: p.name,
)
def test_every_evidence_string_exists_in_the_corpus(path: Path):
    corpus = normalise(" ".join(p.read_text() for p in CORPUS.rglob("*.txt")))
    for q in load_questions(path):
        found = [e for e in q.evidence if normalise(e) in corpus]
        assert found == q.evidence, f"{q.id}: evidence not in corpus"


def test_own_question_set_is_large_enough():
    assert len(load_questions(ROOT / "tests" / "data" / "questions.jsonl")) >= 40


def test_bad_question_file_names_the_line(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": "1", "question": "ok", "evidence": ["x"]}) + "\n{oops\n")
    with pytest.raises(RagError, match=r"q.jsonl:2"):
        load_questions(path)


def test_conversation_lines_use_the_last_user_turn(tmp_path: Path):
    path = tmp_path / "c.jsonl"
    turns = [{"role": "user", "content": "first"}, {"role": "user", "content": "second"}]
    path.write_text(json.dumps({"id": "c", "turns": turns, "evidence": ["x"]}) + "\n")
    (q,) = load_questions(path)
    assert q.question == "second" and q.turns == turns
