"""A running server picks up a new index without a restart (rag.serve.reload, rag.serve.services).

In-process tests use the fake embedder: the snapshot a request holds across a swap, the watch
seeing both kinds of swap, a first build and a damaged one. The slow tests run the real model
in a real ``rag serve`` subprocess (one worker and two) under a small load on 127.0.0.1 while
``rag index`` rebuilds the index it serves.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from rag.config import Settings
from rag.index import build_index, load_index
from rag.index.fs import swap_into_place
from rag.search.retriever import Retriever
from rag.serve.app import create_app
from rag.serve.reload import index_changes
from tests import servers
from tests.servers import child_env, wait_for

ROOT = Path(__file__).resolve().parent.parent
CLIENT = {"allowed_hosts": ["testserver", "test"], "rate_limit": "off"}
FACT_GUIDE = (
    "# Zorblax Certification\n\n"
    "The Zorblax certification costs 417 credits. Candidates sit a four-hour exam on "
    "interstellar logistics and renew the certificate every three years.\n"
)
FACT_QUERY = "How many credits does the Zorblax certification cost?"


def is_closed(index: Any) -> bool:
    """Whether the index's SQLite connection is closed."""
    try:
        index.chunk_counts()
    except sqlite3.ProgrammingError:
        return True
    return False


def damage(index_dir: Path, dest: Path) -> Path:
    """A copy of ``index_dir`` with a garbage meta.sqlite and a build id of its own."""
    shutil.copytree(index_dir, dest)
    (dest / "meta.sqlite").write_bytes(b"this is not a database\n" * 200)
    renumber(dest)
    return dest


def renumber(index_dir: Path) -> str:
    """Give the index a new build id, as if it had been built again; returns it."""
    path = index_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["build_id"] = uuid.uuid4().hex
    path.write_text(json.dumps(manifest))
    return manifest["build_id"]


# --------------------------------------------------------------------------- in process


@pytest.fixture
def fake_loads(monkeypatch: pytest.MonkeyPatch, fake_embedder) -> None:
    """Retriever.from_settings loads with the fake embedder: the server's own loads stay fast."""

    def from_settings(cls, settings: Settings) -> Retriever:
        return cls(load_index(Path(settings.index_dir)), fake_embedder)

    monkeypatch.setattr(Retriever, "from_settings", classmethod(from_settings))


def in_process_settings(index_dir: Path, corpus: Path, tmp_path: Path) -> Settings:
    return Settings(index_dir=index_dir, corpus_dir=corpus, data_dir=tmp_path / "data", **CLIENT)


@pytest.mark.parametrize("endpoint", ["/search", "/chat"])
def test_a_request_keeps_its_snapshot_across_a_swap_and_the_old_one_closes_after_it(
    endpoint: str, small_corpus: Path, tmp_path: Path, fake_embedder
) -> None:
    build_index(small_corpus, tmp_path / "a", fake_embedder)
    (small_corpus / "zorblax.md").write_text(FACT_GUIDE)
    build_index(small_corpus, tmp_path / "b", fake_embedder)
    old = Retriever(load_index(tmp_path / "a"), fake_embedder)
    new = Retriever(load_index(tmp_path / "b"), fake_embedder)
    entered, release = threading.Event(), threading.Event()
    # /search is held inside its search, a streamed /chat while its answer is built: after
    # the sources event has gone out, so only the stream holds the snapshot then.
    method = "search_vector" if endpoint == "/search" else "answer"
    real = getattr(old, method)

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    setattr(old, method, held)
    body: dict[str, Any] = {"query": "pipelines"}
    if endpoint == "/chat":
        body = {"messages": [{"role": "user", "content": "pipelines"}], "stream": True}
    settings = in_process_settings(tmp_path / "a", small_corpus, tmp_path)
    app = create_app(settings, Retriever(load_index(tmp_path / "a"), fake_embedder))

    async def main() -> httpx.Response:
        async with app.router.lifespan_context(app):
            svc = app.state.services
            await svc.attach(old, owned=True)  # owned: retiring it closes its index
            first = svc.current
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                held_request = asyncio.create_task(c.post(endpoint, json=body))
                await anyio.to_thread.run_sync(entered.wait, 30)
                await svc.attach(new, owned=True)
                assert svc.current is not first
                docs = (await c.get("/documents")).json()["documents"]
                assert "zorblax-certification" in {d["id"] for d in docs}
                # Still held: neither its batcher nor its SQLite connection is closed.
                await asyncio.sleep(0.1)
                assert not first.batcher._closed
                assert old.index.chunk_counts()
                release.set()
                response = await held_request
                for _ in range(500):
                    if is_closed(old.index):
                        break
                    await asyncio.sleep(0.01)
                assert is_closed(old.index) and first.batcher._closed
                assert not is_closed(new.index)  # the one served is open
        return response

    response = asyncio.run(main())
    assert response.status_code == 200
    text = response.text
    assert "data-engineer" in text and "zorblax" not in text  # answered from the old index


