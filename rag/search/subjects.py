"""Finding the roles a text names: the corpus's own titles matched loosely, else any noun
phrase ending in a role word. Shared by hybrid ranking (the named guide gets a bonus) and by chat
resolution (a follow-up's subject)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_TOKEN_RE = re.compile(r"\w[\w+#&'’-]*")


_POSSESSIVE_RE = re.compile(r"(?:['’]s|['’])$")


_EXPANSIONS = {"ml": ("machine", "learning"), "ai": ("artificial", "intelligence")}


ROLE_HEADS = frozenset(
    "engineer scientist manager architect analyst developer researcher specialist consultant "
    "designer administrator director officer recruiter programmer technician strategist "
    "executive intern lead head owner practitioner professional".split()
)


# Words that place a role on a ladder ("Senior Staff Software Engineer" is another rung than
# "Staff Software Engineer"), and those that do only before "level" ("mid-level", not "mid-year").
LEVEL_WORDS = frozenset("junior senior staff principal lead distinguished intern associate".split())
LEVEL_PREFIXES = frozenset({"mid", "entry"})


# First words that are capitalised without being names ("I'm based in Germany").
_PRONOUN_I = frozenset({"i", "i'm", "i've", "i'd", "i'll", "i’m", "i’ve", "i’d", "i’ll"})


def looks_like_name(word: str, sentence_start: bool) -> bool:
    """A name, an acronym or a code as written: "Airbnb" past the start of a sentence, "TTS",
    "IC3", "GS-13"."""
    if not word or word.lower() in _PRONOUN_I:
        return False
    if any(c.isdigit() for c in word) and any(c.isalpha() for c in word):
        return True
    if len(word) > 1 and word.isupper():
        return True
    return word[0].isupper() and not sentence_start


def starts_sentence(text: str, start: int) -> bool:
    """Whether the word at ``start`` opens a sentence (or the text)."""
    before = text[:start].rstrip()
    return not before or before[-1] in '.!?:;"“(\n'


def levels(parts: Sequence[str]) -> set[str]:
    """The level words among a word's normalised parts ("senior", "mid-level")."""
    return {p for p in parts if p in LEVEL_WORDS or (p in LEVEL_PREFIXES and "level" in parts)}


# Function words and the verbs questions about careers use: they end a role noun phrase.
_STOP = frozenset(
    """a an the this that these those some any each every no of in on at to for from by with
    about as into onto over under between among across within without than vs versus via per
    and or but nor so if then also plus i me my we us our you your he him his she her it its
    they them their one ones what which who whom whose when where why how much many is are was
    were be been being am do does did done doing have has had having can could should would
    will shall may might must need needs needed want wants become becoming becomes get gets
    make makes made earn earns earned pay pays paid hire hires hiring work works working take
    takes like more most less least very really typically usually often there here not
    whenever wherever whatever whichever whoever however whether while until since because
    although though unless just""".split()
)


# The same words, for the lexical evidence of whether the corpus covers a question.
QUESTION_WORDS = _STOP


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int
    norm: tuple[str, ...]  # lowercased, singular, acronyms expanded

    @property
    def lower(self) -> str:
        return self.text.lower()

    @property
    def stop(self) -> bool:
        # "US" and "IT" are names, not the words "us" and "it".
        return self.lower in _STOP and not (len(self.text) > 1 and self.text.isupper())


@dataclass(frozen=True)
class Span:
    """A phrase of a text (a role, a company, a prepositional phrase) and where it is."""

    text: str
    start: int
    end: int


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _norm(word: str) -> tuple[str, ...]:
    w = _POSSESSIVE_RE.sub("", word.lower())
    return _EXPANSIONS.get(w, (_singular(w),))


def tokenize(text: str) -> list[Token]:
    return [
        Token(m.group(), m.start(), m.end(), _norm(m.group())) for m in _TOKEN_RE.finditer(text)
    ]


def pluralise(phrase: str) -> str:
    head, _, last = phrase.rpartition(" ")
    low = last.lower()
    if low.endswith("s") and not low.endswith(("ss", "us", "is")):
        plural = last
    elif low.endswith("y") and low[-2:-1] not in ("a", "e", "i", "o", "u"):
        plural = last[:-1] + "ies"
    elif low.endswith(("sh", "ch", "x", "z", "ss")):
        plural = last + "es"
    else:
        plural = last + "s"
    return f"{head} {plural}" if head else plural


def singular_phrase(phrase: str) -> str:
    head, _, last = phrase.rpartition(" ")
    last = last if last.isupper() else _POSSESSIVE_RE.sub("", last)
    single = last[:-1] if last.lower() == _singular(last.lower()) + "s" else last
    if last.lower().endswith("ies") and len(last) > 4:
        single = last[:-3] + "y"
    return f"{head} {single}" if head else single


