"""The app factory: ``create_app(settings, retriever=None)``.

The settings name the collections served (rag.collections: one, ``default``, without a config
file). The lifespan opens each collection's query log and loads its index in a worker thread
(unless a retriever is injected, served as the default collection's): ``/health`` answers at
once, ``/ready`` and the query endpoints answer 503 until the index is loaded. Then, with
``reload`` on, it watches for a new index swapped into each index directory and switches to it
without a restart (rag.serve.reload). Query encodes of concurrent requests are micro-batched
(rag.serve.batching); searching and answer building run in worker threads, so the event loop
only parses, dispatches and formats.

Every collection route is served twice: for the default collection at its own path
(``/search``) and for any collection under ``/c/{collection}`` (``/c/handbook/search``); the
dependencies of rag.serve.deps check who may use it. ``/mcp`` and ``/c/{collection}/mcp`` serve
the same indexes to MCP clients (rag.serve.mcp_http); the lifespan runs their session managers
inside its own, so MCP calls stop before the indexes are closed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from rag import __version__
from rag.collections import Catalog
from rag.config import Settings
from rag.runtime import configure_process
from rag.search.retriever import Retriever
from rag.serve.apidocs import router as apidocs_router
from rag.serve.cors import CollectionCORS
from rag.serve.deps import COLLECTION_ERRORS, COLLECTION_PREFIX, collection_path
from rag.serve.errors import add_error_handlers
from rag.serve.limits import RateLimit
from rag.serve.mcp_http import MCP_PATH, McpRoutes
from rag.serve.middleware import BodyGuard, HeadAsGet, HostGuard, host_of
from rag.serve.openai_schemas import document_limits
from rag.serve.pages import collection_router as collection_pages
from rag.serve.pages import prefixed_router as prefixed_pages
from rag.serve.pages import router as pages_router
from rag.serve.routes import COLLECTION_ROUTERS, ROUTERS
from rag.serve.routes.admin import LOGIN_PATH
from rag.serve.routes.admin_sources import ADMIN_FORMS, UPLOAD_PATHS
from rag.serve.state import running

log = logging.getLogger(__name__)


def allowed_hosts(settings: Settings) -> list[str]:
    """Host headers the app answers: the setting, or this server's own names."""
    if settings.allowed_hosts:
        return list(settings.allowed_hosts)
    hosts = ["localhost", "127.0.0.1", "::1"]
    if settings.host not in ("0.0.0.0", "::"):
        hosts.append(host_of(settings.host))
    public = urlsplit(settings.public_url).hostname
    if public:
        hosts.append(public)
    return list(dict.fromkeys(hosts))


