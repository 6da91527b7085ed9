"""What one running server holds: each collection's services, the keys and who may use what.

The lifespan (rag.serve.app) builds a ``ServerState`` and keeps it on ``app.state.server``;
request handlers reach a collection's services through the dependencies of
rag.serve.services, which check access on the way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.to_thread

from rag.analytics.querylog import QueryLog
from rag.collections import Catalog, Collection
from rag.config import Settings
from rag.keys import KeyStore
from rag.search.retriever import Retriever
from rag.serve.access import Access
from rag.serve.admin_auth import AdminAuth, Failures
from rag.serve.reload import keep_current
from rag.serve.services import Services
from rag.serve.upkeep import Upkeep
from rag.upkeep import Models

log = logging.getLogger(__name__)


@dataclass
class ServerState:
    """Every collection's services, and the server-wide keys, access and admin sign-in."""

    settings: Settings
    catalog: Catalog
    services: dict[str, Services]
    access: Access
    admin_auth: AdminAuth | None = None
    # Each collection's uploads, re-indexing and syncs (rag.serve.upkeep), by name.
    upkeep: dict[str, Upkeep] = field(default_factory=dict)
    _loaders: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    @property
    def default(self) -> Services | None:
        """The services the unprefixed routes use, if there is a default collection."""
        return self.services.get(self.catalog.default) if self.catalog.default else None

    def collections(self) -> Iterator[tuple[Collection, Services]]:
        """Each collection with its services, in the config file's order."""
        for collection in self.catalog:
            yield collection, self.services[collection.name]


@asynccontextmanager
async def running(
    settings: Settings, catalog: Catalog, retriever: Retriever | None = None
) -> AsyncIterator[ServerState]:
    """Open every collection's query log, load (and follow) its index, until the block ends.

    An injected ``retriever`` is served as the default collection's index, as it is.
    """
    failures = Failures(settings.admin_auth_limit)
    admin_auth = AdminAuth(settings, failures) if settings.admin_token else None
    access = Access(KeyStore(settings.data_dir), failures)
    services: dict[str, Services] = {}
    models = Models()  # the model builds embed with, loaded when the first build needs it
    stop = anyio.Event()
    state = ServerState(settings, catalog, services, access, admin_auth)
    async with AsyncExitStack() as stack:
        if admin_auth is not None:
            stack.callback(admin_auth.close)
        for collection in catalog:
            own = collection.settings
            querylog = QueryLog(
                own.data_dir,
                max_age_days=own.log_max_age_days,
                max_rows=own.log_max_rows,
                max_rows_per_client_hour=own.log_max_rows_per_client_hour,
            )
            # Blocks until every queued record is written.
            stack.push_async_callback(anyio.to_thread.run_sync, querylog.close)
            svc = services[collection.name] = Services(own, querylog, collection.name)
            stack.push_async_callback(svc.close)
            if retriever is not None and collection.name == catalog.default:
                await svc.attach(retriever)
            else:
                task = asyncio.create_task(_keep_current(svc, stop))
                state._loaders.append(task)
            upkeep = state.upkeep[collection.name] = Upkeep(collection, svc, models)
            stack.push_async_callback(upkeep.close)
            if own.sync_every is not None:
                task = asyncio.create_task(upkeep.on_schedule(own.sync_every, stop))
                state._loaders.append(task)
        try:
            yield state
        finally:
            stop.set()  # each watch returns within its step
            for task in state._loaders:
                # A load under way finishes in its thread; shutdown does not wait for it long.
                task.cancel()
            if state._loaders:
                await asyncio.wait(state._loaders, timeout=5)


async def _keep_current(svc: Services, stop: anyio.Event) -> None:
    """Load the configured index, then every newer one; a failure is kept for /ready."""
    try:
        await keep_current(svc, stop)
    except Exception:
        log.exception("watching the index for changes failed; serving the loaded one")
