"""The app factory: ``create_app(settings, retriever=None)``.

Its lifespan opens the query log and loads the index in a worker thread (unless a retriever is
injected): ``/health`` answers at once, ``/ready`` and the query endpoints answer 503 until the
index is loaded. Query encodes of concurrent requests are micro-batched (rag.serve.batching);
searching and answer building run in worker threads, so the event loop only parses, dispatches
and formats.
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

from rag import __version__
from rag.config import Settings
from rag.errors import RagError
from rag.search.retriever import Retriever
from rag.serve import pages
from rag.serve.errors import add_error_handlers
from rag.serve.middleware import BodyGuard
from rag.serve.querylog import QueryLog
from rag.serve.routes import ROUTERS
from rag.serve.schemas import MAX_K
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


def create_app(settings: Settings | None = None, retriever: Retriever | None = None) -> FastAPI:
    """The FastAPI app; loads the configured index at start-up unless one is given."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = Services(settings, QueryLog(settings.data_dir))
        app.state.services = svc
        # The HTML pages (rag.serve.pages) look the index up here.
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
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(pages.router)
    app.openapi = partial(_openapi, app, settings)  # type: ignore[method-assign]
    add_error_handlers(app)
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
    """An app configured from the environment (``uvicorn --factory rag.serve.app:app_factory``)."""
    return create_app(Settings())
