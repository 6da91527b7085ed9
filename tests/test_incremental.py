"""Incremental builds: reuse of stored vectors by content key, change reports, the build lock,
removal of dead builds' debris and progress reporting (`rag index --watch`: tests/test_watch.py)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from rag.errors import IndexBusy
from rag.index import Manifest, build_index, load_index
from rag.index.lock import lock_path, remove_debris, sibling
from rag.search import Retriever
from rag.serve.app import create_app

# The CLI tests' terminal: no colour codes, no RAG_* settings leaking in from the shell.
pytestmark = pytest.mark.usefixtures("plain_terminal")

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ["data pipelines", "salary of a data engineer", "sourcing candidates", "SQL dashboards"]
NEW_GUIDE = "# Actuary\n\nAn actuary prices insurance risk with statistics.\n\n## Salary\n\nAbout $110,000.\n"


class CountingEmbedder:
    """The fake embedder, counting every text it is asked to embed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.texts: list[str] = []

    def embed(self, texts, *, progress: bool = False) -> np.ndarray:
        self.texts += list(texts)
        return self.inner.embed(texts)


class RecordingProgress:
    def __init__(self) -> None:
        self.stages: list[tuple[str, int]] = []
        self.done: dict[str, int] = {}

    def stage(self, name: str, total: int) -> None:
        self.stages.append((name, total))
        self.done[name] = 0

    def advance(self, steps: int = 1) -> None:
        self.done[self.stages[-1][0]] += steps


def changes(index_dir: Path) -> dict:
    return Manifest.read(index_dir).extra["changes"]


def debris(index_dir: Path) -> list[str]:
    lock = lock_path(index_dir).name
    return sorted(
        p.name
        for p in index_dir.parent.iterdir()
        if p.name.startswith(".") and p.name not in (lock, lock + ".owner")
    )


def test_unchanged_corpus_reuses_every_vector(index_dir: Path, small_corpus: Path, fake_embedder):
    counting = CountingEmbedder(fake_embedder)
    build_index(small_corpus, index_dir, counting)
    c = changes(index_dir)
    assert c["incremental"] is True
    assert c["chunks"]["reused"] == Manifest.read(index_dir).counts["chunks"]
    assert c["chunks"]["added"] == c["chunks"]["changed"] == c["chunks"]["removed"] == 0
    assert c["documents"] == {"added": 0, "changed": 0, "removed": 0, "reused": 3}
    assert counting.texts == []


def test_added_document_is_embedded_alone_and_searchable(
    index_dir: Path, small_corpus: Path, fake_embedder, tmp_path: Path
):
    before = Manifest.read(index_dir).counts["chunks"]
    (small_corpus / "actuary.md").write_text(NEW_GUIDE)
    counting = CountingEmbedder(fake_embedder)
    build_index(small_corpus, index_dir, counting)
    c = changes(index_dir)
    assert c["documents"] == {"added": 1, "changed": 0, "removed": 0, "reused": 3}
    assert c["chunks"]["reused"] == before
    assert c["chunks"]["added"] == Manifest.read(index_dir).counts["chunks"] - before
    # Only the new guide's passages and their sentences were embedded.
    assert counting.texts and all("Actuary" in t for t in counting.texts)
    hits = Retriever(load_index(index_dir), fake_embedder).search("actuary insurance risk", 3).hits
    assert hits[0].chunk.doc_id == "actuary"
    assert _documents(index_dir, fake_embedder)["actuary"] == 200


def test_changed_document_is_re_embedded_and_old_text_is_gone(
    index_dir: Path, small_corpus: Path, fake_embedder
):
    path = small_corpus / "data-engineer.md"
    path.write_text(path.read_text().replace("$120,000", "$135,000"))
    counting = CountingEmbedder(fake_embedder)
    build_index(small_corpus, index_dir, counting)
    c = changes(index_dir)
    assert c["documents"] == {"added": 0, "changed": 1, "removed": 0, "reused": 2}
    assert c["chunks"]["removed"] >= 1 and c["chunks"]["added"] >= 1
    assert all("Data Engineer" in t for t in counting.texts)
    texts = [ch.text for ch in load_index(index_dir).all_chunks()]
    assert any("$135,000" in t for t in texts)
    assert not any("$120,000" in t for t in texts)


