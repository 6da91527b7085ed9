"""Load a corpus folder and recover each guide's documents and section structure.

Career guides arrive as web pages flattened to text, as markdown, or as HTML. Every format is
reduced to the same events (document start, heading with a level, body block with character
offsets into the source text), so chunking never needs to know where a document came from.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from rag.errors import CorpusEmpty

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")
# Bumped whenever parsing changes what documents or sections come out of the same files.
PARSER_VERSION = 3

BULLET_RE = re.compile(r"^\s*(?:[•●▪◦·*+\-–]\s+|\d{1,3}[.)]\s+)")
# Page chrome left behind by HTML-to-text conversion: logos, image placeholders, nav leftovers.
CHROME_RE = re.compile(
    r"^(?:logo\S*|(?:\w+\s)?image|skip to (?:main )?content|menu|share( this)?|advertisement"
    r"|back to top|table of contents)$",
    re.IGNORECASE,
)
SMALL_WORDS = frozenset(
    "a an and as at by for from in into of on or the to vs with without & /".split()
)
HERE_ARE_RE = re.compile(
    r"here(?:'s| is| are)\s+(?:an?\s+|the\s+)?(?:(?:comprehensive\s+|brief\s+)?overview of\s+)?"
    r"(?:the\s+)?(?P<topic>[^.:]{3,80}?)\s*:\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Section:
    """A run of body text under one heading path; ``spans`` are offsets into the source text."""

    path: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]


@dataclass
class Document:
    """One guide: its id, title, source file, full source text and sections."""

    id: str
    title: str
    source: str
    text: str
    start: int
    end: int
    sections: list[Section] = field(default_factory=list)

    @property
    def body(self) -> str:
        """The document's own slice of the source text."""
        return self.text[self.start : self.end]


@dataclass
class SourceFile:
    """A corpus file that was read: its relative path, its text as indexed, and a content hash."""

    path: str
    text: str
    sha256: str


# --------------------------------------------------------------------------- reading files


def file_sha256(path: Path) -> str:
    """Content hash of a file, used for staleness checks."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def iter_corpus_files(corpus_dir: Path) -> Iterator[Path]:
    """Every candidate file below ``corpus_dir``, in a stable order; hidden files are ignored."""
    for path in sorted(corpus_dir.rglob("*")):
        rel = path.relative_to(corpus_dir)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in SUFFIXES:
            yield path


def decode_source(raw: bytes, path: Path) -> str | None:
    """The text of a corpus file's bytes, or None (with a warning naming it) if unusable."""
    if b"\x00" in raw[:8192]:
        log.warning("skipping %s: binary file", path)
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        log.warning("skipping %s: not UTF-8 (byte %d)", path, exc.start)
        return None
    if not text.strip():
        log.warning("skipping %s: empty file", path)
        return None
    # Offsets are into this exact string, so normalise newlines once, here.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load_corpus(corpus_dir: Path) -> tuple[list[Document], list[SourceFile]]:
    """Parse every readable file under ``corpus_dir`` into documents with unique ids."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise CorpusEmpty(f"corpus folder {corpus_dir} does not exist")
    docs: list[Document] = []
    sources: list[SourceFile] = []
    seen_ids: set[str] = set()
    seen_bodies: set[str] = set()
    for path in iter_corpus_files(corpus_dir):
        rel = path.relative_to(corpus_dir).as_posix()
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("skipping %s: cannot read it (%s)", path, exc.strerror or exc)
            continue
        raw = decode_source(data, path)
        # Skipped files are recorded too (with no text), so that staleness checks, which hash
        # the bytes of every candidate file, do not see them as new on every run.
        sources.append(SourceFile(rel, raw or "", hashlib.sha256(data).hexdigest()))
        if raw is None:
            continue
        text = html_to_markdown(raw) if path.suffix.lower() in (".html", ".htm") else raw
        sources[-1].text = text
        for doc in parse_source(text, rel):
            # Guide sites repeat the same short guides on many pages; index each once.
            digest = hashlib.sha256(f"{doc.title}\n{doc.body}".encode()).hexdigest()
            if digest in seen_bodies:
                continue
            seen_bodies.add(digest)
            doc.id = _unique_id(doc.id, rel, seen_ids)
            docs.append(doc)
    if not docs:
        raise CorpusEmpty(f"no readable .txt, .md or .html documents in {corpus_dir}")
    return docs, sources


def _unique_id(base: str, source: str, seen: set[str]) -> str:
    # Two guides with one title: the second is named after its file before being numbered.
    return unique_id(base, seen, f"{slugify(Path(source).stem)}-{base}")


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


def parse_source(text: str, source: str) -> list[Document]:
    """Split one source text into documents, by the source's format."""
    fallback = _title_from_filename(source)
    if source.lower().endswith((".md", ".markdown", ".html", ".htm")):
        events = list(_markdown_events(text))
    else:
        events = list(_plaintext_events(text))
    return _assemble(events, text, source, fallback)


