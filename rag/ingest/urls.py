"""The page URL of each mirrored file, from the ``.rag-source.json`` a source writes beside them.

A web source (rag.sources) mirrors pages into a folder and lists each file's URL in that
folder's state file; any corpus folder or subfolder may hold one. The loader gives a document
from a listed file ``meta["url"]``, so its citations can link to the page itself.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rag.ingest.walk import walk_files

log = logging.getLogger(__name__)

STATE_FILE = ".rag-source.json"


def file_urls(corpus_dir: Path) -> dict[str, str]:
    """Each listed file's canonical URL (else its URL), by path relative to ``corpus_dir``."""
    corpus_dir = Path(corpus_dir)
    out: dict[str, str] = {}
    # As the loader walks: through links, past hidden folders (a sync's unfinished copy is one).
    for state in (p for p in walk_files(corpus_dir) if p.name == STATE_FILE):
        folder = state.parent.relative_to(corpus_dir)
        try:
            files = json.loads(state.read_text(encoding="utf-8"))["files"]
            entries = files.items()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring %s: not a source state file (%s)", state, exc)
            continue
        for name, entry in entries:
            url = (
                (entry.get("canonical_url") or entry.get("url"))
                if isinstance(entry, dict)
                else None
            )
            if isinstance(url, str) and url:
                out[(folder / name).as_posix()] = url
    return out
