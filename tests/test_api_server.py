"""A real uvicorn server on 127.0.0.1 under a bounded concurrent load (run with -s for figures)."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from rag.analytics.querylog import db_path
from rag.config import Settings
from rag.search.retriever import Retriever
from rag.serve.app import create_app
from rag.serve.runner import uvicorn_options

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = 480
CONCURRENCY = 16

pytestmark = pytest.mark.slow


@contextmanager
def running_server(settings: Settings, retriever: Retriever) -> Iterator[tuple[str, object]]:
    """Serve the app from a thread on a free port of 127.0.0.1; stop it (and flush) on exit."""
    app = create_app(settings, retriever)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # the kernel picks a free port; no race for it
    port = sock.getsockname()[1]
    # The options run_server uses: its protocol, deadlines and caps are under the load too.
    options = uvicorn_options(settings)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(600):  # a hang guard: the server starts in well under a second
            if server.started or not thread.is_alive():
                break
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


def request_plan(n: int) -> list[tuple[str, dict]]:
    """n requests: /search over the dev questions, one in 24 an /ask and one in 24 a /chat."""
    lines = (ROOT / "tests" / "data" / "dev_questions.jsonl").read_text().splitlines()
    questions = [json.loads(line)["question"] for line in lines if line.strip()]
    plan = []
    for i in range(n):
        q = questions[i % len(questions)]
        if i % 24 == 5:
            plan.append(("/ask", {"query": q, "k": 3}))
        elif i % 24 == 17:
            messages = [
                {"role": "user", "content": "What does a lead data scientist do?"},
                {"role": "assistant", "content": "A Lead Data Scientist leads a team. [1]"},
                {"role": "user", "content": "How much do they earn?"},
            ]
            plan.append(("/chat", {"messages": messages, "k": 3}))
        else:
            plan.append(("/search", {"query": q, "k": 5}))
    return plan


async def run_load(base_url: str, plan: list[tuple[str, dict]]) -> dict:
    pending = list(enumerate(plan))
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    query_ids: set[str] = set()
    health: list[tuple[int, float]] = []
    finished = asyncio.Event()
    limits = httpx.Limits(max_connections=CONCURRENCY + 2)

    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            while pending:
                i, (path, body) = pending.pop()
                t0 = time.perf_counter()
                resp = await client.post(path, json=body)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[i] = resp.status_code
                if resp.status_code == 200:
                    query_ids.add(resp.json()["query_id"])

        async def probe() -> None:
            # At least one probe, then one every 50 ms until the load is over.
            while True:
                t0 = time.perf_counter()
                resp = await client.get("/health", timeout=10)
                health.append((resp.status_code, (time.perf_counter() - t0) * 1000))
                if finished.is_set():
                    return
                await asyncio.sleep(0.05)

        prober = asyncio.create_task(probe())
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - t0
        finished.set()
        await prober
    return {
        "statuses": statuses,
        "latencies": latencies,
        "elapsed": elapsed,
        "health": health,
        "query_ids": query_ids,
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def test_server_serves_concurrent_load_without_errors_and_health_stays_up(
    real_index_dir: Path, real_retriever: Retriever, tmp_path: Path
) -> None:
    # 480 requests from one client: no rate limit and no cap on one client's share of the log
    # (tests/test_hardening.py is about them).
    settings = Settings(
        index_dir=real_index_dir, corpus_dir=ROOT / "corpus", data_dir=tmp_path,
        rate_limit="off", log_max_rows_per_client_hour=0,
    )  # fmt: skip
    plan = request_plan(REQUESTS)
    with running_server(settings, real_retriever) as (base_url, app):
        # Warm-up outside the measurement: the first encode pays for lazy initialisation.
        assert httpx.post(f"{base_url}/search", json={"query": "warm up"}).status_code == 200
        result = asyncio.run(run_load(base_url, plan))
        batcher = app.state.services.current.batcher

    statuses = result["statuses"]
    errors = {i: s for i, s in statuses.items() if s != 200}
    assert len(statuses) == REQUESTS and not errors, errors
    assert len(result["query_ids"]) == REQUESTS
    health = result["health"]
    assert health and all(status == 200 for status, _ in health)

    # The shutdown flushed the query log: every request, and the warm-up, is in it.
    con = sqlite3.connect(db_path(settings.data_dir))
    try:
        logged = {row[0] for row in con.execute("SELECT query_id FROM queries")}
    finally:
        con.close()
    assert result["query_ids"] <= logged and len(logged) == REQUESTS + 1

    lat = result["latencies"]
    health_ms = [ms for _, ms in health]
    print(
        f"\nload: {REQUESTS} requests at concurrency {CONCURRENCY} in {result['elapsed']:.1f} s"
        f" = {REQUESTS / result['elapsed']:.0f} req/s; latency p50 {statistics.median(lat):.0f} ms,"
        f" p99 {percentile(lat, 99):.0f} ms; /health during load: {len(health)} probes,"
        f" p50 {statistics.median(health_ms):.1f} ms, max {max(health_ms):.0f} ms;"
        f" encode batches {batcher.batches} for {batcher.encoded} queries"
        f" (largest {batcher.largest_batch})"
    )
