"""Routes: /search and /ask."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from rag.serve.schemas import (
    ERRORS,
    QUERY_ERRORS,
    AskRequest,
    AskResponse,
    SearchRequest,
    SearchResponse,
)
from rag.serve.services import Ready, ms_since

router = APIRouter(responses=ERRORS, tags=["query"])


@router.post("/search", response_model=SearchResponse, responses=QUERY_ERRORS)
async def search(body: SearchRequest, svc: Ready) -> dict[str, Any]:
    """Top-k passages for a query, each with its citation."""
    started = time.perf_counter()
    query = svc.query(body.query, body.k)
    result = await svc.search(query, body.k, body.filters.to_filters())
    query_id = svc.log_query("search", query, result.hits, started)
    return {"query": query, "results": svc.results(result.hits), "took_ms": ms_since(started),
            "query_id": query_id}  # fmt: skip


@router.post("/ask", response_model=AskResponse, responses=QUERY_ERRORS)
async def ask(body: AskRequest, svc: Ready) -> dict[str, Any]:
    """An extractive answer whose [n] markers cite results[n-1]."""
    started = time.perf_counter()
    query = svc.query(body.query, body.k)
    result = await svc.search(query, body.k, body.filters.to_filters())
    answer = await svc.answer(result)
    query_id = svc.log_query("ask", query, result.hits, started, answered=answer.answered)
    return {"query": query, "answer": answer.text, "answered": answer.answered,
            "note": answer.note, "results": svc.results(result.hits), "query_id": query_id,
            "took_ms": ms_since(started)}  # fmt: skip