def test_the_watch_sees_a_first_build_and_an_exchange(tmp_path: Path) -> None:
    target = tmp_path / "parent" / "index"  # the parent does not exist yet: the watch makes it

    def fresh(n: int) -> Path:
        new = tmp_path / "parent" / f".index.tmp-{n}"
        new.mkdir()
        (new / "manifest.json").write_text(str(n))
        return new

    async def main() -> None:
        stop = anyio.Event()
        events = asyncio.Queue()

        async def watch() -> None:
            async for _ in index_changes(target, stop, recheck_s=60):
                events.put_nowait(time.monotonic())

        watcher = asyncio.create_task(watch())
        # Until the watch reports something, it may not have started: poke the target's name.
        while events.empty():
            await asyncio.sleep(0.1)
            target.touch()
            target.unlink()
        await asyncio.sleep(0.5)
        while not events.empty():
            events.get_nowait()
        swap_into_place(fresh(1), target)  # a plain rename: no index there before
        await asyncio.wait_for(events.get(), 10)
        assert target.joinpath("manifest.json").read_text() == "1"
        swap_into_place(fresh(2), target)  # RENAME_EXCHANGE
        await asyncio.wait_for(events.get(), 10)
        assert target.joinpath("manifest.json").read_text() == "2"
        # A change elsewhere in the parent is no event (the build's temporary directory).
        fresh(3)
        await asyncio.sleep(0.6)
        assert events.empty()
        stop.set()
        await asyncio.wait_for(watcher, 5)

    asyncio.run(main())


def test_a_server_without_an_index_serves_the_first_build_then_each_rebuild(
    small_corpus: Path, tmp_path: Path, fake_embedder, fake_loads: None
) -> None:
    index_dir = tmp_path / "not-yet" / "index"
    settings = in_process_settings(index_dir, small_corpus, tmp_path)
    with TestClient(create_app(settings)) as client:
        wait_for(lambda: client.get("/ready").json()["status"] == "error", "the load to fail")
        search = client.post("/search", json={"query": "pipelines"})
        assert search.status_code == 503
        assert "no index" in search.json()["detail"] and str(tmp_path) not in search.text
        build_index(small_corpus, index_dir, fake_embedder)
        first = wait_for(lambda: client.get("/ready").json().get("build_id"), "the first build")
        assert client.post("/search", json={"query": "pipelines"}).status_code == 200
        assert client.get("/documents/zorblax-certification").status_code == 404
        old = client.app.state.services.current

        (small_corpus / "zorblax.md").write_text(FACT_GUIDE)
        build_index(small_corpus, index_dir, fake_embedder)
        ready = wait_for(
            lambda: (r := client.get("/ready").json())["build_id"] != first and r,
            "the rebuild to be served",
        )
        assert ready["build_id"] == load_index(index_dir).manifest.build_id
        assert ready["reload_error"] is None and ready["counts"]["sources"] == 4
        assert client.get("/documents/zorblax-certification").status_code == 200
        hits = client.post("/search", json={"query": "Zorblax certification credits"}).json()
        assert hits["results"][0]["citation"]["doc_id"] == "zorblax-certification"
        wait_for(lambda: is_closed(old.retriever.index), "the old snapshot to be closed")
        assert old.batcher._closed


