"""Serve the real API (rag.serve.app.create_app on uvicorn) with a chosen query backend.

``rag serve`` builds its retriever with ``Retriever.from_settings``; this launcher builds it with
``load_query_embedder`` so that the ONNX and torch query paths can be measured side by side on
the same app, and can turn FAISS memory-mapping off for the memory comparison::

    python -m benchmarks.serve --index DIR --port 8123 --backend onnx [--workers 2] [--no-mmap]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from fastapi import FastAPI


def _retriever() -> object:
    from rag.config import Settings
    from rag.index import load_index
    from rag.models.query import load_query_embedder
    from rag.search.retriever import Retriever

    settings = Settings()
    index = load_index(
        Path(settings.index_dir), settings.model, mmap=os.environ.get("BENCH_MMAP", "1") == "1"
    )
    return Retriever(
        index,
        load_query_embedder(settings, index),
        max_k=settings.max_k,
        max_query_chars=settings.max_query_chars,
    )


def app_factory() -> FastAPI:
    """The API app with a retriever built from the environment (one per uvicorn worker)."""
    from rag.config import Settings
    from rag.serve.app import create_app

    return create_app(Settings(), _retriever())  # type: ignore[arg-type]


def main() -> None:
    """Parse flags, set the environment, and run uvicorn until killed."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", choices=["auto", "onnx", "torch"], default="onnx")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-mmap", action="store_true")
    args = parser.parse_args()
    os.environ["RAG_INDEX_DIR"] = str(args.index)
    os.environ["RAG_QUERY_BACKEND"] = args.backend
    os.environ["BENCH_MMAP"] = "0" if args.no_mmap else "1"
    # The query log is part of every request's cost; keep it, but out of the repository.
    os.environ.setdefault("RAG_DATA_DIR", tempfile.mkdtemp(prefix="rag-bench-data-"))
    from rag.config import Settings
    from rag.serve.runner import uvicorn_options

    # Same uvicorn options as rag.serve.runner.run_server (its protocol, deadlines and caps).
    options = uvicorn_options(Settings())
    if args.workers > 1:
        uvicorn.run(
            "benchmarks.serve:app_factory",
            factory=True,
            host="127.0.0.1",
            port=args.port,
            workers=args.workers,
            **options,
        )
    else:
        uvicorn.run(app_factory(), host="127.0.0.1", port=args.port, **options)


if __name__ == "__main__":
    main()
