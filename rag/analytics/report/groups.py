"""Near-duplicate questions grouped: normalised text, then token-set Jaccard similarity.

"How much does a data engineer earn?" and "how much do data engineers earn" are one question
to the owner of the guides. Text is case-folded, stripped of punctuation and extra spaces, and
its content words stemmed (PyStemmer, which the lexical index already uses); two questions are
near duplicates when their sets of stems overlap by at least ``threshold`` (Jaccard). No model is
needed and the result is deterministic.

Each distinct question joins the first group (most asked first) whose leading question is
similar enough, else starts a group. Comparing with the leading question only keeps groups from
drifting (A~B, B~C, but A and C unrelated). Candidates are found by prefix filtering, so a log
of 100,000 distinct questions is grouped without comparing every pair.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

# Rewordings (case, punctuation, plurals, articles, auxiliaries, word order) score 1, and one
# added word to three or more content words 0.75 or more; questions that differ in one of five
# or fewer content words score 0.67 or less ("what does a data engineer / scientist do": 0.5).
# Six or more content words with one swapped do group: the group lists its variants.
SIMILARITY = 0.7
_WORD = re.compile(r"\w+")
# Words that change no question's meaning: left out of the comparison. Question words ("how",
# "what", "much") and negations stay: "what does X do" and "how much does X earn" differ.
FUNCTION_WORDS = frozenset(
    "a an the and or of for to in on at by with from as into about is are was were be been being"
    " am do does did doing have has had can could should would will shall may might must i me"
    " my we our you your it its this that these those there please".split()
)


def normalise(text: str) -> str:
    """Case-folded words separated by single spaces: punctuation and spacing dropped."""
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def stems(normalised: str) -> frozenset[str]:
    """The set of English stems of a normalised question's content words (of all its words
    when it has only function words)."""
    words = normalised.split()
    content = [w for w in words if w not in FUNCTION_WORDS] or words
    return frozenset(_stemmer().stemWords(content)) if content else frozenset()


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Size of the intersection over size of the union (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass
class Group:
    """Questions that are near duplicates of one leading question."""

    lead: str  # the normalised text the others were compared with
    stems: frozenset[str]
    variants: Counter[str] = field(default_factory=Counter)  # original text -> times asked
    values: list[Any] = field(default_factory=list)  # what the caller attached to each ask

    @property
    def count(self) -> int:
        """How many times any variant was asked."""
        return sum(self.variants.values())

    @property
    def question(self) -> str:
        """The variant asked most often (the first of them on a tie)."""
        return self.variants.most_common(1)[0][0]


def group_questions(asked: Iterable[tuple[str, Any]], threshold: float = SIMILARITY) -> list[Group]:
    """Group ``(question, value)`` pairs into near duplicates, most asked first.

    The order is fully determined by the input: by count, then by the leading question's text.
    """
    if not 0 < threshold <= 1:
        raise ValueError("threshold must be in (0, 1]")
    # Identical after normalisation: one entry, whatever the case or punctuation.
    by_text: dict[str, tuple[Counter[str], list[Any]]] = {}
    for question, value in asked:
        variants, values = by_text.setdefault(normalise(question), (Counter(), []))
        variants[question] += 1
        values.append(value)
    sets = {text: stems(text) for text in by_text}
    # Rarest stems first: the prefixes of two similar sets then meet on an uncommon stem.
    frequency = Counter(s for st in sets.values() for s in st)

    def prefix(st: frozenset[str]) -> list[str]:
        ordered = sorted(st, key=lambda s: (frequency[s], s))
        # Sets with Jaccard >= t share a stem among the first n - ceil(t * n) + 1 of each.
        return ordered[: len(ordered) - math.ceil(threshold * len(ordered)) + 1]

    order = sorted(by_text, key=lambda t: (-sum(by_text[t][0].values()), t))
    groups: list[Group] = []
    by_stem: dict[str, list[int]] = {}
    for text in order:
        st = sets[text]
        home = None
        if st:
            candidates = sorted({g for s in prefix(st) for g in by_stem.get(s, ())})
            home = next((g for g in candidates if jaccard(st, groups[g].stems) >= threshold), None)
        if home is None:
            home = len(groups)
            groups.append(Group(text, st))
            for s in prefix(st):
                by_stem.setdefault(s, []).append(home)
        variants, values = by_text[text]
        groups[home].variants.update(variants)
        groups[home].values.extend(values)
    groups.sort(key=lambda g: (-g.count, g.lead))
    return groups
