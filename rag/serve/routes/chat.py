"""Routes: /chat, as JSON or as a stream of server-sent events.

Streaming chat answers ``text/event-stream``; every event is one ``event:`` line and one
``data:`` line of JSON, then a blank line::

    event: sources
    data: {"query": "...", "query_id": "...", "results": [...]}   # sent as soon as retrieval ends

    event: delta
    data: {"text": "First sentence. [1] "}                       # the answer, piece by piece

    event: done
    data: {"answer": "...", "answered": true, "note": null, "query_id": "..."}

The ``delta`` texts concatenate to ``done.answer``; an answer with no sentence sends no delta.
``answered`` is false when the documents do not answer the question (the answer then says so,
and the sources are only the nearest passages).
If building the answer fails after the stream has begun, an ``event: error`` with
``{"detail": "..."}`` ends it instead of ``done``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from rag.search.types import SearchResult
from rag.serve.schemas import ERRORS, QUERY_ERRORS, ChatRequest, ChatResponse
from rag.serve.services import Ready, Session, ms_since, new_query_id

log = logging.getLogger(__name__)

router = APIRouter(responses=ERRORS, tags=["query"])

_CHAT_DESCRIPTION = """Answers the last user message of a conversation. Follow-ups such as
"How much do they earn?" or "And at Google?" are first resolved into a standalone query
(returned as `query`) by carrying over the subject of earlier turns.

With `"stream": true` the answer is `text/event-stream`: `event: sources` (data: `{query,
query_id, results}`), then one `event: delta` per piece of the answer (data: `{text}`; the texts
concatenate to the answer), then `event: done` (data: `{answer, answered, note, query_id}`).
Each event's data is one line of JSON. `answered` is false when the documents do not answer the
question: the answer says so, and the sources are only the nearest passages."""


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
    'event: done\ndata: {"answer": "First sentence. [1]", "answered": true, "note": null, '
    '"query_id": "..."}\n\n'
)


@router.post(
    "/chat",
    response_model=ChatResponse,
    description=_CHAT_DESCRIPTION,
    responses={
        **QUERY_ERRORS,
        200: {
            "description": "The answer, as JSON or (with `stream`) as server-sent events.",
            "content": {"text/event-stream": {"schema": _SSE_EVENT, "example": _SSE_EXAMPLE}},
        },
    },
)
async def chat(body: ChatRequest, svc: Ready) -> Any:
    """Answer the last message of a conversation, resolving follow-ups."""
    started = time.perf_counter()
    query = await svc.resolve(body.messages)
    query = svc.retriever.check(query, body.k)
    result = await svc.search(query, body.k, body.filters.to_filters())
    results = svc.results(result.hits)
    if body.stream:
        # The session (and its index) is held until the stream's last event has been sent.
        return StreamingResponse(
            _chat_events(svc, query, result, results, started),
            media_type="text/event-stream",
            # Proxies must pass each event on as it comes rather than buffer the stream.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    answer = await svc.answer(result)
    query_id = svc.log_query("chat", query, result.hits, started, answered=answer.answered)
    return {"answer": answer.text, "answered": answer.answered, "note": answer.note,
            "results": results, "query": query, "query_id": query_id,
            "took_ms": ms_since(started)}  # fmt: skip


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


# A piece ends after a citation marker and the space after it; the rest is one last piece.
_PIECE_RE = re.compile(r".*?\[\d+\]\s*|.+", re.S)


async def _chat_events(
    svc: Session, query: str, result: SearchResult, results: list[dict[str, Any]], started: float
) -> AsyncIterator[str]:
    query_id = new_query_id()
    answered: bool | None = None
    try:
        yield _event("sources", {"query": query, "query_id": query_id, "results": results})
        try:
            answer = await svc.answer(result)
        except Exception:
            log.exception("chat stream %s: could not build the answer", query_id)
            yield _event("error", {"detail": "could not build the answer"})
            return
        answered = answer.answered
        for piece in _PIECE_RE.findall(answer.text):
            yield _event("delta", {"text": piece})
        yield _event("done", {"answer": answer.text, "answered": answer.answered,
                              "note": answer.note, "query_id": query_id})  # fmt: skip
    finally:
        # Logged once the answer is known, or when the client went away before it.
        svc.log_query("chat", query, result.hits, started, answered=answered, query_id=query_id)
