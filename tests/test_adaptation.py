"""Corpus adaptation: pairs cut from the corpus, a fine-tuned copy stored in the index, and
queries that use it (and nothing else)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.errors import IndexIncompatible
from rag.index import Manifest, build_index, load_index
from rag.ingest.chunking import chunk_documents, chunk_sentences
from rag.ingest.loader import load_corpus
from rag.models.adaptation import AdaptSettings, adapted_model_id, training_pairs
from rag.models.query import load_query_embedder
from rag.search.retriever import Retriever


def _chunks(corpus: Path):
    docs, _ = load_corpus(corpus)
    return chunk_documents(docs)


def test_training_pairs_are_headings_and_sentences_against_their_passage(
    small_corpus: Path,
) -> None:
    chunks = _chunks(small_corpus)
    pairs = training_pairs(chunks)
    rows = {p.row for p in pairs}
    assert rows == set(range(len(chunks)))  # every passage teaches something
    for p in pairs:
        chunk = chunks[p.row]
        assert p.passage.startswith(chunk.section)
        if p.query == " ".join(chunk.section_path[1:]):
            assert p.passage == chunk.embedding_text()  # a heading against its whole passage
    # Inverse cloze: where a passage has several sentences, the one asked about is cut out.
    cut = [
        p
        for p in pairs
        if p.query in chunks[p.row].text and len(chunk_sentences(chunks[p.row])) > 1
    ]
    assert cut and all(p.query not in p.passage for p in cut)


def test_training_pairs_are_sampled_down_to_max_pairs_reproducibly(small_corpus: Path) -> None:
    chunks = _chunks(small_corpus)
    everything = training_pairs(chunks)
    assert len(everything) > 3
    few = AdaptSettings(max_pairs=3)
    assert training_pairs(chunks, few) == training_pairs(chunks, few)
    assert len(training_pairs(chunks, few)) == 3
    assert set(training_pairs(chunks, few)) <= set(everything)


def test_adapted_model_id_names_base_data_and_settings(small_corpus: Path) -> None:
    pairs = training_pairs(_chunks(small_corpus))
    a = adapted_model_id("base", pairs, AdaptSettings())
    assert a.startswith("base+adapted-")
    assert a == adapted_model_id("base", pairs, AdaptSettings())
    assert a != adapted_model_id("base", pairs[1:], AdaptSettings())
    assert a != adapted_model_id("base", pairs, AdaptSettings(epochs=1))


@pytest.mark.parametrize(
    "bad", [{"epochs": 0}, {"batch_size": 1}, {"max_pairs": 0}, {"learning_rate": 0}]
)
def test_adapt_settings_refuse_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AdaptSettings(**bad)


def test_a_fake_embedder_cannot_be_adapted_but_is_indexed_without(
    small_corpus: Path, tmp_path: Path, fake_embedder
) -> None:
    with pytest.raises(ValueError, match="sentence-transformers"):
        build_index(small_corpus, tmp_path / "a", fake_embedder, adapt=True)
    manifest = build_index(small_corpus, tmp_path / "b", fake_embedder)
    assert "adapted" not in manifest.extra
    assert manifest.query_model == fake_embedder.model_id


@pytest.fixture(scope="module")
def adapted_index(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Path:
    """A small corpus indexed with a model adapted to it (a few training steps)."""
    root = tmp_path_factory.mktemp("adapted")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "data-engineer.md").write_text(
        "# Data Engineer\n\nA data engineer builds and runs the pipelines that feed analytics.\n\n"
        "## Skills\n\n- SQL and data modelling\n- Spark or Flink for batch and streaming jobs\n"
        "- Orchestration with Airflow\n\n## Salary\n\nData engineers earn $120,000 on average. "
        "Seniors reach $170,000.\n",
        encoding="utf-8",
    )
    (corpus / "recruiter.md").write_text(
        "# Technical Recruiter\n\nA technical recruiter finds and hires engineers.\n\n"
        "## Day to day\n\nSourcing candidates, screening calls and coordinating interviews "
        "with hiring managers.\n",
        encoding="utf-8",
    )
    build_index(corpus, root / "index", real_embedder, adapt=True)
    return root / "index"


@pytest.mark.slow
def test_build_index_adapts_the_model_and_stores_it_in_the_index(
    adapted_index: Path, real_embedder
) -> None:
    manifest = Manifest.read(adapted_index)
    adapted = manifest.extra["adapted"]
    # The configured model stays the manifest's model, so settings keep matching the index.
    assert manifest.model == real_embedder.model_id
    assert manifest.query_model == adapted["model_id"] != manifest.model
    assert adapted["pairs"] > 0 and adapted["steps"] > 0
    assert adapted["settings"] == AdaptSettings().to_dict()
    assert (adapted_index / "model" / "config.json").is_file()
    # The ONNX export is of the adapted weights, so fast queries use them too.
    assert manifest.extra["onnx"]["model_id"] == adapted["model_id"]


@pytest.mark.slow
def test_stored_vectors_come_from_the_adapted_model_not_the_base_one(
    adapted_index: Path, real_embedder
) -> None:
    index = load_index(adapted_index)
    first = index.chunks([0])[0].embedding_text()
    stored = index.faiss.reconstruct(0)
    adapted = load_query_embedder(Settings(query_backend="torch"), index)
    assert adapted.model_id == index.manifest.query_model
    assert float(adapted.embed([first])[0] @ stored) > 0.9999
    base = real_embedder.embed([first])[0]
    assert float(base @ stored) < 0.9999  # training changed the weights


@pytest.mark.slow
def test_queries_use_the_adapted_model_through_onnx_and_torch(adapted_index: Path) -> None:
    index = load_index(adapted_index)
    onnx = load_query_embedder(Settings(), index)
    torch = load_query_embedder(Settings(query_backend="torch"), index)
    assert onnx.model_id == torch.model_id == index.manifest.query_model
    q = ["how much does a data engineer earn"]
    assert float(onnx.embed(q)[0] @ torch.embed(q)[0]) > 0.9999
    hits = Retriever.from_index(index).search(q[0], 1).hits
    assert hits[0].chunk.section == "Data Engineer > Salary"


@pytest.mark.slow
def test_a_retriever_refuses_the_base_model_on_an_adapted_index(
    adapted_index: Path, real_embedder
) -> None:
    with pytest.raises(IndexIncompatible, match="from_index"):
        Retriever(load_index(adapted_index), real_embedder)


@pytest.mark.slow
def test_an_adapted_index_without_its_model_folder_is_refused(
    adapted_index: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "index"
    shutil.copytree(adapted_index, copy)
    shutil.rmtree(copy / "model")
    with pytest.raises(IndexIncompatible, match="adapted model"):
        load_query_embedder(Settings(query_backend="torch"), load_index(copy))


@pytest.mark.slow
def test_adaptation_is_reproducible(adapted_index: Path, real_embedder, tmp_path: Path) -> None:
    corpus = adapted_index.parent / "corpus"
    build_index(corpus, tmp_path / "again", real_embedder, onnx=False, adapt=True)
    a = load_index(adapted_index).faiss.reconstruct_n(0, 3)
    b = load_index(tmp_path / "again").faiss.reconstruct_n(0, 3)
    assert Manifest.read(tmp_path / "again").query_model == Manifest.read(adapted_index).query_model
    assert np.allclose(a, b, atol=1e-5)
