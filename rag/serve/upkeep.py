"""A running server keeps each collection current: uploads and deletions re-index it, and its
sources are synced on a schedule (``sync_every``) or when the admin page asks.

Builds run in a worker thread, never on the event loop, one at a time per collection: a
request that arrives while one runs is covered by the next, which then takes in every change
made meanwhile. The build lock (rag.index.lock) keeps other processes' builds (another worker,
``rag index``) from writing the index at the same time. After a build the new index is loaded
and swapped in before the request is answered, so an uploaded document is searchable as soon
as its 201 arrives; a failed build leaves the previous index serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from functools import partial

import anyio
import anyio.from_thread
import anyio.to_thread

from rag.collections import Collection
from rag.config import Settings
from rag.index.manifest import Manifest
from rag.serve.services import Services
from rag.sources.uploads import Change, Upload, Uploads
from rag.upkeep import (
    CollectionSync,
    Models,
    SyncBusy,
    build_collection,
    last_sync,
    sync_collection,
)

log = logging.getLogger(__name__)


class Upkeep:
    """One collection's builds, uploads and syncs in this server process."""

    def __init__(self, collection: Collection, svc: Services, models: Models) -> None:
        self.collection = collection
        self.svc = svc
        self.models = models
        self.uploads = Uploads(collection.layout.uploads_dir)
        self._lock = anyio.Lock()
        self._wanted = 0  # builds asked for
        self._built = 0  # of those, how many the last finished build covered
        self._result: Manifest | BaseException | None = None
        self._sync: asyncio.Task[CollectionSync | None] | None = None
        self.sync_started: str | None = None

    @property
    def name(self) -> str:
        return self.collection.name

    async def rebuild(self) -> Manifest:
        """Re-index the collection (or wait for a build that covers this request) and serve
        the result; raises the build's error."""
        self._wanted += 1
        ticket = self._wanted
        async with self._lock:
            if self._built < ticket:  # no build started after this request: run one
                target = self._wanted
                try:
                    self._result = await anyio.to_thread.run_sync(self._build)
                except Exception as exc:
                    self._result = exc
                finally:
                    self._built = target
                if isinstance(self._result, Manifest):
                    await self.svc.refresh()
        result = self._result
        if isinstance(result, BaseException):
            raise result
        assert result is not None
        return result

    def _build(self) -> Manifest:
        # Its folder sources linked in, should no sync have laid the corpus out yet.
        self.collection.layout.assemble()
        return build_collection(self.collection.settings, self.models)

    async def add(self, uploads: list[Upload]) -> Manifest:
        """Keep uploaded files and re-index; a failed build takes them out again."""
        change = await anyio.to_thread.run_sync(self.uploads.add, uploads)
        return await self._settle(change)

    async def remove(self, name: str) -> Manifest:
        """Delete an uploaded file and re-index; a failed build puts it back."""
        change = await anyio.to_thread.run_sync(self.uploads.remove, name)
        return await self._settle(change)

    async def _settle(self, change: Change) -> Manifest:
        try:
            return await self.rebuild()
        except BaseException:
            await anyio.to_thread.run_sync(change.rollback)
            raise

    # ------------------------------------------------------------------ syncs

    @property
    def syncing(self) -> bool:
        """Whether this process is syncing the collection now."""
        return self._sync is not None and not self._sync.done()

    def sync_now(self) -> bool:
        """Start a sync in the background; False if one is already running here."""
        if self.syncing:
            return False
        self.sync_started = datetime.now().astimezone().isoformat(timespec="seconds")
        self._sync = asyncio.get_running_loop().create_task(self.sync())
        return True

    async def sync(self) -> CollectionSync | None:
        """Sync every source in a worker thread, re-index through ``rebuild``; None when
        another process is syncing the collection."""
        settings = self.collection.settings

        def build(_: Settings) -> Manifest:
            # Back on the event loop, so a sync's build is one of this collection's builds.
            return anyio.from_thread.run(self.rebuild)

        try:
            outcome = await anyio.to_thread.run_sync(
                partial(sync_collection, self.collection, build)
            )
        except SyncBusy as exc:
            log.info("not syncing %s: %s", self.name, exc)
            return None
        except Exception:
            log.exception("syncing collection %s failed", self.name)
            return None
        finally:
            self.sync_started = None
        log.warning(
            "synced collection %s: %s; index %s (%s)",
            self.name,
            outcome.status,
            outcome.index.status if outcome.index else "-",
            settings.index_dir,
        )
        return outcome

    async def on_schedule(self, every: float, stop: anyio.Event) -> None:
        """Sync every ``every`` seconds after the last sync finished (any process's, as
        recorded), until ``stop`` is set."""
        while not stop.is_set():
            wait = await anyio.to_thread.run_sync(self._until_due, every)
            if wait > 0:
                with anyio.move_on_after(wait):
                    await stop.wait()
                continue  # the record may have moved meanwhile (another worker synced)
            self.sync_now()  # or join the one the admin page started
            assert self._sync is not None
            await asyncio.wait({self._sync})
            if self._sync.result() is None:
                # Another process holds the sync, or it crashed: look again a little later.
                with anyio.move_on_after(min(every, 60.0)):
                    await stop.wait()

    async def close(self) -> None:
        """At shutdown: stop waiting for a sync (its thread finishes what it is doing)."""
        if self._sync is not None and not self._sync.done():
            self._sync.cancel()
            await asyncio.wait({self._sync}, timeout=5)

    def _until_due(self, every: float) -> float:
        """Seconds until the next sync is due (0 or less: now)."""
        last = last_sync(self.collection)
        if last is None or last.finished_at is None:
            return 0.0
        finished = datetime.fromisoformat(last.finished_at).timestamp()
        return finished + every - time.time()
