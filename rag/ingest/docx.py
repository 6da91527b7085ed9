"""DOCX parser, on python-docx: heading styles give sections, tables stay tables.

Paragraphs are read in body order with the tables between them, including those inside
content controls; a text box's paragraphs follow the paragraph that anchors it. A paragraph's
text is every run of it as Word shows it: runs inside hyperlinks, fields, content controls and
tracked insertions included, tracked deletions left out. A "Title" paragraph (else the
document's core title property) names the document; "Heading N" styles give levels; list
paragraphs become lines marked with their bullet or their number, counted as Word counts them
from the document's numbering definitions; "Source Code" paragraphs are code; a table's header
rows (Word's repeated header rows, else a guess) label its cells (rag.ingest.tables).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

from rag.errors import BadDocument
from rag.ingest.blocks import Block, clean_line, render
from rag.ingest.structure import title_from_filename
from rag.ingest.tables import table_blocks
from rag.ingest.types import Document

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_HEADING_RE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)
# Run content as Word shows it; a line break inside a paragraph reads as a space.
_RUN_TEXT = {f"{W}t": None, f"{W}tab": " ", f"{W}br": " ", f"{W}cr": " ",
             f"{W}noBreakHyphen": "-"}  # fmt: skip
# Text under these is not shown: deleted or moved-away revisions, the fallback copy of a
# drawing, and text boxes (read as their own paragraphs).
_HIDDEN = {f"{W}del", f"{W}moveFrom", f"{MC}Fallback", f"{W}txbxContent"}


def parse_docx(data: bytes, source: str) -> list[Document]:
    """The document of one .docx file; raises BadDocument when it cannot be read."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # a bad zip, a missing part, XML errors: all "not a DOCX"
        raise BadDocument(f"cannot read this Word file ({type(exc).__name__}: {exc})") from exc
    title = _core(document, "title")
    numbering = _Numbering(document)
    blocks: list[Block] = []
    items: list[str] = []

    def flush() -> None:
        if items:
            blocks.append(Block("text", "\n".join(items)))
            items.clear()

    def read(element: Any) -> None:
        nonlocal title
        if element.tag == f"{W}tbl":
            flush()
            table = Table(element, document)
            rows = [_row_cells(row) for row in table.rows]
            if rows:
                blocks.extend(table_blocks(rows, _header_rows(element)))
            return
        paragraph = Paragraph(element, document)
        text = clean_line(paragraph_text(element))
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        heading = _HEADING_RE.match(style)
        if not text:
            pass
        elif style.lower() == "title":
            flush()
            title = title or text
            blocks.append(Block("heading", text, 1))
        elif heading:
            flush()
            blocks.append(Block("heading", text, int(heading.group(1))))
        elif style.lower() in ("source code", "code", "html preformatted", "plain text"):
            flush()
            code = paragraph_text(element).rstrip("\n")
            if blocks and blocks[-1].kind == "code":
                blocks[-1] = Block("code", f"{blocks[-1].text}\n{code}")
            else:
                blocks.append(Block("code", code))
        elif (level := _list_level(paragraph, style)) is not None:
            items.append(f"{'  ' * level}{numbering.marker(paragraph, level)} {text}")
        else:
            flush()
            blocks.append(Block("text", text))
        for box in _text_boxes(element):
            for inner in body_items(box):
                read(inner)

    for element in body_items(document.element.body):
        read(element)
    flush()
    if not title:
        first = next((b for b in blocks if b.kind == "heading" and b.level == 1), None)
        title = first.text if first else title_from_filename(source)
    meta: dict[str, Any] = {}
    keywords = _core(document, "keywords")
    if keywords:
        meta["keywords"] = keywords
    doc = render(blocks, source, title, meta)
    if doc is None:
        raise BadDocument("the Word file has no text")
    return [doc]


def _core(document: Any, name: str) -> str:
    """A core property; "" when the file has none (python-docx then makes up defaults, such as
    the title "Word Document", for a file whose core properties it cannot find)."""
    from docx.opc.constants import RELATIONSHIP_TYPE as RT

    try:
        document.part.package.part_related_by(RT.CORE_PROPERTIES)
    except KeyError:
        return ""
    return (getattr(document.core_properties, name) or "").strip()


def body_items(parent: Any) -> Iterator[Any]:
    """The paragraphs and tables of a body (or cell, or text box) in order, looking inside
    content controls and custom XML."""
    for element in parent.iterchildren():
        if element.tag in (f"{W}p", f"{W}tbl"):
            yield element
        elif element.tag == f"{W}sdt":
            content = element.find(f"{W}sdtContent")
            if content is not None:
                yield from body_items(content)
        elif element.tag == f"{W}customXml":
            yield from body_items(element)


def paragraph_text(p: Any) -> str:
    """The text a paragraph shows, from every run inside it."""
    out = []
    for el in p.iter(*_RUN_TEXT):
        if _hidden(el, p):
            continue
        shown = _RUN_TEXT[el.tag]
        out.append(el.text or "" if shown is None else shown)
    return "".join(out)


def cell_text(tc: Any) -> str:
    """A table cell's text: its paragraphs (those of tables nested in it too), one a line."""
    lines = [clean_line(paragraph_text(p)) for p in tc.iter(f"{W}p") if not _hidden(p, tc)]
    return "\n".join(line for line in lines if line)


