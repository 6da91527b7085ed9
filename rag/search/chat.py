"""Conversation -> standalone retrieval query, by rule, without a language model.

Follow-up questions lean on earlier turns: "How much do they earn?", "And at Google?", "What
about salary?". ``resolve_query`` rewrites the last user message into a question that stands
alone, resolving every user turn in order so a chain of follow-ups keeps its subject:

* the *subject* of a turn is the roles it names: a document title from the index matched
  loosely ("ML fraud engineer" matches "ML Fraud Detection Engineer"), else any noun phrase
  ending in a role word ("data engineers");
* pronouns and role references ("they", "their", "it", "this role") are replaced by the subject
  of the latest turn that had one;
* elliptical follow-ups ("And at Google?", "What about salary?", "Same for data engineers?")
  are merged with the previous resolved question: a new company or place takes the old one's
  slot, a prepositional phrase takes the place of the one with the same preposition or is
  added, a new role replaces the old subject, and a new topic is asked about the old subject;
* a question without a subject that only asks about a role's attributes ("What skills do I
  need?") is asked about the subject;
* an ordinal reference to something the previous answer listed ("the first one", "the last
  one", "the latter") is replaced by that item, with the subject beside it ("Tell me more
  about the last one" after a list of challenges: "... team collaboration");
* a question that names its own subject, or has its own content, is left alone: nothing of the
  old subject is dragged into it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from rag.errors import BadQuery
from rag.search.subjects import (
    Span,
    SubjectFinder,
    Token,
    pluralise,
    singular_phrase,
    tokenize,
)

# Words that only ask about a role ("what skills do I need?"): a question made of nothing else
# has no topic of its own, so it is about the subject of the conversation.
_ATTRIBUTES = frozenset(
    """skill salary compensation bonus stock equity benefit education degree qualification
    certification certificate requirement required require responsibility duty role job
    position career task day typical outlook demand future growth path progression promotion
    experience tool technology language background challenge interview hour level entry
    senior junior average range long year good important key main common usually typical
    daily life prospect opportunity need know learn study start get into become pay paid earn
    make do does work hard easy difficult worth much many money income""".split()
)

_QUESTION_START = frozenset(
    """what which who whom whose when where why how is are was were do does did can could
    should would will shall may might must have has had tell list give describe explain
    compare name show""".split()
)
_PREPOSITIONS = frozenset(
    "at in for with on from by within among across outside inside during after before near "
    "versus vs about under over".split()
)

_LEAD_RE = re.compile(r"^(?:and|also|plus|but|or|so|ok(?:ay)?|then|now|great|thanks)\b[\s,]*", re.I)
_ABOUT_RE = re.compile(
    r"^(?:(?:what|how)\s+about|what\s+of|how\s+regarding|regarding|same(?:\s+question)?"
    r"|(?:(?:can\s+you\s+|could\s+you\s+|please\s+)?tell\s+me\s+)?more(?:\s+(?:about|on))?"
    r"|go\s+on|elaborate(?:\s+on)?|explain\s+more)\b[\s,]*",
    re.I,
)
_ARTICLE_RE = re.compile(r"^(?:the|a|an)\s+", re.I)
# What may stand between two capitalised words of one name ("Meta, Google and Amazon"), matched
# on the stripped gap: "\s*" around an optional "\s*and" backtracked quadratically on long gaps.
_JOINER_RE = re.compile(r"(?:,|,\s*(?:and|or)|and|or|&)?", re.I)

_ORDINALS = {
    "first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3,
    "fifth": 4, "5th": 4, "sixth": 5, "6th": 5, "last": -1, "final": -1,
}  # fmt: skip
# "the first one", "the second point", "the latter": a pointer into the previous answer's list.
# Only generic nouns follow the ordinal, so "the first year" or "the first job" stay as they are.
_ORDINAL_RE = re.compile(
    rf"\bthe\s+(?:(?P<nth>{'|'.join(_ORDINALS)})\s+"
    r"(?:one|item|point|option|thing|bullet|entry|step|stage|part|area|example|mentioned)"
    r"|(?P<pair>former|latter))\b",
    re.I,
)
# Starts only where a whitespace run starts: from inside a run, each position would rescan the
# rest of it (quadratic on a long run), and a match never starts there anyway.
_CITATION_RE = re.compile(r"(?<!\s)\s*\[\d+\]")
_BULLET_RE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")
# "Data Collection Layer: aggregates data ...": a short label before a colon names the item.
_LABEL_RE = re.compile(r"^([^:.;,]{2,60}?):\s")
# A comma inside a number ("$157,969") has no space after it, so it separates nothing.
# It splits text whose whitespace runs are collapsed to one space (_WS_RE): over raw runs,
# "\s*" next to "\s+" backtracked cubically on a long run of spaces (tests/test_bounded_work.py).
_LIST_SPLIT_RE = re.compile(r" ?[,;] (?:(?:and|or) )?| (?:and|or) ", re.I)
_WS_RE = re.compile(r"\s+")
# "Skills include Python, SQL and Spark": the words that introduce an enumeration are not
# part of its first item (the last such phrase counts: greedy).
_LEAD_IN_RE = re.compile(
    r"^.*\b(?:includ(?:e|es|ing)|such\s+as|like|are|is|cover(?:s|ing)?|involv(?:e|es|ing)"
    r"|requir(?:e|es|ing)|needs?|span(?:s|ning)?)\s+(?=\S)",
    re.I,
)

_ROLE_NOUNS = r"(?:role|job|position|career|profession|occupation|title|line\s+of\s+work)s?"
# "the job" is a weak reference: in "the job outlook for ML engineers" it is that question's
# own subject. It counts only in a question that names no role itself.
_WEAK_REFERENCE = re.compile(rf"\bthe\s+{_ROLE_NOUNS}\b", re.I)
# A reference to the subject, and what replaces it (filled with the subject's forms).
_REFERENCES: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(rf"\b(?:this|that|such\s+an?|these|those|such)\s+{_ROLE_NOUNS}\b", re.I),
        "the {singular} role",
    ),
    (_WEAK_REFERENCE, "the {singular} role"),
    (
        re.compile(r"\b(?:these|those|such)\s+(?:people|professionals|folks|workers)\b", re.I),
        "{plural}",
    ),
    (re.compile(r"\b(?:their|theirs)\b", re.I), "{plural_possessive}"),
    (re.compile(r"\b(?:they|them|themselves)\b", re.I), "{plural}"),
    (re.compile(r"\b(?:his|her|hers)\b", re.I), "the {singular}'s"),
    (re.compile(r"\b(?:he|she|him)\b", re.I), "a {singular}"),
    (re.compile(r"\bits\b", re.I), "the {singular} role's"),
    # Not the "it" of "is it hard to ...", "it is possible to", "it takes": those refer to nothing.
    (
        re.compile(
            r"\bit\b(?!(?:\s*['’]s|\s+is|\s+was|\s+will\s+be|\s+would\s+be)?\s+(?:\w+\s+){0,2}to\b)"
            r"(?!\s+takes?\b)",
            re.I,
        ),
        "the {singular} role",
    ),
    (
        re.compile(
            r"\b(?:this|that)\b(?=\s+(?:is|was|does|do|pay|pays|require|requires|need|needs|"
            r"involve|involves|mean|means|earn|earns|offer|offers)\b|\s*[?.!]|\s*$)",
            re.I,
        ),
        "the {singular} role",
    ),
]


def _forms(subjects: Sequence[Span]) -> dict[str, str]:
    names = [_ARTICLE_RE.sub("", s.text) for s in subjects]
    plural = " and ".join(pluralise(n) for n in names)
    singular = " and ".join(singular_phrase(n) for n in names)
    possessive = plural + "'" if plural.endswith("s") else plural + "'s"
    return {"plural": plural, "singular": singular, "plural_possessive": possessive}


def _first_reference(text: str, *, weak: bool = True) -> re.Match[str] | None:
    matches = [
        m
        for pattern, _ in _REFERENCES
        if (weak or pattern is not _WEAK_REFERENCE) and (m := pattern.search(text))
    ]
    return min(matches, key=lambda m: m.start()) if matches else None


def _substitute(text: str, subjects: Sequence[Span]) -> str:
    forms = _forms(subjects)
    for pattern, template in _REFERENCES:
        replacement = template.format(**forms)

        def repl(m: re.Match[str], replacement: str = replacement) -> str:
            # The last character before the match, found without copying the prefix (which made
            # a text of many references quadratic).
            i = m.start() - 1
            while i >= 0 and m.string[i].isspace():
                i -= 1
            if i < 0 or m.string[i] in ".?!":
                return replacement[0].upper() + replacement[1:]
            return replacement

        text = pattern.sub(repl, text)
    return text


def _content(text: str) -> list[Token]:
    return [t for t in tokenize(text) if not t.stop]


def _entities(text: str, exclude: Sequence[Span] = (), *, initial: bool = False) -> list[Span]:
    """Runs of capitalised words (companies, places), joined across "and" / "or" / commas."""
    tokens = tokenize(text)
    runs: list[list[Token]] = []
    for n, tok in enumerate(tokens):
        capital = tok.text[:1].isupper() and not tok.text.isupper() and tok.text != "I"
        # A fragment starts with a capital anyway: "Salary?" names no company.
        common = tok.stop or tok.norm[-1] in _ATTRIBUTES
        # The gap since the previous token, not the whole prefix: linear in the text, and the
        # same answer, since a token never ends in punctuation.
        gap = text[tokens[n - 1].end : tok.start] if n else ""
        sentence_start = n == 0 or gap.rstrip().endswith((".", "?", "!"))
        inside = any(s.start <= tok.start < s.end for s in exclude)
        if not capital or inside or (sentence_start and (not initial or common)):
            continue
        prev = runs[-1][-1] if runs else None
        if prev and _JOINER_RE.fullmatch(text[prev.end : tok.start].strip()):
            runs[-1].append(tok)
        else:
            runs.append([tok])
    return [Span(text[r[0].start : r[-1].end], r[0].start, r[-1].end) for r in runs]


def _append(question: str, phrase: str) -> str:
    """Add a phrase at the end of a question, before its question mark."""
    body = question.rstrip(" ?.!")
    return f"{body} {phrase}?"


def _replace(text: str, span: Span, new: str) -> str:
    return text[: span.start] + new + text[span.end :]


def _swap_subject(text: str, old: Span, new: Span) -> str:
    """Put the role ``new`` where ``old`` is, in the same number, fixing "a"/"an" before it."""
    name = _ARTICLE_RE.sub("", new.text)
    plural = singular_phrase(old.text) != old.text
    name = pluralise(name) if plural else singular_phrase(name)
    before = text[: old.start]
    article = re.search(r"\b(an?)\s+$", before, re.I)
    if article:
        fixed = "an" if name[:1].lower() in "aeiou" else "a"
        if article.group(1)[0].isupper():
            fixed = fixed.capitalize()
        before = before[: article.start(1)] + fixed + before[article.end(1) :]
    return before + name + text[old.end :]


def _prep_phrase(text: str, prep: str, exclude: Sequence[Span]) -> Span | None:
    """The span of ``prep`` and the noun phrase after it in ``text``, outside any subject."""
    tokens = tokenize(text)
    for n, tok in enumerate(tokens):
        if tok.lower != prep or any(s.start <= tok.start < s.end for s in exclude):
            continue
        end = n
        # The phrase runs over articles and content words, to punctuation or a function word.
        for m in range(n + 1, min(len(tokens), n + 5)):
            between = text[tokens[m - 1].end : tokens[m].start]
            article = tokens[m].lower in ("the", "a", "an")
            if any(c in between for c in ",.;:?!") or (tokens[m].stop and not article):
                break
            end = m
        if end > n:
            return Span(text[tok.start : tokens[end].end], tok.start, tokens[end].end)
    return None


def _underspecified(text: str) -> bool:
    """A question whose every content word only asks about a role's attributes."""
    words = _content(text)
    return bool(words) and all(w.norm[-1] in _ATTRIBUTES for w in words)


