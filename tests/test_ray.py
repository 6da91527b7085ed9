"""On a real local Ray cluster (2 CPUs): a Ray build equals a local build with the real model,
reuses what the previous index has, and replicated serving survives a killed replica."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import ray  # noqa: F401  (the [ray] extra, which make test installs: without it this must fail)

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ROOT = Path(__file__).resolve().parent.parent
QUERIES = [
    "what does a data engineer do",
    "data engineer salary",
    "skills of a data analyst",
    "how do recruiters find candidates",
    "machine learning systems engineer responsibilities",
    "which tools build ETL pipelines",
]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    """A local cluster of 2 CPUs for the module, always shut down."""

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repo's corpus, three formats, a repeated body and a repeated title (ids and dedupe
    are decided over the whole corpus, so they must come out as a local build's)."""
    root = tmp_path_factory.mktemp("ray") / "corpus"
    shutil.copytree(ROOT / "corpus", root)
    (root / "sub").mkdir()
    md = (
        "# Data Engineer\n\nA data engineer builds pipelines.\n\n"
        "## Responsibilities\n\n- Build ETL pipelines with Spark\n- Maintain data warehouses\n\n"
        "## Salary\n\nData engineers earn $120,000 on average in the US.\n"
    )
    (root / "data-engineer.md").write_text(md, encoding="utf-8")
    (root / "sub" / "copy.md").write_text(md, encoding="utf-8")  # same body: indexed once
    (root / "sub" / "other.md").write_text(
        "# Data Engineer\n\nAnother guide with the same title and a new body about dbt.\n",
        encoding="utf-8",
    )
    (root / "sub" / "analyst.html").write_text(
        "<html><body><h1>Data Analyst</h1><p>An analyst studies data &amp; reports.</p>"
        "<h2>Skills</h2><ul><li>SQL and Excel dashboards</li><li>Statistics</li></ul>"
        "</body></html>",
        encoding="utf-8",
    )
    (root / "recruiter.txt").write_text(
        "Technical Recruiter\n\nOverview\n\nA technical recruiter hires engineers.\n\n"
        "Skills\n\n  • Sourcing candidates on LinkedIn\n  • Interviewing and negotiation\n",
        encoding="utf-8",
    )
    return root


