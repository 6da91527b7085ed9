"""What one sync of one source did, as JSON for `rag sync --json`, the server's log and an
admin page.

``status`` is "failed" when nothing was changed (the previous mirror and state are intact,
``error`` says why), "partial" when some pages could not be refreshed (``errors``) or the time
cap stopped the sync, else "ok". Pages kept after an error, or not reached before the time cap,
keep their previous copy.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field

from rag.sources.state import now

Status = Literal["ok", "partial", "failed"]


class SyncReport(BaseModel):
    """Counts and per-URL outcomes of one sync."""

    source: str
    type: Literal["web", "folder"]
    status: Status = "ok"
    error: str | None = None
    # "max_pages" when the page cap left pages out, "max_seconds" when the time cap hit.
    stopped: Literal["max_pages", "max_seconds"] | None = None
    started_at: str = Field(default_factory=now)
    seconds: float = 0.0
    fetched: int = Field(0, description="Documents downloaded (answers with a body).")
    unchanged: int = Field(0, description="304 Not Modified, or a body the same as before.")
    added: int = 0
    changed: int = 0
    removed: int = Field(0, description="Gone (404, 410), no longer listed, or out of scope.")
    documents: int = Field(0, description="Files in the mirror after the sync.")
    requests: int = Field(0, description="HTTP requests made, robots.txt and sitemaps included.")
    delay_seconds: float = Field(0.0, description="The delay used (robots.txt's if longer).")
    skipped_robots: list[str] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict, description="URL: why it was left out.")
    errors: dict[str, str] = Field(default_factory=dict, description="URL: what went wrong.")

    def finish(self, started: float) -> SyncReport:
        """Set the duration and the status from the errors and caps."""
        self.seconds = round(time.monotonic() - started, 3)
        if self.status != "failed" and (self.errors or self.stopped == "max_seconds"):
            self.status = "partial"
        return self

    def fail(self, error: str, started: float) -> SyncReport:
        """Mark the sync failed: nothing it did was kept."""
        self.status = "failed"
        self.error = error
        self.fetched = self.unchanged = self.added = self.changed = self.removed = 0
        return self.finish(started)
