"""Routes: /health (liveness), /collections (what the caller may use) and /ready (a
collection's loaded index)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from rag.serve.deps import Current, Server, Svc
from rag.serve.schemas import ERRORS, CollectionList, HealthResponse, ReadyResponse

router = APIRouter(responses=ERRORS, tags=["service"])
# Served for the default collection at /ready and for each at /c/{collection}/ready.
collection_router = APIRouter(responses=ERRORS, tags=["service"])


@router.get("/health", response_model=HealthResponse)
async def health() -> dict[str, str]:
    """Liveness: answers at once, whatever the index or the load."""
    return {"status": "ok"}


@router.get("/collections", response_model=CollectionList)
async def collections(request: Request, state: Server) -> dict[str, Any]:
    """The collections the caller may use (the public ones without a key), each with its
    path prefix and whether its index is loaded."""
    caller = await state.access.caller(request)
    listed = []
    for collection, svc in state.collections():
        if not caller.may_use(collection):
            continue
        current = svc.current
        listed.append({
            "name": collection.name,
            "public": collection.public,
            "default": collection.name == state.catalog.default,
            "prefix": f"/c/{collection.name}",
            "ready": current is not None,
            "documents": len(current.documents) if current is not None else None,
        })  # fmt: skip
    return {"collections": listed}


@collection_router.get(
    "/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "Index not loaded (yet)"}},
)
def ready(svc: Svc, session: Current) -> Any:
    """Readiness: the served index's build, model, counts, when it was loaded, whether the
    corpus changed since, and why a newer index could not be loaded, if one could not."""
    if session is None:
        status = "error" if svc.error else "loading"
        body = ReadyResponse(status=status, detail=svc.error or "the index is still loading")
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "5"})
    snapshot = session.snapshot
    # Probes come every few seconds: hashing a large corpus each time would be most of the work.
    stale = session.stale_sources()
    return ReadyResponse(
        status="ready",
        model=snapshot.manifest.model,
        built_at=snapshot.manifest.built_at,
        build_id=snapshot.build_id,
        loaded_at=snapshot.loaded_at,
        reload_error=svc.reload_error,
        counts=snapshot.manifest.counts,
        stale=bool(stale),
        stale_sources=stale,
    )
