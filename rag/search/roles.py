"""Role and subject rules: what a question names, and how that shapes its ranking and answer.

A question that names one document's role ("ML fraud engineer") prefers that document's
passages; when that document never mentions what is asked ("skills"), the best passage of the
other documents is moved up to third place and the answer says so in a note.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.index.lexical import query_tokens
from rag.index.store import Index
from rag.search.coverage import Vocabulary, content_words
from rag.search.subjects import SubjectFinder


class Roles:
    """The role rules over one index; thread-safe, its matcher built once."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self._lock = threading.Lock()
        self._matcher: tuple[SubjectFinder, dict[str, str]] | None = None
        # Only documents a query named (ids come from the index's titles), so bounded by them.
        self._doc_words: dict[str, tuple[str, frozenset[str]]] = {}

    def warm(self) -> None:
        """Build the title matcher now, so that no query pays for it."""
        self._title_matcher()

    def _title_matcher(self) -> tuple[SubjectFinder, dict[str, str]]:
        with self._lock:
            if self._matcher is None:
                docs = self.index.documents()
                self._matcher = (SubjectFinder([d.title for d in docs]),
                                 {d.title: d.id for d in docs})  # fmt: skip
            return self._matcher

    def named_document(self, query: str) -> str | None:
        """The id of the one document whose role the query names, if it names exactly one."""
        finder, ids = self._title_matcher()
        titles = finder.named_titles(query)
        return ids[titles[0]] if len(titles) == 1 else None

    def absent_aspect(
        self, query: str, vocabulary: Vocabulary, named: str | None = None
    ) -> tuple[str, list[str]] | None:
        """(title, words) when the question names one document and asks about words that
        document never uses but others do ("skills" of a guide that lists none)."""
        named = named or self.named_document(query)
        if named is None:
            return None
        title, doc_tokens = self._document_words(named)
        title_tokens = {t for _, t in content_words(title)}
        absent = [
            w
            for w, t in content_words(query)
            # Words no document uses are no aspect of this one in particular.
            if t not in title_tokens and t not in doc_tokens and vocabulary.has(t)
        ]
        return (title, absent) if absent else None

    def unmentioned_note(self, query: str, vocabulary: Vocabulary) -> str | None:
        """The answer's note when the named guide lacks what the question asks about."""
        found = self.absent_aspect(query, vocabulary)
        if found is None:
            return None
        title, words = found
        return f"The {title} guide does not mention {join_words(words)}; the passages below are the closest."

    def _document_words(self, doc_id: str) -> tuple[str, frozenset[str]]:
        """A named document's title and BM25 tokens, read once. Kept on the instance, not in a
        class-level cache, so a retriever replaced by a reload takes its index with it."""
        words = self._doc_words.get(doc_id)
        if words is None:
            doc = self.index.document(doc_id)
            words = self._doc_words[doc_id] = (doc.title, frozenset(query_tokens(doc.text)))
        return words


def other_guide_third(fused: list[dict[str, Any]], own: np.ndarray) -> list[dict[str, Any]]:
    """``fused`` with its best row outside ``own`` at index 2 at the latest."""
    mine = set(own.tolist())
    place = 2
    for i, entry in enumerate(fused):
        if entry["row"] not in mine:
            if i > place:
                fused = [*fused[:place], entry, *fused[place:i], *fused[i + 1 :]]
            break
    return fused


def join_words(words: Sequence[str]) -> str:
    """“a”, “b” or “c”."""
    quoted = [f"“{w}”" for w in words]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
