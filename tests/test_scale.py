"""Scale machinery at small sizes: synthetic data, the ANN index types, memory-mapped loading.

The real scale runs (10k to 1M vectors) live in benchmarks/; these only pin correctness.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from benchmarks import synthetic
from rag.index import ann as index_module
from rag.index import build_index, load_index
from rag.index.ann import make_faiss_index
from rag.index.lexical import import_bm25s


def _recall_at_10(index, vectors: np.ndarray, queries: np.ndarray) -> float:
    import faiss

    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, 10)
    _, found = index.search(queries, 10)
    return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))


def test_synthetic_data_is_deterministic_and_normalised():
    assert synthetic.document(3, seed=1) == synthetic.document(3, seed=1)
    assert synthetic.document(3, seed=1) != synthetic.document(4, seed=1)
    assert list(synthetic.passages(5)) == list(synthetic.passages(5))
    a = synthetic.clustered_vectors(1000, 32, clusters=10)
    b = synthetic.clustered_vectors(1000, 32, clusters=10)
    assert a.dtype == np.float32 and a.shape == (1000, 32)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_synthetic_corpus_indexes_like_a_real_one(tmp_path: Path, fake_embedder):
    corpus = synthetic.write_corpus(tmp_path / "corpus", 6)
    manifest = build_index(corpus, tmp_path / "index", fake_embedder)
    assert manifest.counts["documents"] == 6
    assert manifest.counts["chunks"] >= 6


def test_ivf_index_keeps_recall_and_records_its_parameters(tmp_path: Path):
    vectors = synthetic.clustered_vectors(20_000, 64, clusters=200)
    queries = synthetic.query_vectors(100, 64, clusters=200)
    index, params = make_faiss_index(vectors, "ivf")
    assert params["type"] == "IndexIVFFlat" and params["ntotal"] == 20_000
    assert params["nlist"] >= 16 and 1 <= params["nprobe"] <= params["nlist"]
    assert _recall_at_10(index, vectors, queries) >= 0.95

    import faiss

    faiss.write_index(index, str(tmp_path / "v.faiss"))
    loaded = index_module.read_faiss(tmp_path / "v.faiss", mmap=True)
    assert loaded.nprobe == params["nprobe"]  # the search setting travels with the file


def test_hnsw_index_keeps_recall():
    vectors = synthetic.clustered_vectors(5_000, 32, clusters=50)
    queries = synthetic.query_vectors(100, 32, clusters=50)
    index, params = make_faiss_index(vectors, "hnsw")
    assert params["efSearch"] == index.hnsw.efSearch
    assert _recall_at_10(index, vectors, queries) >= 0.95


def test_auto_switches_to_approximate_search_above_the_threshold(monkeypatch):
    vectors = synthetic.clustered_vectors(3_000, 16, clusters=20)
    monkeypatch.setattr(index_module, "EXACT_SEARCH_MAX", 10_000)
    assert make_faiss_index(vectors)[1]["type"] == "IndexFlatIP"
    monkeypatch.setattr(index_module, "EXACT_SEARCH_MAX", 1_000)
    chosen = make_faiss_index(vectors)[1]["type"]
    assert chosen == make_faiss_index(vectors, index_module.APPROXIMATE_KIND)[1]["type"]
    assert chosen != "IndexFlatIP"


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_filtered_search_keeps_only_the_wanted_rows_for_every_index_type(kind: str):
    from rag.index.ann import filtered_search_params

    vectors = synthetic.clustered_vectors(4_000, 32, clusters=40)
    index, _ = make_faiss_index(vectors, kind)
    wanted = np.arange(100, 4_000, 37)  # spread over every list and graph region
    query = vectors[wanted[5]] + 0.01
    scores, ids = index.search(
        query.reshape(1, -1), 5, params=filtered_search_params(index, wanted, k=5)
    )
    assert set(ids[0]) <= set(wanted)
    best = wanted[np.argsort(-(vectors[wanted] @ query))[:5]]
    assert ids[0][0] == best[0] and len(set(ids[0]) & set(best)) >= 4


def _mapped_kib(path: Path) -> int:
    """Resident KiB of this process's memory mappings of ``path``."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def test_loaded_vectors_are_memory_mapped_not_copied(small_corpus: Path, tmp_path: Path):
    class Wide:
        """Enough vectors that a copy and a mapping cannot be confused (about 1.5 MB)."""

        model_id = "wide-random"
        dim = 384

        def embed(self, texts, *, progress=False):
            return synthetic.clustered_vectors(len(texts), self.dim, clusters=4)

    corpus = synthetic.write_corpus(tmp_path / "corpus", 60)
    build_index(corpus, tmp_path / "index", Wide(), sentence_index=False)
    path = (tmp_path / "index" / "vectors.faiss").resolve()
    index = load_index(tmp_path / "index")
    index.faiss.search(np.ones((1, 384), dtype=np.float32), 5)  # touches every vector
    assert _mapped_kib(path) >= 0.9 * path.stat().st_size / 1024
    copy = load_index(tmp_path / "index", mmap=False)
    assert copy.faiss.ntotal == index.faiss.ntotal


def test_bm25s_loads_without_numba_or_scipy_and_they_stay_importable():
    import subprocess
    import sys

    code = (
        "import sys\nfrom rag.index.lexical import import_bm25s\nimport_bm25s()\n"
        "print('numba' in sys.modules, 'scipy' in sys.modules)\n"
        "import scipy.sparse\nprint('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "ok"]
    assert import_bm25s() is import_bm25s()


def test_a_second_thread_never_gets_bm25s_half_imported():
    import subprocess
    import sys

    # Two collections' indexes load in two threads at once: the second thread must wait for
    # the first one's import, not take the module from sys.modules while it is still executing.
    code = (
        "import sys, threading\nfrom rag.index.lexical import import_bm25s\nseen = []\n"
        "def watch():\n    while 'bm25s' not in sys.modules:\n        pass\n"
        "    seen.append(hasattr(import_bm25s(), 'BM25'))\n"
        "watcher = threading.Thread(target=watch)\nwatcher.start()\nimport_bm25s()\n"
        "watcher.join()\nprint(seen)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[True]"]