def _title_from_filename(source: str) -> str:
    stem = Path(source).stem
    words = re.sub(r"[_\-]+", " ", stem).strip()
    return words[:1].upper() + words[1:] if words else "Untitled"


# --------------------------------------------------------------------------- events
# ("doc", title, start) | ("heading", level, title, start) | ("body", start, end)
Event = tuple


def _blocks(text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
    """Spans of blank-line-separated blocks, trimmed of surrounding whitespace."""
    end = len(text) if end is None else end
    for m in re.finditer(r"\S(?:.|\n(?![ \t]*\n))*", text[start:end]):
        s = start + m.start()
        e = start + m.end()
        while e > s and text[e - 1].isspace():
            e -= 1
        yield s, e


def _is_heading_line(line: str) -> bool:
    line = line.strip()
    if not line or len(line) > 100 or BULLET_RE.match(line) or line.startswith("#"):
        return False
    if line[-1] in ".,:;!?" or len(line.split()) > 14:
        return False
    return line[0].isupper() or line[0].isdigit()


def _plaintext_events(text: str) -> Iterator[Event]:
    """Events for a web page flattened to text: headings are short lines standing alone."""
    blocks: list[tuple[str, int, int]] = []
    for s, e in _blocks(text):
        chunk = text[s:e]
        if "\n" not in chunk and CHROME_RE.match(chunk.strip()):
            continue
        if "\n" not in chunk and _is_heading_line(chunk):
            blocks.append(("heading", s, e))
        elif BULLET_RE.match(chunk):
            blocks.append(("list", s, e))
        else:
            blocks.append(("para", s, e))

    def heading_text(i: int) -> str:
        return text[blocks[i][1] : blocks[i][2]].strip()

    def kind(i: int) -> str | None:
        return blocks[i][0] if 0 <= i < len(blocks) else None

    # A heading repeated on the next line opens a new guide (guide sites print titles twice).
    doc_starts = {
        i
        for i in range(len(blocks) - 1)
        if kind(i) == "heading"
        and kind(i + 1) == "heading"
        and heading_text(i) == heading_text(i + 1)
    }
    if blocks and kind(0) == "heading":
        doc_starts.add(0)

    in_opened_part = False
    doc_title = ""
    i = 0
    while i < len(blocks):
        k, s, e = blocks[i]
        if i in doc_starts:
            in_opened_part = False
            doc_title = heading_text(i)
            yield ("doc", doc_title, s)
            i += 2 if i + 1 < len(blocks) and heading_text(i + 1) == heading_text(i) else 1
            continue
        if k == "heading":
            nxt = i + 1
            if nxt in doc_starts or nxt >= len(blocks):
                i += 1  # a label with nothing under it ("More Careers"): not a section
                continue
            paras = []
            j = nxt
            while kind(j) == "para":
                paras.append(j)
                j += 1
            intro_ends = paras and text[blocks[paras[-1]][2] - 1] == ":"
            followed_by_heading = kind(j) == "heading" and j not in doc_starts
            if len(paras) == 1 and intro_ends and followed_by_heading:
                # Heading, one paragraph announcing what follows, then sub-headings: a part.
                in_opened_part = True
                level = 1
            else:
                level = 2 if in_opened_part else 1
            yield ("heading", level, heading_text(i), s)
            i += 1
            continue
        if (
            k == "para"
            and kind(i - 1) == "para"
            and text[e - 1] == ":"
            and kind(i + 1) == "heading"
            and i + 1 not in doc_starts
        ):
            # An announcing paragraph after body text starts a part whose heading was lost.
            in_opened_part = True
            yield ("heading", 1, _title_from_intro(text[s:e]), s)
        yield from _body_events(text, s, e, doc_title)
        i += 1


def _title_from_intro(paragraph: str) -> str:
    """A short label for a part that lost its heading, taken from its announcing paragraph."""
    sentences = re.split(r"(?<=[.!?])\s+", paragraph.strip())
    m = HERE_ARE_RE.search(sentences[-1])
    if m:
        topic = m.group("topic").strip()
        topic = re.sub(r"^(?:key|main|most important)\s+", "", topic, flags=re.IGNORECASE)
        return topic[:1].upper() + topic[1:]
    first = sentences[0].rstrip(".:")
    return first if len(first) <= 60 else first[:57].rsplit(" ", 1)[0] + "…"


INLINE_HEADING_RE = re.compile(r"(?:(?<=\s)|^)(#{1,6})[ \t]+(?=\S)")


def _body_events(text: str, s: int, e: int, doc_title: str = "") -> Iterator[Event]:
    """Body spans, with markdown headings that were flattened inline split out as headings."""
    pos = s
    for m in INLINE_HEADING_RE.finditer(text, s, e):
        if m.start() < pos:
            continue
        title, title_end = _inline_heading_title(text, m.end(), e, doc_title)
        if not title:
            continue
        if text[pos : m.start()].strip():
            yield ("body", pos, _rstrip(text, pos, m.start()))
        yield ("heading", -len(m.group(1)), title, m.start())
        pos = _lstrip(text, title_end, e)
    if text[pos:e].strip():
        yield ("body", pos, e)


def _rstrip(text: str, s: int, e: int) -> int:
    while e > s and text[e - 1].isspace():
        e -= 1
    return e


def _lstrip(text: str, s: int, e: int) -> int:
    while s < e and text[s].isspace():
        s += 1
    return s


def _inline_heading_title(text: str, start: int, end: int, doc_title: str = "") -> tuple[str, int]:
    """Where a heading flattened into a paragraph ends: the run of Title Case words after ###.

    The sentence after the heading usually starts with a capitalised word, so when the run runs
    into lowercase words its last capitalised word belongs to the sentence. A sentence that names
    the guide's own role ("Compensation for Lead Data Scientists varies") starts before the name.
    """
    words = list(re.finditer(r"\S+", text[start:end]))
    run: list[re.Match[str]] = []
    sentence_continues = False
    for w in words[:16]:
        tok = w.group()
        if BULLET_RE.match(tok + " ") or tok.startswith(("**", "#")):
            break
        core = tok.strip("()[]\"'")
        if not core or tok[-1] in ",.;:!?":
            break  # a label ("Benefits:") or a sentence's first word ("Typically,") follows
        if core[0].isupper() or core[0].isdigit() or core.lower() in SMALL_WORDS:
            run.append(w)
            continue
        sentence_continues = True
        break
    if sentence_continues:
        name = doc_title.lower().split()
        lowered = [w.group().lower().rstrip("s") for w in run]
        if name and len(name) < len(run):
            for i in range(1, len(run) - len(name) + 1):
                if lowered[i : i + len(name)] == [n.rstrip("s") for n in name]:
                    run = run[:i]
                    break
        if run and run[-1].group()[0].isupper() and run[-1].group().lower() in SMALL_WORDS:
            run.pop()  # "Career Outlook The demand...": the sentence starts at "The"
        else:
            while run and run[-1].group().lower() in SMALL_WORDS:
                run.pop()
            if len(run) > 1:
                run.pop()
    while run and run[-1].group().lower() in SMALL_WORDS:
        run.pop()
    if not run:
        return "", start
    title_end = start + run[-1].end()
    return text[start:title_end].strip(), title_end


MD_HEADING_RE = re.compile(r"^[ ]{0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")


def _markdown_events(text: str) -> Iterator[Event]:
    """Events for markdown: ATX headings give levels; the first H1 names the document."""
    pos = 0
    body_start: int | None = None
    in_fence = False
    titled = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
        m = None if in_fence else MD_HEADING_RE.match(line.rstrip("\n"))
        if m:
            if body_start is not None:
                yield from _md_body(text, body_start, pos)
                body_start = None
            level = len(m.group(1))
            title = m.group(2).strip()
            if level == 1 and not titled:
                titled = True
                yield ("doc", title, pos)
            else:
                yield ("heading", level, title, pos)
        elif stripped and body_start is None:
            body_start = pos
        pos += len(line)
    if body_start is not None:
        yield from _md_body(text, body_start, pos)


def _md_body(text: str, s: int, e: int) -> Iterator[Event]:
    for bs, be in _blocks(text, s, e):
        yield from _body_events(text, bs, be)


def _assemble(events: Iterable[Event], text: str, source: str, fallback: str) -> list[Document]:
    """Fold events into documents whose sections carry their full heading path."""
    docs: list[Document] = []
    stack: list[tuple[int, str]] = []
    spans: list[tuple[int, int]] = []
    cur: Document | None = None
    inline_base = 0

    def flush() -> None:
        if cur is not None and spans:
            cur.sections.append(Section((cur.title, *(t for _, t in stack)), tuple(spans)))
        spans.clear()

    def close(end: int) -> None:
        if cur is not None:
            cur.end = _rstrip(text, cur.start, end)
            if cur.sections:
                docs.append(cur)

    for ev in events:
        if ev[0] == "doc":
            flush()
            close(ev[2])
            cur = Document(slugify(ev[1]), ev[1], source, text, ev[2], len(text))
            stack.clear()
            continue
        if cur is None:
            cur = Document(slugify(fallback), fallback, source, text, 0, len(text))
        if ev[0] == "heading":
            flush()
            level = ev[1]
            if level < 0:
                # Flattened inline markdown: nest under the plain-text heading it appeared in.
                depth = -level
                if not stack or stack[-1][0] < 100:
                    inline_base = stack[-1][0] if stack else 0
                level = 100 + inline_base * 10 + depth
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, ev[2]))
        else:
            spans.append((ev[1], ev[2]))
    flush()
    close(len(text))
    return docs


