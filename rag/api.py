"""HTTP API over the library: search, answers, chat, documents, health and feedback.

``create_app(settings, retriever=None)`` builds the app. Its lifespan opens the query log and
loads the index in a worker thread (unless a retriever is injected): ``/health`` answers at once,
``/ready`` and the query endpoints answer 503 until the index is loaded. Query encodes of
concurrent requests are micro-batched (``rag.batching``); searching and answer building run in
worker threads, so the event loop only parses, dispatches and formats.

Streaming chat (``POST /chat`` with ``"stream": true``) answers ``text/event-stream``; every
event is one ``event:`` line and one ``data:`` line of JSON, then a blank line::

    event: sources
    data: {"query": "...", "query_id": "...", "results": [...]}   # sent as soon as retrieval ends

    event: delta
    data: {"text": "First sentence. [1] "}                       # the answer, piece by piece

    event: done
    data: {"answer": "...", "query_id": "..."}                    # the whole answer text

The ``delta`` texts concatenate to ``done.answer``; an answer with no sentence sends no delta.
If building the answer fails after the stream has begun, an ``event: error`` with
``{"detail": "..."}`` ends it instead of ``done``.

Every error is JSON: ``{"detail": "<message naming the field>", "field": "query", "errors":
[{"field", "message", "type"}...]}``; ``field`` is a dotted path into the request body
(``filters.doc_id``, ``messages.2.role``), ``errors`` lists every validation problem.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag import __version__, webui
from rag.batching import MicroBatcher
from rag.chat import resolve_query
from rag.config import Settings
from rag.errors import (
    BadQuery,
    CorpusEmpty,
    DocumentNotFound,
    IndexIncompatible,
    IndexNotFound,
    IndexStale,
    RagError,
)
from rag.index import Index, corpus_fingerprint
from rag.querylog import QueryLog, QueryNotFound, QueryRecord
from rag.retrieval import Hit, Retriever, SearchResult

log = logging.getLogger(__name__)

MAX_K = Settings.model_fields["max_k"].default
# A file changed this close to a staleness check may change again with the same size and
# mtime (timestamps are 1-10 ms coarse on Linux, 2 s on FAT), so such a check is not reused.
RACY_STAT_NS = 2_000_000_000

# --------------------------------------------------------------------------- models


def _encodable(text: str) -> str:
    # JSON may carry lone surrogates ("\ud800"); they cannot be encoded, logged or answered.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text (it contains a lone surrogate)") from exc
    return text


Text = Annotated[str, Field(strict=True), AfterValidator(_encodable)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Documented, not enforced here: the retriever rejects a blank or too long query with a
# readable message, and the served schema carries the configured limit (see _openapi).
_QUERY_SCHEMA = {"pattern": r"\S"}


class SearchFilters(_Request):
    """Restrict a search."""

    doc_id: Text | None = Field(None, min_length=1, description="Only passages of this document.")


class SearchRequest(_Request):
    """A search: the query, how many passages, and optional filters."""

    query: Text = Field(
        description="The question or keywords; not blank, at most `max_query_chars` characters.",
        examples=["What skills does an ML fraud engineer need?"],
        json_schema_extra=_QUERY_SCHEMA,
    )
    k: StrictInt = Field(5, ge=1, le=MAX_K, description="How many passages to return.")
    filters: SearchFilters = Field(default_factory=SearchFilters)


class AskRequest(_Request):
    """A question to answer from the top passages."""

    query: Text = Field(
        description="The question; not blank, at most `max_query_chars` characters.",
        examples=["How much does a lead data scientist earn?"],
        json_schema_extra=_QUERY_SCHEMA,
    )
    k: StrictInt = Field(5, ge=1, le=MAX_K, description="How many passages to retrieve.")


class ChatMessage(_Request):
    """One turn of a conversation."""

    role: Literal["user", "assistant"]
    content: Text


class ChatRequest(_Request):
    """A conversation whose last message, from the user, is to be answered."""

    messages: list[ChatMessage] = Field(
        min_length=1,
        max_length=100,
        description="Oldest first; the last message must be from the user.",
        examples=[
            [
                {"role": "user", "content": "What does a lead data scientist do?"},
                {"role": "assistant", "content": "A Lead Data Scientist is a senior role..."},
                {"role": "user", "content": "How much do they earn?"},
            ]
        ],
    )
    k: StrictInt = Field(5, ge=1, le=MAX_K, description="How many passages to retrieve.")
    stream: StrictBool = Field(
        False, description="Answer as server-sent events (`text/event-stream`)."
    )


class FeedbackRequest(_Request):
    """A rating of one answered query."""

    query_id: str = Field(
        pattern=r"^[0-9a-f]{32}$", description="The `query_id` of a /search, /ask or /chat."
    )
    rating: Literal["up", "down"]
    comment: Text | None = Field(None, max_length=2000)


class Citation(BaseModel):
    """Where a passage comes from, precisely enough to open it at the cited span."""

    doc_id: str
    title: str
    section: str
    section_path: list[str]
    source: str
    start: int
    end: int
    url: str


class SearchHit(BaseModel):
    """One ranked passage."""

    rank: int
    score: float = Field(
        description="In hybrid mode, how far the passage stands out from this query's other "
        "candidates (a weighted mean of standard scores); in the other modes the ranking's own "
        "score. Compare it between passages of one query, not across queries."
    )
    chunk_id: str
    text: str
    citation: Citation


class SearchResponse(BaseModel):
    """Ranked passages for a query."""

    query: str
    results: list[SearchHit]
    took_ms: float
    query_id: str


class AskResponse(BaseModel):
    """An extractive answer; its `[n]` markers cite `results[n-1]`."""

    query: str
    answer: str
    results: list[SearchHit]
    query_id: str
    took_ms: float


class ChatResponse(BaseModel):
    """The answer to the last message; `query` is what the conversation resolved to."""

    answer: str
    results: list[SearchHit]
    query: str
    query_id: str
    took_ms: float


class SectionOut(BaseModel):
    """A section: heading path and its span in the source file."""

    path: list[str]
    start: int
    end: int


class DocumentSummary(BaseModel):
    """A document without its text."""

    id: str
    title: str
    source: str
    sections: list[SectionOut]
    chunks: int


class DocumentList(BaseModel):
    """Every document in the index."""

    documents: list[DocumentSummary]


class DocumentDetail(BaseModel):
    """A document with its text; `offset` is where the text starts in its source file."""

    id: str
    title: str
    source: str
    offset: int
    text: str
    sections: list[SectionOut]


class HealthResponse(BaseModel):
    """Liveness."""

    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    """Readiness: the index, or why it is not loaded (with status 503)."""

    status: Literal["ready", "loading", "error"]
    detail: str | None = None
    model: str | None = None
    built_at: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    stale: bool | None = None
    stale_sources: list[str] = Field(default_factory=list)


class FeedbackResponse(BaseModel):
    """Feedback was recorded."""

    status: Literal["recorded"] = "recorded"
    query_id: str


class FieldError(BaseModel):
    """One problem with the request."""

    field: str
    message: str
    type: str


class ErrorResponse(BaseModel):
    """Every error response."""

    detail: str
    field: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "Malformed JSON or a body that is not UTF-8"),
        (413, "Request body too large"),
        (422, "Invalid request; `field` names the offending field"),
        (503, "Index not loaded yet"),
    )
}

# --------------------------------------------------------------------------- services


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

    async def search(self, query: str, k: int, doc_id: str | None = None) -> SearchResult:
        """Encode through the batcher, then search in a worker thread."""
        assert self.retriever is not None and self.batcher is not None
        vector = await self.batcher.encode(query)
        return await anyio.to_thread.run_sync(
            partial(self.retriever.search_vector, query, vector, k, doc_id=doc_id),
            limiter=self.search_slots,
        )

    async def answer(self, result: SearchResult) -> str:
        """The extractive answer, built in a worker thread from the index's sentence vectors."""
        assert self.retriever is not None
        answer = await anyio.to_thread.run_sync(self.retriever.answer, result)
        return answer.text

    def results(self, hits: Sequence[Hit]) -> list[dict[str, Any]]:
        """Hits in their JSON form."""
        return [h.to_dict(self.base_url) for h in hits]

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
                latency_ms=_ms(started),
                index_built_at=manifest.built_at,
                model=manifest.model,
            )
        )
        return query_id