class SubjectFinder:
    """Finds the roles a text names, preferring the index's own document titles."""

    def __init__(self, known_subjects: Sequence[str] = ()) -> None:
        self._known: list[tuple[str, ...]] = []
        self._titles: list[str] = []
        seen: set[tuple[str, ...]] = set()
        # A title can only match where a query word is its last word and, unless it is one word
        # long, a word just before is another of its words: titles are indexed by those pairs, so
        # a query is compared with the few titles it could name, however many there are.
        self._single: dict[str, list[int]] = {}
        self._pairs: dict[tuple[str, str], list[int]] = {}
        for title in known_subjects:
            norm = tuple(n for t in tokenize(title) for n in t.norm)
            if norm and norm not in seen:
                seen.add(norm)
                n = len(self._known)
                if len(norm) == 1:
                    self._single.setdefault(norm[0], []).append(n)
                for word in set(norm[:-1]):
                    self._pairs.setdefault((norm[-1], word), []).append(n)
                self._known.append(norm)
                self._titles.append(title)
        self._longest = max((len(k) for k in self._known), default=0)

    def named_titles(self, text: str) -> list[str]:
        """The known titles that ``text`` names ("ML fraud engineer": ML Fraud Detection
        Engineer), in order, each once."""
        tokens = tokenize(text)
        out: list[str] = []
        for i in range(len(tokens)):
            best = self._best_title(tokens, i)
            if best is not None and self._titles[best[1]] not in out:
                out.append(self._titles[best[1]])
        return out

    def find(self, text: str) -> list[Span]:
        """Roles named in ``text``, in order, without overlaps."""
        tokens = tokenize(text)
        candidates = [
            span
            for i in range(len(tokens))
            if (span := self._known_at(tokens, i) or self._generic_at(tokens, i))
        ]
        # "lead" is a role word too: the longest phrase wins ("lead data scientist").
        candidates.sort(key=lambda span: span[0] - span[1])
        spans: list[tuple[int, int]] = []
        for span in candidates:
            if not any(s <= span[1] and span[0] <= e for s, e in spans):
                spans.append(span)
        spans.sort()
        return [
            Span(text[tokens[s].start : tokens[e].end], tokens[s].start, tokens[e].end)
            for s, e in spans
        ]

    def _known_at(self, tokens: Sequence[Token], i: int) -> tuple[int, int] | None:
        """Span of the best title whose last word is token ``i``, matched loosely."""
        best = self._best_title(tokens, i)
        return (best[0], i) if best else None

    def _best_title(self, tokens: Sequence[Token], i: int) -> tuple[int, int] | None:
        """(first token, title index) of the best title ending at token ``i``, if any."""
        best: tuple[float, float, int, int] | None = None
        last = tokens[i].norm[-1]
        candidates = set(self._single.get(last, ()))
        # The rungs the phrase names ("a staff software engineer"), if any.
        rungs = levels(tokens[i].norm)
        # No title looks back further than the longest is long: the cost per word is bounded.
        for j in range(i - 1, max(-1, i - self._longest), -1):
            if tokens[j].stop:
                break
            rungs |= levels([p for n in tokens[j].norm for p in n.split("-")])
            for word in tokens[j].norm:
                candidates.update(self._pairs.get((last, word), ()))
        for n in sorted(candidates):
            title = self._known[n]
            if rungs and LEVEL_WORDS.intersection(title) - rungs:
                continue  # a title on another rung: a staff engineer is no senior staff engineer
            wanted = set(title[:-1])
            start, found = i, 0
            # Look back over the noun phrase: no further than the title is long, no stop word.
            for j in range(i - 1, max(-1, i - len(title) - 1), -1):
                if tokens[j].stop:
                    break
                hits = wanted.intersection(tokens[j].norm)
                if hits:
                    found += len(hits)
                    wanted -= hits
                    start = j
            score = (found + 1) / len(title)
            # A lone role word ("engineer") matches no title with more words than that.
            if (found or len(title) == 1) and score >= 0.6:
                if best is None or (found, score) > (best[0], best[1]):
                    best = (found, score, start, n)
        return (best[2], best[3]) if best else None

    @staticmethod
    def _generic_at(tokens: Sequence[Token], i: int) -> tuple[int, int] | None:
        """Span of a noun phrase ending in a role word at token ``i`` ("data engineers")."""
        if tokens[i].norm[-1] not in ROLE_HEADS or tokens[i].stop:
            return None
        start = i
        while start > 0 and i - start < 3 and not tokens[start - 1].stop:
            start -= 1
        return start, i
