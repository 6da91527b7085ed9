"""The ONNX query path: same vectors as sentence-transformers, and no torch in a query process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.errors import IndexIncompatible, RagError
from rag.index import build_index, load_index
from rag.models.onnx import OnnxEmbedder, has_onnx
from rag.models.query import load_query_embedder
from tests.conftest import DEV_QUESTIONS, ROOT

pytestmark = pytest.mark.slow

HEAVY = ("torch", "sentence_transformers", "transformers")


@pytest.fixture(scope="session")
def onnx_embedder(real_index_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder(real_index_dir / "onnx")


def _texts(index_dir: Path) -> list[str]:
    """Real queries, real passages, and passages long enough to be truncated."""
    queries = [json.loads(line)["question"] for line in DEV_QUESTIONS.read_text().splitlines()]
    passages = [c.embedding_text() for c in load_index(index_dir).all_chunks()]
    long = [" ".join(passages[i : i + 6]) for i in range(0, len(passages), 6)]
    odd = ["", "   padded   ", "C++ / Rust? salaries: $189,477 (2024)", "naïve Bayes für Ärzte"]
    return queries + passages + long + odd


def test_build_exports_onnx_and_records_it(real_index_dir: Path):
    index = load_index(real_index_dir)
    info = index.manifest.extra["onnx"]
    # The export is of the weights queries need (the corpus-adapted ones when adaptation is on).
    assert info["model_id"] == index.manifest.query_model
    assert has_onnx(real_index_dir / info["path"])
    # Weights live beside the graph, where onnxruntime can memory-map them.
    assert (real_index_dir / "onnx" / "model.onnx").stat().st_size < 1_000_000
    assert (real_index_dir / "onnx" / "model.onnx.data").stat().st_size > 50_000_000
    config = json.loads((real_index_dir / "onnx" / "config.json").read_text())
    assert config["pooling"] == "mean" and config["normalize"] is True
    assert config["max_seq_length"] == 256 and config["dim"] == 384


def test_onnx_matches_torch_on_queries_passages_and_truncated_text(
    real_index_dir: Path, onnx_embedder: OnnxEmbedder
):
    from rag.config import Settings

    # The same weights through sentence-transformers.
    torch_embedder = load_query_embedder(
        Settings(query_backend="torch"), load_index(real_index_dir)
    )
    texts = _texts(real_index_dir)
    tokens = [len(torch_embedder.model.tokenizer(t)["input_ids"]) for t in texts]
    assert max(tokens) > onnx_embedder.max_seq_length, "no text long enough to be truncated"
    expected = torch_embedder.embed(texts)
    got = onnx_embedder.embed(texts)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosine = (got * expected).sum(axis=1)
    worst = int(np.argmin(cosine))
    assert cosine.min() >= 0.999, f"cosine {cosine.min():.5f} for {texts[worst][:80]!r}"


def test_onnx_vectors_do_not_depend_on_the_batch(onnx_embedder: OnnxEmbedder):
    texts = ["data engineer salary", "what does an ML systems engineer do all day?" * 3, "SQL"]
    together = onnx_embedder.embed(texts)
    alone = np.vstack([onnx_embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert onnx_embedder.embed([]).shape == (0, onnx_embedder.dim)


@pytest.mark.parametrize(
    ("backend", "expected"),
    [("auto", "OnnxEmbedder"), ("onnx", "OnnxEmbedder"), ("torch", "SentenceTransformerEmbedder")],
)
def test_query_backend_setting_picks_the_embedder(real_index_dir: Path, backend, expected):
    from rag.config import Settings

    embedder = load_query_embedder(Settings(query_backend=backend), load_index(real_index_dir))
    assert type(embedder).__name__ == expected
    assert embedder.dim == 384


def test_query_backend_without_an_export(small_corpus: Path, tmp_path: Path, fake_embedder):
    from rag.config import Settings

    build_index(small_corpus, tmp_path / "index", fake_embedder)
    index = load_index(tmp_path / "index")
    assert "onnx" not in index.manifest.extra
    with pytest.raises(IndexIncompatible, match="no ONNX export"):
        load_query_embedder(Settings(query_backend="onnx"), index)
    with pytest.raises(RagError, match="RAG_QUERY_BACKEND"):
        load_query_embedder(Settings(query_backend="tensorflow"), index)


def _run(code: str, index_dir: Path) -> dict:
    env = {**os.environ, "RAG_INDEX_DIR": str(index_dir), "RAG_CORPUS_DIR": str(ROOT / "corpus")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


_REPORT = (
    f"import json, sys\nheavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
    "print(json.dumps({'heavy': heavy, 'top': result.hits[0].chunk.doc_id}))"
)


def test_a_query_process_never_imports_torch(real_index_dir: Path):
    code = (
        "from rag.config import Settings\n"
        "from rag.models.query import load_query_embedder\n"
        "from rag.index import load_index\n"
        "from rag.search import Retriever\n"
        "index = load_index(Settings().index_dir, Settings().model)\n"
        "retriever = Retriever(index, load_query_embedder(Settings(), index))\n"
        "result = retriever.search('What skills does an ML fraud engineer need?')\n" + _REPORT
    )
    report = _run(code, real_index_dir)
    assert report["heavy"] == []
    assert report["top"]


def test_retriever_from_settings_never_imports_torch(real_index_dir: Path):
    code = (
        "from rag.search import Retriever\n"
        "result = Retriever.from_settings().search('data engineer salary')\n" + _REPORT
    )
    assert _run(code, real_index_dir)["heavy"] == []