def _hidden(el: Any, top: Any) -> bool:
    node = el.getparent()
    while node is not None and node is not top:
        if node.tag in _HIDDEN:
            return True
        node = node.getparent()
    return False


def _text_boxes(p: Any) -> Iterator[Any]:
    for box in p.iter(f"{W}txbxContent"):
        if not any(a.tag == f"{MC}Fallback" for a in box.iterancestors()):
            yield box


def _header_rows(tbl: Any) -> int | None:
    """How many leading rows Word repeats as the header; None when none is marked."""
    n = 0
    for tr in tbl.iterchildren(f"{W}tr"):
        pr = tr.find(f"{W}trPr")
        mark = pr.find(f"{W}tblHeader") if pr is not None else None
        if mark is None or mark.get(f"{W}val") in ("0", "false", "off"):
            break
        n += 1
    return n or None


def _list_level(paragraph: Any, style: str) -> int | None:
    """The list level of a list paragraph (a list style or numbering), else None."""
    num = _num_pr(paragraph)
    if num is not None:
        return num[1]
    return 0 if "list" in style.lower() else None


def _num_pr(paragraph: Any) -> tuple[str, int] | None:
    """(numbering id, level) of a paragraph, from its own properties or its style's."""
    for ppr in (paragraph._p.pPr, _style_ppr(paragraph)):
        num = ppr.find(f"{W}numPr") if ppr is not None else None
        if num is None:
            continue
        num_id = num.find(f"{W}numId")
        ilvl = num.find(f"{W}ilvl")
        value = num_id.get(f"{W}val") if num_id is not None else None
        if value in (None, "0"):
            return None  # numbering explicitly removed
        level = int(ilvl.get(f"{W}val") or 0) if ilvl is not None else 0
        return value, level
    return None


def _style_ppr(paragraph: Any) -> Any:
    style = paragraph.style
    return style.element.pPr if style is not None else None


class _Numbering:
    """List markers as Word draws them: a bullet, or the item's number in its list."""

    def __init__(self, document: Any) -> None:
        self.levels: dict[str, dict[int, tuple[str, int]]] = {}
        self.counts: dict[str, dict[int, int]] = {}
        try:
            root = document.part.numbering_part.element
        except (KeyError, NotImplementedError, AttributeError):
            return
        abstract = {
            a.get(f"{W}abstractNumId"): {
                int(lvl.get(f"{W}ilvl") or 0): _level_format(lvl) for lvl in a.iter(f"{W}lvl")
            }
            for a in root.iterchildren(f"{W}abstractNum")
        }
        for num in root.iterchildren(f"{W}num"):
            ref = num.find(f"{W}abstractNumId")
            levels = dict(abstract.get(ref.get(f"{W}val") if ref is not None else None, {}))
            for override in num.iterchildren(f"{W}lvlOverride"):
                ilvl = int(override.get(f"{W}ilvl") or 0)
                start = override.find(f"{W}startOverride")
                if start is not None and ilvl in levels:
                    levels[ilvl] = (levels[ilvl][0], int(start.get(f"{W}val") or 1))
            self.levels[num.get(f"{W}numId")] = levels

    def marker(self, paragraph: Any, level: int) -> str:
        """ "•" for a bullet item, "3." for the third item of a numbered list."""
        num = _num_pr(paragraph)
        if num is None:
            return "•"
        fmt, start = self.levels.get(num[0], {}).get(level, ("bullet", 1))
        if fmt in ("bullet", "none", ""):
            return "•"
        counts = self.counts.setdefault(num[0], {})
        counts[level] = counts.get(level, start - 1) + 1
        for deeper in [k for k in counts if k > level]:
            del counts[deeper]
        return f"{_number(counts[level], fmt)}."


def _level_format(lvl: Any) -> tuple[str, int]:
    fmt = lvl.find(f"{W}numFmt")
    start = lvl.find(f"{W}start")
    return (
        fmt.get(f"{W}val") if fmt is not None else "decimal",
        int(start.get(f"{W}val") or 1) if start is not None else 1,
    )


def _number(n: int, fmt: str) -> str:
    if fmt in ("lowerLetter", "upperLetter"):
        letters = ""
        while n > 0:
            n, r = divmod(n - 1, 26)
            letters = chr(ord("a") + r) + letters
        return letters.upper() if fmt == "upperLetter" else letters
    if fmt in ("lowerRoman", "upperRoman"):
        roman = _roman(n)
        return roman if fmt == "upperRoman" else roman.lower()
    return str(n)


def _roman(n: int) -> str:
    out = ""
    for value, numeral in ((1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"),
                           (90, "XC"), (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"),
                           (4, "IV"), (1, "I")):  # fmt: skip
        while n >= value:
            out += numeral
            n -= value
    return out


def _row_cells(row: Any) -> list[str | None]:
    """A row's cell texts; python-docx repeats a cell spanning columns in each column it
    covers, which is None here after the first (a cell spanning rows keeps its text in each)."""
    out: list[str | None] = []
    previous = None
    for cell in row.cells:
        out.append(None if cell._tc is previous else cell_text(cell._tc))
        previous = cell._tc
    return out
