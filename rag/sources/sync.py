"""``sync(source, mirror_dir)``: bring one source's documents up to date, and say what changed.

Every outcome is a SyncReport, failures included: a failed sync changed nothing (the previous
mirror and state are intact, so an index built from them keeps serving).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from rag.sources.config import FolderSource, WebSource
from rag.sources.report import SyncReport
from rag.sources.state import State

log = logging.getLogger(__name__)


def documents_dir(source: WebSource | FolderSource, mirror_dir: Path) -> Path:
    """Where a source's documents are for the index to read: its mirror, or the folder itself."""
    return Path(source.path) if isinstance(source, FolderSource) else Path(mirror_dir)


def sync(source: WebSource | FolderSource, mirror_dir: Path) -> SyncReport:
    """Sync one source into ``mirror_dir`` (a folder source keeps only its state there)."""
    return asyncio.run(sync_async(source, mirror_dir))


async def sync_async(source: WebSource | FolderSource, mirror_dir: Path) -> SyncReport:
    """``sync`` for a caller already in an event loop (the server's schedule)."""
    # Here, not at the top: naming sources (a config file) needs none of the crawler's
    # libraries (httpx, trafilatura, lxml), which every `rag` command would otherwise load.
    from rag.sources.folder import sync_folder
    from rag.sources.mirror import MirrorBusy, mirror_lock
    from rag.sources.web import SyncFailed, sync_web

    mirror_dir = Path(mirror_dir).absolute()
    report = SyncReport(source=source.label(), type=source.type)
    started = time.monotonic()
    try:
        with mirror_lock(mirror_dir):
            if isinstance(source, WebSource):
                await sync_web(source, mirror_dir, report)
            else:
                await asyncio.to_thread(sync_folder, source, mirror_dir, report)
    except (SyncFailed, MirrorBusy) as exc:
        report.documents = len(State.read(mirror_dir).files)
        return report.fail(str(exc), started)
    except OSError as exc:  # the mirror cannot be written: a full disk, a read-only folder
        log.exception("sync of %s failed", source.label())
        report.documents = len(State.read(mirror_dir).files)
        return report.fail(f"cannot write the mirror: {exc}", started)
    return report.finish(started)