# --------------------------------------------------------------------------- HTML


class _HTMLToMarkdown(HTMLParser):
    """Reduce HTML to markdown-like text: h1-h6 become # headings, blocks become paragraphs."""

    SKIP = {"script", "style", "nav", "header", "footer", "noscript", "template", "svg", "form",
            "head"}  # fmt: skip
    BLOCK = {"p", "div", "section", "article", "main", "ul", "ol", "table", "tr", "br",
             "blockquote", "pre", "aside", "figure", "dl", "dt", "dd"}  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip_depth = 0
        self.heading: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip_depth += 1
        elif self.skip_depth:
            return
        elif re.fullmatch(r"h[1-6]", tag):
            self.heading = int(tag[1])
            self.out.append("\n\n" + "#" * self.heading + " ")
        elif tag == "li":
            self.out.append("\n• ")
        elif tag in self.BLOCK:
            self.out.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif self.skip_depth:
            return
        elif re.fullmatch(r"h[1-6]", tag):
            self.heading = None
            self.out.append("\n\n")
        elif tag in self.BLOCK:
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        data = re.sub(r"\s+", " ", data)
        if self.heading is not None:
            data = data.replace("\n", " ")
        self.out.append(data)


def html_to_markdown(source: str) -> str:
    """Markdown-like text of an HTML page; citations of HTML sources point into this text."""
    parser = _HTMLToMarkdown()
    parser.feed(source)
    parser.close()
    text = "".join(parser.out)
    lines = [line.strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
