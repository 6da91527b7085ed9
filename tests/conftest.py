"""Shared fixtures: one factory per kind of object (corpus, fake index, retriever, settings, app
and client) with a default instance of each that a test module may override, a fast
deterministic embedder, the real model and index once; and the checks that keep tests which
load the real model in the slow tier."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import pytest

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from rag.config import Settings
    from rag.search.retriever import Retriever

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SHARED_DEV = ROOT.parent / "shared" / "eval" / "dev_questions.jsonl"
DEV_QUESTIONS = (
    SHARED_DEV if SHARED_DEV.exists() else ROOT / "tests" / "data" / "dev_questions.jsonl"
)
# The real index, shared by every test session in this checkout and by the notebooks, which
# `make test` runs after the tests with RAG_TEST_INDEX set to this path (gitignored).
TEST_INDEX = Path(os.environ.get("RAG_TEST_INDEX") or ROOT / ".cache" / "test-index").absolute()
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


# A tiny corpus in three formats: a markdown guide with sections, an HTML page with a list and
# boilerplate to drop, and a scraped plain-text guide with bullets.
SMALL_CORPUS = {
    "data-engineer.md": (
        "# Data Engineer\n\nA data engineer builds pipelines.\n\n"
        "## Responsibilities\n\n- Build ETL pipelines with Spark\n- Maintain data warehouses\n\n"
        "## Salary\n\nData engineers earn $120,000 on average in the US.\n"
    ),
    "sub/analyst.html": (
        "<html><head><title>x</title><style>p{}</style></head><body><nav>Home</nav>"
        "<h1>Data Analyst</h1><p>An analyst studies data &amp; reports.</p>"
        "<h2>Skills</h2><ul><li>SQL and Excel dashboards</li><li>Statistics</li></ul>"
        "</body></html>"
    ),
    "recruiter.txt": (
        "Technical Recruiter\n\nOverview\n\nA technical recruiter hires engineers for companies.\n\n"
        "Skills\n\n  • Sourcing candidates on LinkedIn\n  • Interviewing and negotiation\n"
    ),
}
# The Host names TestClient ("testserver") and httpx's ASGI transport ("test") send. The rate
# limit is off: every request of a test comes from one client (tests/test_hardening.py tests it).
TEST_CLIENT: dict[str, Any] = {"allowed_hosts": ["testserver", "test"], "rate_limit": "off"}


def write_corpus(root: Path, files: Mapping[str, str]) -> Path:
    """Write ``files`` (relative path: text) under ``root``; returns ``root``. For any scope."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def make_corpus(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a corpus folder under tmp_path, from ``files`` or a copy of another folder."""

    def make(
        files: Mapping[str, str] | None = None, *, name: str = "corpus", copy_of: Path | None = None
    ) -> Path:
        root = tmp_path / name
        if copy_of is not None:
            shutil.copytree(copy_of, root)
        root.mkdir(parents=True, exist_ok=True)
        return write_corpus(root, files or {})

    return make


@pytest.fixture
def small_corpus(make_corpus: Callable[..., Path]) -> Path:
    """A tiny corpus in all three formats."""
    return make_corpus(SMALL_CORPUS)


@pytest.fixture
def make_index(tmp_path: Path, fake_embedder: FakeEmbedder) -> Callable[..., Path]:
    """Factory: ``corpus`` indexed with the fake embedder at tmp_path/``name``."""

    def make(corpus: Path, name: str = "index", **options: Any) -> Path:
        from rag.index import build_index

        build_index(corpus, tmp_path / name, fake_embedder, **options)
        return tmp_path / name

    return make


@pytest.fixture
def index_dir(small_corpus: Path, make_index: Callable[..., Path]) -> Path:
    """The small corpus indexed with the fake embedder (tmp_path/index)."""
    return make_index(small_corpus)


@pytest.fixture
def make_retriever(fake_embedder: FakeEmbedder) -> Iterator[Callable[..., Retriever]]:
    """Factory: a Retriever over an index with the fake embedder; closed at teardown."""
    from rag.index import load_index
    from rag.search.retriever import Retriever

    made: list[Retriever] = []

    def make(index_dir: Path, **options: Any) -> Retriever:
        made.append(Retriever(load_index(index_dir), fake_embedder, **options))
        return made[-1]

    yield make
    for retriever in made:
        retriever.index.close()


@pytest.fixture
def retriever_options() -> dict[str, Any]:
    """Options of the ``retriever`` fixture (max_k...); a test module overrides this fixture."""
    return {}


@pytest.fixture
def retriever(
    make_retriever: Callable[..., Retriever], index_dir: Path, retriever_options: dict[str, Any]
) -> Retriever:
    """A retriever over ``index_dir`` with the fake embedder."""
    return make_retriever(index_dir, **retriever_options)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Factory: Settings for an in-process app, the query log under tmp_path, with overrides."""
    from rag.config import Settings

    def make(**overrides: Any) -> Settings:
        return Settings(**{"data_dir": tmp_path / "data", **TEST_CLIENT, **overrides})

    return make


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], index_dir: Path, small_corpus: Path
) -> Settings:
    """The app's settings over ``index_dir``; a test module overrides this fixture for others."""
    return make_settings(index_dir=index_dir, corpus_dir=small_corpus)


