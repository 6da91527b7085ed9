"""Property-based API tests: schemathesis generates valid and invalid requests from
/openapi.json and no operation may answer with a server error (run with -s for the counts)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from rag.config import Settings
from rag.index import build_index, load_index
from rag.search.retriever import Retriever
from rag.serve.app import create_app
from tests.conftest import FakeEmbedder

CASES: Counter[str] = Counter()
FAILED: Counter[str] = Counter()


WORK = Path(tempfile.mkdtemp(prefix="rag-schemathesis-"))
# Registered before schemathesis registers the app's lifespan shutdown, so it runs after it:
# the query log is flushed and closed before its directory goes.
atexit.register(shutil.rmtree, WORK, ignore_errors=True)


def build_app(root: Path) -> FastAPI:
    """The API over a two-guide corpus indexed with the fake embedder."""
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "data-engineer.md").write_text(
        "# Data Engineer\n\nA data engineer builds pipelines.\n\n## Salary\n\n"
        "Data engineers earn $120,000 on average.\n",
        encoding="utf-8",
    )
    (corpus / "recruiter.txt").write_text(
        "Technical Recruiter\n\nOverview\n\nA technical recruiter hires engineers.\n",
        encoding="utf-8",
    )
    embedder = FakeEmbedder()
    build_index(corpus, root / "index", embedder)
    retriever = Retriever(load_index(root / "index"), embedder)
    app_settings = Settings(index_dir=root / "index", corpus_dir=corpus, data_dir=root / "data")
    return create_app(app_settings, retriever)


# Loaded at import: schemathesis' lazy fixture loader needs a pytest internal (Node._nodeid)
# that pytest 9 no longer has.
schema = schemathesis.openapi.from_asgi("/openapi.json", build_app(WORK))


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    yield
    lines = [f"  {op}: {n} cases, {FAILED[op]} failed" for op, n in sorted(CASES.items())]
    total, failed = sum(CASES.values()), sum(FAILED.values())
    print(f"\nschemathesis: {total} cases, {failed} failed\n" + "\n".join(lines))


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    database=None,  # nothing written to .hypothesis/ in the work tree
    suppress_health_check=list(HealthCheck),
)
def test_api_never_answers_with_a_server_error(case: schemathesis.Case) -> None:
    operation = case.operation.label
    CASES[operation] += 1
    try:
        case.call_and_validate(checks=[not_a_server_error])
    except BaseException:
        FAILED[operation] += 1
        raise
