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
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from rag.search.qa import Reply
from rag.serve.deps import Ready
from rag.serve.schemas import ERRORS, QUERY_ERRORS, ChatRequest, ChatResponse
from rag.serve.services import Session

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
    if body.stream:
        reply = await svc.pipeline.retrieve(body.question(), "chat")
        # The session (and its index) is held until the stream's last event has been sent.
        return StreamingResponse(
            _chat_events(svc, reply),
            media_type="text/event-stream",
            # Proxies must pass each event on as it comes rather than buffer the stream.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    reply = await svc.pipeline.ask(body.question(), "chat")
    answer = reply.answer
    assert answer is not None
    return {"answer": answer.text, "answered": answer.answered, "note": answer.note,
            "results": svc.results(reply.hits), "query": reply.query,
            "query_id": reply.query_id, "took_ms": reply.took_ms}  # fmt: skip


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _chat_events(svc: Session, reply: Reply) -> AsyncIterator[str]:
    # Closed however the stream ends, so the reply is logged even when the client went away.
    async with aclosing(svc.pipeline.stream(reply)) as events:
        async for kind, data in events:
            if kind == "sources":
                results = svc.results(reply.hits)
                yield _event("sources", {"query": reply.query, "query_id": reply.query_id,
                                         "results": results})  # fmt: skip
            elif kind == "piece":
                yield _event("delta", {"text": data})
            elif kind == "done":
                yield _event("done", {"answer": data.text, "answered": data.answered,
                                      "note": data.note, "query_id": reply.query_id})  # fmt: skip
            else:
                log.error("chat stream %s: could not build the answer", reply.query_id,
                          exc_info=data)  # fmt: skip
                yield _event("error", {"detail": "could not build the answer"})
