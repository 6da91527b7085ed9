"""Passages too small to answer anything, joined to a neighbour.

A section of a link line ("See guidance on promotions here."), a course title, a date row or a
one-line answer cannot answer a question on its own, yet ranks first whenever its few words
match. Such a passage is joined to a full passage beside it (one at least as long as the
chunker's shortest split, ChunkerSettings.min_chars): a text passage to the next one when that
one is its sibling or its child (the heading it sits under goes on), else to the previous one;
a table row to the rows beside it in the same table, as many as fit. The joined passage is
still an exact span of the document's text: it starts at the headings that open its first part
when they are not in its heading path (which becomes the path the parts share), so every
heading stays inline, above the text it names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rag.ingest.types import SectionKind

# Shorter than one line of text: too short to hold a fact with what it is about.
MIN_PASSAGE_CHARS = 80


@dataclass(frozen=True)
class Piece:
    """A passage before it becomes a chunk: its span, heading path and kind, where the
    headings opening it start (when they are in the text) and the table it belongs to."""

    path: tuple[str, ...]
    kind: SectionKind
    start: int
    end: int
    head: int | None = None
    table: int | None = None


def merge_small(
    text: str, pieces: Sequence[Piece], max_chars: int, hard_max: int, full: int
) -> list[Piece]:
    """``pieces`` (in text order) with every small one joined to a neighbour of at least
    ``full`` characters where one fits: within ``max_chars`` if possible, else within
    ``hard_max``."""
    out = _pack_rows(text, list(pieces), max_chars)
    while True:
        for i, piece in enumerate(out):
            if piece.kind != "text" or not _small(text, piece):
                continue
            j = _neighbour(text, out, i, max_chars, full)
            j = _neighbour(text, out, i, hard_max, full) if j is None else j
            if j is not None:
                a, b = min(i, j), max(i, j)
                out[a : b + 1] = [_join(out[a], out[b])]
                break
        else:
            return out


def _small(text: str, piece: Piece) -> bool:
    return len(text[piece.start : piece.end].strip()) < MIN_PASSAGE_CHARS


def _neighbour(text: str, pieces: list[Piece], i: int, limit: int, full: int) -> int | None:
    """The piece a small text piece joins within ``limit``: the next one when it is under the
    same parent heading (a sibling or a child), else the previous one; only one of at least
    ``full`` characters, which holds enough to be what a question should find (a document of
    short sections only, a note say, is left as it is)."""
    piece = pieces[i]
    candidates = []
    if i + 1 < len(pieces):
        nxt = pieces[i + 1]
        if nxt.kind == "text" and nxt.path[: len(piece.path) - 1] == piece.path[:-1]:
            candidates.append(i + 1)
    if i > 0 and pieces[i - 1].kind == "text":
        candidates.append(i - 1)
    for j in candidates:
        if len(text[pieces[j].start : pieces[j].end].strip()) < full:
            continue
        a, b = pieces[min(i, j)], pieces[max(i, j)]
        if len(text[_join(a, b).start : b.end]) <= limit:
            return j
    return None


def _pack_rows(text: str, pieces: list[Piece], max_chars: int) -> list[Piece]:
    """Rows of one table packed together, as many as fit, wherever one of them is small."""
    out: list[Piece] = []
    for piece in pieces:
        last = out[-1] if out else None
        if (
            last is not None
            and piece.kind == last.kind == "row"
            and piece.table == last.table
            and (_small(text, piece) or _small(text, last))
            and piece.end - last.start <= max_chars
        ):
            out[-1] = _join(last, piece)
        else:
            out.append(piece)
    return out


def _join(a: Piece, b: Piece) -> Piece:
    """One piece from two adjacent ones (``a`` first), under the heading path they share."""
    n = 0
    while n < min(len(a.path), len(b.path)) and a.path[n] == b.path[n]:
        n += 1
    shared = a.path[:n]
    # a's own heading, when the joined path no longer names it, is kept in the text instead.
    start = a.head if a.kind == "text" and a.head is not None and shared != a.path else a.start
    return replace(a, path=shared, start=min(start, a.start), end=b.end)
