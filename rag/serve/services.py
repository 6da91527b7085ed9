"""What the request handlers share: settings, the query log and, once loaded, the index."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, HTTPException, Request

from rag.config import Settings
from rag.errors import BadQuery
from rag.index.manifest import corpus_fingerprint
from rag.index.store import Index
from rag.present import hits_json
from rag.search.chat import resolve_query
from rag.search.retriever import Retriever
from rag.search.types import Filters, Hit, SearchResult
from rag.serve.batching import MicroBatcher
from rag.serve.querylog import QueryLog, QueryRecord
from rag.serve.schemas import ChatMessage

# A file changed this close to a staleness check may change again with the same size and
# mtime (timestamps are 1-10 ms coarse on Linux, 2 s on FAT), so such a check is not reused.
RACY_STAT_NS = 2_000_000_000


@dataclass
class Services:
    """Everything the handlers share: settings, the query log and, once loaded, the index."""

    settings: Settings
    querylog: QueryLog
    retriever: Retriever | None = None
    batcher: MicroBatcher | None = None
    error: str | None = None
    titles: tuple[str, ...] = ()
    documents: list[dict[str, Any]] = field(default_factory=list)
    # Searches hold the GIL for much of their time: more threads than cores only thrash.
    search_slots: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(os.cpu_count() or 1)
    )
    # (index, corpus fingerprint, stale sources) of the last trustworthy check; swapped whole.
    _stale: tuple[Index, tuple[tuple[str, int, int], ...], tuple[str, ...]] | None = field(
        default=None, init=False, repr=False
    )
    # One hashing at a time: concurrent probes wait for it and reuse its result.
    _stale_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def base_url(self) -> str:
        """Prefix of citation URLs."""
        return self.settings.public_url.rstrip("/")

    def attach(self, retriever: Retriever) -> None:
        """Serve this retriever; reads the document list once (blocking: call from a thread)."""
        single_threaded_kernels()
        counts = retriever.index.chunk_counts()
        docs = retriever.index.documents()
        self.documents = [
            {"id": d.id, "title": d.title, "source": d.source, "sections": d.outline,
             "chunks": counts.get(d.id, 0)}
            for d in docs
        ]  # fmt: skip
        self.titles = tuple(d.title for d in docs)
        self._stale = None  # belongs to the previous index (and would keep it alive)
        self.batcher = MicroBatcher(
            retriever.encode,
            max_wait_ms=self.settings.batch_wait_ms,
            max_batch=self.settings.batch_max,
        )
        self.retriever = retriever

    def stale_sources(self) -> list[str]:
        """The loaded index's stale sources; re-hashes the corpus only when file stats change."""
        assert self.retriever is not None
        index = self.retriever.index
        corpus = Path(self.settings.corpus_dir)
        try:
            fingerprint = corpus_fingerprint(corpus)
        except OSError:  # a file vanished while listing: nothing stable to cache under
            return index.stale_sources(corpus)
        with self._stale_lock:
            cached = self._stale
            if cached is not None and cached[0] is index and cached[1] == fingerprint:
                return list(cached[2])
            checked_at = time.time_ns()
            stale = index.stale_sources(corpus)
            if all(mtime < checked_at - RACY_STAT_NS for _, _, mtime in fingerprint):
                self._stale = (index, fingerprint, tuple(stale))
            return stale

    async def search(self, query: str, k: int, filters: Filters | None = None) -> SearchResult:
        """Encode through the batcher, then search in a worker thread."""
        assert self.retriever is not None and self.batcher is not None
        vector = await self.batcher.encode(query)
        return await anyio.to_thread.run_sync(
            partial(self.retriever.search_vector, query, vector, k, filters=filters),
            limiter=self.search_slots,
        )

    def query(self, text: str, k: int, field: str = "query") -> str:
        """The stripped query, checked as the schema describes it: not blank, and at most
        ``max_query_chars`` characters as sent (the schema's maxLength counts those)."""
        assert self.retriever is not None
        limit = self.settings.max_query_chars
        if len(text) > limit:
            raise BadQuery(f"{field} is longer than {limit} characters", field=field)
        if not text.strip():
            raise BadQuery(f"{field} must not be blank", field=field)
        return self.retriever.check(text, k)

    def check_chat(self, messages: Sequence[ChatMessage]) -> None:
        """Every user turn is a question: not blank, not over the query limit (the schema says
        the same); at least one is there."""
        users = [n for n, m in enumerate(messages) if m.role == "user"]
        if not users:
            raise BadQuery("the conversation has no user message", field="messages")
        for n in users:
            field = f"messages.{n}.content"
            if len(messages[n].content) > self.settings.max_query_chars:
                limit = self.settings.max_query_chars
                raise BadQuery(f"a user message is longer than {limit} characters", field=field)
            if not messages[n].content.strip():
                raise BadQuery("a user message must not be blank", field=field)

    async def resolve(self, messages: Sequence[ChatMessage]) -> str:
        """The conversation's standalone query, resolved in a worker thread.

        Resolution is pure Python over every turn of a body of up to ``max_body_bytes``: on the
        event loop, a long conversation would hold up every other request meanwhile.
        """
        self.check_chat(messages)
        # The latest user turn is the question; assistant turns after it are left out.
        last = max(n for n, m in enumerate(messages) if m.role == "user")
        resolve = partial(
            resolve_query,
            messages[: last + 1],
            self.titles,
            max_chars=self.settings.max_query_chars,
        )
        return await anyio.to_thread.run_sync(resolve, limiter=self.search_slots)

    async def answer(self, result: SearchResult) -> str:
        """The extractive answer, built in a worker thread from the index's sentence vectors."""
        assert self.retriever is not None
        answer = await anyio.to_thread.run_sync(self.retriever.answer, result)
        return answer.text

    def results(self, hits: Sequence[Hit]) -> list[dict[str, Any]]:
        """Hits in their JSON form."""
        return hits_json(list(hits), self.base_url)

    def log_query(self, endpoint: str, query: str, hits: Sequence[Hit], started: float) -> str:
        """Queue a query-log record; returns the new query id."""
        assert self.retriever is not None
        manifest = self.retriever.index.manifest
        query_id = uuid.uuid4().hex
        self.querylog.record(
            QueryRecord(
                query_id=query_id,
                endpoint=endpoint,
                query=query,
                chunk_ids=[h.chunk.id for h in hits],
                scores=[h.score for h in hits],
                latency_ms=ms_since(started),
                index_built_at=manifest.built_at,
                model=manifest.model,
            )
        )
        return query_id


def ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def services(request: Request) -> Services:
    """The app's shared services; 503 when the app's lifespan has not started them."""
    svc = getattr(request.app.state, "services", None)
    if svc is None:
        raise HTTPException(503, detail="the server is starting", headers={"Retry-After": "5"})
    return svc


def ready_services(svc: Annotated[Services, Depends(services)]) -> Services:
    """The shared services, or 503 while the index is not loaded."""
    if svc.retriever is None:
        detail = svc.error or "the index is still loading"
        raise HTTPException(503, detail=detail, headers={"Retry-After": "5"})
    return svc


Svc = Annotated[Services, Depends(services)]


Ready = Annotated[Services, Depends(ready_services)]


def single_threaded_kernels() -> None:
    """Run torch and FAISS kernels on one thread each: in a server, requests are the parallelism.

    Their default of one OpenMP thread per core fights the request threads (and any other
    process) for the same cores; on a busy 2-core machine that made a one-query encode take
    ~200 ms instead of ~15 ms. The setting is process-wide, hence only in the server.
    """
    import faiss

    faiss.omp_set_num_threads(1)
    torch = sys.modules.get("torch")  # a torch-free query embedder must not import it
    if torch is not None:
        torch.set_num_threads(1)