def create_app(settings: Settings | None = None, retriever: Retriever | None = None) -> FastAPI:
    """The FastAPI app; loads each collection's index at start-up (an injected ``retriever``
    is served as the default collection's); raises ConfigError for a bad config file."""
    settings = settings or Settings()
    catalog = Catalog.from_settings(settings)
    mcp = McpRoutes(settings, catalog, allowed_hosts(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(settings, catalog, retriever) as state:
            app.state.server = state
            # The default collection's services, as the app had before collections.
            app.state.services = state.default
            app.state.admin_auth = state.admin_auth
            try:
                async with mcp.running(state):
                    yield
            finally:
                app.state.server = app.state.services = app.state.admin_auth = None

    app = FastAPI(
        title="career-rag",
        version=__version__,
        summary="Retrieval question answering over career guides, with exact citations.",
        lifespan=lifespan,
        # FastAPI's own pages load their scripts from a CDN: apidocs serves local copies.
        docs_url=None,
        redoc_url=None,
    )
    for router in ROUTERS:
        app.include_router(router)
    for router in (*COLLECTION_ROUTERS, collection_pages):
        app.include_router(router)
        # The same handlers for every collection, named apart in the OpenAPI schema.
        app.include_router(
            router,
            prefix=COLLECTION_PREFIX,
            tags=["collections"],
            dependencies=[Depends(collection_path)],
            responses=COLLECTION_ERRORS,
        )
    app.include_router(
        prefixed_pages, prefix=COLLECTION_PREFIX, dependencies=[Depends(collection_path)]
    )
    app.router.routes.append(Route(MCP_PATH, endpoint=mcp, include_in_schema=False))
    app.router.routes.append(
        Route(f"{COLLECTION_PREFIX}{MCP_PATH}", endpoint=mcp, include_in_schema=False)
    )
    app.include_router(pages_router)
    if settings.docs:
        app.include_router(apidocs_router)
    app.openapi = partial(_openapi, app, settings, catalog, retriever)  # type: ignore[method-assign]
    add_error_handlers(app)
    # Each add_middleware wraps what is there: the last added runs first.
    app.add_middleware(
        BodyGuard,
        max_bytes=settings.max_body_bytes,
        timeout_s=settings.body_timeout_s,
        form_paths=(LOGIN_PATH,),
        form_pattern=ADMIN_FORMS,
        upload_pattern=UPLOAD_PATHS,
        max_upload_bytes=max(c.settings.max_upload_bytes for c in catalog),
    )
    # Before the body is read: a client over its rate costs nothing more.
    rates = {c.name: c.settings.rate_limit for c in catalog}
    app.add_middleware(RateLimit, rate=settings.rate_limit, rates=rates, default=catalog.default)
    app.add_middleware(HeadAsGet)
    # Outside the above, so their error responses (413, 429 too) carry the CORS headers.
    app.add_middleware(CollectionCORS, settings=settings, catalog=catalog)
    app.add_middleware(HostGuard, allowed=allowed_hosts(settings))
    # Outermost: the client address every limit is keyed on is known before anything else.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    return app


def _openapi(
    app: FastAPI, settings: Settings, catalog: Catalog, retriever: Retriever | None
) -> dict[str, Any]:
    """The OpenAPI schema, with the limits this server is configured with, the public
    collections' names and, once the index is loaded and when there is one public collection,
    the document ids a search may be filtered by: exactly what the server accepts. Nothing of
    a private collection is named in it."""
    svc = getattr(app.state, "services", None)
    current = svc.current if svc is not None else None
    only = next(iter(catalog)) if len(catalog.collections) == 1 else None
    doc_ids: list[str] = []
    if only is not None and only.public:
        doc_ids = [d["id"] for d in current.documents] if current is not None else []
        if not doc_ids and retriever is not None:
            doc_ids = [d.id for d in retriever.index.documents()]
    if app.openapi_schema is None or getattr(app.state, "openapi_doc_ids", None) != doc_ids:
        app.openapi_schema = None
        schema = FastAPI.openapi(app)
        components = schema["components"]["schemas"]
        for name in ("SearchRequest", "AskRequest", "ChatRequest"):
            props = components[name]["properties"]
            props["k"].update(minimum=1, maximum=settings.max_k, default=settings.k)
            if "query" in props:
                props["query"]["maxLength"] = settings.max_query_chars
        user_turn = components["ChatMessage"]["then"]["properties"]["content"]
        user_turn["maxLength"] = settings.max_query_chars
        document_limits(components, settings.max_query_chars)
        comment = components["FeedbackRequest"]["properties"]["comment"]["anyOf"][0]
        comment["maxLength"] = settings.max_comment_chars
        if doc_ids:
            doc_id = components["SearchFilters"]["properties"]["doc_id"]["anyOf"][0]
            doc_id["enum"] = doc_ids
        public = [c.name for c in catalog if c.public]
        for path, operations in schema["paths"].items():
            if not path.startswith(COLLECTION_PREFIX) or not public:
                continue
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    if parameter["name"] == "collection" and parameter["in"] == "path":
                        parameter["schema"]["enum"] = public
        app.state.openapi_doc_ids = doc_ids
    return app.openapi_schema


def app_factory() -> FastAPI:
    """An app configured from the environment (``uvicorn --factory rag.serve.app:app_factory``)."""
    configure_process()  # before the lifespan loads torch or FAISS
    return create_app(Settings())
