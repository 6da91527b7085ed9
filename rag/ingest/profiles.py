"""Text profiles: how to read plain text whose structure was lost on the way to the corpus.

Plain text has no markup, so its structure is guessed. :class:`TextProfile` holds only the rules
that hold for career documents in general: a short capitalised line standing alone is a heading,
the first heading names the document, blank lines separate paragraphs and lists.

Rules that fit one kind of source live in a named subclass. The one shipped is
:class:`ScrapedGuide`, and ``profile_for`` picks it for ``.txt`` files unless the setting
``RAG_TEXT_PROFILE`` names another. Markdown and HTML carry their own structure and are always
read with the core rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from rag.ingest.structure import BULLET_RE, Event, lstrip_at, rstrip_at

PLAIN_SUFFIXES = (".txt",)


class TextProfile:
    """The core rules for plain text; every hook leaves the text as it is."""

    name = "plain"
    # A heading printed twice in a row opens a new document.
    doubled_titles = False
    # A paragraph that ends in ":" before sub-headings opens a part the sub-headings nest in.
    announced_parts = False

    def is_chrome(self, line: str) -> bool:
        """Whether a line standing alone is page furniture rather than content."""
        return False

    def title_from_intro(self, paragraph: str) -> str:
        """A heading for a part that lost its own, named from its announcing paragraph."""
        first = re.split(r"(?<=[.!?])\s+", paragraph.strip())[0].rstrip(".:")
        return first if len(first) <= 60 else first[:57].rsplit(" ", 1)[0] + "…"

    def body_events(self, text: str, s: int, e: int, doc_title: str = "") -> Iterator[Event]:
        """The events of one body block: the block itself."""
        yield ("body", s, e)

    def glued_label(self, piece: str) -> tuple[str, str] | None:
        """(item, label) when a list item ending in ":" is an item with the next label glued on."""
        return None

    def split_summaries(self, piece: str) -> list[str]:
        """A list item, and any closing summary glued onto it, as separate sentences."""
        return [piece]


class ScrapedGuide(TextProfile):
    """Career guides scraped from a web page and flattened to text (the pages in ``corpus/``).

    Such text keeps the page's leftovers and loses its markup on the way:

    - page chrome stands alone on a line ("logoSite", "first image", "Share", "Menu");
    - a guide's title is printed twice (once in the breadcrumb, once as the heading), which is
      the only sign that a new guide starts on the same page;
    - a paragraph ending in ":" ("Here are the key skills:") announces a part whose own heading
      was lost, and sub-headings nest under it;
    - markdown headings survive inline in a paragraph ("... ### Career Outlook The demand ...");
    - the last list item has the next list's label ("... prevention Challenges:") or a closing
      summary ("... tactics This overview provides ...") glued on, with no full stop between.
    """

    name = "scraped-guide"
    doubled_titles = True
    announced_parts = True

    def is_chrome(self, line: str) -> bool:
        """Logos, image placeholders and navigation left behind by HTML-to-text conversion."""
        return bool(CHROME_RE.match(line.strip()))

    def title_from_intro(self, paragraph: str) -> str:
        """The topic an announcing paragraph names ("Here are the key skills:" -> "Skills")."""
        sentences = re.split(r"(?<=[.!?])\s+", paragraph.strip())
        m = HERE_ARE_RE.search(sentences[-1])
        if m:
            topic = m.group("topic").strip()
            topic = re.sub(r"^(?:key|main|most important)\s+", "", topic, flags=re.IGNORECASE)
            return topic[:1].upper() + topic[1:]
        return super().title_from_intro(paragraph)

    def body_events(self, text: str, s: int, e: int, doc_title: str = "") -> Iterator[Event]:
        """Body spans, with markdown headings that were flattened inline split out as headings."""
        pos = s
        for m in INLINE_HEADING_RE.finditer(text, s, e):
            if m.start() < pos:
                continue
            title, title_end = _inline_heading_title(text, m.end(), e, doc_title)
            if not title:
                continue
            if text[pos : m.start()].strip():
                yield ("body", pos, rstrip_at(text, pos, m.start()))
            yield ("heading", -len(m.group(1)), title, m.start())
            pos = lstrip_at(text, title_end, e)
        if text[pos:e].strip():
            yield ("body", pos, e)

    def glued_label(self, piece: str) -> tuple[str, str] | None:
        """ "…and prevention Challenges:" is the item "…and prevention" and the label "Challenges:"."""
        glued = _GLUED_LABEL_RE.match(piece)
        return (glued.group(1), glued.group(2)) if glued else None

    def split_summaries(self, piece: str) -> list[str]:
        """ "...evolving fraud tactics This overview provides..." is an item and a summary."""
        return _GLUE_RE.split(piece)


PROFILES: dict[str, type[TextProfile]] = {p.name: p for p in (TextProfile, ScrapedGuide)}
DEFAULT_TEXT_PROFILE = ScrapedGuide.name
CORE = TextProfile()


def get_profile(name: str) -> TextProfile:
    """The text profile called ``name``; raises ValueError naming the known ones."""
    try:
        return PROFILES[name]()
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown text profile {name!r}: use one of {known}") from None


def profile_for(source: str, text_profile: str = DEFAULT_TEXT_PROFILE) -> TextProfile:
    """The profile a source file is read with: ``text_profile`` for plain text, else the core."""
    if Path(source).suffix.lower() in PLAIN_SUFFIXES:
        return get_profile(text_profile)
    return CORE


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


INLINE_HEADING_RE = re.compile(r"(?:(?<=\s)|^)(#{1,6})[ \t]+(?=\S)")


# Pages flattened to text glue a closing summary onto the last list item with no full stop:
# "...evolving fraud tactics This overview provides..."
_GLUE_RE = re.compile(
    r"(?<=[a-z0-9)])\s+(?=(?:This|These|The|By|In summary|In conclusion|Overall|Ultimately)\s+[a-z])"
)


# "…and prevention Challenges:": a list's last item with the next list's label glued on.
_GLUED_LABEL_RE = re.compile(
    r"^(.{20,}?\S)\s+([A-Z][\w/&()-]*(?:\s(?:[A-Z][\w/&()-]*|and|of|for|&)){0,4}:)$"
)


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