def _strip_end(text: str) -> str:
    return text.strip().rstrip(" ?.!").strip()


class _Resolver:
    def __init__(self, finder: SubjectFinder, max_chars: int | None = None) -> None:
        self.finder = finder
        self.max_chars = max_chars
        self.resolved: list[str] = []
        self.subjects: list[Sequence[Span]] = []  # subjects of each resolved turn

    def context_subjects(self) -> Sequence[Span]:
        for subjects in reversed(self.subjects):
            if subjects:
                return subjects
        return ()

    def add(self, text: str, assistant_before: str = "") -> str:
        # Merged context can outgrow the limit; cut at every turn, a chain of follow-ups would
        # otherwise carry (and re-read) all earlier turns: quadratic in their number.
        query = _keep_end(self._resolve(text.strip(), assistant_before), self.max_chars)
        self.resolved.append(query)
        self.subjects.append(self.finder.find(query))
        return query

    def _resolve(self, text: str, assistant: str) -> str:
        if not self.resolved:
            return text
        previous = self.resolved[-1]
        subjects = self.context_subjects()
        if not subjects and assistant:
            # A user who asks "how much do they earn?" may mean a role the answer named.
            subjects = self.finder.find(assistant)[:1]
        pointed = _resolve_ordinals(text, assistant, subjects, self.finder)
        if pointed != text:
            # The item names its own topic and the subject stands beside it: nothing to merge.
            return pointed
        led = _LEAD_RE.match(text)
        rest = text[led.end() :] if led else text
        about = _ABOUT_RE.match(rest)
        if about:
            return self._elliptical(rest[about.end() :], previous, subjects, marked=True)
        words = tokenize(rest)
        starts_question = bool(words) and words[0].lower in _QUESTION_START
        if not starts_question and (led or len(_content(rest)) <= 3):
            return self._elliptical(rest, previous, subjects, marked=bool(led))
        return self._question(rest[:1].upper() + rest[1:], previous, subjects)

    def _question(self, text: str, previous: str, subjects: Sequence[Span]) -> str:
        own = self.finder.find(text)
        ref = _first_reference(text, weak=not own)
        if ref and not (own and own[0].start < ref.start()):
            if subjects:
                return _substitute(text, subjects)
            return f"{text} {' '.join(t.text for t in _content(previous))}"
        if not _content(text):
            return previous  # "Why?", "How so?": the same question again
        if not own and subjects and _underspecified(text):
            return _append(text, "for " + _forms(subjects)["plural"])
        return text

    def _elliptical(
        self, body: str, previous: str, subjects: Sequence[Span], *, marked: bool
    ) -> str:
        body = _strip_end(body)
        if not _content(body):
            return previous  # "Tell me more", "Why?": the same question again
        own = self.finder.find(body)
        if own:
            if not marked:
                return body + "?"  # "Requirements for data engineers?" stands alone
            old = self.finder.find(previous)
            if old:
                # "Same for data engineers?": ask the previous question about the new role.
                return _swap_subject(previous, old[0], own[0])
            return _append(previous, body)
        if _first_reference(body) and subjects:
            return _substitute(body, subjects) + "?"
        previous_subjects = self.finder.find(previous)
        new_entities = _entities(body, initial=True)
        old_entities = _entities(previous, previous_subjects)
        if new_entities and old_entities:
            # "And at Google?" after "... at Meta?": the new name takes the old one's slot.
            return _replace(previous, old_entities[0], new_entities[0].text)
        words = tokenize(body)
        if words and words[0].lower in _PREPOSITIONS:
            old = _prep_phrase(previous, words[0].lower, previous_subjects)
            if old:
                return _replace(previous, old, body)
            return _append(previous, body)
        if new_entities:
            return _append(previous, body)
        topic = _ARTICLE_RE.sub("", body)
        if subjects:
            # "What about salary?": the new topic, asked about the old subject.
            return f"{_forms(subjects)['singular']} {topic}"
        return _append(previous, topic)


