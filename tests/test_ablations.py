"""The ablation table's first row must be what `rag eval` measures, or the table means nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.ablations import Lab, check_shipped, ranked_rows, score, shipped, zfuse
from rag.config import Settings
from rag.evaluation import compare, load_questions
from tests.conftest import CORPUS

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.slow  # both tests rank with the real index


@pytest.fixture(scope="module")
def lab(real_index_dir: Path) -> Lab:
    """The lab over the real index, its query vectors encoded once for both tests."""
    return Lab(Settings(index_dir=real_index_dir, corpus_dir=CORPUS))


def test_ablation_lab_reproduces_the_shipped_hybrid_ranking(lab: Lab) -> None:
    check_shipped(lab)  # raises SystemExit on the first query whose top 10 differs
    for name, file in (("dev", "dev_questions.jsonl"), ("own", "questions.jsonl")):
        ours = score(lab, lab.sets[name], lambda q: shipped(lab, q))
        (report,) = compare(lab.retriever, load_questions(DATA / file), ["hybrid"])
        assert (ours.hit1, ours.hit5) == (report.hit_at_1, report.hit_at_5)
        assert abs(ours.mrr - report.mrr_at_10) < 1e-9


def test_ablation_fusion_over_full_score_arrays_matches_the_shipped_one(lab: Lab) -> None:
    # Variants that re-embed or re-index rank through zfuse; on the shipped inputs it must give
    # the shipped ranking, or their rows would measure the fusion code, not the idea.
    for q in lab.sets["dev"] + lab.sets["own"]:
        ours = zfuse(lab, q, lab.passages @ q.vector, lab.sentences @ q.vector, q.bm25)
        assert ranked_rows(lab.chunks, ours) == ranked_rows(lab.chunks, shipped(lab, q)), q.id
