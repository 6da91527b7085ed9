"""The JSON shapes of results, shared by the CLI's ``--json`` and the HTTP API.

A citation's ``url`` opens the web viewer at the cited span; ``base_url`` (the ``RAG_PUBLIC_URL``
setting) makes it absolute for pages served elsewhere. A passage from a page mirrored from the
web (rag.sources) also has a ``source_url``: the page itself, scrolled to the passage.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urldefrag

from rag.search.types import Hit


def viewer_url(
    doc_id: str, start: int, end: int, base_url: str = "", page: int | None = None
) -> str:
    """The source viewer's link to one span of a document (and the PDF page it is on)."""
    on_page = f"&page={page}" if page is not None else ""
    return f"{base_url}/view/{quote(doc_id)}?start={start}&end={end}{on_page}#passage"


# A text fragment names the start of the passage: enough words to be found once on the page,
# few enough that a line the page wraps or words the renderer joins rarely break the match.
FRAGMENT_WORDS = 8
# List markers that rag.ingest writes in front of items; the page shows them as bullets.
_MARKER_RE = re.compile(r"^\s*(?:[-*•◦▪]|\d{1,3}[.)])\s+")


def page_url(
    url: str | None, passage: str, kind: str | None = None, page: int | None = None
) -> str | None:
    """The page a passage comes from, at the passage where browsers can; None without a URL."""
    # A text fragment (#:~:text=) of the passage's first words, which Chromium, Edge and Safari
    # scroll to and highlight (others open the page); a PDF's page. A table row's text is
    # composed by the parser ("column, row: cell") and no page shows it: the page alone.
    if not url:
        return None
    base = urldefrag(url).url
    if page is not None:
        return f"{base}#page={page}"
    if kind == "row" or base.lower().endswith(".docx"):
        return base
    first = next((line for line in passage.splitlines() if line.strip()), "")
    words = _MARKER_RE.sub("", first).split()[:FRAGMENT_WORDS]
    if not words:
        return base
    # Percent-encode everything, and "-" too: in a text directive it marks a prefix or suffix.
    text = quote(" ".join(words), safe="").replace("-", "%2D")
    return f"{base}#:~:text={text}"


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
        "source_url": page_url(_str(c.meta.get("url")), c.text, _str(c.meta.get("kind")), page),
    }
    # start/end are offsets into the text as indexed (what the viewer shows); for a file with
    # markup these say where the passage is in the file itself (null when unknown), and a
    # PDF's page.
    for key in ("page", "source_start", "source_end"):
        out[key] = c.meta.get(key)
    return out


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


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
