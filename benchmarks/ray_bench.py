"""Ray on one 2-core machine: embedding throughput with 1 and 2 actors against a local embed of
the same texts, Ray's fixed start-up cost, and serving throughput with 1 and 2 Serve replicas
against `rag serve --workers 2`. Writes benchmarks/ray.json and prints a Markdown table.

    python -m benchmarks.ray_bench [--texts 512] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    ROOT,
    bench_queries,
    dump,
    free_port,
    loadavg,
    machine,
    now,
    wait_ready,
)
from benchmarks.loadgen import run_load

OUT = Path(__file__).with_name("ray.json")
WORK = Path("/tmp/rag-bench/ray")


class _Silent:
    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass


def _texts(n: int) -> list[str]:
    """n passage texts from the repo's corpus, made distinct so nothing is cached."""
    from rag.ingest.chunking import chunk_documents
    from rag.ingest.loader import load_corpus

    docs, _ = load_corpus(ROOT / "corpus")
    base = [c.embedding_text() for c in chunk_documents(docs)]
    return [f"{base[i % len(base)]} ({i})" for i in range(n)]


def embedding(ray: Any, n: int) -> dict[str, Any]:
    """Passages per second: local encode, then Ray with 1 and 2 actors (start-up included)."""
    from rag.distributed.build import RayBackend, RaySettings
    from rag.models.embedder import SentenceTransformerEmbedder

    texts = _texts(n)
    t0 = time.perf_counter()
    embedder = SentenceTransformerEmbedder()
    load_s = time.perf_counter() - t0
    embedder.embed(texts[:16])
    t0 = time.perf_counter()
    embedder.embed(texts)
    local_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "texts": n,
        "model_load_s": round(load_s, 2),
        "local": {"seconds": round(local_s, 2), "per_s": round(n / local_s, 1)},
    }
    for actors in (1, 2):
        backend = RayBackend(RaySettings(model=embedder.model_id, actors=actors, batch_size=64))
        t0 = time.perf_counter()
        backend.embed(embedder, texts, _Silent())
        wall = time.perf_counter() - t0
        out[f"ray_{actors}"] = {
            "seconds": round(wall, 2),
            "per_s": round(n / wall, 1),
            "loadavg": loadavg(),
        }
    return out


def startup() -> tuple[Any, dict[str, Any]]:
    """Seconds for ray.init (a local cluster) and for the first task after it."""
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t0

    @ray.remote
    def one() -> int:
        return 1

    t0 = time.perf_counter()
    ray.get(one.remote())
    return ray, {"init_s": round(init_s, 2), "first_task_s": round(time.perf_counter() - t0, 2)}


def _load(port: int, seconds: float) -> dict[str, Any]:
    bodies = [{"query": q, "k": 5} for q in bench_queries(64)]
    run_load(port, bodies[:8], concurrency=4, max_requests=40, max_seconds=10)  # warm-up
    return {**run_load(port, bodies, concurrency=8, max_requests=2000, max_seconds=seconds),
            "loadavg": loadavg()}  # fmt: skip


def serving(index_dir: Path, seconds: float) -> dict[str, Any]:
    """Closed-loop /search throughput: uvicorn with 2 workers, then 1 and 2 Serve replicas."""
    from ray import serve

    from rag.config import Settings
    from rag.distributed.serve import APP_NAME, deploy

    out: dict[str, Any] = {}
    port = free_port()
    env = {
        "RAG_INDEX_DIR": str(index_dir),
        "RAG_RATE_LIMIT": "off",
        "RAG_LOG_MAX_ROWS_PER_CLIENT_HOUR": "0",  # one load generator: log all of it
        "RAG_DATA_DIR": str(WORK / "data"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "serve", "--port", str(port), "--workers", "2"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/ready")
        out["uvicorn_workers_2"] = _load(port, seconds)
    finally:
        proc.terminate()
        proc.wait(30)
    for replicas in (1, 2):
        port = free_port()
        settings = Settings(
            index_dir=index_dir,
            data_dir=WORK / "data",
            port=port,
            rate_limit="off",
            log_max_rows_per_client_hour=0,
        )
        deploy(settings, replicas=replicas)
        try:
            wait_ready(f"http://127.0.0.1:{port}/ready")
            out[f"serve_replicas_{replicas}"] = _load(port, seconds)
        finally:
            serve.delete(APP_NAME)
            serve.shutdown()
    return out


def main() -> None:
    """Run every part and write ray.json."""
    p = argparse.ArgumentParser()
    p.add_argument("--texts", type=int, default=512)
    p.add_argument("--seconds", type=float, default=20)
    args = p.parse_args()
    from rag.index import build_index
    from rag.models.embedder import load_embedder

    WORK.mkdir(parents=True, exist_ok=True)
    index_dir = WORK / "index"
    build_index(ROOT / "corpus", index_dir, load_embedder())
    result: dict[str, Any] = {"date": now(), "machine": machine(), "loadavg_start": loadavg()}
    ray, result["startup"] = startup()
    try:
        result["embedding"] = embedding(ray, args.texts)
        result["serving"] = serving(index_dir, args.seconds)
    finally:
        ray.shutdown()
    result["loadavg_end"] = loadavg()
    OUT.write_text(dump(result))
    print(dump(result))


if __name__ == "__main__":
    main()
