"""Sources: where a collection's documents come from, and keeping a copy of them up to date.

A ``web`` source mirrors a site (from its sitemap or a crawl from a start page) into a folder of
files the index reads like any other, with each file's URL in the folder's ``.rag-source.json``;
a ``folder`` source is a folder read where it is. ``sync`` brings one up to date and reports what
changed (docs/sources.md).
"""

from rag.sources.config import (
    DEFAULT_USER_AGENT,
    FolderSource,
    SourceConfig,
    WebSource,
    parse_sources,
)
from rag.sources.report import SyncReport
from rag.sources.state import Entry, State
from rag.sources.sync import documents_dir, sync, sync_async

__all__ = [
    "DEFAULT_USER_AGENT",
    "Entry",
    "FolderSource",
    "SourceConfig",
    "State",
    "SyncReport",
    "WebSource",
    "documents_dir",
    "parse_sources",
    "sync",
    "sync_async",
]
