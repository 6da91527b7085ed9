"""JSX in MDX: the text a component shows, in place of its tags.

A component's children are markdown or HTML and are read as such; what the component itself
shows comes from its string props (``<TabItem label="Individual contributors">``,
``<Term title="People Team" />``). Props that configure rather than show (``className``,
``value="ic"``, ``href``) are left out. A self-closing component with no text inside a
sentence ("speak to your manager or the <PeopleOps /> to discuss") leaves its name, in words,
rather than a hole. No Python library parses MDX, so start tags are matched by one regular
expression over JSX's attribute syntax (strings, and ``{...}`` expressions one level deep).
"""

from __future__ import annotations

import html
import re

_VALUE = r"(?:\"[^\"]*\"|'[^']*'|\{(?:[^{}]|\{[^{}]*\})*\})"
TAG_RE = re.compile(
    rf"<(?P<close>/?)(?P<name>[A-Za-z][\w.:-]*)(?P<props>(?:\s+[^\s=<>/]+(?:\s*=\s*{_VALUE})?)*)"
    r"\s*(?P<self>/?)>",
    re.S,
)
_PROP_RE = re.compile(rf"([^\s=<>/]+)(?:\s*=\s*({_VALUE}))?", re.S)
_STRING_RE = re.compile(r"""^\{?\s*(?:"([^"]*)"|'([^']*)'|`([^`$]*)`)\s*\}?$""", re.S)
# Props that configure a component or point somewhere; whatever their value, never shown.
NOT_SHOWN = frozenset(
    "classname class id key style href src to value type slug path url link icon color variant "
    "size width height target rel lang language groupid querystring level role theme".split()
)


def is_component(name: str) -> bool:
    """JSX components are capitalised; lowercase tags are HTML."""
    return name[:1].isupper()


def shown_props(props: str) -> list[str]:
    """The string props of a start tag that read as words shown on the page."""
    out = []
    for name, value in _PROP_RE.findall(props):
        if not value or name.lower() in NOT_SHOWN:
            continue
        m = _STRING_RE.match(value)
        text = html.unescape(next((g for g in m.groups() if g is not None), "")) if m else ""
        text = " ".join(text.split())
        if _reads_as_words(text):
            out.append(text)
    return out


def _reads_as_words(text: str) -> bool:
    if not re.search(r"[^\W\d_]", text) or re.match(r"(?:[a-z]+:/|/|\.{1,2}/|#)", text):
        return False
    return " " in text or text[0].isupper()


def words_of_name(name: str) -> str:
    """A component's name as words: "PeopleOps" gives "People Ops", "Docs.Link" gives "Link"."""
    last = name.rsplit(".", 1)[-1]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", last)


def jsx_to_html(source: str) -> str:
    """An HTML block that may hold JSX, with each component's tags replaced by the paragraph
    of text it shows (nothing when it shows none)."""

    def swap(m: re.Match[str]) -> str:
        if not is_component(m.group("name")) or m.group("close"):
            return m.group() if not is_component(m.group("name")) else ""
        shown = shown_props(m.group("props"))
        return f"<p>{html.escape(' '.join(shown))}</p>" if shown else ""

    return TAG_RE.sub(swap, source)


def inline_tag_text(tag: str, in_sentence: bool = False) -> str:
    """What one inline tag shows: a line break is a space, an image its alt text, a component
    its text props (or, self-closing with none and ``in_sentence``, its name); other HTML tags
    nothing, since the text between them comes as text."""
    m = TAG_RE.fullmatch(tag.strip())
    if m is None or m.group("close"):
        return ""
    name = m.group("name")
    if name.lower() == "br":
        return " "
    if name.lower() == "img":
        alt = re.search(r"""\balt\s*=\s*(?:"([^"]*)"|'([^']*)')""", m.group("props"))
        return html.unescape(alt.group(1) or alt.group(2) or "") if alt else ""
    if not is_component(name):
        return ""
    shown = shown_props(m.group("props"))
    if shown:
        return " ".join(shown)
    return words_of_name(name) if m.group("self") and in_sentence else ""
