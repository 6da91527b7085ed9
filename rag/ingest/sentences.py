"""Sentences and list items of a passage, for the sentence index and for answers.

The rules here hold for career documents in general; a text profile (rag.ingest.profiles) may
add its own for text whose punctuation was lost.
"""

from __future__ import annotations

import re

from rag.ingest.profiles import CORE, TextProfile

_LINE_MARK_RE = re.compile(r"^\s*(?:[•●▪◦·*+\-–]\s+|\d{1,3}[.)]\s+)")


_INLINE_SPLIT_RE = re.compile(r"\s(?:-|•)\s+(?=\S)|(?<=[.!?])\s+(?=[A-Z0-9(\"'$])")


_MARKDOWN_RE = re.compile(r"\*\*|__|`|#{1,6}\s")


NUMBERED_RE = re.compile(r"^\s*\d{1,3}[.)]\s")


def passage_sentences(text: str, min_chars: int = 25, profile: TextProfile = CORE) -> list[str]:
    """Sentences and list items of a passage, cleaned of bullets and markdown emphasis.

    An item nested under a label ("Senior-Level (7+ years):" then "Average: $189,477") is
    prefixed with the label, since alone it no longer says what it is about. ``profile`` may
    split items that its kind of text glues together.
    """
    out = []
    labels: list[tuple[int, str]] = []  # (indent, label) of enclosing "...:" lines
    lines = [line for line in text.split("\n") if line.strip()]
    for n, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if n == 0:
            indent = _first_line_indent(lines)
        while labels and labels[-1][0] >= indent:
            labels.pop()
        outer = labels[-1][1] if labels else ""
        label = ""
        for piece in _INLINE_SPLIT_RE.split(line):
            piece = _clean(piece)
            if not piece:
                continue
            next_label = ""
            if piece.endswith(":"):
                glued = profile.glued_label(piece)
                if glued is None:
                    # A label announcing a list says nothing alone; it qualifies what follows.
                    label = piece
                    continue
                piece, next_label = glued
            head, *summaries = profile.split_summaries(piece)
            head = " ".join(p for p in (outer, label, head) if p)
            # A closing summary glued on is about the whole part, not this item: no label.
            out.extend(p for p in (head, *summaries) if len(p) >= min_chars)
            if next_label:
                # The next list's label was glued to this item: it replaces the label in force.
                label = ""
                if labels:
                    labels[-1] = (labels[-1][0], next_label)
                    outer = next_label
                else:
                    label = next_label
        if label and len(label) <= 80:
            labels.append((indent, " ".join(p for p in (outer, label) if p)))
    return out


def list_titles(text: str) -> set[str]:
    """Numbered lines that only title the bullets below them ("1. Collaboration and
    Communication" over "• Work closely with cross-functional teams"), cleaned as
    ``passage_sentences`` cleans them: alone they name a topic and answer nothing."""
    lines = [line for line in text.split("\n") if line.strip()]
    out = set()
    for line, below in zip(lines, lines[1:], strict=False):
        bullet_below = bool(_LINE_MARK_RE.match(below)) and not NUMBERED_RE.match(below)
        if not NUMBERED_RE.match(line) or not bullet_below:
            continue
        title = _clean(line)
        if len(title) <= 80 and not re.search(r"[.!?:;,]$", title):
            out.add(title)
    return out


def _clean(piece: str) -> str:
    """A line or piece without its list marker and markdown emphasis."""
    return _MARKDOWN_RE.sub("", _LINE_MARK_RE.sub("", piece)).strip()


def _first_line_indent(lines: list[str]) -> int:
    """A passage starts mid-line, its own indent cut off: borrow that of its siblings."""
    marker = _LINE_MARK_RE.match(lines[0])
    if marker is None:
        return 0
    numbered = marker.group().strip()[0].isdigit()
    for line in lines[1:]:
        m = _LINE_MARK_RE.match(line)
        if m and m.group().strip()[0].isdigit() == numbered:
            return len(line) - len(line.lstrip())
    return 0
