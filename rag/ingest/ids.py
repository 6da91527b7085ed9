"""Ids for documents and passages: readable slugs, made unique within a corpus."""

from __future__ import annotations

import re


def unique_id(base: str, seen: set[str], alternative: str | None = None) -> str:
    """``base`` (or ``alternative``, then ``base-2``, ``base-3``...) not yet in ``seen``; adds it."""
    candidate = base
    if candidate in seen and alternative is not None:
        candidate = alternative
    n = 2
    while candidate in seen:
        candidate = f"{base}-{n}"
        n += 1
    seen.add(candidate)
    return candidate


def slugify(text: str) -> str:
    """Lowercase ASCII slug for ids and anchors."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:80] or "doc"
