"""HTML parser, on selectolax (the Lexbor engine): main content only, as blocks.

The page's ``<main>`` (else ``<article>``, else ``<body>``) is read; navigation, headers, footers,
asides (the page's chrome), scripts, styles, forms and the like are dropped. Headings give
sections, lists stay lists, ``<pre>`` stays code, an image shows
as its alt text, a line break as a space, and a table becomes labelled lines
(rag.ingest.tables). The first ``<h1>`` (else the ``<title>``) names the page.
"""

from __future__ import annotations

import re
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from rag.ingest.blocks import Block, clean_line, render
from rag.ingest.structure import title_from_filename
from rag.ingest.tables import table_blocks
from rag.ingest.types import Document

DROP = ("script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside",
        "form", "iframe", "button", "dialog", "head", "title", "meta", "link")  # fmt: skip
_HEADING_RE = re.compile(r"h[1-6]")
_CONTAINERS = {"div", "section", "article", "main", "body", "blockquote", "figure", "details",
               "summary", "center", "dl", "dd", "dt", "figcaption"}  # fmt: skip
# Elements that start a new line of text when they sit inside a paragraph-like element.
_BREAKS = {"p", "div", "li", "ul", "ol", "tr", "table", "blockquote", "section", "dd", "dt",
           "figcaption", "pre", "h1", "h2", "h3", "h4", "h5", "h6"}  # fmt: skip
_SPACE_RE = re.compile(r"[ \t\r\f\v\n]+")


def parse_html(text: str, source: str) -> list[Document]:
    """The document of one HTML page (none when its main content has no text)."""
    tree = LexborHTMLParser(text)
    meta: dict[str, Any] = {}
    for name in ("description", "keywords"):
        node = tree.css_first(f'meta[name="{name}"]')
        content = (node.attributes.get("content") or "").strip() if node else ""
        if content:
            meta[name] = content
    page_title = tree.css_first("title")
    title_text = _text(page_title) if page_title is not None else ""
    _drop(tree)
    root = tree.css_first("main") or tree.css_first("article") or tree.body or tree.root
    blocks = _blocks(root) if root is not None else []
    # The first <h1> names the guide; <title> often carries the site's name as well.
    first = next((b for b in blocks if b.kind == "heading" and b.level == 1), None)
    title = first.text if first else title_text
    title = title or title_from_filename(source)
    doc = render(blocks, source, title, meta)
    return [doc] if doc else []


def fragment_blocks(html: str) -> list[Block]:
    """The blocks of a piece of HTML (an HTML block written in markdown, say)."""
    tree = LexborHTMLParser(html)
    _drop(tree)
    return _blocks(tree.body) if tree.body is not None else []


def _drop(tree: LexborHTMLParser) -> None:
    for selector in DROP:
        for node in tree.css(selector):
            node.decompose()
    for img in tree.css("img"):
        img.replace_with(img.attributes.get("alt") or "")


def _text(node: LexborNode) -> str:
    """The text of an element on one line: line breaks and inner blocks become spaces."""
    return _SPACE_RE.sub(" ", " ".join(_lines(node))).strip()


def _lines(node: LexborNode) -> list[str]:
    """The text of an element, one line per paragraph, list item or other inner block."""
    out = [_SPACE_RE.sub(" ", line).strip() for line in _raw_lines(node)]
    return [line for line in out if line]


def _raw_lines(node: LexborNode) -> list[str]:
    """Like ``_lines``, with each line's spaces as written (so inline elements run on)."""
    lines: list[str] = [""]
    for child in node.iter(include_text=True):
        tag = child.tag or ""
        if tag == "-text":
            lines[-1] += child.text_content or ""
        elif tag == "br":
            lines[-1] += " "
        elif tag in _BREAKS:
            lines.extend([*_raw_lines(child), ""])
        elif not tag.startswith("-"):
            first, *rest = _raw_lines(child)
            lines[-1] += first
            lines.extend(rest)
    return lines


def _inline(node: LexborNode) -> str:
    """An inline element's text, on one line, its spaces as written."""
    return " ".join(_raw_lines(node))