@pytest.fixture(scope="module")
def local_index(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rag.index import build_index
    from rag.models.embedder import load_embedder

    out = tmp_path_factory.mktemp("local") / "index"
    build_index(corpus, out, load_embedder())
    return out


@pytest.fixture(scope="module")
def ray_index(corpus: Path, ray_cluster: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rag.distributed.build import RayBackend, RaySettings
    from rag.index import build_index
    from rag.models.embedder import load_embedder

    out = tmp_path_factory.mktemp("ray-index") / "index"
    backend = RayBackend(RaySettings(model="all-MiniLM-L6-v2", actors=2, batch_size=32))
    build_index(corpus, out, load_embedder(), backend=backend)
    return out


def _search(index_dir: Path) -> list[list[str]]:
    from rag.index import load_index
    from rag.search.retriever import Retriever

    index = load_index(index_dir)
    try:
        retriever = Retriever.from_index(index)
        return [
            [h.chunk.id for h in retriever.search(q, k=5, mode=mode).hits]
            for q in QUERIES
            for mode in ("hybrid", "dense")
        ]
    finally:
        index.close()


def test_ray_build_equals_local_build(local_index: Path, ray_index: Path) -> None:
    from rag.index import load_index

    local, ray_built = load_index(local_index), load_index(ray_index)
    try:
        chunks = local.all_chunks()
        assert len(chunks) > 20
        assert ray_built.all_chunks() == chunks  # ids, texts, offsets, sections, metadata
        assert ray_built.documents() == local.documents()
        assert ray_built.manifest.sources == local.manifest.sources
        n = local.faiss.ntotal
        assert ray_built.faiss.ntotal == n
        a, b = local.faiss.reconstruct_n(0, n), ray_built.faiss.reconstruct_n(0, n)
        assert np.abs(a - b).max() < 1e-5
        assert ray_built.sentences.ntotal == local.sentences.ntotal
        m = local.sentences.ntotal
        sa, sb = local.sentences.reconstruct_n(0, m), ray_built.sentences.reconstruct_n(0, m)
        assert np.abs(sa - sb).max() < 1e-5
    finally:
        local.close()
        ray_built.close()
    assert _search(ray_index) == _search(local_index)


def test_ray_rebuild_sends_only_new_texts_to_ray(
    corpus: Path, ray_index: Path, tmp_path: Path
) -> None:
    from rag.distributed.build import RayBackend, RaySettings
    from rag.index import build_index, load_index
    from rag.models.embedder import load_embedder

    changed = tmp_path / "corpus"
    shutil.copytree(corpus, changed)
    (changed / "new.md").write_text(
        "# Site Reliability Engineer\n\nAn SRE keeps services up and on call rotations sane.\n",
        encoding="utf-8",
    )
    index_dir = tmp_path / "index"
    shutil.copytree(ray_index, index_dir)
    sent: list[int] = []

    class Counting(RayBackend):
        def embed(self, embedder, texts, progress):  # type: ignore[no-untyped-def]
            sent.append(len(texts))
            return super().embed(embedder, texts, progress)

    backend = Counting(RaySettings(model="all-MiniLM-L6-v2", actors=1, batch_size=32))
    manifest = build_index(changed, index_dir, load_embedder(), backend=backend)
    chunks = manifest.extra["changes"]["chunks"]
    assert chunks["added"] == 1 and chunks["reused"] == manifest.counts["chunks"] - 1
    # One call: the one new passage and its few sentences, nothing the old index had.
    assert len(sent) == 1 and 2 <= sent[0] <= 5
    local = tmp_path / "local"
    build_index(changed, local, load_embedder())
    a, b = load_index(local), load_index(index_dir)
    try:
        assert a.all_chunks() == b.all_chunks()
        n = a.faiss.ntotal
        assert np.abs(a.faiss.reconstruct_n(0, n) - b.faiss.reconstruct_n(0, n)).max() < 1e-5
    finally:
        a.close()
        b.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _replicas(ray: object) -> list[dict[str, str]]:
    """The serving replicas' named actors (the state API would need the dashboard, which is off)."""
    from ray.util import list_named_actors

    from rag.distributed.serve import APP_NAME, DEPLOYMENT_NAME

    return [
        a
        for a in list_named_actors(all_namespaces=True)
        if "SERVE_REPLICA" in a["name"] and f"{APP_NAME}#{DEPLOYMENT_NAME}" in a["name"]
    ]


def _running(status_app: object) -> int:
    from rag.distributed.serve import DEPLOYMENT_NAME

    states = status_app.deployments[DEPLOYMENT_NAME].replica_states  # type: ignore[attr-defined]
    return int(states.get("RUNNING", 0))


def test_serve_replicas_survive_a_killed_replica_and_follow_a_new_index(
    ray_cluster: object, ray_index: Path, corpus: Path, tmp_path: Path
) -> None:
    import httpx
    from ray import serve

    from rag.config import Settings
    from rag.distributed.serve import APP_NAME, deploy
    from rag.index import build_index
    from rag.models.embedder import load_embedder

    served = tmp_path / "index"
    shutil.copytree(ray_index, served)
    port = _free_port()
    settings = Settings(
        index_dir=served,
        data_dir=tmp_path / "data",
        host="127.0.0.1",
        port=port,
        rate_limit="off",
        # Half a CPU each, so a replacement fits on 2 CPUs while the killed one winds down.
        ray_cpus_per_replica=0.5,
    )
    url = f"http://127.0.0.1:{port}"
    deploy(settings, replicas=2)
    try:
        # deploy returns once Serve routes to the replicas, and they take requests only once
        # their index is loaded (RagReplica.reconfigure): every replica answers at once.
        for _ in range(10):
            assert httpx.get(f"{url}/ready", timeout=5).status_code == 200
        assert len(_replicas(ray)) == 2

        results: list[tuple[int, int]] = []  # (status, attempts) per request
        lock = threading.Lock()
        stop = time.monotonic() + 20

        def client(n: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                for i in range(60):  # at most 240 requests in all
                    if time.monotonic() > stop:
                        return
                    body = {"query": QUERIES[(n + i) % len(QUERIES)], "k": 5}
                    for attempt in (1, 2):  # a failed request is retried exactly once
                        try:
                            status = http.post("/search", json=body).status_code
                        except httpx.HTTPError:
                            status = 0
                        if status == 200 or attempt == 2:
                            break
                    with lock:
                        results.append((status, attempt))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(3)
        victim = _replicas(ray)[0]
        ray.kill(ray.get_actor(victim["name"], namespace=victim["namespace"]), no_restart=False)
        for t in threads:
            t.join()

        assert len(results) >= 20
        retried = sum(1 for _, attempts in results if attempts == 2)
        print(f"{len(results)} requests, {retried} retried once")  # seen with -s
        failed = [r for r in results if r[0] != 200]
        assert not failed, f"{len(failed)} of {len(results)} failed even when retried"
        deadline = time.monotonic() + 90
        while True:
            app = serve.status().applications[APP_NAME]
            if _running(app) == 2 and len(_replicas(ray)) == 2:
                break
            assert time.monotonic() < deadline, "the killed replica was not replaced"
            time.sleep(1)
        assert victim["name"] not in {a["name"] for a in _replicas(ray)}
        # The replacement was routed to only once it had loaded the index: no 503 from it.
        for _ in range(10):
            assert (
                httpx.post(f"{url}/search", json={"query": "salary"}, timeout=30).status_code == 200
            )

        # A build swapped into the served directory: every replica switches to it (reload).
        changed = tmp_path / "corpus"
        shutil.copytree(corpus, changed)
        (changed / "sre.md").write_text("# SRE\n\nAn SRE keeps services up.\n", encoding="utf-8")
        new_build = build_index(changed, served, load_embedder()).build_id
        deadline = time.monotonic() + 60
        streak = 0  # Serve spreads requests over replicas: 20 answers in a row means both
        while streak < 20:
            assert time.monotonic() < deadline, "a replica kept the old index"
            ready = httpx.get(f"{url}/ready", timeout=5).json()
            streak = streak + 1 if ready.get("build_id") == new_build else 0
            time.sleep(0.05 if streak else 0.5)
    finally:
        serve.shutdown()


def test_a_replica_is_routed_to_only_once_its_index_is_loaded(
    real_index_dir: Path, tmp_path: Path
) -> None:
    import anyio

    from rag.config import Settings
    from rag.distributed.serve import READY_TIMEOUT_S, RagReplica, replica_settings

    async def start(index_dir: Path) -> tuple[bool, str | None, float]:
        settings = Settings(index_dir=index_dir, data_dir=tmp_path / index_dir.name)
        replica = RagReplica(replica_settings(settings))
        app = replica.__serve_build_asgi_app__()
        async with app.router.lifespan_context(app):
            start = time.monotonic()
            # What Serve does after the lifespan has started, before routing to the replica.
            await replica.reconfigure({"ready_timeout_s": READY_TIMEOUT_S})
            svc = app.state.server.default
            return svc.current is not None, svc.error, time.monotonic() - start

    served, error, _ = anyio.run(start, real_index_dir)
    assert served and error is None
    # An index that cannot load ends the wait too: the replica answers 503 with the reason.
    served, error, waited = anyio.run(start, tmp_path / "missing")
    assert not served and error and waited < READY_TIMEOUT_S