def _ms(started: float) -> float:
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

# --------------------------------------------------------------------------- routes

router = APIRouter(responses=_ERRORS)


@router.post("/search", response_model=SearchResponse, tags=["query"])
async def search(body: SearchRequest, svc: Ready) -> dict[str, Any]:
    """Top-k passages for a query, each with its citation."""
    started = time.perf_counter()
    query = svc.retriever.check(body.query, body.k)  # type: ignore[union-attr]
    result = await svc.search(query, body.k, doc_id=body.filters.doc_id)
    query_id = svc.log_query("search", query, result.hits, started)
    return {"query": query, "results": svc.results(result.hits), "took_ms": _ms(started),
            "query_id": query_id}  # fmt: skip


@router.post("/ask", response_model=AskResponse, tags=["query"])
async def ask(body: AskRequest, svc: Ready) -> dict[str, Any]:
    """An extractive answer whose [n] markers cite results[n-1]."""
    started = time.perf_counter()
    query = svc.retriever.check(body.query, body.k)  # type: ignore[union-attr]
    result = await svc.search(query, body.k)
    answer = await svc.answer(result)
    query_id = svc.log_query("ask", query, result.hits, started)
    return {"query": query, "answer": answer, "results": svc.results(result.hits),
            "query_id": query_id, "took_ms": _ms(started)}  # fmt: skip


