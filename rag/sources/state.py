"""A mirror's state file, ``.rag-source.json``: per mirrored file, where it came from and how to
ask again whether it changed.

rag.ingest.urls reads its ``files`` (a file name and its ``url`` and ``canonical_url``) to give
documents their URL; everything else is the sync's own memory between runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError

from rag.ingest.ids import slugify
from rag.ingest.urls import STATE_FILE

STATE_VERSION = 1


class Entry(BaseModel):
    """One mirrored file: its page, the validators for a conditional GET, its hash, its status."""

    url: str  # the URL answered, after redirects
    canonical_url: str  # the page's canonical URL when in scope, else ``url``
    etag: str | None = None
    last_modified: str | None = None
    sha256: str  # of the file as saved
    content_type: str = ""
    status: int  # the last answer: 200, 304, or the error that left this copy in place
    error: str | None = None
    fetched_at: str  # when this copy was downloaded
    checked_at: str  # when the page was last asked for
    depth: int = 0
    # In-scope links of the page, so a crawl that hears 304 (no body) still reaches the pages
    # below it.
    links: list[str] = Field(default_factory=list)


class State(BaseModel):
    """Everything a mirror remembers, by file name relative to the mirror."""

    version: int = STATE_VERSION
    source: str = ""
    synced_at: str | None = None
    files: dict[str, Entry] = Field(default_factory=dict)

    @classmethod
    def read(cls, mirror_dir: Path) -> State:
        """The mirror's state; an empty one if it has none or it cannot be read."""
        path = Path(mirror_dir) / STATE_FILE
        try:
            return cls.model_validate_json(path.read_bytes())
        except (OSError, ValidationError, ValueError):
            # Without it the next sync fetches everything again: slower, never wrong.
            return cls()

    def write(self, mirror_dir: Path) -> None:
        """Write the state into ``mirror_dir`` atomically (a temporary file renamed over it)."""
        path = Path(mirror_dir) / STATE_FILE
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        data = json.dumps(self.model_dump(mode="json"), indent=1, sort_keys=True)
        tmp.write_text(data + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def by_url(self) -> dict[str, tuple[str, Entry]]:
        """Every entry by its URL and its canonical URL."""
        out: dict[str, tuple[str, Entry]] = {}
        for name, entry in self.files.items():
            out.setdefault(entry.url, (name, entry))
            out.setdefault(entry.canonical_url, (name, entry))
        return out


def file_name(url: str, suffix: str) -> str:
    """A readable file name for a page, unique per URL: ``guides-pay-1a2b3c4d.html``."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    stem = path.rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] else path
    slug = slugify(stem)[:60].strip("-") if stem.strip("/") else "index"
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return f"{slug}-{digest}{suffix}"


def now() -> str:
    """The time in the form the state and reports use."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def sha256(data: bytes) -> str:
    """The content hash recorded per file."""
    return hashlib.sha256(data).hexdigest()
