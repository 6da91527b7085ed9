"""HTML parser, on selectolax (the Lexbor engine): main content only, as blocks.

The page's ``<main>`` (else ``<article>``, else ``<body>``) is read; navigation, headers,
footers, asides, scripts, styles and forms are dropped. Headings give sections, lists stay
lists, ``<pre>`` stays code, an image shows as its alt text and a table row becomes "column
header, row header: cell" lines. The first ``<h1>`` (else the ``<title>``) names the page.
"""

from __future__ import annotations

import re
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from rag.ingest.blocks import Block, clean_line, render, table_rows
from rag.ingest.structure import title_from_filename
from rag.ingest.types import Document

DROP = ("script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside",
        "form", "iframe", "button", "dialog")  # fmt: skip
_HEADING_RE = re.compile(r"h[1-6]")
_CONTAINERS = {"div", "section", "article", "main", "body", "blockquote", "figure", "details",
               "summary", "center", "dl", "dd", "dt", "figcaption", "span"}  # fmt: skip
_SPACE_RE = re.compile(r"\s+")


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
    for selector in DROP:
        for node in tree.css(selector):
            node.decompose()
    for img in tree.css("img"):
        img.replace_with(img.attributes.get("alt") or "")
    root = tree.css_first("main") or tree.css_first("article") or tree.body or tree.root
    blocks = list(_blocks(root)) if root is not None else []
    # The first <h1> names the guide; <title> often carries the site's name as well.
    first = next((b for b in blocks if b.kind == "heading" and b.level == 1), None)
    title = first.text if first else _text(page_title) if page_title is not None else ""
    title = title or title_from_filename(source)
    doc = render(blocks, source, title, meta)
    return [doc] if doc else []


def _text(node: LexborNode) -> str:
    return _SPACE_RE.sub(" ", node.text(deep=True, separator="")).strip()


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
            header, rows = _table(child)
            out.extend(Block("row", text, 0, path) for _, path, text in table_rows(header, rows))
        elif tag in _CONTAINERS or (not tag.startswith("-") and _has_blocks(child)):
            flush()
            out.extend(_blocks(child))
        elif tag == "br":
            loose.append(" ")
        elif not tag.startswith("-"):  # an inline element: its text runs on in the paragraph
            loose.append(child.text(deep=True, separator=""))
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
    number = 1
    for item in node.iter():
        if item.tag != "li":
            continue
        nested = [c for c in item.iter() if c.tag in ("ul", "ol")]
        own = "".join(
            (c.text_content or "") if c.tag == "-text" else c.text(deep=True, separator="")
            for c in item.iter(include_text=True)
            if c.tag not in ("ul", "ol")
        )
        marker = f"{number}." if node.tag == "ol" else "•"
        number += 1
        text = clean_line(_SPACE_RE.sub(" ", own))
        if text:
            lines.append(f"{'  ' * depth}{marker} {text}")
        for sub in nested:
            lines.extend(_list_lines(sub, depth + 1))
    return lines


def _table(node: LexborNode) -> tuple[list[str], list[list[str]]]:
    header: list[str] = []
    rows: list[list[str]] = []
    for tr in node.css("tr"):
        cells = [_text(c) for c in tr.iter() if c.tag in ("th", "td")]
        if not header and all(c.tag == "th" for c in tr.iter() if c.tag in ("th", "td")):
            header = cells
        else:
            rows.append(cells)
    if not header and rows:
        header, rows = rows[0], rows[1:]
    return header, rows