_CHAT_DESCRIPTION = """Answers the last user message of a conversation. Follow-ups such as
"How much do they earn?" or "And at Google?" are first resolved into a standalone query
(returned as `query`) by carrying over the subject of earlier turns.

With `"stream": true` the answer is `text/event-stream`: `event: sources` (data: `{query,
query_id, results}`), then one `event: delta` per piece of the answer (data: `{text}`; the texts
concatenate to the answer), then `event: done` (data: `{answer, query_id}`). Each event's data is
one line of JSON."""

# One event of the stream (OpenAPI 3.1 describes an event stream by its events).
_SSE_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["sources", "delta", "done", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}
_SSE_EXAMPLE = (
    'event: sources\ndata: {"query": "...", "query_id": "...", "results": []}\n\n'
    'event: delta\ndata: {"text": "First sentence. [1] "}\n\n'
    'event: done\ndata: {"answer": "First sentence. [1]", "query_id": "..."}\n\n'
)


@router.post(
    "/chat",
    response_model=ChatResponse,
    tags=["query"],
    description=_CHAT_DESCRIPTION,
    responses={
        200: {
            "description": "The answer, as JSON or (with `stream`) as server-sent events.",
            "content": {"text/event-stream": {"schema": _SSE_EVENT, "example": _SSE_EXAMPLE}},
        }
    },
)
async def chat(body: ChatRequest, svc: Ready) -> Any:
    """Answer the last message of a conversation, resolving follow-ups."""
    started = time.perf_counter()
    query = resolve_query(body.messages, svc.titles, max_chars=svc.settings.max_query_chars)
    query = svc.retriever.check(query, body.k)  # type: ignore[union-attr]
    result = await svc.search(query, body.k)
    results = svc.results(result.hits)
    if body.stream:
        query_id = svc.log_query("chat", query, result.hits, started)
        return StreamingResponse(
            _chat_events(svc, query, query_id, result, results),
            media_type="text/event-stream",
            # Proxies must pass each event on as it comes rather than buffer the stream.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    answer = await svc.answer(result)
    query_id = svc.log_query("chat", query, result.hits, started)
    return {"answer": answer, "results": results, "query": query, "query_id": query_id,
            "took_ms": _ms(started)}  # fmt: skip


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


# A piece ends after a citation marker and the space after it; the rest is one last piece.
_PIECE_RE = re.compile(r".*?\[\d+\]\s*|.+", re.S)


async def _chat_events(
    svc: Services, query: str, query_id: str, result: SearchResult, results: list[dict[str, Any]]
) -> AsyncIterator[str]:
    yield _event("sources", {"query": query, "query_id": query_id, "results": results})
    try:
        answer = await svc.answer(result)
    except Exception:
        log.exception("chat stream %s: could not build the answer", query_id)
        yield _event("error", {"detail": "could not build the answer"})
        return
    for piece in _PIECE_RE.findall(answer):
        yield _event("delta", {"text": piece})
    yield _event("done", {"answer": answer, "query_id": query_id})


@router.get("/documents", response_model=DocumentList, tags=["documents"])
async def list_documents(svc: Ready) -> dict[str, Any]:
    """Every document: id, title, source, section outline and chunk count."""
    return {"documents": svc.documents}


@router.get(
    "/documents/{doc_id}",
    response_model=DocumentDetail,
    tags=["documents"],
    responses={404: {"model": ErrorResponse, "description": "No such document"}},
)
def get_document(doc_id: Annotated[str, PathParam(max_length=512)], svc: Ready) -> dict[str, Any]:
    """One document with its text and sections (looked up in the index, never on disk)."""
    doc = svc.retriever.index.document(doc_id)  # type: ignore[union-attr]
    return {"id": doc.id, "title": doc.title, "source": doc.source, "offset": doc.offset,
            "text": doc.text, "sections": doc.outline}  # fmt: skip


@router.get("/health", response_model=HealthResponse, tags=["service"])
async def health() -> dict[str, str]:
    """Liveness: answers at once, whatever the index or the load."""
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=ReadyResponse,
    tags=["service"],
    responses={503: {"model": ReadyResponse, "description": "Index not loaded (yet)"}},
)
def ready(svc: Svc) -> Any:
    """Readiness: the loaded index's model, build time, counts and whether the corpus changed."""
    if svc.retriever is None:
        status = "error" if svc.error else "loading"
        body = ReadyResponse(status=status, detail=svc.error or "the index is still loading")
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "5"})
    index = svc.retriever.index
    # Probes come every few seconds: hashing a large corpus each time would be most of the work.
    stale = svc.stale_sources()
    return ReadyResponse(
        status="ready",
        model=index.manifest.model,
        built_at=index.manifest.built_at,
        counts=index.manifest.counts,
        stale=bool(stale),
        stale_sources=stale,
    )


