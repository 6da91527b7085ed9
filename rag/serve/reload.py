"""Keep a running server on the newest index: notice a build swapped in, load it, switch.

``rag index`` writes a temporary sibling of the index directory and swaps it into place (a
plain rename the first time, an atomic RENAME_EXCHANGE after: rag.index.fs). ``watchfiles``
watches the parent directory, not recursively, for changes to the index directory's name; on
each, ``Services.refresh`` reads the manifest's build id and, when it is not the one served,
loads the new index in a worker thread and swaps it in (rag.serve.services).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from watchfiles import Change, awatch

from rag.index.manifest import MANIFEST
from rag.serve.services import Services

log = logging.getLogger(__name__)

# Changes within this long of each other make one event: a swap is several renames.
DEBOUNCE_MS = 200
STEP_MS = 50
# Besides the events, the manifest is read again this often (a few hundred bytes). A swap
# between the first load and the watch's start has no event left to see; and on some file
# systems (network mounts, some container bind mounts) inotify reports nothing at all.
RECHECK_S = 10.0


async def keep_current(svc: Services, stop: anyio.Event, recheck_s: float = RECHECK_S) -> None:
    """Load the configured index, then (with ``reload`` on) every newer one swapped in, until
    ``stop`` is set."""
    await svc.refresh()
    if not svc.settings.reload:
        return
    index_dir = Path(svc.settings.index_dir).absolute()
    try:
        async for _ in index_changes(index_dir, stop, recheck_s):
            await svc.refresh()
    except (OSError, RuntimeError) as exc:  # no inotify watch to be had (the limit, say)
        log.warning(
            "cannot watch %s (%s): checking it every %s s", index_dir.parent, exc, recheck_s
        )
        while not stop.is_set():
            with anyio.move_on_after(recheck_s):
                await stop.wait()
            if not stop.is_set():
                await svc.refresh()


async def index_changes(
    index_dir: Path, stop: anyio.Event, recheck_s: float = RECHECK_S
) -> AsyncIterator[None]:
    """Yields when the directory ``index_dir`` may have been replaced, and every ``recheck_s``
    seconds without a change; ends when ``stop`` is set."""
    # The build creates the parent anyway; a server may start before the first build.
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    name = index_dir.name
    manifest = os.path.join(name, MANIFEST)

    def relevant(change: Change, path: str) -> bool:
        # By name, not by whole path: the watcher may report the parent through a symlink.
        return os.path.basename(path) == name or path.endswith(os.sep + manifest)

    async for _ in awatch(
        index_dir.parent,
        watch_filter=relevant,
        recursive=False,
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        stop_event=stop,
        rust_timeout=int(recheck_s * 1000),
        yield_on_timeout=True,
    ):
        yield
