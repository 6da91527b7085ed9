"""Re-index a corpus whenever it changes: the loop behind ``rag index --watch``.

``watchfiles`` (inotify) reports changes in the corpus; a burst of them, followed by
``debounce_ms`` without another, makes one rebuild. A rebuild that fails is reported and the
watch goes on, the previous index still in place. The loop ends when ``stop`` is set, or by a
KeyboardInterrupt, which reaches it wherever it lands: while waiting (watchfiles checks for
signals every few milliseconds) or in a build (which then leaves no temporary directory).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rag.errors import RagError
from rag.index.manifest import Manifest

# How long the watcher waits for a change before waking: the grain of the quiet-time check.
TICK_MS = 100
# How long watchfiles waits for more changes before it reports a group of them.
STEP_MS = 50

EventKind = Literal["watching", "changed", "rebuilding", "failed"]


@dataclass(frozen=True)
class WatchEvent:
    """What the watch is doing, for its caller to report."""

    kind: EventKind
    paths: tuple[str, ...] = ()  # the files changed ("changed": so far; "rebuilding": in all)
    error: Exception | None = None


def watch_corpus(
    corpus_dir: Path | str,
    index_dir: Path | str,
    build: Callable[[bool], Manifest | None],
    *,
    debounce_ms: int = 1000,
    full: bool = False,
    on_event: Callable[[WatchEvent], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Build (``build(full)``), then rebuild (``build(False)``) after each burst of changes."""
    import watchfiles

    report = on_event or (lambda event: None)
    ignored, default = _index_filter(Path(index_dir)), watchfiles.DefaultFilter()
    changes = watchfiles.watch(
        corpus_dir,
        watch_filter=lambda change, path: not ignored(path) and default(change, path),
        debounce=max(debounce_ms, STEP_MS),
        step=STEP_MS,
        stop_event=stop,
        rust_timeout=TICK_MS,
        yield_on_timeout=True,
        raise_interrupt=True,
    )
    try:
        # The first yield means the watcher runs: a change made during the first build is seen.
        next(changes, None)
        build(full)
        report(WatchEvent("watching"))
        pending: set[tuple[watchfiles.Change, str]] = set()
        last_change = 0.0
        for batch in changes:
            now = time.monotonic()
            if batch:
                if not pending:
                    report(WatchEvent("changed", _paths(batch)))
                pending |= batch
                last_change = now
            if not pending or (now - last_change) * 1000 < debounce_ms:
                continue
            report(WatchEvent("rebuilding", _paths(pending)))
            pending = set()  # what changes during the build makes the next one
            try:
                build(False)
            except (RagError, OSError) as exc:
                report(WatchEvent("failed", error=exc))
    finally:
        changes.close()  # stops the watcher thread now, not when the generator is collected


def _paths(changes: set[tuple[object, str]]) -> tuple[str, ...]:
    return tuple(sorted({path for _, path in changes}))


def _index_filter(index_dir: Path) -> Callable[[str], bool]:
    """Whether a path is the index or a build's temporary sibling, kept inside the corpus."""
    index_dir = index_dir.absolute()
    hidden = f".{index_dir.name}."

    def ignored(path: str) -> bool:
        p = Path(path)
        inside = p == index_dir or index_dir in p.parents
        return inside or any(q.name.startswith(hidden) for q in (p, *p.parents))

    return ignored