def test_removed_document_leaves_every_structure(
    index_dir: Path, small_corpus: Path, fake_embedder
):
    (small_corpus / "recruiter.txt").unlink()
    build_index(small_corpus, index_dir, fake_embedder)
    c = changes(index_dir)
    assert c["documents"]["removed"] == 1 and c["documents"]["reused"] == 2
    index = load_index(index_dir)
    assert "technical-recruiter" not in {d.id for d in index.documents()}
    assert index.faiss.ntotal == index.size == len(index.all_chunks())
    assert index.bm25.scores is not None
    assert int(index.sentence_rows.max()) == index.size - 1
    hits = Retriever(index, fake_embedder).search("sourcing candidates on LinkedIn", 5).hits
    assert all(h.chunk.doc_id != "technical-recruiter" for h in hits)
    assert _documents(index_dir, fake_embedder)["technical-recruiter"] == 404


def test_incremental_build_equals_a_full_build(
    index_dir: Path, small_corpus: Path, fake_embedder, tmp_path: Path
):
    (small_corpus / "actuary.md").write_text(NEW_GUIDE)
    (small_corpus / "recruiter.txt").unlink()
    path = small_corpus / "data-engineer.md"
    path.write_text(path.read_text() + "\n## Tools\n\nAirflow, dbt and Kafka.\n")
    build_index(small_corpus, index_dir, fake_embedder)
    full = tmp_path / "full"
    build_index(small_corpus, full, fake_embedder, full=True)
    assert changes(index_dir)["incremental"] is True
    assert changes(full) == {**changes(full), "incremental": False}
    a, b = load_index(index_dir), load_index(full)
    assert a.all_chunks() == b.all_chunks()
    assert [d.id for d in a.documents()] == [d.id for d in b.documents()]
    va = a.faiss.reconstruct_n(0, a.size)
    vb = b.faiss.reconstruct_n(0, b.size)
    np.testing.assert_allclose(va, vb, atol=1e-6)
    assert np.array_equal(a.sentence_rows, b.sentence_rows)
    sa = a.sentences.reconstruct_n(0, a.sentences.ntotal)
    np.testing.assert_allclose(sa, b.sentences.reconstruct_n(0, b.sentences.ntotal), atol=1e-6)
    for q in QUERIES:
        ids_a = [h.chunk.id for h in Retriever(a, fake_embedder).search(q, 5).hits]
        assert ids_a == [h.chunk.id for h in Retriever(b, fake_embedder).search(q, 5).hits]


def test_full_rebuild_when_asked_or_when_the_chunker_changes(
    index_dir: Path, small_corpus: Path, fake_embedder
):
    from rag.ingest.chunking import ChunkerSettings

    counting = CountingEmbedder(fake_embedder)
    build_index(small_corpus, index_dir, counting, full=True)
    assert changes(index_dir)["full_rebuild_reason"] == "asked for (--full)"
    assert len(counting.texts) > Manifest.read(index_dir).counts["chunks"]
    build_index(small_corpus, index_dir, fake_embedder, ChunkerSettings(max_chars=300))
    assert changes(index_dir) == {**changes(index_dir), "incremental": False}
    assert changes(index_dir)["full_rebuild_reason"] == "the chunker settings changed"


def test_other_model_is_a_full_rebuild(index_dir: Path, small_corpus: Path, fake_embedder):
    other = type(fake_embedder)(dim=32)
    other.model_id = "another-model"
    build_index(small_corpus, index_dir, other)
    assert changes(index_dir)["full_rebuild_reason"] == "the model changed"
    assert load_index(index_dir).faiss.d == 32


def test_damaged_previous_index_is_a_full_rebuild(
    index_dir: Path, small_corpus: Path, fake_embedder
):
    (index_dir / "vectors.faiss").write_bytes(b"not faiss")
    build_index(small_corpus, index_dir, fake_embedder)
    assert changes(index_dir)["full_rebuild_reason"].startswith("previous index unusable")
    assert load_index(index_dir).size > 0