@router.post(
    "/feedback",
    response_model=FeedbackResponse,
    tags=["query"],
    responses={404: {"model": ErrorResponse, "description": "No logged query with that id"}},
)
async def feedback(body: FeedbackRequest, svc: Svc) -> dict[str, str]:
    """Record a thumbs up or down (and an optional comment) on a logged query."""
    await asyncio.wrap_future(svc.querylog.feedback(body.query_id, body.rating, body.comment))
    return {"status": "recorded", "query_id": body.query_id}


# --------------------------------------------------------------------------- errors

_STATUS: tuple[tuple[type[RagError], int], ...] = (
    (BadQuery, 422),
    (DocumentNotFound, 404),
    (QueryNotFound, 404),
    (IndexNotFound, 503),
    (IndexIncompatible, 503),
    (IndexStale, 503),
    (CorpusEmpty, 503),
)
_FIELD_OF = {DocumentNotFound: "doc_id", QueryNotFound: "query_id"}
# Library field names as the request spells them: /search takes doc_id inside "filters".
_REQUEST_FIELD = {"doc_id": "filters.doc_id"}


def _error(
    status: int,
    detail: str,
    field: str | None = None,
    errors: Sequence[FieldError] | None = None,
    *,
    kind: str = "invalid",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    if errors is None:
        errors = [FieldError(field=field, message=detail, type=kind)] if field else []
    body = ErrorResponse(detail=detail, field=field, errors=list(errors))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


async def _rag_error(request: Request, exc: Exception) -> JSONResponse:
    status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
    if isinstance(exc, BadQuery):
        name = _REQUEST_FIELD.get(exc.field, exc.field)
    else:
        name = next((f for cls, f in _FIELD_OF.items() if isinstance(exc, cls)), None)
    detail = f"{name}: {exc}" if name and not str(exc).startswith(name.split(".")[-1]) else str(exc)
    return _error(status, detail, name, kind=type(exc).__name__)


def _loc(loc: Sequence[Any]) -> str:
    # Drop where FastAPI found the value ("body", "path"): the rest is the field's path.
    parts = loc[1:] if loc and loc[0] in ("body", "path", "query") else loc
    return ".".join(map(str, parts)) or "body"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for e in exc.errors():
        if e["type"] == "json_invalid":
            message = f"request body is not valid JSON ({e.get('ctx', {}).get('error', e['msg'])})"
            errors.append(FieldError(field="body", message=message, type="json_invalid"))
        else:
            errors.append(FieldError(field=_loc(e["loc"]), message=e["msg"], type=e["type"]))
    first = errors[0]
    detail = f"{first.field}: {first.message}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    status = 400 if first.type == "json_invalid" else 422
    return _error(status, detail, first.field, errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _error(exc.status_code, str(exc.detail), headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal server error")


# --------------------------------------------------------------------------- middleware

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]  # fmt: skip


class BodyGuard:
    """Reads each request body (at most ``max_bytes`` of it) before the app sees it.

    A body over the limit gets 413 whatever its Content-Length says (chunked uploads have none),
    and a JSON body that is not UTF-8 gets 400, both naming the field ``body``.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        too_big = f"request body is larger than {self.max_bytes} bytes"
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await _error(413, too_big, "body", kind="too_large")(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _error(413, too_big, "body", kind="too_large")(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if body and (not content_type or content_type.endswith((b"/json", b"+json"))):
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as exc:
                detail = f"request body is not valid UTF-8 (byte {exc.start})"
                await _error(400, detail, "body", kind="not_utf8")(scope, receive, send)
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            # Later calls wait for the client to go away, as streaming responses expect.
            return await receive()

        await self.app(scope, replay, send)


# --------------------------------------------------------------------------- app


def _origins(settings: Settings) -> list[str]:
    origins = list(settings.cors_origins)
    own = [settings.public_url]
    if settings.host not in ("0.0.0.0", "::"):
        own.append(f"http://{settings.host}:{settings.port}")
    for url in own:
        parts = urlsplit(url)
        if parts.scheme and parts.netloc:
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in origins:
                origins.append(origin)
    return origins


def create_app(settings: Settings | None = None, retriever: Retriever | None = None) -> FastAPI:
    """The FastAPI app; loads the configured index at start-up unless one is given."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = Services(settings, QueryLog(settings.data_dir))
        app.state.services = svc
        # The HTML pages (rag.webui) look the index up here.
        app.state.retriever = None
        loader = None
        if retriever is not None:
            await anyio.to_thread.run_sync(svc.attach, retriever)
            app.state.retriever = retriever
        else:
            loader = asyncio.create_task(_load(app, svc))
        try:
            yield
        finally:
            if loader is not None:
                loader.cancel()
            if svc.batcher is not None:
                await svc.batcher.close()
            # Blocks until every queued record is written.
            await anyio.to_thread.run_sync(svc.querylog.close)

    app = FastAPI(
        title="career-rag",
        version=__version__,
        summary="Retrieval question answering over career guides, with exact citations.",
        lifespan=lifespan,
    )
    app.include_router(router)
    app.include_router(webui.router)
    app.openapi = partial(_openapi, app, settings)  # type: ignore[method-assign]
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RagError, _rag_error)
    app.add_exception_handler(Exception, _server_error)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)
    # Added last, so outermost: error responses (413 too) carry the CORS headers as well.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=_origins(settings),
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type"],
        max_age=600,
    )
    return app


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


