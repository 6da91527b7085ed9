"""The ablation table's first row must be what `rag eval` measures, or the table means nothing."""

from __future__ import annotations

from pathlib import Path

from benchmarks.ablations import Lab, check_shipped, score, shipped
from rag.config import Settings
from rag.evaluation import compare, load_questions
from tests.conftest import CORPUS

DATA = Path(__file__).parent / "data"


def test_ablation_lab_reproduces_the_shipped_hybrid_ranking(real_index_dir: Path) -> None:
    lab = Lab(Settings(index_dir=real_index_dir, corpus_dir=CORPUS))
    check_shipped(lab)  # raises SystemExit on the first query whose top 10 differs
    for name, file in (("dev", "dev_questions.jsonl"), ("own", "questions.jsonl")):
        ours = score(lab, lab.sets[name], lambda q: shipped(lab, q))
        (report,) = compare(lab.retriever, load_questions(DATA / file), ["hybrid"])
        assert (ours.hit1, ours.hit5) == (report.hit_at_1, report.hit_at_5)
        assert abs(ours.mrr - report.mrr_at_10) < 1e-9
