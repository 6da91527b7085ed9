"""The app factory: ``create_app(settings, retriever=None)``.

Its lifespan opens the query log and loads the index in a worker thread (unless a retriever is
injected): ``/health`` answers at once, ``/ready`` and the query endpoints answer 503 until the
index is loaded. Then, with ``reload`` on, it watches for a new index swapped into the index
directory and switches to it without a restart (rag.serve.reload); an injected retriever is
served as it is. Query encodes of concurrent requests are micro-batched (rag.serve.batching);
searching and answer building run in worker threads, so the event loop only parses, dispatches
and formats.

``/mcp`` serves the same index to MCP clients (rag.serve.mcp_http); the lifespan runs its
session manager inside its own, so MCP calls stop before the index is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from rag import __version__
from rag.analytics.querylog import QueryLog
from rag.config import Settings
from rag.runtime import configure_process
from rag.search.retriever import Retriever
from rag.serve.admin_auth import AdminAuth
from rag.serve.apidocs import router as apidocs_router
from rag.serve.errors import add_error_handlers, error_response
from rag.serve.limits import RateLimit
from rag.serve.mcp_http import MCP_PATH, McpEndpoint, transport_security
from rag.serve.middleware import BodyGuard, HeadAsGet, HostGuard, host_of
from rag.serve.openai_schemas import document_limits
from rag.serve.pages import router as pages_router
from rag.serve.reload import keep_current
from rag.serve.routes import ROUTERS
from rag.serve.routes.admin import LOGIN_PATH
from rag.serve.services import Services

log = logging.getLogger(__name__)


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


class _CORS(CORSMiddleware):
    """Starlette's CORS middleware, refusing a preflight in the API's JSON error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {k: v for k, v in response.headers.items() if k.startswith(("access-", "vary"))}
        detail = f"CORS preflight refused: {bytes(response.body).decode()}"
        return error_response(response.status_code, detail, kind="cors", headers=headers)


def create_app(settings: Settings | None = None, retriever: Retriever | None = None) -> FastAPI:
    """The FastAPI app; loads the configured index at start-up unless one is given."""
    settings = settings or Settings()
    mcp = McpEndpoint(settings, transport_security(allowed_hosts(settings), _origins(settings)))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        querylog = QueryLog(
            settings.data_dir,
            max_age_days=settings.log_max_age_days,
            max_rows=settings.log_max_rows,
            max_rows_per_client_hour=settings.log_max_rows_per_client_hour,
        )
        svc = Services(settings, querylog)
        app.state.services = svc
        # Admin sessions and failed sign-ins; /admin is off (404) without a token.
        admin_auth = AdminAuth(settings) if settings.admin_token else None
        app.state.admin_auth = admin_auth
        stop = anyio.Event()
        loader = None
        if retriever is not None:
            await svc.attach(retriever)
        else:
            loader = asyncio.create_task(_keep_current(svc, stop))
        try:
            async with mcp.running(svc):
                yield
        finally:
            stop.set()  # the watch returns within its step
            if loader is not None:
                # A load under way finishes in its thread; shutdown does not wait for it long.
                loader.cancel()
                await asyncio.wait([loader], timeout=5)
            await svc.close()
            # Blocks until every queued record is written.
            await anyio.to_thread.run_sync(svc.querylog.close)
            if admin_auth is not None:
                admin_auth.close()

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
    app.router.routes.append(Route(MCP_PATH, endpoint=mcp, include_in_schema=False))
    app.include_router(pages_router)
    if settings.docs:
        app.include_router(apidocs_router)
    app.openapi = partial(_openapi, app, settings, retriever)  # type: ignore[method-assign]
    add_error_handlers(app)
    # Each add_middleware wraps what is there: the last added runs first.
    app.add_middleware(
        BodyGuard,
        max_bytes=settings.max_body_bytes,
        timeout_s=settings.body_timeout_s,
        form_paths=(LOGIN_PATH,),
    )
    # Before the body is read: a client over its rate costs nothing more.
    app.add_middleware(RateLimit, rate=settings.rate_limit)
    app.add_middleware(HeadAsGet)
    # Outside the above, so their error responses (413, 429 too) carry the CORS headers.
    app.add_middleware(
        _CORS,
        allow_origins=_origins(settings),
        allow_methods=["GET", "POST"],
        # With the headers an MCP client in a page sends to /mcp.
        allow_headers=["Content-Type", "Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name"],
        max_age=600,
    )
    app.add_middleware(HostGuard, allowed=allowed_hosts(settings))
    # Outermost: the client address every limit is keyed on is known before anything else.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    return app


def _openapi(app: FastAPI, settings: Settings, retriever: Retriever | None) -> dict[str, Any]:
    """The OpenAPI schema, with the limits this server is configured with and, once the index
    is loaded, the document ids a search may be filtered by: exactly what the server accepts."""
    svc = getattr(app.state, "services", None)
    current = svc.current if svc is not None else None
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
        app.state.openapi_doc_ids = doc_ids
    return app.openapi_schema


async def _keep_current(svc: Services, stop: anyio.Event) -> None:
    """Load the configured index, then every newer one; a failure is kept for /ready."""
    try:
        await keep_current(svc, stop)
    except Exception:
        log.exception("watching the index for changes failed; serving the loaded one")


def app_factory() -> FastAPI:
    """An app configured from the environment (``uvicorn --factory rag.serve.app:app_factory``)."""
    configure_process()  # before the lifespan loads torch or FAISS
    return create_app(Settings())