def _openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The OpenAPI schema, with the query limits this server is configured with."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        components = schema["components"]["schemas"]
        for name in ("SearchRequest", "AskRequest", "ChatRequest"):
            props = components[name]["properties"]
            props["k"]["maximum"] = min(MAX_K, settings.max_k)
            if "query" in props:
                props["query"]["maxLength"] = settings.max_query_chars
    return app.openapi_schema


async def _load(app: FastAPI, svc: Services) -> None:
    """Load the configured index in a worker thread; a failure is kept for /ready to report."""
    try:
        retriever = await anyio.to_thread.run_sync(Retriever.from_settings, svc.settings)
        await anyio.to_thread.run_sync(svc.attach, retriever)
        app.state.retriever = retriever
    except RagError as exc:
        svc.error = str(exc)
        log.error("cannot serve: %s", exc)
    except Exception as exc:
        svc.error = f"loading the index failed: {exc}"
        log.exception("loading the index failed")


def app_factory() -> FastAPI:
    """An app configured from the environment (``uvicorn --factory rag.api:app_factory``)."""
    return create_app(Settings())


def settings_env(settings: Settings) -> dict[str, str]:
    """``RAG_*`` environment variables that reproduce ``settings`` in another process."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        env[f"RAG_{name.upper()}"] = str(value)
    return env


def run_server(
    settings: Settings | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int = 1,
) -> None:
    """Serve the API with uvicorn (blocking); several workers are separate processes."""
    import uvicorn

    settings = settings or Settings()
    overrides = {"host": host, "port": port}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if workers > 1:
        # Each worker process builds its own app, so settings travel through the environment.
        os.environ.update(settings_env(settings))
        uvicorn.run(
            "rag.api:app_factory",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
        )
    else:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port)
