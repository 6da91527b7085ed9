"""Shared fixtures: small corpora, a fast deterministic embedder, and the real model once; and
the checks that keep tests which load the real model in the slow tier."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Generator, Sequence
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SHARED_DEV = ROOT.parent / "shared" / "eval" / "dev_questions.jsonl"
DEV_QUESTIONS = (
    SHARED_DEV if SHARED_DEV.exists() else ROOT / "tests" / "data" / "dev_questions.jsonl"
)
# A test that asks for one of these loads the real model and must be marked slow (checked below).
REAL_MODEL_FIXTURES = frozenset({"real_embedder", "real_index_dir", "real_retriever"})


class FakeEmbedder:
    """Hashes words (and word pairs) into a fixed-size unit vector: fast and deterministic."""

    model_id = "fake-hash-embedder"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.calls = 0

    def embed(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            for feat in words + [a + " " + b for a, b in zip(words, words[1:], strict=False)]:
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = np.linalg.norm(out[i])
            out[i] = out[i] / norm if norm else out[i]
            if not norm:
                out[i, 0] = 1.0
        return out


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """A tiny corpus in all three formats."""
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "data-engineer.md").write_text(
        "# Data Engineer\n\nA data engineer builds pipelines.\n\n"
        "## Responsibilities\n\n- Build ETL pipelines with Spark\n- Maintain data warehouses\n\n"
        "## Salary\n\nData engineers earn $120,000 on average in the US.\n",
        encoding="utf-8",
    )
    (root / "sub" / "analyst.html").write_text(
        "<html><head><title>x</title><style>p{}</style></head><body><nav>Home</nav>"
        "<h1>Data Analyst</h1><p>An analyst studies data &amp; reports.</p>"
        "<h2>Skills</h2><ul><li>SQL and Excel dashboards</li><li>Statistics</li></ul>"
        "</body></html>",
        encoding="utf-8",
    )
    (root / "recruiter.txt").write_text(
        "Technical Recruiter\n\nOverview\n\nA technical recruiter hires engineers for companies.\n\n"
        "Skills\n\n  • Sourcing candidates on LinkedIn\n  • Interviewing and negotiation\n",
        encoding="utf-8",
    )
    return root


@pytest.fixture(scope="session")
def real_embedder():
    """The real all-MiniLM-L6-v2, loaded once per test session."""
    from rag.models.embedder import load_embedder

    return load_embedder()


@pytest.fixture(scope="session")
def real_index_dir(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Path:
    """The real corpus indexed with the real model, once per test session."""
    from rag.index import build_index

    path = tmp_path_factory.mktemp("real") / "index"
    build_index(CORPUS, path, real_embedder)
    return path


@pytest.fixture(scope="session")
def real_retriever(real_index_dir: Path, real_embedder):
    from rag.index import load_index
    from rag.search.retriever import Retriever

    # The index holds a corpus-adapted model; from_index queries with it (through ONNX).
    return Retriever.from_index(load_index(real_index_dir))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test that uses the real model without the slow marker, so the fast tier is fast."""
    unmarked = [
        item.nodeid
        for item in items
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("slow") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests use the real model (through "
            + ", ".join(sorted(REAL_MODEL_FIXTURES))
            + ") but are not marked @pytest.mark.slow:\n  "
            + "\n  ".join(unmarked)
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    """Fail a test without the slow marker that loads the real model some other way."""
    if item.get_closest_marker("slow") is not None:
        return (yield)
    from rag.models import embedder

    real_init = embedder.SentenceTransformerEmbedder.__init__

    def refuse(self: object, *args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{item.nodeid} loads the real model: mark it @pytest.mark.slow")

    embedder.SentenceTransformerEmbedder.__init__ = refuse  # type: ignore[method-assign]
    try:
        return (yield)
    finally:
        embedder.SentenceTransformerEmbedder.__init__ = real_init  # type: ignore[method-assign]
