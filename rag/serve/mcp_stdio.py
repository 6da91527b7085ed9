"""``rag mcp``: the MCP server (rag.serve.mcp_server) on stdin and stdout.

stdout carries the protocol and nothing else: while the index and model load, file descriptor
1 points at stderr, so whatever a library prints lands there; the SDK's stdio transport then
diverts it the same way while it serves. Logging goes to stderr. The index is loaded once and
read by one client, one call at a time.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Any

import anyio
import anyio.to_thread

from rag.config import Settings
from rag.index.store import DocumentInfo
from rag.present import hits_json
from rag.search.qa import Pipeline
from rag.search.question import Limits
from rag.search.retriever import Retriever
from rag.search.types import Hit
from rag.serve.mcp_server import build_server


class LoadedIndex:
    """The stdio server's index: the tools' corpus and every call's reader."""

    def __init__(self, retriever: Retriever, settings: Settings) -> None:
        self.retriever = retriever
        self.base_url = settings.public_url.rstrip("/")
        index = retriever.index
        counts = index.chunk_counts()
        self.documents = tuple(
            {"id": d.id, "title": d.title, "source": d.source, "sections": d.outline,
             "chunks": counts.get(d.id, 0)}
            for d in index.documents()
        )  # fmt: skip
        # One call at a time: a single client, and the model's own threads are the parallelism.
        slot = anyio.CapacityLimiter(1)
        self.pipeline = Pipeline(
            retriever,
            Limits.from_settings(settings),
            offload=partial(anyio.to_thread.run_sync, limiter=slot),
        )

    def served_documents(self) -> tuple[dict[str, Any], ...]:
        return self.documents

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[LoadedIndex]:
        yield self

    def document(self, doc_id: str) -> DocumentInfo:
        """One document with its text; raises DocumentNotFound."""
        return self.retriever.index.document(doc_id)

    def results(self, hits: Sequence[Hit]) -> list[dict[str, Any]]:
        return hits_json(list(hits), self.base_url)


def serve_stdio(retriever: Retriever, settings: Settings) -> None:
    """Serve MCP on stdin and stdout until the client closes stdin."""
    server = build_server(LoadedIndex(retriever, settings), settings)
    anyio.run(server.run_stdio_async)


def log_to_stderr() -> None:
    """Warnings and errors of every logger go to stderr, one line each."""
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="rag mcp: %(levelname)s: %(message)s"
    )


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 (and sys.stdout) at stderr for the duration, then restore it."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
