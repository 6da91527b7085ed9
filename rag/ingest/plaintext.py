"""Plain-text parser: headings are short lines standing alone, read through a text profile."""

from __future__ import annotations

from collections.abc import Iterator

from rag.ingest.profiles import TextProfile
from rag.ingest.structure import BULLET_RE, Event, assemble, blocks, title_from_filename
from rag.ingest.types import Document


def parse_text(text: str, source: str, profile: TextProfile) -> list[Document]:
    """Documents of one plain-text source, its structure guessed by ``profile``."""
    return assemble(text_events(text, profile), text, source, title_from_filename(source))


def _is_heading_line(line: str) -> bool:
    line = line.strip()
    if not line or len(line) > 100 or BULLET_RE.match(line) or line.startswith("#"):
        return False
    if line[-1] in ".,:;!?" or len(line.split()) > 14:
        return False
    return line[0].isupper() or line[0].isdigit()


def text_events(text: str, profile: TextProfile) -> Iterator[Event]:
    """Events for plain text: headings are short lines standing alone."""
    found: list[tuple[str, int, int]] = []
    for s, e in blocks(text):
        chunk = text[s:e]
        if "\n" not in chunk and profile.is_chrome(chunk):
            continue
        if "\n" not in chunk and _is_heading_line(chunk):
            found.append(("heading", s, e))
        elif BULLET_RE.match(chunk):
            found.append(("list", s, e))
        else:
            found.append(("para", s, e))

    def heading_text(i: int) -> str:
        return text[found[i][1] : found[i][2]].strip()

    def kind(i: int) -> str | None:
        return found[i][0] if 0 <= i < len(found) else None

    doc_starts = set()
    if profile.doubled_titles:
        doc_starts = {
            i
            for i in range(len(found) - 1)
            if kind(i) == "heading"
            and kind(i + 1) == "heading"
            and heading_text(i) == heading_text(i + 1)
        }
    if found and kind(0) == "heading":
        doc_starts.add(0)

    in_opened_part = False
    doc_title = ""
    i = 0
    while i < len(found):
        k, s, e = found[i]
        if i in doc_starts:
            in_opened_part = False
            doc_title = heading_text(i)
            yield ("doc", doc_title, s)
            i += 2 if i + 1 < len(found) and heading_text(i + 1) == heading_text(i) else 1
            continue
        if k == "heading":
            nxt = i + 1
            if nxt in doc_starts or nxt >= len(found):
                i += 1  # a label with nothing under it ("More Careers"): not a section
                continue
            paras = []
            j = nxt
            while kind(j) == "para":
                paras.append(j)
                j += 1
            intro_ends = paras and text[found[paras[-1]][2] - 1] == ":"
            followed_by_heading = kind(j) == "heading" and j not in doc_starts
            if profile.announced_parts and len(paras) == 1 and intro_ends and followed_by_heading:
                # Heading, one paragraph announcing what follows, then sub-headings: a part.
                in_opened_part = True
                level = 1
            else:
                level = 2 if in_opened_part else 1
            yield ("heading", level, heading_text(i), s)
            i += 1
            continue
        if (
            profile.announced_parts
            and k == "para"
            and kind(i - 1) == "para"
            and text[e - 1] == ":"
            and kind(i + 1) == "heading"
            and i + 1 not in doc_starts
        ):
            # An announcing paragraph after body text starts a part whose heading was lost.
            in_opened_part = True
            yield ("heading", 1, profile.title_from_intro(text[s:e]), s)
        yield from profile.body_events(text, s, e, doc_title)
        i += 1