def test_a_damaged_new_index_leaves_the_old_one_served_and_ready_says_why(
    small_corpus: Path, tmp_path: Path, fake_embedder, fake_loads: None
) -> None:
    index_dir = tmp_path / "index"
    build_index(small_corpus, index_dir, fake_embedder)
    settings = in_process_settings(index_dir, small_corpus, tmp_path)
    with TestClient(create_app(settings)) as client:
        first = wait_for(lambda: client.get("/ready").json().get("build_id"), "the index")
        swap_into_place(damage(index_dir, tmp_path / ".damaged"), index_dir)
        ready = wait_for(
            lambda: (r := client.get("/ready")).json()["reload_error"] and r, "the reload error"
        )
        assert ready.status_code == 200 and ready.json()["build_id"] == first
        assert "meta.sqlite" in ready.json()["reload_error"]
        assert str(tmp_path) not in ready.text and "/" not in ready.json()["reload_error"]
        # The old index answers from its open files, though its directory is gone.
        assert client.post("/search", json={"query": "pipelines"}).status_code == 200
        assert client.get("/documents/data-engineer").status_code == 200
        # A good build after it is served, and the error is gone.
        good = tmp_path / ".good"
        build_index(small_corpus, good, fake_embedder)
        swap_into_place(good, index_dir)
        ready = wait_for(
            lambda: (r := client.get("/ready").json())["build_id"] != first and r, "a good build"
        )
        assert ready["reload_error"] is None


def test_reload_off_keeps_the_index_the_server_started_with(
    small_corpus: Path, tmp_path: Path, fake_embedder, fake_loads: None, monkeypatch
) -> None:
    import rag.serve.state

    # With reload off the loader returns once the first index is in: nothing is left to load
    # another. Waiting for that return, not for a while, is what makes the check below hold.
    done = threading.Event()
    real_keep_current = rag.serve.state.keep_current

    async def keep_current(*args: Any, **kwargs: Any) -> None:
        await real_keep_current(*args, **kwargs)
        done.set()

    monkeypatch.setattr(rag.serve.state, "keep_current", keep_current)
    index_dir = tmp_path / "index"
    build_index(small_corpus, index_dir, fake_embedder)
    settings = in_process_settings(index_dir, small_corpus, tmp_path).model_copy(
        update={"reload": False}
    )
    with TestClient(create_app(settings)) as client:
        first = wait_for(lambda: client.get("/ready").json().get("build_id"), "the index")
        assert done.wait(30), "the loader kept running with reload off"
        build_index(small_corpus, index_dir, fake_embedder)
        assert client.get("/ready").json()["build_id"] == first
        assert client.post("/search", json={"query": "pipelines"}).status_code == 200


# --------------------------------------------------------------------------- real server


