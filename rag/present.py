"""The JSON shapes of results, shared by the CLI's ``--json`` and the HTTP API.

A citation's ``url`` opens the web viewer at the cited span; ``base_url`` (the ``RAG_PUBLIC_URL``
setting) makes it absolute for pages served elsewhere.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from rag.search.types import Hit


def viewer_url(
    doc_id: str, start: int, end: int, base_url: str = "", page: int | None = None
) -> str:
    """The source viewer's link to one span of a document (and the PDF page it is on)."""
    on_page = f"&page={page}" if page is not None else ""
    return f"{base_url}/view/{quote(doc_id)}?start={start}&end={end}{on_page}#passage"


def citation(hit: Hit, base_url: str = "") -> dict[str, Any]:
    """Where a passage comes from, precisely enough to open it at the cited span."""
    c = hit.chunk
    page = c.meta.get("page")
    out: dict[str, Any] = {
        "doc_id": c.doc_id,
        "title": c.title,
        "section": c.section,
        "section_path": list(c.section_path),
        "source": c.source,
        "start": c.start,
        "end": c.end,
        "url": viewer_url(c.doc_id, c.start, c.end, base_url, page),
    }
    # start/end are offsets into the text as indexed (what the viewer shows); for a file with
    # markup these say where the passage is in the file itself (null when unknown), and a
    # PDF's page.
    for key in ("page", "source_start", "source_end"):
        out[key] = c.meta.get(key)
    return out


def hit_json(hit: Hit, base_url: str = "") -> dict[str, Any]:
    """One ranked passage in its JSON form."""
    return {
        "rank": hit.rank,
        "score": round(hit.score, 6),
        "chunk_id": hit.chunk.id,
        "text": hit.chunk.text,
        "citation": citation(hit, base_url),
    }


def hits_json(hits: list[Hit], base_url: str = "") -> list[dict[str, Any]]:
    """Ranked passages in their JSON form."""
    return [hit_json(h, base_url) for h in hits]
