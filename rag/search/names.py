"""The names a question gives (a level, a role, a team, a company) found among the names the
corpus gives its passages in the headings of their paths.

A question that names one ("What does a Staff Software Engineer do?", "an M4 engineering
manager", "at Airbnb") prefers the passages under that name. Exact matches come first: a
heading that adds words to the name loses to one that does not, and a heading that names
another level never matches ("Staff Software Engineer" is not "Senior Staff Software
Engineer"). This carries the named-guide rule (rag.search.roles), which sees titles only, to
every heading.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rag.index.store import Index
from rag.search.subjects import (
    LEVEL_WORDS,
    ROLE_HEADS,
    Token,
    levels,
    looks_like_name,
    starts_sentence,
    tokenize,
)

# Headings longer than this are topics or sentences ("Who is eligible for the end of year
# performance bonus?"), not names.
MAX_NAME_WORDS = 6
# A heading is named by a name when the names the question gives make more than this share of
# its words: "Airbnb", "Senior Programmer (L3)", not "TTS Hiring Process".
MIN_COVER = 0.5
# Headings compared for one question, at most.
MAX_NAMED = 200
# Words before a role word that belong to its phrase ("engineering manager", "IC3 product
# designer"), as in rag.search.subjects.
ROLE_PHRASE_WORDS = 3


@dataclass(frozen=True, eq=False)
class Heading:
    """One distinct title or heading: its words (normalised) and the rows under it."""

    text: str
    words: frozenset[str]
    rows: np.ndarray


def heading_words(text: str) -> tuple[str, ...]:
    """A heading's words, normalised as questions' words are, without function words."""
    return tuple(n for t in tokenize(text) if not t.stop for n in _parts(t))


def _parts(tok: Token) -> tuple[str, ...]:
    """A word's normalised forms, a hyphenated one's parts apart ("staff-level", "GS-13")."""
    return tuple(p for n in tok.norm for p in n.split("-") if p)


@dataclass
class QuestionNames:
    """The words of a question that name something, and all its content words.

    ``strong`` names stand alone: names and acronyms ("Airbnb", "TTS"), codes ("IC3", "M6")
    and level words ("senior", "staff"), each as the words it stands for ("ML": machine,
    learning), which a heading must hold together. ``role`` words form role phrases ("support
    engineer", "product designer"), which name only a heading that is just the phrase.
    """

    strong: list[tuple[str, ...]] = field(default_factory=list)
    role: set[str] = field(default_factory=set)
    content: set[str] = field(default_factory=set)
    levels: set[str] = field(default_factory=set)


def name_words(question: str) -> QuestionNames:
    """The names a question gives (``QuestionNames``)."""
    tokens = tokenize(question)
    q = QuestionNames()
    strong, role, content = q.strong, q.role, q.content
    for i, tok in enumerate(tokens):
        if tok.stop:
            continue
        parts = _parts(tok)
        content.update(parts)
        if looks_like_name(tok.text, starts_sentence(question, tok.start)):
            strong.append(parts)
        rungs = levels(parts)
        q.levels.update(rungs)
        strong.extend((r,) for r in rungs)
        if tok.norm[-1] in ROLE_HEADS:
            role.update(parts)
            # The words before a role word, up to a function word, are part of the role's name.
            for before in reversed(tokens[max(0, i - ROLE_PHRASE_WORDS) : i]):
                if before.stop:
                    break
                role.update(_parts(before))
    return q


class Names:
    """The names of one index's passages; thread-safe, built once."""

    def __init__(self, paths: Iterable[tuple[int, str, Sequence[str]]]) -> None:
        rows_by_heading: dict[str, list[int]] = {}
        for row, title, path in paths:
            # Titles are the named-guide rule's (rag.search.roles); these are the headings below.
            for text in dict.fromkeys(path):
                if text and text != title:
                    rows_by_heading.setdefault(text, []).append(row)
        self.headings: list[Heading] = []
        self._by_word: dict[str, list[int]] = {}
        for text, rows in rows_by_heading.items():
            words = frozenset(heading_words(text))
            if not words or len(words) > MAX_NAME_WORDS:
                continue
            n = len(self.headings)
            self.headings.append(Heading(text, words, np.unique(np.asarray(rows, np.int64))))
            for w in words:
                self._by_word.setdefault(w, []).append(n)

    def named(self, question: str) -> list[Heading]:
        """The headings the question names, the closest match for each name it gives."""
        q = name_words(question)
        content, levels = q.content, q.levels
        strong = q.strong
        looked = {w for g in strong for w in g} | q.role
        found: list[tuple[frozenset[str], int, int, Heading]] = []
        for n in sorted({n for w in looked for n in self._by_word.get(w, ())}):
            heading = self.headings[n]
            given = {w for g in strong if heading.words.issuperset(g) for w in g}
            matched = frozenset(given | (heading.words & q.role))
            covered = len(heading.words & content)
            extra = len(heading.words) - covered
            if given:
                if len(matched) <= MIN_COVER * len(heading.words):
                    continue
            elif extra or not matched & ROLE_HEADS:
                continue  # a role phrase names only a heading that is just it, role word and all
            if levels and heading.words & (LEVEL_WORDS - levels):
                continue  # another rung of the ladder
            found.append((matched, covered, extra, heading))
        # The closest first; past a few hundred the question names no one thing, and comparing
        # them all with each other would cost the square of what the corpus heads.
        found.sort(key=lambda f: (-len(f[0]), f[2], -f[1]))
        found = found[:MAX_NAMED]
        # A heading whose matched names another's include, or that matches the same names with
        # more words of its own (or, as exact, fewer of the question's), is the looser match.
        return [
            h
            for m, c, e, h in found
            if not any(m < m2 or (m == m2 and (-e2, c2) > (-e, c)) for m2, c2, e2, _ in found)
        ]

    def rows(self, question: str) -> np.ndarray | None:
        """The rows under the headings the question names (None when it names none)."""
        named = self.named(question)
        if not named:
            return None
        return np.unique(np.concatenate([h.rows for h in named]))


class NameIndex:
    """Builds one index's ``Names`` on first use, under a lock."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self._lock = threading.Lock()
        self._names: Names | None = None

    def get(self) -> Names:
        """The names, read from the index once."""
        with self._lock:
            if self._names is None:
                self._names = Names(self.index.section_paths())
            return self._names
