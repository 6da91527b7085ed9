"""Routes: /search and /ask."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from rag.serve.deps import Ready
from rag.serve.schemas import (
    ERRORS,
    QUERY_ERRORS,
    AskRequest,
    AskResponse,
    SearchRequest,
    SearchResponse,
)

router = APIRouter(responses=ERRORS, tags=["query"])


@router.post("/search", response_model=SearchResponse, responses=QUERY_ERRORS)
async def search(body: SearchRequest, svc: Ready) -> dict[str, Any]:
    """Top-k passages for a query, each with its citation."""
    reply = await svc.pipeline.search(body.question(), "search")
    return {"query": reply.query, "results": svc.results(reply.hits), "took_ms": reply.took_ms,
            "query_id": reply.query_id}  # fmt: skip


@router.post("/ask", response_model=AskResponse, responses=QUERY_ERRORS)
async def ask(body: AskRequest, svc: Ready) -> dict[str, Any]:
    """An extractive answer whose [n] markers cite results[n-1]."""
    reply = await svc.pipeline.ask(body.question(), "ask")
    answer = reply.answer
    assert answer is not None
    return {"query": reply.query, "answer": answer.text, "answered": answer.answered,
            "note": answer.note, "results": svc.results(reply.hits), "query_id": reply.query_id,
            "took_ms": reply.took_ms}  # fmt: skip
