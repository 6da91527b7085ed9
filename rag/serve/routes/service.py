"""Routes: /health (liveness) and /ready (the loaded index)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from rag.serve.schemas import ERRORS, HealthResponse, ReadyResponse
from rag.serve.services import Svc

router = APIRouter(responses=ERRORS, tags=["service"])


@router.get("/health", response_model=HealthResponse)
async def health() -> dict[str, str]:
    """Liveness: answers at once, whatever the index or the load."""
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=ReadyResponse,
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
