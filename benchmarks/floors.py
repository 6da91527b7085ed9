"""The model's own floors, each measured in a fresh process (run by benchmarks.run).

A process that has loaded torch, onnxruntime and faiss together measures none of them fairly
(their thread pools compete), so every floor gets its own process, like the servers do.

    python -m benchmarks.floors st-single --index DIR     # SentenceTransformer.encode([q])
    python -m benchmarks.floors onnx-batch --index DIR    # OnnxEmbedder.embed(64 queries)
    python -m benchmarks.floors search-onnx --index DIR   # Retriever.search, ONNX encoder
    python -m benchmarks.floors st-chunks --index DIR --corpus DIR  # encode all chunk texts
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common import bench_queries, self_peak_rss_mib, summary_ms, time_calls

WHAT = (
    "st-single", "onnx-single", "st-batch", "onnx-batch", "search-onnx", "search-torch",
    "st-chunks", "onnx-chunks",
)  # fmt: skip


def chunk_texts(corpus: Path) -> list[str]:
    """The texts ``rag index`` embeds for the chunks of ``corpus`` (not the sentences)."""
    from rag.ingest.chunking import ChunkerSettings, chunk_documents
    from rag.ingest.loader import load_corpus

    docs, _ = load_corpus(corpus)
    return [c.embedding_text() for c in chunk_documents(docs, ChunkerSettings())]


def measure(
    what: str, index_dir: Path, queries: list[str], n: int, corpus: Path | None = None
) -> dict[str, Any]:
    """Time one floor; single-query floors return percentiles, batch floors queries/s."""
    q = queries
    if what.startswith("st"):
        from rag.models.embedder import SentenceTransformerEmbedder

        model = SentenceTransformerEmbedder().model
        single = lambda i: model.encode([q[i % len(q)]])  # noqa: E731
        batch = lambda i: model.encode(q[:64], batch_size=64)  # noqa: E731
    elif what.startswith("onnx"):
        from rag.models.onnx import OnnxEmbedder

        embedder = OnnxEmbedder(index_dir / "onnx", batch_size=64)
        single = lambda i: embedder.embed([q[i % len(q)]])  # noqa: E731
        batch = lambda i: embedder.embed(q[:64])  # noqa: E731
    else:
        from rag.config import Settings
        from rag.index import load_index
        from rag.models.query import load_query_embedder
        from rag.search.retriever import Retriever

        index = load_index(index_dir)
        backend = what.removeprefix("search-")
        retriever = Retriever(index, load_query_embedder(Settings(query_backend=backend), index))
        single = lambda i: retriever.search(q[i % len(q)])  # noqa: E731
        batch = None
    if what.endswith("chunks"):
        import time

        texts = chunk_texts(corpus or index_dir)
        encode = model.encode if what.startswith("st") else embedder.embed
        encode(texts[:64])  # warm-up
        t0 = time.perf_counter()
        encode(texts) if what.startswith("onnx") else encode(texts, batch_size=64)
        seconds = time.perf_counter() - t0
        return {"chunks": len(texts), "seconds": round(seconds, 3),
                "chunks_per_s": round(len(texts) / seconds, 1),
                "peak_rss_mib": self_peak_rss_mib()}  # fmt: skip
    if what.endswith("batch"):
        assert batch is not None
        times = time_calls(batch, max(3, n // 30), warmup=2)
        med = sorted(times)[len(times) // 2]
        out: dict[str, Any] = {"batch_ms": round(med * 1000, 2), "qps": round(64 / med, 1)}
    else:
        out = summary_ms(time_calls(single, n))
    out["peak_rss_mib"] = self_peak_rss_mib()
    return out


def main() -> None:
    """Measure one floor and print it as one JSON object."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=WHAT)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--corpus", type=Path, default=None)
    args = parser.parse_args()
    print(json.dumps(measure(args.what, args.index, bench_queries(), args.n, args.corpus)))


if __name__ == "__main__":
    main()
