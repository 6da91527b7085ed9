"""Keeping a collection current: sync its sources and re-index (``rag sync``, the server's
schedule, uploads), with one model per process and the previous index serving until a new one
is in place."""

from rag.upkeep.builder import Models, build_collection, why_build
from rag.upkeep.sync import CollectionSync, IndexRun, SyncBusy, last_sync, sync_collection

__all__ = [
    "CollectionSync",
    "IndexRun",
    "Models",
    "SyncBusy",
    "build_collection",
    "last_sync",
    "sync_collection",
    "why_build",
]
