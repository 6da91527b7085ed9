"""``sync_collection``: sync every source of a collection, then re-index when anything changed,
and keep the outcome for ``rag sync --json`` and the admin page.

A source that fails keeps its previous copy (rag.sources), and a build that fails keeps the
previous index: either way the collection goes on serving what it served, and the record says
why. One sync per collection at a time, across processes (a lock beside its record).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from filelock import FileLock, Timeout
from pydantic import BaseModel, Field, ValidationError

from rag.collections import Collection
from rag.config import Settings
from rag.errors import RagError
from rag.index.manifest import Manifest
from rag.sources import SyncReport, sync
from rag.sources.layout import STATES
from rag.sources.state import now
from rag.upkeep.builder import why_build

log = logging.getLogger(__name__)

RECORD = "last-sync.json"


class SyncBusy(RagError):
    """Another process is syncing this collection."""


class SourceRun(SyncReport):
    """One source's report, with the name of its folder in the collection's corpus."""

    name: str


class IndexRun(BaseModel):
    """What the re-index after a sync did."""

    status: Literal["built", "unchanged", "failed"]
    reason: str | None = None  # why a build was needed
    error: str | None = None
    build_id: str | None = None
    documents: int | None = None
    seconds: float = 0.0
    changes: dict[str, object] = Field(default_factory=dict)


class CollectionSync(BaseModel):
    """One sync of one collection: every source's report and the index's."""

    collection: str
    status: Literal["ok", "partial", "failed"] = "ok"
    started_at: str = Field(default_factory=now)
    finished_at: str | None = None
    seconds: float = 0.0
    sources: list[SourceRun] = Field(default_factory=list)
    # Folders of sources no longer configured, removed from the corpus.
    removed_sources: list[str] = Field(default_factory=list)
    index: IndexRun | None = None


def sync_collection(
    collection: Collection, build: Callable[[Settings], Manifest]
) -> CollectionSync:
    """Sync each source, re-index with ``build`` when anything changed, record the outcome.

    Raises SyncBusy when another sync of the collection is running.
    """
    settings = collection.settings
    state_dir = Path(settings.data_dir) / STATES
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(state_dir / ".sync.lock", timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise SyncBusy(f"another sync of collection {collection.name!r} is running") from None
    try:
        return _sync(collection, build, state_dir)
    finally:
        lock.release()


def _sync(
    collection: Collection, build: Callable[[Settings], Manifest], state_dir: Path
) -> CollectionSync:
    started = time.monotonic()
    outcome = CollectionSync(collection=collection.name)
    layout = collection.layout
    try:
        outcome.removed_sources = layout.assemble()
    except OSError as exc:
        outcome.status = "failed"
        outcome.index = IndexRun(status="failed", error=f"cannot lay out the corpus: {exc}")
        return _finish(outcome, started, state_dir)
    changed = bool(outcome.removed_sources)
    for entry in layout.entries:
        report = sync(entry.source, entry.mirror_dir)
        outcome.sources.append(SourceRun(name=entry.name, **report.model_dump()))
        changed |= bool(report.added or report.changed or report.removed)
    outcome.index = _reindex(collection.settings, build, changed)
    failed = [s for s in outcome.sources if s.status == "failed"]
    if outcome.index.status == "failed" or (failed and len(failed) == len(outcome.sources)):
        outcome.status = "failed"
    elif failed or any(s.status == "partial" for s in outcome.sources):
        outcome.status = "partial"
    return _finish(outcome, started, state_dir)


def _reindex(settings: Settings, build: Callable[[Settings], Manifest], changed: bool) -> IndexRun:
    """Build when a source changed or the index does not hold the corpus as it is."""
    reason = "the sources changed" if changed else why_build(settings)
    if reason is None:
        return IndexRun(status="unchanged")
    started = time.monotonic()
    try:
        manifest = build(settings)
    except Exception as exc:  # whatever it is, the previous index serves: say why, go on
        log.exception("re-indexing %s failed; the previous index stays", settings.index_dir)
        error = str(exc) if isinstance(exc, RagError) else f"{type(exc).__name__}: {exc}"
        return IndexRun(status="failed", reason=reason, error=error, seconds=_since(started))
    return IndexRun(
        status="built",
        reason=reason,
        build_id=manifest.build_id,
        documents=manifest.counts.get("documents"),
        seconds=_since(started),
        changes=manifest.extra.get("changes") or {},
    )


def _finish(outcome: CollectionSync, started: float, state_dir: Path) -> CollectionSync:
    outcome.seconds = _since(started)
    outcome.finished_at = now()
    path = state_dir / RECORD
    tmp = path.with_name(f".{RECORD}.tmp")
    tmp.write_text(outcome.model_dump_json(indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return outcome


def last_sync(collection: Collection) -> CollectionSync | None:
    """The collection's last sync, as recorded; None if it was never synced."""
    path = Path(collection.settings.data_dir) / STATES / RECORD
    try:
        return CollectionSync.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError, ValueError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