@pytest.fixture
def app(settings: Settings, retriever: Retriever) -> FastAPI:
    """The app serving ``retriever`` with ``settings``."""
    from rag.serve.app import create_app

    return create_app(settings, retriever)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A TestClient of ``app``, its lifespan started."""
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich output without colour codes, and no RAG_* settings leaking in from the shell: the
    CLI tests' terminal (``pytestmark = pytest.mark.usefixtures("plain_terminal")``)."""
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    # The CLI sets this for itself; set it here so monkeypatch undoes it after each test.
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in [n for n in os.environ if n.startswith("RAG_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def fake_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, small_corpus: Path, fake_embedder: FakeEmbedder
) -> SimpleNamespace:
    """The CLI pointed at the small corpus, with every model load answered by the fake embedder."""
    import rag.models.embedder
    import rag.models.query

    loads: list[str] = []

    def load_embedder(model: str = "", batch_size: int = 64):
        loads.append(model)
        embedder = type(fake_embedder)()
        embedder.model_id = model
        return embedder

    monkeypatch.setattr(rag.models.embedder, "load_embedder", load_embedder)
    monkeypatch.setattr(rag.models.query, "load_embedder", load_embedder)
    monkeypatch.setenv("RAG_MODEL", "fake-hash-embedder")
    monkeypatch.setenv("RAG_CORPUS_DIR", str(small_corpus))
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    return SimpleNamespace(corpus=small_corpus, index=tmp_path / "index", loads=loads)


@pytest.fixture
def fake_index(fake_env: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> SimpleNamespace:
    """fake_env with its index already built (and the build's output discarded)."""
    from rag.cli import main

    assert main(["index"]) == 0
    capsys.readouterr()
    fake_env.loads.clear()
    return fake_env


@pytest.fixture(scope="session")
def real_embedder():
    """The real all-MiniLM-L6-v2, loaded once per test session."""
    from rag.models.embedder import load_embedder

    return load_embedder()


@pytest.fixture(scope="session")
def real_index_dir(pytestconfig: pytest.Config) -> Iterator[Path]:
    """The real corpus indexed with the real model at TEST_INDEX, shared and never written to.

    Built only when missing or stale, so later sessions (and the notebooks) skip the ~150 s build.
    A test that must change an index copies this one first; teardown fails if any test wrote.
    """
    say = partial(_say, pytestconfig)
    with _shared_index_lock() as lock:
        reason = _why_rebuild_test_index()
        if reason:
            from rag.index import build_index
            from rag.models.embedder import load_embedder

            # Readers of the old build hold the shared lock; wait for them to finish.
            fcntl.flock(lock, fcntl.LOCK_UN)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say(f"\n{TEST_INDEX} is stale; waiting for other test sessions to finish with it")
                fcntl.flock(lock, fcntl.LOCK_EX)
            reason = _why_rebuild_test_index()
            if reason:
                say(f"\nbuilding the real index at {TEST_INDEX} ({reason})")
                build_index(CORPUS, TEST_INDEX, load_embedder())
            fcntl.flock(lock, fcntl.LOCK_SH)
        before = _file_stamps(TEST_INDEX)
        yield TEST_INDEX
        assert _file_stamps(TEST_INDEX) == before, (
            f"a test wrote into the shared index {TEST_INDEX}: copy it to tmp_path first"
        )


@pytest.fixture(scope="session")
def real_retriever(real_index_dir: Path):
    from rag.index import load_index
    from rag.search.retriever import Retriever

    # from_index queries with the index's own model, through its ONNX export.
    return Retriever.from_index(load_index(real_index_dir))


# --------------------------------------------------------------------------- browser tests


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module of browser tests; fails with the install command."""
    from tests.browser_helpers import browser_session, chromium_path

    if chromium_path() is None:
        pytest.fail(
            "Chromium is missing: the browser tests need Debian's Chromium at /usr/bin/chromium "
            "(or $CHROMIUM). Install it with `apt-get install -y chromium` (.ci/run does)."
        )
    with browser_session() as b:
        yield b


@pytest.fixture(scope="module")
def sites() -> Iterator[Any]:
    """Two static sites on their own origins, to host the widget (tests.browser_helpers.Sites)."""
    from tests.browser_helpers import Sites, StaticSite

    s = Sites(StaticSite(), StaticSite())
    yield s
    s.allowed.stop()
    s.refused.stop()


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    """A fresh context and page of ``browser`` (tests.browser_helpers.Tab), popups watched too."""
    from tests.browser_helpers import Tab

    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(30_000)
    t = Tab(context.new_page())
    t.watch(t.page)
    context.on("page", t.watch)
    yield t
    context.close()


def _say(config: pytest.Config, line: str) -> None:
    """Print past pytest's output capture: a silent ~150 s build looks like a hung test."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else nullcontext():
        print(line, flush=True)


@contextmanager
def _shared_index_lock() -> Iterator[TextIO]:
    """Hold a shared lock on TEST_INDEX: sessions in this checkout run at once, one rebuilds."""
    TEST_INDEX.parent.mkdir(parents=True, exist_ok=True)
    with open(TEST_INDEX.parent / f"{TEST_INDEX.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield lock


def _why_rebuild_test_index() -> str | None:
    """Why TEST_INDEX must be rebuilt for the code and corpus as they are now, or None."""
    from rag.config import DEFAULT_MODEL, Settings
    from rag.index import why_rebuild
    from rag.ingest.chunking import ChunkerSettings
    from rag.ingest.profiles import DEFAULT_TEXT_PROFILE

    # Every field build_index's defaults decide, so a RAG_* variable in the shell cannot make
    # a fresh index look stale (or a stale one fresh).
    settings = Settings(
        corpus_dir=CORPUS,
        index_dir=TEST_INDEX,
        model=DEFAULT_MODEL,
        adapt=False,  # build_index adapts only when asked, and so does this fixture
        query_backend="auto",
        text_profile=DEFAULT_TEXT_PROFILE,
    )
    return why_rebuild(settings, ChunkerSettings())


def _file_stamps(root: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of every file under ``root``: what a write would change."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def pytest_configure(config: pytest.Config) -> None:
    """Run with the switches the entry points set, so a test calling main() changes none."""
    from rag.runtime import configure_process

    configure_process()


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