def listed_items(answer: str) -> list[str]:
    """The things an answer lists, in order: its lines or bullets, its labelled sentences
    ("Supervised Learning: ..."), or the comma-separated parts of its longest enumeration."""
    text = _CITATION_RE.sub("", answer).strip()
    lines = [_BULLET_RE.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) >= 2:
        return [_item(line) for line in lines]
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    labels = [m.group(1) for s in sentences if (m := _LABEL_RE.match(s))]
    if len(labels) >= 2 and len(labels) == len(sentences):
        return [_item(label) for label in labels]
    best: list[str] = []
    for sentence in sentences:
        body = sentence.split(":", 1)[1] if _LABEL_RE.match(sentence) else sentence
        pieces = _LIST_SPLIT_RE.split(_WS_RE.sub(" ", body.strip().rstrip(".!?")))
        pieces[0] = _LEAD_IN_RE.sub("", pieces[0])
        parts = [p for p in map(_item, pieces) if p]
        if len(parts) > len(best):
            best = parts
    return best if len(best) >= 2 else []


def _item(text: str) -> str:
    label = _LABEL_RE.match(text)
    text = label.group(1) if label else text
    return _ARTICLE_RE.sub("", text.strip().rstrip(".!?:").strip())


def _resolve_ordinals(
    text: str, assistant: str, subjects: Sequence[Span], finder: SubjectFinder
) -> str:
    """Replace "the first one" / "the latter" with the item of the previous answer it points to."""
    if not assistant or not _ORDINAL_RE.search(text):
        return text
    items = listed_items(assistant)
    if not items:
        return text
    context = f" ({_forms(subjects)['singular']})" if subjects else ""

    def repl(m: re.Match[str]) -> str:
        if m.group("pair"):
            index = 0 if m.group("pair").lower() == "former" else -1
        else:
            index = _ORDINALS[m.group("nth").lower()]
        if index >= len(items):
            return m.group()
        item = items[index]
        # An item that is itself a role ("the former": Lead Data Scientist) needs no subject.
        return f"the {item}" if finder.find(item) else f"the {item}{context}"

    return _ORDINAL_RE.sub(repl, text, count=1)


