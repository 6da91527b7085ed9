"""The ablation table's first row must be what `rag eval` measures, and its variants must rank
through the shipped code, or the table means nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.ablations import SHIPPED, Lab, VariantIndex, score
from benchmarks.ablations.lab import K, Ranked, flat
from benchmarks.ablations.rankers import SentenceRescore
from rag.config import Settings
from rag.evaluation import compare, load_questions
from rag.index.lexical import build_bm25
from rag.search.ranker import Ranker
from rag.search.retriever import Retriever
from tests.conftest import CORPUS

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.slow  # both tests rank with the real index


@pytest.fixture(scope="module")
def lab(real_index_dir: Path) -> Lab:
    """The lab over the real index, its query vectors encoded once for both tests."""
    return Lab(Settings(index_dir=real_index_dir, corpus_dir=CORPUS))


def test_ablation_lab_reproduces_the_shipped_hybrid_ranking(lab: Lab) -> None:
    shipped = lab.asking(lab.retriever)
    # The lab's query vectors are the ones Retriever.search encodes.
    for queries in lab.sets.values():
        for q in queries:
            want = [h.chunk.id for h in lab.retriever.search(q.text, K).hits]
            assert [c.id for c in shipped(q)] == want, q.id
    for name, file in (("dev", "dev_questions.jsonl"), ("own", "questions.jsonl")):
        ours = score(lab, lab.sets[name], shipped)
        (report,) = compare(lab.retriever, load_questions(DATA / file), ["hybrid"])
        assert (ours.hit1, ours.hit5) == (report.hit_at_1, report.hit_at_5)
        assert abs(ours.mrr - report.mrr_at_10) < 1e-9


def rebuilt(lab: Lab) -> Ranked:
    """Every part of the index rebuilt the way variants that re-embed or re-index build theirs."""
    index = VariantIndex(
        lab.index,
        chunks=lab.chunks,
        faiss=flat(lab.passages),
        sentences=flat(lab.sentences),
        sentence_rows=lab.owners,
        bm25=build_bm25([c.embedding_text() for c in lab.chunks]),
    )
    return lab.asking(Retriever(index, lab.retriever.embedder, fusion=SHIPPED))


PLUG_INS: dict[str, Callable[[Lab], Ranked]] = {
    "fusion": lambda lab: lab.asking(lab.retriever_with(SHIPPED)),
    "ranker": lambda lab: lab.asking(lab.retriever_with(ranker=Ranker(lab.index, SHIPPED))),
    "rescored": lambda lab: lab.asking(
        lab.retriever_with(ranker=SentenceRescore(lab.index, SHIPPED, K, 0.0))
    ),
    "rebuilt index": rebuilt,
}


@pytest.mark.parametrize("plug_in", PLUG_INS)
def test_ablation_variant_with_the_shipped_setup_gives_the_shipped_ranking(
    lab: Lab, plug_in: str
) -> None:
    # Variants rank through these paths; set up as shipped they must rank as shipped, or their
    # rows would measure the plumbing, not the idea.
    shipped, variant = lab.asking(lab.retriever), PLUG_INS[plug_in](lab)
    for queries in lab.sets.values():
        for q in queries:
            assert [c.id for c in variant(q)] == [c.id for c in shipped(q)], q.id