def rag_index(index_dir: Path, corpus: Path, data: Path) -> None:
    """``rag index`` with the real model, as an operator would run it."""
    proc = subprocess.run(
        [sys.executable, "-m", "rag", "index"],
        env=child_env(index_dir, corpus, data),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@contextmanager
def rag_serve(
    index_dir: Path, corpus: Path, tmp_path: Path, workers: int = 1, wait: bool = True
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """``rag serve`` in a subprocess on a free port of 127.0.0.1; its log goes to a file."""
    log_path = tmp_path / f"server-{uuid.uuid4().hex[:8]}.log"
    env = child_env(index_dir, corpus, tmp_path / "data")
    with servers.rag_serve(env, log_path, workers=workers, ready=wait) as (url, proc):
        yield url, proc, log_path


def _get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10)


class Load:
    """Paced /search, /ask and streamed /chat requests from a few threads, each status kept;
    stops when told, or after ``max_requests`` or ``max_seconds``, whichever comes first."""

    QUERIES = (
        "What does a data engineer do?",
        "How much do data engineers earn?",
        "How do engineers get promoted?",
        FACT_QUERY,
    )

    def __init__(
        self, url: str, threads: int = 4, pause: float = 0.3, max_requests: int = 600,
        max_seconds: float = 90,
    ) -> None:  # fmt: skip
        self.url, self.pause, self.max_requests = url, pause, max_requests
        self.deadline = time.monotonic() + max_seconds
        self.results: list[tuple[float, str, int, str]] = []  # (finished, path, status, body)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _run(self, n: int) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            i = n
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                with self._lock:
                    if len(self.results) >= self.max_requests:
                        return
                query = self.QUERIES[i % len(self.QUERIES)]
                if i % 3 == 0:
                    path, body = "/search", {"query": query, "k": 3}
                elif i % 3 == 1:
                    path, body = "/ask", {"query": query, "k": 3}
                else:
                    messages = [{"role": "user", "content": query}]
                    path, body = "/chat", {"messages": messages, "k": 3, "stream": True}
                try:
                    r = client.post(path, json=body)
                    status, text = r.status_code, r.text
                    if path == "/chat" and "event: done" not in text:
                        status = -2  # a stream that did not end well
                except httpx.HTTPError as exc:
                    status, text = -1, repr(exc)
                with self._lock:
                    self.results.append((time.monotonic(), path, status, text[:300]))
                i += 1
                time.sleep(self.pause)

    def failures(self) -> list[tuple[float, str, int, str]]:
        return [r for r in self.results if r[2] != 200]

    def after(self, moment: float) -> int:
        """Requests finished after ``moment``; fails if the load has ended before enough."""
        if not any(t.is_alive() for t in self._threads):
            pytest.fail(f"the load ended ({len(self.results)} requests) before the swap")
        return sum(1 for r in self.results if r[0] > moment)


def deleted_index_files(pid: int, root: Path, served: Path) -> list[str]:
    """Files under ``root`` deleted from disk that process ``pid`` still has open or mapped.

    A file of the index served now does not count: a rebuild hard-links the unchanged ONNX
    export into the new index, and the model loaded from the old path is kept (same inode).
    """
    current = {p.stat().st_ino for p in served.rglob("*") if p.is_file()}
    found = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
            inode = os.stat(f"/proc/{pid}/fd/{name}").st_ino
        except OSError:
            continue
        if target.startswith(str(root)) and target.endswith("(deleted)") and inode not in current:
            found.append(target)
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(None, 5)
        if str(root) in line and line.endswith("(deleted)") and int(parts[4]) not in current:
            found.append(parts[-1])
    return sorted(set(found))


def assert_files_closed(pid: int, served: Path, timeout: float = 15) -> None:
    """Soon no deleted file beside ``served`` is open or mapped in process ``pid``."""
    deadline = time.monotonic() + timeout
    while (left := deleted_index_files(pid, served.parent, served)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"process {pid} still holds deleted index files: {left[:8]}"


def server_pids(proc: subprocess.Popen[bytes]) -> list[int]:
    """The processes that serve: the server itself, or the workers of a supervisor."""
    try:
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    except OSError:
        kids = []
    # A multiprocess supervisor's children include its resource tracker: keep servers only.
    workers = [int(k) for k in kids if "rag" in Path(f"/proc/{k}/cmdline").read_text()]
    return workers or [proc.pid]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small corpus and its index, built once with the real model by ``rag index``."""
    root = tmp_path_factory.mktemp("live")
    corpus = root / "corpus"
    corpus.mkdir()
    # Two short guides: a build is then mostly the model's start-up (~10 s).
    for name in ("guide.md", "ladder.mdx"):
        shutil.copy(ROOT / "tests" / "data" / "files" / name, corpus)
    rag_index(root / "index", corpus, root / "data")
    return root / "index", corpus


def served_copy(base: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the base corpus and index for one test to change."""
    index, corpus = base
    shutil.copytree(corpus, tmp_path / "corpus")
    shutil.copytree(index, tmp_path / "served" / "index")
    return tmp_path / "served" / "index", tmp_path / "corpus"


def ready_json(url: str) -> dict[str, Any]:
    return _get(f"{url}/ready").json()


@pytest.mark.slow
def test_a_live_server_switches_to_a_rebuilt_index_under_load(
    base: tuple[Path, Path], tmp_path: Path
) -> None:
    index_dir, corpus = served_copy(base, tmp_path)
    with rag_serve(index_dir, corpus, tmp_path) as (url, proc, _):
        before = ready_json(url)
        assert before["build_id"] and before["loaded_at"] and before["reload_error"] is None
        assert _get(f"{url}/documents/zorblax-certification").status_code == 404
        with Load(url) as load:
            (corpus / "zorblax.md").write_text(FACT_GUIDE)
            rag_index(index_dir, corpus, tmp_path / "data")
            after = wait_for(
                lambda: (r := ready_json(url))["build_id"] != before["build_id"] and r,
                "the new index to be served",
            )
            swapped = time.monotonic()
            wait_for(lambda: load.after(swapped) >= 8, "requests after the swap")
        assert load.results and not load.failures(), load.failures()[:5]
        assert datetime.fromisoformat(after["loaded_at"]) > datetime.fromisoformat(
            before["loaded_at"]
        )
        assert after["counts"]["sources"] == 3
        hits = httpx.post(f"{url}/search", json={"query": FACT_QUERY}, timeout=30).json()
        assert hits["results"][0]["citation"]["doc_id"] == "zorblax-certification"
        assert _get(f"{url}/documents/zorblax-certification").status_code == 200
        # The old build's files, deleted by the swap, are closed and unmapped.
        assert_files_closed(proc.pid, index_dir)


@pytest.mark.slow
def test_every_worker_switches_to_a_rebuilt_index(base: tuple[Path, Path], tmp_path: Path) -> None:
    index_dir, corpus = served_copy(base, tmp_path)
    with rag_serve(index_dir, corpus, tmp_path, workers=2) as (url, proc, _):
        old = ready_json(url)["build_id"]
        with Load(url, threads=4) as load:
            (corpus / "zorblax.md").write_text(FACT_GUIDE)
            rag_index(index_dir, corpus, tmp_path / "data")
            new = json.loads((index_dir / "manifest.json").read_text())["build_id"]
            assert new != old
            # Connections land on either worker: twenty /ready in a row all show the new one.
            wait_for(
                lambda: all(ready_json(url)["build_id"] == new for _ in range(20)),
                "both workers to serve the new index",
            )
            swapped = time.monotonic()
            wait_for(lambda: load.after(swapped) >= 8, "requests after the swap")
        assert load.results and not load.failures(), load.failures()[:5]
        for pid in server_pids(proc):
            assert_files_closed(pid, index_dir)


@pytest.mark.slow
def test_a_live_server_without_an_index_serves_once_one_is_built(
    base: tuple[Path, Path], tmp_path: Path
) -> None:
    _, corpus = base
    index_dir = tmp_path / "later" / "index"  # not even its parent exists
    with rag_serve(index_dir, corpus, tmp_path, wait=False) as (url, _, log_path):
        ready = wait_for(
            lambda: (r := _get(f"{url}/ready")).json()["status"] == "error" and r, "the load"
        )
        assert ready.status_code == 503
        search = httpx.post(f"{url}/search", json={"query": "data pipelines"}, timeout=10)
        assert search.status_code == 503
        for response in (ready, search):
            detail = response.json()["detail"]
            assert "no index" in detail and "rag index" in detail
            assert str(tmp_path) not in detail and "/" not in detail
        rag_index(index_dir, corpus, tmp_path / "data")
        wait_for(lambda: _get(f"{url}/ready").status_code == 200, "the new index", 60)
        search = httpx.post(f"{url}/search", json={"query": "data pipelines"}, timeout=30)
        assert search.status_code == 200 and search.json()["results"]
        assert str(index_dir) in log_path.read_text()  # the log has the whole story


@pytest.mark.slow
def test_a_live_server_keeps_serving_when_the_new_index_is_damaged(
    base: tuple[Path, Path], tmp_path: Path
) -> None:
    index_dir, corpus = served_copy(base, tmp_path)
    with rag_serve(index_dir, corpus, tmp_path) as (url, _, log_path):
        first = ready_json(url)["build_id"]
        with Load(url, threads=2) as load:
            swap_into_place(damage(index_dir, tmp_path / "served" / ".damaged"), index_dir)
            ready = wait_for(
                lambda: (r := _get(f"{url}/ready")).json()["reload_error"] and r,
                "the reload error",
            )
            seen = time.monotonic()
            wait_for(lambda: load.after(seen) >= 8, "requests after the failed reload")
        assert load.results and not load.failures(), load.failures()[:5]
        assert ready.status_code == 200 and ready.json()["build_id"] == first
        error = ready.json()["reload_error"]
        assert "meta.sqlite" in error and str(tmp_path) not in ready.text and "/" not in error
        log = log_path.read_text()
        assert "could not be loaded" in log and str(index_dir) in log
