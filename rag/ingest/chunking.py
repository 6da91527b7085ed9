"""Cut documents into passages: one per section where it fits, else split at list items or
sentences with a small overlap. Every passage is an exact span of its source text."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from rag.ingest.ids import unique_id
from rag.ingest.merging import Piece, merge_small
from rag.ingest.profiles import TextProfile, get_profile, profile_for
from rag.ingest.sentences import NUMBERED_RE, passage_sentences
from rag.ingest.structure import BULLET_RE
from rag.ingest.types import Document, Section

HARD_MAX_CHARS = 1500


@dataclass(frozen=True)
class ChunkerSettings:
    """Chunking parameters; they are stored in the index manifest."""

    max_chars: int = 800
    overlap_chars: int = 200
    # A split never leaves a chunk shorter than this when a better boundary exists.
    min_chars: int = 250

    def __post_init__(self) -> None:
        if not 100 <= self.max_chars <= HARD_MAX_CHARS:
            raise ValueError(f"max_chars must be between 100 and {HARD_MAX_CHARS}")

    def to_dict(self) -> dict[str, int]:
        """Plain dict for the manifest."""
        return asdict(self)


@dataclass
class Chunk:
    """A passage: exact span ``text == source_text[start:end]`` under a heading path."""

    id: str
    doc_id: str
    title: str
    section_path: list[str]
    source: str
    start: int
    end: int
    text: str
    meta: dict[str, object] = field(default_factory=dict)
    # Its sentences and list items as answers quote them, split once, when it was cut (by the
    # text profile its document was read with) and stored with it: queries never split again.
    sentences: list[str] = field(default_factory=list)

    @property
    def section(self) -> str:
        """The heading path joined for display."""
        return " > ".join(self.section_path)

    def embedding_text(self) -> str:
        """What gets embedded and BM25-indexed: the heading path as context, then the passage."""
        return f"{self.section}\n{self.text}"

    def sentence_units(self) -> list[str]:
        """What is embedded for each of its sentences: the heading path, then the sentence (the
        whole passage when it has none)."""
        return [f"{self.section}: {s}" for s in self.sentences or [self.text]]


def chunk_sentences(
    chunk: Chunk, text_profile: str | TextProfile | None = None, min_chars: int = 25
) -> list[str]:
    """Sentences of a passage, split as ``text_profile`` (by default the profile its source
    is read with) splits them.

    Code has none: it is retrieved, never quoted. A table row's lines ("Senior (L3), Scope:
    ...") keep their labels on every sentence of the cell.
    """
    kind = chunk.meta.get("kind")
    if kind == "code":
        return []
    if isinstance(text_profile, TextProfile):
        profile = text_profile
    else:
        profile = profile_for(chunk.source, *([text_profile] if text_profile else []))
    if kind != "row":
        return passage_sentences(chunk.text, min_chars, profile)
    out = []
    for line in chunk.text.split("\n"):
        label, sep, cell = line.partition(": ")
        if not sep:
            label, cell = "", line
        for sentence in passage_sentences(cell, 1, profile) or ([cell] if cell.strip() else []):
            text = f"{label}: {sentence}" if label else sentence
            if len(text) >= min_chars:
                out.append(text)
    return out


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    strong: bool  # a good place to start a chunk: a paragraph or a numbered item
    tail: str = ""  # its last character: ":" ends a lead-in, "?" a question
    depth: int = 0  # the indent of its line: a nested item is deeper than its label
    opens: bool = False  # the first unit of a block (a paragraph or a list)


_INLINE_ITEM_RE = re.compile(r"\s(?=(?:[-•*]|\d{1,2}[.)])\s+\S)")


_SENTENCE_RE = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(•$])")


def chunk_documents(
    docs: Iterable[Document], settings: ChunkerSettings | None = None
) -> list[Chunk]:
    """All chunks of all documents, in document order."""
    settings = settings or ChunkerSettings()
    chunks: list[Chunk] = []
    for doc in docs:
        chunks.extend(chunk_document(doc, settings))
    return chunks


def chunk_document(doc: Document, settings: ChunkerSettings) -> list[Chunk]:
    """Chunks of one document, each with its sentences; ids are stable while the passage and
    its path are unchanged."""
    profile = get_profile(doc.profile)
    pieces = [
        Piece(section.path, section.kind, start, end, section.head if n == 0 else None,
              section.table)
        for section in doc.sections
        for n, (start, end) in enumerate(_split_section(doc.text, section, settings))
    ]  # fmt: skip
    out: list[Chunk] = []
    seen: set[str] = set()
    merged = merge_small(doc.text, pieces, settings.max_chars, HARD_MAX_CHARS, settings.min_chars)
    for piece in merged:
        start, end = piece.start, piece.end
        text = doc.text[start:end]
        digest = hashlib.sha1(f"{'/'.join(piece.path)}\n{text}".encode()).hexdigest()[:10]
        cid = unique_id(f"{doc.id}:{digest}", seen)
        meta = doc.origin_of(start, end)
        if piece.kind != "text":
            meta["kind"] = piece.kind
        if "url" in doc.meta:  # a web page's: each citation links to the page (rag.present)
            meta["url"] = doc.meta["url"]
        chunk = Chunk(cid, doc.id, doc.title, list(piece.path), doc.source, start, end, text, meta)
        chunk.sentences = chunk_sentences(chunk, profile)
        out.append(chunk)
    return out


def _split_section(
    text: str, section: Section, settings: ChunkerSettings
) -> Iterator[tuple[int, int]]:
    start, end = section.spans[0][0], section.spans[-1][1]
    if not text[start:end].strip():
        return
    if end - start <= settings.max_chars:
        yield start, end
        return
    units = list(_units(text, section.spans, settings.max_chars))
    yield from _pack(units, settings)


def _units(text: str, spans: Iterable[tuple[int, int]], max_chars: int) -> Iterator[_Unit]:
    """Split blocks into list items and sentences, each no longer than ``max_chars``."""
    for s, e in spans:
        lines = _line_spans(text, s, e)
        if len(lines) > 1 or BULLET_RE.match(text[s:e]):
            for i, (ls, le) in enumerate(lines):
                strong = i == 0 or bool(NUMBERED_RE.match(text[ls:le]))
                depth = ls - (text.rfind("\n", 0, ls) + 1)
                yield from _sentences(text, ls, le, max_chars, strong, depth, i == 0)
        else:
            pieces = _split_at(text, s, e, _INLINE_ITEM_RE)
            for i, (ps, pe) in enumerate(pieces):
                yield from _sentences(text, ps, pe, max_chars, i == 0, 0, i == 0)


def _line_spans(text: str, s: int, e: int) -> list[tuple[int, int]]:
    spans = []
    pos = s
    for line in text[s:e].split("\n"):
        ls = pos + (len(line) - len(line.lstrip()))
        le = pos + len(line.rstrip())
        if le > ls:
            spans.append((ls, le))
        pos += len(line) + 1
    return spans


def _split_at(text: str, s: int, e: int, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    cuts = [m.end() for m in pattern.finditer(text, s, e)]
    bounds = [s, *cuts, e]
    pieces = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            pieces.append((a, b))
    return pieces


def _sentences(
    text: str, s: int, e: int, max_chars: int, strong: bool, depth: int = 0, opens: bool = False
) -> Iterator[_Unit]:
    if e - s <= max_chars:
        yield _Unit(s, e, strong, text[e - 1], depth, opens)
        return
    for i, (a, b) in enumerate(_split_at(text, s, e, _SENTENCE_RE)):
        while b - a > max_chars:  # one enormous sentence: cut at the last space that fits
            cut = text.rfind(" ", a, a + max_chars)
            cut = cut if cut > a else a + max_chars
            yield _Unit(a, cut, strong and i == 0, text[cut - 1], depth, opens and i == 0)
            a = cut
            while a < b and text[a].isspace():
                a += 1
            i = 1
        if b > a:
            yield _Unit(a, b, strong and i == 0, text[b - 1], depth, opens and i == 0)


def _pack(units: list[_Unit], settings: ChunkerSettings) -> Iterator[tuple[int, int]]:
    """Greedy packing that prefers to break before strong units and overlaps weak breaks."""
    i = 0
    n = len(units)
    while i < n:
        j = i + 1
        while j < n and units[j].end - units[i].start <= settings.max_chars:
            j += 1
        # units[i:j] fit. Prefer ending right before a strong unit if that keeps enough text,
        # and never on a lead-in or a question whose answer follows, if it can be helped.
        if j < n:
            for k in range(j - 1, i, -1):
                if (
                    units[k].strong
                    and not _binds(units, k - 1)
                    and units[k - 1].end - units[i].start >= settings.min_chars
                ):
                    j = k
                    break
            else:
                if _binds(units, j - 1):
                    j = next((k for k in range(j - 1, i, -1) if not _binds(units, k - 1)), j)
        yield units[i].start, units[j - 1].end
        if j >= n:
            break
        nxt = j
        last = units[j - 1]
        if (
            not units[j].strong
            and j - 1 > i
            and last.end - last.start <= settings.overlap_chars
            and units[j].end - last.start <= settings.max_chars
        ):
            nxt = j - 1  # a weak break: repeat the last item for context
        i = nxt


def _binds(units: list[_Unit], k: int) -> bool:
    """Whether ``units[k]`` belongs with the unit after it: a lead-in ending in ":" with what
    it announces (a new block, or items nested under it; an item ending in ":" followed by a
    sibling announces nothing), a question with its answer (a question followed by another is
    a list of them)."""
    if k + 1 >= len(units):
        return False
    unit, after = units[k], units[k + 1]
    if unit.tail == ":":
        return after.opens or after.depth > unit.depth
    return unit.tail == "?" and after.tail != "?"