def _blocks(node: LexborNode) -> list[Block]:
    out: list[Block] = []
    loose: list[str] = []

    def flush() -> None:
        text = _SPACE_RE.sub(" ", "".join(loose)).strip()
        if text:
            out.append(Block("text", text))
        loose.clear()

    child = node.child
    while child is not None:
        tag = child.tag or ""
        if tag == "-text":
            loose.append(child.text_content or "")
        elif _HEADING_RE.fullmatch(tag):
            flush()
            out.append(Block("heading", _text(child), int(tag[1])))
        elif tag == "p":
            flush()
            out.append(Block("text", _text(child)))
        elif tag in ("ul", "ol"):
            flush()
            out.append(Block("text", "\n".join(_list_lines(child, 0))))
        elif tag == "pre":
            flush()
            out.append(Block("code", child.text(deep=True, separator="").strip("\n")))
        elif tag == "table":
            flush()
            rows, header_rows = _table(child)
            out.extend(table_blocks(rows, header_rows))
        elif tag in _CONTAINERS or (not tag.startswith("-") and _has_blocks(child)):
            flush()
            out.extend(_blocks(child))
        elif tag == "br":
            loose.append(" ")
        elif not tag.startswith("-"):  # an inline element: its text runs on in the paragraph
            loose.append(_inline(child))
        child = child.next
    flush()
    return out


def _has_blocks(node: LexborNode) -> bool:
    """Whether an element holds block-level children (so it is walked, not read as text)."""
    return any(
        (c.tag or "") in ("p", "ul", "ol", "pre", "table", "div")
        or _HEADING_RE.fullmatch(c.tag or "")
        for c in node.iter()
    )


def _list_lines(node: LexborNode, depth: int) -> list[str]:
    """A (nested) list as bullet or numbered lines, indented two spaces a level."""
    lines: list[str] = []
    start = node.attributes.get("start") or "1"
    number = int(start) if start.strip().lstrip("-").isdigit() else 1
    for item in node.iter():
        if item.tag != "li":
            continue
        marker = f"{number}." if node.tag == "ol" else "•"
        number += 1
        own: list[str] = [""]
        nested: list[str] = []
        for c in item.iter(include_text=True):
            tag = c.tag or ""
            if tag in ("ul", "ol"):
                nested.extend(_list_lines(c, depth + 1))
            elif tag == "-text":
                own[-1] += c.text_content or ""
            elif tag == "br":
                own[-1] += " "
            elif tag in _BREAKS:
                own.extend([*_lines(c), ""])
            elif not tag.startswith("-"):
                own[-1] += _inline(c)
        paragraphs = [p for p in (clean_line(_SPACE_RE.sub(" ", p)) for p in own) if p]
        for n, text in enumerate(paragraphs):  # a second paragraph of an item goes under it
            indent = "  " * depth if n == 0 else "  " * (depth + 1)
            lines.append(f"{indent}{marker} {text}" if n == 0 else f"{indent}{text}")
        lines.extend(nested)
    return lines


def _table(node: LexborNode) -> tuple[list[list[str | None]], int | None]:
    """The table's grid of cells (paragraphs and items one line each; a cell spanning rows
    repeated in each, one spanning columns None in the columns it covers) and how many rows
    are its header: those of its ``<thead>``, else the leading rows of ``<th>`` cells (none
    when ``<th>`` only heads rows); None (guess) when the table has no ``<th>`` at all."""
    grid: list[list[str | None]] = []
    kinds: list[set[str]] = []
    below: dict[int, tuple[int, str]] = {}  # column -> (rows still covered, text)
    for tr in node.css("tr"):
        row: list[str | None] = []
        cells = [c for c in tr.iter() if c.tag in ("th", "td")]
        kinds.append({c.tag or "" for c in cells})
        queue = list(cells)
        while queue or any(j >= len(row) for j in below):
            j = len(row)
            if j in below:
                left, text = below[j]
                row.append(text)
                below[j] = (left - 1, text)
                if left <= 1:
                    del below[j]
                continue
            if not queue:
                break
            cell = queue.pop(0)
            text = "\n".join(_lines(cell))
            cols, rows = _span(cell, "colspan"), _span(cell, "rowspan")
            for k in range(cols):
                row.append(text if k == 0 else None)
                if rows > 1:
                    below[j + k] = (rows - 1, text if k == 0 else None)
        grid.append(row)
    if not any("th" in k for k in kinds):
        return grid, None
    thead = node.css_first("thead")
    if thead is not None:
        return grid, len(thead.css("tr"))
    header = 0
    while header < len(grid) and kinds[header] == {"th"}:
        header += 1
    return grid, header


def _span(cell: LexborNode, name: str) -> int:
    value = (cell.attributes.get(name) or "1").strip()
    return min(int(value), 100) if value.isdigit() and int(value) > 0 else 1