def test_progress_reports_each_stage_with_counts(small_corpus: Path, tmp_path: Path, fake_embedder):
    progress = RecordingProgress()
    build_index(small_corpus, tmp_path / "index", fake_embedder, progress=progress)
    names = [name for name, _ in progress.stages]
    assert names == ["Parsing", "Embedding", "Writing"]
    totals = dict(progress.stages)
    assert totals["Parsing"] == 3 and progress.done["Parsing"] == 3
    assert totals["Embedding"] > 0 and progress.done["Embedding"] == totals["Embedding"]
    assert progress.done["Writing"] == totals["Writing"]


def test_build_bar_draws_count_and_eta_on_a_terminal():
    import io

    from rich.console import Console

    from rag.terminal import BuildBar

    buf = io.StringIO()
    out = Console(file=buf, force_terminal=True, width=100)
    with BuildBar(out) as bar:
        bar.stage("Embedding", 40)
        bar.advance(10)
        bar._bar.refresh()
    assert "Embedding" in buf.getvalue() and "10/40" in buf.getvalue()


def test_second_build_fails_at_once_or_waits(index_dir: Path, small_corpus: Path, fake_embedder):
    started, release = threading.Event(), threading.Event()

    class Slow(CountingEmbedder):
        def embed(self, texts, *, progress: bool = False):
            started.set()
            assert release.wait(30)
            return super().embed(texts)

    (small_corpus / "actuary.md").write_text(NEW_GUIDE)
    first = threading.Thread(
        target=build_index, args=(small_corpus, index_dir, Slow(fake_embedder))
    )
    first.start()
    try:
        assert started.wait(30)
        with pytest.raises(IndexBusy, match=rf"another build .*pid {os.getpid()}.*--wait"):
            build_index(small_corpus, index_dir, fake_embedder)
        waited: list[Manifest] = []
        second = threading.Thread(
            target=lambda: waited.append(
                build_index(small_corpus, index_dir, fake_embedder, lock_timeout=30)
            )
        )
        with lock_waits() as waiting:
            second.start()
            assert waiting.wait(30)  # the second build found the lock taken and waits for it
        assert not waited  # still waiting for the first build's lock
        release.set()
        second.join(60)
        assert waited and waited[0].extra["changes"]["chunks"]["added"] == 0
    finally:
        release.set()
        first.join(60)
    assert debris(index_dir) == []


@contextmanager
def lock_waits() -> Iterator[threading.Event]:
    """An event set when a build finds the lock taken and starts waiting for it: filelock logs
    each failed attempt (at DEBUG, on its "filelock" logger) before it sleeps."""
    waiting = threading.Event()

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "not acquired" in record.getMessage():
                waiting.set()

    logger, handler = logging.getLogger("filelock"), Handler(logging.DEBUG)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield waiting
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_debris_of_dead_builds_is_removed_and_of_live_ones_kept(tmp_path: Path):
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    mine = sibling(index_dir, "tmp")
    mine.mkdir()
    dead = tmp_path / f".index.tmp-{_dead_pid()}-12345-abcdef01"
    dead.mkdir()
    reused_pid = tmp_path / f".index.tmp-{os.getpid()}-1-abcdef02"  # my pid, other start time
    reused_pid.mkdir()
    legacy_old = tmp_path / ".index.tmp-0badc0de"
    legacy_old.mkdir()
    os.utime(legacy_old, (time.time() - 7200, time.time() - 7200))
    legacy_new = tmp_path / ".index.tmp-1badc0de"
    legacy_new.mkdir()
    other_index = tmp_path / f".other.tmp-{_dead_pid()}-12345-abcdef03"
    other_index.mkdir()
    removed = remove_debris(index_dir)
    assert sorted(removed) == sorted([dead.name, reused_pid.name, legacy_old.name])
    assert mine.exists() and legacy_new.exists() and other_index.exists()


def test_failed_embed_leaves_the_previous_index_and_no_debris(
    index_dir: Path, small_corpus: Path, fake_embedder
):
    class Broken(CountingEmbedder):
        def embed(self, texts, *, progress: bool = False):
            raise RuntimeError("out of memory")

    before = (index_dir / "manifest.json").read_text()
    (small_corpus / "actuary.md").write_text(NEW_GUIDE)
    with pytest.raises(RuntimeError, match="out of memory"):
        build_index(small_corpus, index_dir, Broken(fake_embedder))
    assert (index_dir / "manifest.json").read_text() == before
    assert debris(index_dir) == []


