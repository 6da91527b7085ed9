"""Markdown and MDX parser, on markdown-it-py (CommonMark with tables).

- YAML (``---``) or TOML (``+++``) front matter becomes metadata: title, description, tags,
  keywords. Its title names the document; the front matter is never part of a passage.
- Headings inside code fences are code, not headings; code blocks stay code.
- MDX ``import``/``export`` lines, ``{/* comments */}`` and HTML comments are dropped. The text
  of HTML blocks is read as HTML (rag.ingest.html), and JSX components show their text props and
  children (rag.ingest.jsx): no tag reaches a passage, and no word the page shows is lost.
- An admonition (``:::note Title`` ... ``:::``) keeps its title and its text.
- A link shows as its text, an image as its alt text; emphasis markers go.
- Heading anchors (``## Pay {#pay}``) are stripped from section names.
- A table row becomes "column header, row header: cell" lines (rag.ingest.tables).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from rag.ingest.blocks import Block, clean_line, render
from rag.ingest.html import fragment_blocks
from rag.ingest.jsx import inline_tag_text, jsx_to_html
from rag.ingest.structure import title_from_filename
from rag.ingest.tables import table_blocks
from rag.ingest.types import Document

_FRONT_MATTER_RE = re.compile(r"\A(?:\ufeff)?(---|\+\+\+)[ \t]*\n(.*?\n)?\1[ \t]*(?:\n|\Z)", re.S)
_FENCE_RE = re.compile(r"^[ ]{0,3}(`{3,}|~{3,})")
# MDX statements; Docusaurus reads every .md file as MDX, so they are dropped from both.
_MDX_LINE_RE = re.compile(
    r"^(?:import\s+(?:[\w*{}\s,]+\s+from\s+)?['\"]|export\s+(?:default|const|let|var|function|\{))"
)
# ":::tip Title" or ":::tip[Title]" (Docusaurus): the marker and brackets, around the title.
_ADMONITION_RE = re.compile(r"^([ \t]*:::+[\w-]*\[?)(.*?)(\]?[ \t]*)$")
_MDX_COMMENT_RE = re.compile(r"\{/\*.*?\*/\}", re.S)
_ANCHOR_RE = re.compile(r"\s*\{#[^}]*\}\s*$")
_META_KEYS = ("title", "description", "tags", "keywords", "sidebar_label", "slug")

_md = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def parse_markdown(text: str, source: str) -> list[Document]:
    """The document of one markdown or MDX source (none when it has no body text)."""
    meta, body = split_front_matter(text)
    blocks = markdown_blocks(body)
    title = _title(meta, blocks) or title_from_filename(source)
    doc = render(blocks, source, title, meta)
    return [doc] if doc else []


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """(metadata, text with the front matter blanked out so offsets and lines still hold)."""
    m = _FRONT_MATTER_RE.match(text)
    if not m:
        return {}, text
    raw = m.group(2) or ""
    try:
        data = tomllib.loads(raw) if m.group(1) == "+++" else yaml.safe_load(raw)
    except (yaml.YAMLError, tomllib.TOMLDecodeError):
        data = None  # not front matter after all: still never a passage
    meta: dict[str, Any] = {}
    if isinstance(data, dict):
        for key in _META_KEYS:
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                meta[key] = value.strip()
            elif isinstance(value, list):
                meta[key] = [str(v).strip() for v in value if str(v).strip()]
        if isinstance(meta.get("tags"), str):
            meta["tags"] = [t.strip() for t in meta["tags"].split(",") if t.strip()]
    return meta, _blank(text, 0, m.end()) + text[m.end() :]


def markdown_blocks(text: str) -> list[Block]:
    """The blocks of a markdown text, with their character spans in ``text``."""
    text, titles = _drop_mdx_syntax(text)
    line_starts = [0]
    for line in text.split("\n"):
        line_starts.append(line_starts[-1] + len(line) + 1)

    def span(token: Token) -> tuple[int | None, int | None]:
        if token.map is None:
            return None, None
        first, last = token.map
        return line_starts[first], min(len(text), line_starts[last] - 1)

    tokens = _md.parse(text)
    blocks: list[Block] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        start, end = span(tok)
        if tok.type == "heading_open":
            title = _ANCHOR_RE.sub("", inline_text(tokens[i + 1]))
            blocks.append(Block("heading", title, int(tok.tag[1]), (), start, end))
            i += 3
        elif tok.type == "paragraph_open":
            inline = tokens[i + 1]
            if tok.map is not None and tok.map[0] in titles:
                # An admonition's title heads its box: a line of its own, not the first words
                # of the paragraph under it.
                children = inline.children or []
                cut = next((n for n, c in enumerate(children) if c.type.endswith("break")), None)
                if cut is not None:
                    title = inline.copy(children=children[:cut])
                    inline = inline.copy(children=children[cut + 1 :])
                    blocks.append(Block("text", inline_text(title), 0, (), start, end))
            blocks.append(Block("text", inline_text(inline), 0, (), start, end))
            i += 3
        elif tok.type in ("fence", "code_block"):
            blocks.append(Block("code", tok.content.rstrip("\n"), 0, (), start, end))
            i += 1
        elif tok.type in ("bullet_list_open", "ordered_list_open"):
            close = _closing(tokens, i)
            lines = _list_lines(tokens[i : close + 1])
            blocks.append(Block("text", "\n".join(lines), 0, (), start, end))
            i = close + 1
        elif tok.type == "table_open":
            close = _closing(tokens, i)
            header, rows, maps = _table(tokens[i : close + 1])
            spans = [(start, end)] + [span(m) if m.map else (start, end) for m in maps]
            blocks += table_blocks([header, *rows], 1, row_spans=spans, span=(start, end))
            i = close + 1
        elif tok.type == "html_block":
            # HTML (and JSX) written in markdown: its text shows on the page, so it is read.
            blocks += [replace(b, source_start=start, source_end=end)
                       for b in fragment_blocks(jsx_to_html(tok.content))]  # fmt: skip
            i += 1
        else:
            i += 1  # hr, blockquote markers: their own text comes as paragraphs
    return blocks


def inline_text(token: Token) -> str:
    """Plain text of an inline token: link text, image alt text, code content, the text of
    inline HTML and JSX (never their tags)."""
    out: list[str] = []
    children = token.children or []
    for n, child in enumerate(children):
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type == "image":
            out.append(child.content or "".join(c.content for c in child.children or []))
        elif child.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif child.type == "html_inline":
            after = any(c.type == "text" and c.content.strip() for c in children[n + 1 :])
            out.append(inline_tag_text(child.content, "".join(out).strip() != "" and after))
    return clean_line("".join(out)).replace("\n", " ")


def _title(meta: dict[str, Any], blocks: Sequence[Block]) -> str:
    if isinstance(meta.get("title"), str):
        return meta["title"]
    first = next((b for b in blocks if b.kind == "heading"), None)
    return first.text if first is not None and first.level == 1 else ""


def _blank(text: str, start: int, end: int) -> str:
    """``text[start:end]`` with everything but newlines turned into spaces."""
    return re.sub(r"[^\n]", " ", text[start:end])


def _drop_mdx_syntax(text: str) -> tuple[str, set[int]]:
    """Blank MDX imports/exports, admonition markers and MDX comments, outside code fences;
    and the numbers of the lines left holding an admonition's title."""
    lines = text.split("\n")
    titles: set[int] = set()
    fence: str | None = None
    for n, line in enumerate(lines):
        m = _FENCE_RE.match(line)
        if m:
            marker = m.group(1)
            if fence is None:
                fence = marker[0] * 3
            elif line.strip().startswith(fence):
                fence = None
            continue
        if fence is not None:
            continue
        if _MDX_LINE_RE.match(line):
            lines[n] = " " * len(line)
        elif m := _ADMONITION_RE.match(line):
            # ":::tip Expert tip": the marker goes, the title the box shows stays.
            lines[n] = m.group(2) + " " * (len(m.group(1)) + len(m.group(3)))
            if m.group(2).strip():
                titles.add(n)
    out = "\n".join(lines)
    return _MDX_COMMENT_RE.sub(lambda m: _blank(m.group(), 0, len(m.group())), out), titles