def _get(message: object, key: str) -> object:
    if isinstance(message, Mapping):
        return message.get(key)
    return getattr(message, key, None)


def resolve_query(
    messages: Sequence[Mapping[str, str] | object],
    known_subjects: Sequence[str] = (),
    *,
    max_chars: int | None = None,
) -> str:
    """The standalone retrieval query the conversation's last user message resolves to."""
    if not messages:
        raise BadQuery("messages must not be empty", field="messages")
    last = len(messages) - 1
    if _get(messages[last], "role") != "user":
        raise BadQuery("the last message must be from the user", field=f"messages.{last}.role")
    content = _get(messages[last], "content")
    if not isinstance(content, str) or not content.strip():
        raise BadQuery("the last message must not be empty", field=f"messages.{last}.content")
    if max_chars is not None and len(content.strip()) > max_chars:
        raise BadQuery(
            f"the last message is longer than {max_chars} characters",
            field=f"messages.{last}.content",
        )
    resolver = _Resolver(SubjectFinder(known_subjects), max_chars)
    assistant = ""
    query = content.strip()
    for message in messages:
        text = _get(message, "content")
        if not isinstance(text, str) or not text.strip():
            continue
        if _get(message, "role") == "user":
            # An earlier question longer than the limit could not have been asked: cut it as the
            # query is cut, so a turn costs at most the limit, however long the body.
            query = resolver.add(_keep_end(text.strip(), max_chars), assistant)
            assistant = ""
        else:
            assistant = text
    return query


def _keep_end(text: str, max_chars: int | None) -> str:
    # The latest words of a question matter most, so an over-long one keeps its end.
    if max_chars is None or len(text) <= max_chars:
        return text
    return text[-max_chars:].lstrip()