def test_ctrl_c_the_moment_the_temporary_directory_exists_leaves_no_debris(
    index_dir: Path, small_corpus: Path, fake_embedder, monkeypatch: pytest.MonkeyPatch
):
    # The main thread can wait for the GIL right after mkdir, so Ctrl-C can land there.
    make = Path.mkdir

    def mkdir_then_interrupt(self: Path, *args, **kwargs) -> None:
        make(self, *args, **kwargs)
        if self.name.startswith(f".{index_dir.name}.tmp-"):
            raise KeyboardInterrupt

    before = (index_dir / "manifest.json").read_text()
    (small_corpus / "actuary.md").write_text(NEW_GUIDE)
    monkeypatch.setattr(Path, "mkdir", mkdir_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        build_index(small_corpus, index_dir, fake_embedder)
    monkeypatch.undo()
    assert (index_dir / "manifest.json").read_text() == before
    assert debris(index_dir) == []


def test_cli_index_json_reports_changes_and_full(fake_index, capsys: pytest.CaptureFixture[str]):
    from rag.cli import main

    (fake_index.corpus / "actuary.md").write_text(NEW_GUIDE)
    assert main(["index", "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["changes"]["documents"]["added"] == 1
    assert report["changes"]["chunks"]["reused"] > 0
    assert report["build_id"]
    assert "Embedding" not in err  # no progress bar off a terminal or under --json
    assert main(["index", "--full"]) == 0
    out, err = capsys.readouterr()
    assert "Full build (asked for (--full))." in out
    assert "Embedding" not in err


def test_cli_second_build_is_one_line_error(fake_index, capsys: pytest.CaptureFixture[str]):
    from filelock import FileLock

    from rag.cli import main

    with FileLock(lock_path(fake_index.index)):
        code = main(["index"])
    _, err = capsys.readouterr()
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("rag: error: another build is writing the index") and "--wait" in last
    assert "Traceback" not in err


def test_cli_rejects_bad_watch_options(fake_env, capsys: pytest.CaptureFixture[str]):
    from rag.cli import main

    for argv in (["index", "--watch", "--if-stale"], ["index", "--wait", "-1"],
                 ["index", "--watch", "--debounce", "-5"]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("rag: error: ")


@pytest.mark.slow
def test_kill_9_during_a_real_build_then_a_clean_rebuild(small_corpus: Path, tmp_path: Path):
    index_dir = tmp_path / "index"
    env = {**os.environ, "RAG_CORPUS_DIR": str(small_corpus), "RAG_INDEX_DIR": str(index_dir),
           "HF_HUB_OFFLINE": "1", "RAG_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    # Enough text that the embedding takes a while after the temporary directory appears.
    for n in range(60):
        (small_corpus / f"guide-{n}.md").write_text(_long_guide(n))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "index"], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not debris(index_dir):
            assert proc.poll() is None, "the build ended before it could be killed"
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = debris(index_dir)
    assert left and all(".index.tmp-" in name for name in left)
    done = subprocess.run(
        [sys.executable, "-m", "rag", "index", "--json"], env=env, cwd=ROOT,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sorted(Manifest.read(index_dir).extra["removed_debris"]) == left
    assert report["counts"]["documents"] == 63
    assert debris(index_dir) == []


def _documents(index_dir: Path, embedder) -> dict[str, int]:
    """Status of GET /documents/{id} for every id the old and new corpus had."""
    from fastapi.testclient import TestClient

    from rag.config import Settings

    settings = Settings(
        index_dir=index_dir,
        data_dir=index_dir.parent / "data",
        allowed_hosts=["testserver"],
        rate_limit="off",
    )
    app = create_app(settings, retriever=Retriever(load_index(index_dir), embedder))
    with TestClient(app) as client:
        ids = ["actuary", "technical-recruiter", "data-engineer"]
        return {i: client.get(f"/documents/{i}").status_code for i in ids}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _long_guide(n: int) -> str:
    body = " ".join(
        f"Engineer {n} works on system {i} with colleagues and writes careful reports."
        for i in range(30)
    )
    return f"# Role {n}\n\n## Overview\n\n{body}\n\n## Skills\n\n{body}\n"