def _closing(tokens: Sequence[Token], i: int) -> int:
    """Index of the token that closes ``tokens[i]``."""
    depth = 0
    for j in range(i, len(tokens)):
        depth += tokens[j].nesting
        if depth == 0:
            return j
    return len(tokens) - 1


def _list_lines(tokens: Sequence[Token]) -> list[str]:
    """A (nested) list as bullet or numbered lines, indented two spaces a level."""
    lines: list[str] = []
    depth = -1
    numbers: list[int | None] = []
    item_open = False
    for tok in tokens:
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
            start = tok.attrGet("start")
            numbers.append(int(start) if start else 1 if tok.type == "ordered_list_open" else None)
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
            numbers.pop()
        elif tok.type == "list_item_open":
            item_open = True
        elif tok.type == "inline" and tok.map is not None:
            text = inline_text(tok)
            if not text:
                continue
            if item_open:
                number = numbers[-1]
                marker = "•" if number is None else f"{number}."
                if number is not None:
                    numbers[-1] = number + 1
                lines.append(f"{'  ' * depth}{marker} {text}")
                item_open = False
            else:  # a second paragraph of the same item
                lines.append(f"{'  ' * (depth + 1)}{text}")
        elif tok.type in ("fence", "code_block"):
            lines.extend(f"{'  ' * (depth + 1)}{line}" for line in tok.content.splitlines())
    return lines


def _table(tokens: Sequence[Token]) -> tuple[list[str], list[list[str]], list[Token]]:
    """Header cells, body rows' cells, and each body row's opening token (for its lines)."""
    header: list[str] = []
    rows: list[list[str]] = []
    opens: list[Token] = []
    in_head = False
    for tok in tokens:
        if tok.type == "thead_open":
            in_head = True
        elif tok.type == "thead_close":
            in_head = False
        elif tok.type == "tr_open" and not in_head:
            rows.append([])
            opens.append(tok)
        elif tok.type == "inline":
            (header if in_head else rows[-1]).append(inline_text(tok))
    return header, rows, opens
