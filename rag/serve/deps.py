"""The dependencies request handlers ask for: the server, a collection's services (access
checked), and the request's session on that collection's index.

A route serves the default collection at its own path (``/search``) and any collection under
``/c/{collection}`` (``/c/handbook/search``): the same handler, which reads the collection from
the path through these dependencies, so no handler can forget to check who may use it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi import Path as PathParam

from rag.collections import NAME_PATTERN, Collection
from rag.errors import ModelNotFound
from rag.serve.schemas import ErrorResponse
from rag.serve.services import Services, Session
from rag.serve.state import ServerState

COLLECTION_PREFIX = "/c/{collection}"


def collection_path(
    collection: Annotated[
        str,
        PathParam(
            pattern=NAME_PATTERN,
            description="A collection's name (`GET /collections` lists those you may use).",
        ),
    ],
) -> str:
    """The collection the path names: declared here so the schema lists the parameter."""
    return collection


# What a collection route may answer besides a route's own statuses.
COLLECTION_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "The collection is private: send a key"},
    403: {"model": ErrorResponse, "description": "The key may not use this collection"},
    404: {"model": ErrorResponse, "description": "No collection of that name"},
    429: {"model": ErrorResponse, "description": "Too many failed authentications"},
}


def server_state(request: Request) -> ServerState:
    """The running server; 503 while the app's lifespan has not started it."""
    state: ServerState | None = getattr(request.app.state, "server", None)
    if state is None:
        raise HTTPException(503, detail="the server is starting", headers={"Retry-After": "5"})
    return state


Server = Annotated[ServerState, Depends(server_state)]


async def collection_services(request: Request, state: Server) -> Services:
    """The services of the collection the path names (the default one without a prefix), if
    the caller may use it: 404 for an unknown name, 401/403 (rag.serve.access) otherwise."""
    collection = state.catalog.get(request.path_params.get("collection"))
    await state.access.authorise(request, collection)
    return state.services[collection.name]


Svc = Annotated[Services, Depends(collection_services)]


def _prefix(request: Request) -> str:
    name = request.path_params.get("collection")
    return f"/c/{name}" if name is not None else ""


async def current_session(request: Request, svc: Svc) -> AsyncIterator[Session | None]:
    """The request's session on the current snapshot (None while no index is loaded), held
    until the response has been sent: FastAPI (0.118 on) runs the code after ``yield`` then,
    a streamed response's last chunk included."""
    snapshot = svc.acquire()
    if snapshot is None:
        yield None
        return
    client = request.client.host if request.client else None
    try:
        yield Session(svc, snapshot, client, _prefix(request))
    finally:
        svc.release(snapshot)


Current = Annotated[Session | None, Depends(current_session)]


async def ready_session(session: Current, svc: Svc) -> Session:
    """The request's session, or 503 while no index is loaded."""
    if session is None:
        detail = svc.error or "the index is still loading"
        raise HTTPException(503, detail=detail, headers={"Retry-After": "5"})
    return session


Ready = Annotated[Session, Depends(ready_session)]


def model_collection(state: ServerState, model: str | None) -> Collection:
    """The collection an OpenAI-style ``model`` names: a collection's name, or the configured
    model id (``openai_model``) or nothing for the default one. Without a config file there
    is one collection, which answers whatever model is named."""
    catalog = state.catalog
    if not catalog.configured or model in (None, state.settings.openai_model):
        return catalog.get(None)
    if model in catalog.collections:
        return catalog.collections[model]
    raise ModelNotFound(f"The model {model!r} does not exist: GET /v1/models lists the models")


def model_id(state: ServerState, collection: Collection) -> str:
    """The id the OpenAI-compatible API lists ``collection`` under."""
    return collection.name if state.catalog.configured else state.settings.openai_model


async def model_session(request: Request, state: Server) -> AsyncIterator[Session]:
    """The session on the collection the JSON body's ``model`` names, if the caller may use it
    (the body is read here and parsed again, from the same bytes, for the handler)."""
    try:
        body = await request.json()
    except ValueError:
        body = None  # the handler's own parsing answers a body that is not JSON
    model = body.get("model") if isinstance(body, dict) else None
    collection = model_collection(state, model if isinstance(model, str) else None)
    await state.access.authorise(request, collection)
    svc = state.services[collection.name]
    snapshot = svc.acquire()
    if snapshot is None:
        detail = svc.error or "the index is still loading"
        raise HTTPException(503, detail=detail, headers={"Retry-After": "5"})
    prefix = "" if collection.name == state.catalog.default else f"/c/{collection.name}"
    client = request.client.host if request.client else None
    try:
        yield Session(svc, snapshot, client, prefix)
    finally:
        svc.release(snapshot)


ModelReady = Annotated[Session, Depends(model_session)]
