"""The index directory: round trip, self-description, refusal, staleness, atomic replace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.errors import IndexIncompatible, IndexNotFound
from rag.index import (
    FORMAT_VERSION,
    Manifest,
    build_index,
    corpus_fingerprint,
    corpus_hashes,
    load_index,
)
from rag.index.lock import lock_path


def test_index_round_trip_keeps_chunks_and_vectors(index_dir: Path, small_corpus: Path):
    index = load_index(index_dir)
    chunks = index.all_chunks()
    assert index.faiss.ntotal == len(chunks) == index.manifest.counts["chunks"]
    assert {c.doc_id for c in chunks} == {"data-engineer", "data-analyst", "technical-recruiter"}
    assert index.sentences is not None and index.sentences.ntotal >= len(chunks)
    assert int(index.sentence_rows.max()) == len(chunks) - 1


def test_manifest_describes_the_build(index_dir: Path, small_corpus: Path):
    data = json.loads((index_dir / "manifest.json").read_text())
    assert data["format_version"] == FORMAT_VERSION
    assert data["model"] == "fake-hash-embedder"
    assert data["dim"] == 64
    assert data["chunker"]["max_chars"] == 800
    assert data["faiss"]["type"] == "IndexFlatIP"
    assert data["counts"] == {"sources": 3, "documents": 3, "chunks": data["counts"]["chunks"]}
    assert set(data["sources"]) == {"data-engineer.md", "recruiter.txt", "sub/analyst.html"}
    assert all(len(h) == 64 for h in data["sources"].values())
    assert data["built_at"]


def test_index_refuses_other_model(index_dir: Path):
    with pytest.raises(IndexIncompatible, match="built with model 'fake-hash-embedder'"):
        load_index(index_dir, "sentence-transformers/all-MiniLM-L6-v2")


def test_index_refuses_other_format_version(index_dir: Path):
    manifest = json.loads((index_dir / "manifest.json").read_text())
    manifest["format_version"] = 99
    (index_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexIncompatible, match="format version 99"):
        load_index(index_dir)


def test_missing_index_says_how_to_build_one(tmp_path: Path):
    with pytest.raises(IndexNotFound, match="rag index"):
        load_index(tmp_path / "nowhere")


def test_changed_corpus_is_reported_stale(index_dir: Path, small_corpus: Path):
    index = load_index(index_dir)
    assert index.stale_sources(small_corpus) == []
    (small_corpus / "recruiter.txt").write_text("Recruiter\n\nOverview\n\nChanged text.\n")
    (small_corpus / "new.md").write_text("# New\n\nA new guide.\n")
    (small_corpus / "data-engineer.md").unlink()
    assert index.stale_sources(small_corpus) == ["data-engineer.md", "new.md", "recruiter.txt"]


def test_corpus_fingerprint_covers_the_hashed_files_by_size_and_mtime(small_corpus: Path):
    (small_corpus / ".draft.md").write_text("# Hidden\n")
    (small_corpus / "logo.png").write_bytes(b"\x89PNG")
    fingerprint = corpus_fingerprint(small_corpus)
    assert [path for path, _, _ in fingerprint] == list(corpus_hashes(small_corpus))
    recruiter = (small_corpus / "recruiter.txt").stat()
    assert ("recruiter.txt", recruiter.st_size, recruiter.st_mtime_ns) in fingerprint


def test_rebuild_replaces_the_index_atomically(index_dir: Path, small_corpus: Path, fake_embedder):
    old = Manifest.read(index_dir)
    (small_corpus / "new.md").write_text("# Product Manager\n\nA product manager owns a roadmap.\n")
    build_index(small_corpus, index_dir, fake_embedder)
    new = Manifest.read(index_dir)
    assert new.counts["documents"] == old.counts["documents"] + 1
    assert _debris(index_dir) == []


def test_failed_build_leaves_the_previous_index_serving(
    index_dir: Path, small_corpus: Path, fake_embedder
):
    before = (index_dir / "manifest.json").read_text()
    index = load_index(index_dir)

    def explode(tmp: Path) -> None:
        assert (tmp / "vectors.faiss").exists()  # the new index was written, then we fail
        raise RuntimeError("disk full")

    (small_corpus / "new.md").write_text("# Nurse\n\nCares for patients.\n")
    with pytest.raises(RuntimeError, match="disk full"):
        build_index(small_corpus, index_dir, fake_embedder, before_swap=explode)
    assert (index_dir / "manifest.json").read_text() == before
    assert load_index(index_dir).manifest.counts == index.manifest.counts
    assert _debris(index_dir) == []


def test_loaded_index_keeps_serving_its_own_rows_after_a_rebuild(
    index_dir: Path, small_corpus: Path, fake_embedder
):
    index = load_index(index_dir)
    first = index.all_chunks()
    (small_corpus / "new.md").write_text("# Actuary\n\nAn actuary prices risk for insurers.\n")
    build_index(small_corpus, index_dir, fake_embedder)
    assert index.all_chunks() == first


def test_documents_are_stored_with_text_and_outline(index_dir: Path):
    index = load_index(index_dir)
    doc = index.document("data-engineer")
    assert doc.title == "Data Engineer"
    assert "Build ETL pipelines with Spark" in doc.text
    assert [s["path"][-1] for s in doc.outline] == ["Data Engineer", "Responsibilities", "Salary"]
    assert {d.id for d in index.documents()} == {
        "data-engineer",
        "data-analyst",
        "technical-recruiter",
    }


def test_large_indexes_switch_to_hnsw():
    import numpy as np

    from rag.index.ann import make_faiss_index

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((300, 16)).astype("float32")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, params = make_faiss_index(vectors, "hnsw")
    assert params["type"] == "IndexHNSWFlat" and params["ntotal"] == 300
    scores, ids = index.search(vectors[:5], 1)
    assert list(ids[:, 0]) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("name", "content"),
    [("crlf.txt", b"Nurse\r\n\r\nOverview\r\n\r\nCares for patients.\r\n"),
     ("bom.md", "\ufeff# Nurse\n\nCares.\n".encode()),
     ("empty.txt", b""),
     ("binary.md", b"\x00\x01\x02")],
)  # fmt: skip
def test_fresh_index_is_not_stale_whatever_its_files_hold(
    small_corpus: Path, tmp_path: Path, fake_embedder, name: str, content: bytes
):
    (small_corpus / name).write_bytes(content)
    build_index(small_corpus, tmp_path / "index", fake_embedder)
    assert load_index(tmp_path / "index").stale_sources(small_corpus) == []


def test_each_chunk_has_one_stored_vector_per_sentence(index_dir: Path):
    from rag.ingest.chunking import chunk_sentences

    index = load_index(index_dir)
    for row, chunk in enumerate(index.all_chunks()):
        vectors = index.sentence_vectors(row)
        assert vectors is not None
        assert len(vectors) == len(chunk_sentences(chunk) or [chunk.text])


def _debris(index_dir: Path) -> list[str]:
    """Hidden siblings of the index other than its lock file (which stays, as lock files do)."""
    lock = lock_path(index_dir)
    return [
        p.name
        for p in index_dir.parent.iterdir()
        if p.name.startswith(".") and p.name not in (lock.name, lock.name + ".owner")
    ]
