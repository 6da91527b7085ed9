"""DOCX parser, on python-docx: heading styles give sections, tables stay tables.

Paragraphs are read in body order with the tables between them. A "Title" paragraph (else the
document's core title property) names the document; "Heading N" styles give levels; list
paragraphs (a list style or numbering) become bullet lines; "Source Code" paragraphs are code; a table's first row is its header
and every other row a "column header, row header: cell" passage.
"""

from __future__ import annotations

import io
import re
from typing import Any

from rag.errors import BadDocument
from rag.ingest.blocks import Block, clean_line, render, table_rows
from rag.ingest.structure import title_from_filename
from rag.ingest.types import Document

_HEADING_RE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


def parse_docx(data: bytes, source: str) -> list[Document]:
    """The document of one .docx file; raises BadDocument when it cannot be read."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # a bad zip, a missing part, XML errors: all "not a DOCX"
        raise BadDocument(f"cannot read this Word file ({type(exc).__name__}: {exc})") from exc
    title = (document.core_properties.title or "").strip()
    blocks: list[Block] = []
    items: list[str] = []

    def flush() -> None:
        if items:
            blocks.append(Block("text", "\n".join(items)))
            items.clear()

    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "tbl":
            flush()
            rows = [[cell.text for cell in row.cells] for row in Table(element, document).rows]
            if rows:
                header, *body = _dedupe_merged(rows)
                blocks.extend(Block("row", t, 0, p) for _, p, t in table_rows(header, body))
            continue
        if tag != "p":
            continue
        paragraph = Paragraph(element, document)
        text = clean_line(paragraph.text).replace("\n", " ")
        if not text:
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        heading = _HEADING_RE.match(style)
        if style.lower() == "title":
            flush()
            title = title or text
            blocks.append(Block("heading", text, 1))
        elif heading:
            flush()
            blocks.append(Block("heading", text, int(heading.group(1))))
        elif style.lower() in ("source code", "code", "html preformatted", "plain text"):
            flush()
            code = paragraph.text.rstrip("\n")
            if blocks and blocks[-1].kind == "code":
                blocks[-1] = Block("code", f"{blocks[-1].text}\n{code}")
            else:
                blocks.append(Block("code", code))
        elif _is_list(paragraph, style):
            items.append(f"{'  ' * _list_depth(paragraph)}• {text}")
        else:
            flush()
            blocks.append(Block("text", text))
    flush()
    if not title:
        first = next((b for b in blocks if b.kind == "heading" and b.level == 1), None)
        title = first.text if first else title_from_filename(source)
    meta: dict[str, Any] = {}
    keywords = (document.core_properties.keywords or "").strip()
    if keywords:
        meta["keywords"] = keywords
    doc = render(blocks, source, title, meta)
    if doc is None:
        raise BadDocument("the Word file has no text")
    return [doc]


def _is_list(paragraph: Any, style: str) -> bool:
    ppr = paragraph._p.pPr
    return "list" in style.lower() or (ppr is not None and ppr.numPr is not None)


def _list_depth(paragraph: Any) -> int:
    ppr = paragraph._p.pPr
    if ppr is None or ppr.numPr is None or ppr.numPr.ilvl is None:
        return 0
    return int(ppr.numPr.ilvl.val or 0)


def _dedupe_merged(rows: list[list[str]]) -> list[list[str]]:
    """python-docx repeats a merged cell's text in every cell it spans: keep it once."""
    out = []
    for row in rows:
        cells: list[str] = []
        for i, cell in enumerate(row):
            cells.append("" if i and cell == row[i - 1] and cell else cell)
        out.append(cells)
    return out
