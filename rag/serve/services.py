"""What the request handlers share: settings, the query log and the served index snapshot.

A request that reads the index takes the current snapshot (rag.serve.snapshot) once, through
the ``Ready`` or ``Current`` dependency, and holds it until its response has been sent (a
streamed /chat until its last event): the ``Session`` it is handed answers everything from
that one snapshot. ``Services.install`` swaps a new snapshot in whole; the one it replaces is
closed once the last request holding it ends. Taking, giving back and swapping happen on the
event loop only, so the counts need no lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import anyio.to_thread

from rag.analytics.querylog import QueryLog, QueryRecord
from rag.config import Settings
from rag.errors import IndexDamaged, IndexNotFound, RagError
from rag.index.manifest import Manifest
from rag.index.store import DocumentInfo
from rag.present import hits_json
from rag.search.qa import Pipeline, Reply
from rag.search.question import Limits
from rag.search.retriever import Retriever
from rag.search.types import Hit
from rag.serve.errors import public_message
from rag.serve.snapshot import Snapshot, index_version, load_snapshot

log = logging.getLogger(__name__)

_NOT_TRIED = object()


@dataclass
class Services:
    """Everything the handlers share: settings, the query log and the index being served."""

    settings: Settings
    querylog: QueryLog
    # The collection served (rag.collections): "default" without a config file.
    name: str = "default"
    # The snapshot new requests take; None until an index is loaded.
    current: Snapshot | None = None
    # Why no index is served (told to clients: no paths, see rag.serve.errors.public_message).
    error: str | None = None
    # Why the newest index in index_dir is not the one served (the old one still is).
    reload_error: str | None = None
    # Searches hold the GIL for much of their time: more threads than cores only thrash.
    search_slots: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(os.cpu_count() or 1)
    )
    # Requests holding each snapshot still in use; a snapshot absent here is held by none.
    _users: dict[Snapshot, int] = field(default_factory=dict, init=False, repr=False)
    _closing: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)
    # The build id the last load was tried for, so a build that failed is not retried.
    _tried: object = field(default=_NOT_TRIED, init=False, repr=False)

    @property
    def base_url(self) -> str:
        """Prefix of citation URLs."""
        return self.settings.public_url.rstrip("/")

    # ------------------------------------------------------------------ the served snapshot

    def acquire(self) -> Snapshot | None:
        """Take the current snapshot for one request; give it back with ``release``."""
        snapshot = self.current
        if snapshot is not None:
            self._users[snapshot] = self._users.get(snapshot, 0) + 1
        return snapshot

    def release(self, snapshot: Snapshot) -> None:
        """Give back a snapshot; the last request on a replaced one closes it."""
        left = self._users.get(snapshot, 0) - 1
        if left > 0:
            self._users[snapshot] = left
            return
        self._users.pop(snapshot, None)
        if snapshot is not self.current:
            self._close_later(snapshot)

    def install(self, snapshot: Snapshot) -> None:
        """Serve ``snapshot`` from the next request on; the one it replaces is closed as soon
        as no request holds it (at once when none does)."""
        old, self.current = self.current, snapshot
        self.error = self.reload_error = None
        if old is not None and old is not snapshot and old not in self._users:
            self._close_later(old)

    async def attach(self, retriever: Retriever, *, owned: bool = False) -> None:
        """Serve this retriever (by default its owner closes its index, not the server)."""
        snapshot = await anyio.to_thread.run_sync(
            partial(Snapshot.of, retriever, self.settings, owned=owned)
        )
        self.install(snapshot)

    async def refresh(self) -> None:
        """Load the index in ``index_dir`` unless it is the one served, or the one that failed
        last; while a new index cannot be loaded, the one loaded before is still served."""
        index_dir = Path(self.settings.index_dir)
        version = await anyio.to_thread.run_sync(index_version, index_dir)
        if version == self._tried:
            return
        self._tried = version
        if self.current is not None and version == self.current.build_id:
            self.reload_error = None  # the served build is back in place: nothing to load
            return
        try:
            snapshot = await anyio.to_thread.run_sync(load_snapshot, self.settings)
        except Exception as exc:
            self._load_failed(exc)
            return
        self._tried = snapshot.build_id
        previous = self.current
        self.install(snapshot)
        if previous is not None:
            log.warning(
                "serving the new index at %s (build %s, was %s)",
                index_dir,
                snapshot.build_id,
                previous.build_id,
            )

    def _load_failed(self, exc: Exception) -> None:
        detail = public_message(exc, self.settings.index_dir)
        more = f" ({exc.detail})" if isinstance(exc, IndexDamaged) and exc.detail else ""
        # A missing index is a state, not a fault: no traceback for it.
        trace = None if isinstance(exc, IndexNotFound) else exc
        if self.current is None:
            self.error = detail
            log.error("cannot serve: %s%s", exc, more, exc_info=trace)
        else:
            self.reload_error = detail
            log.error(
                "the new index at %s could not be loaded, still serving build %s: %s%s",
                self.settings.index_dir,
                self.current.build_id,
                exc if isinstance(exc, RagError) else repr(exc),
                more,
                exc_info=trace,
            )

    def _close_later(self, snapshot: Snapshot) -> None:
        task = asyncio.get_running_loop().create_task(self._close(snapshot))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, snapshot: Snapshot) -> None:
        try:
            await snapshot.close()
        except Exception:
            log.exception("closing the index of build %s failed", snapshot.build_id)

    async def close(self) -> None:
        """At shutdown: close every snapshot, held or not (the server no longer answers)."""
        snapshots = {*self._users, *([self.current] if self.current is not None else [])}
        self.current = None
        self._users.clear()
        for snapshot in snapshots:
            self._close_later(snapshot)
        if self._closing:
            await asyncio.gather(*self._closing)


@dataclass(frozen=True)
class Session:
    """One request's view of the index: the shared services and the snapshot it took.

    Everything a handler asks of the index goes through here, so one request never mixes two
    indexes, whatever is swapped in meanwhile.
    """

    svc: Services
    snapshot: Snapshot
    # The client's address, for the query log's per-client cap (None: not capped).
    client: str | None = None
    # What the request's path starts with ("/c/NAME" or ""): citation links keep to it.
    prefix: str = ""

    @property
    def settings(self) -> Settings:
        return self.svc.settings

    @property
    def retriever(self) -> Retriever:
        return self.snapshot.retriever

    @property
    def documents(self) -> tuple[dict[str, Any], ...]:
        return self.snapshot.documents

    def document(self, doc_id: str) -> DocumentInfo:
        """One document with its text; raises DocumentNotFound."""
        return self.retriever.index.document(doc_id)

    def stale_sources(self) -> list[str]:
        """The index's stale sources; re-hashes the corpus only when file stats change."""
        return self.snapshot.stale_sources(Path(self.settings.corpus_dir))

    @cached_property
    def pipeline(self) -> Pipeline:
        """The query pipeline on this request's snapshot: queries encoded through its
        micro-batcher, the rest in worker threads, each reply logged."""
        return Pipeline(
            self.retriever,
            Limits.from_settings(self.settings),
            encode=self.snapshot.batcher.encode,
            offload=partial(anyio.to_thread.run_sync, limiter=self.svc.search_slots),
            # A function of the log and the manifest, not a method: a bound method would make
            # a cycle through this session that kept a replaced index open until the next GC.
            log=partial(log_reply, self.svc.querylog, self.snapshot.manifest, self.client),
        )

    def results(self, hits: Sequence[Hit], base_url: str | None = None) -> list[dict[str, Any]]:
        """Hits in their JSON form; citation URLs start with ``base_url`` when it is given,
        else with the public URL and the request's collection prefix."""
        base = self.svc.base_url + self.prefix if base_url is None else base_url
        return hits_json(list(hits), base)


def log_reply(querylog: QueryLog, manifest: Manifest, client: str | None, reply: Reply) -> None:
    """Queue a reply's query-log record (``answered`` None: no answer was built), counted
    against ``client``'s share of the log."""
    querylog.record(
        QueryRecord(
            query_id=reply.query_id,
            endpoint=reply.endpoint,
            query=reply.query,
            chunk_ids=[h.chunk.id for h in reply.hits],
            scores=[h.score for h in reply.hits],
            latency_ms=reply.took_ms,
            index_built_at=manifest.built_at,
            model=manifest.model,
            answered=reply.answer.answered if reply.answer is not None else None,
        ),
        client=client,
    )
