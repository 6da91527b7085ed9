"""PDF parser, on pdfplumber (pdfminer.six): text per page, headings found from the layout.

A PDF has no structure, only glyphs at positions, so it is read the way a person skims one:

- the most common font size is body text; a line set noticeably larger is a heading, and the
  larger the size the higher the level; a short bold line at body size standing alone is the
  lowest-level heading;
- lines closer together than about a line and a half belong to one paragraph;
- a line indented past the body's left edge is a list item, unless it continues the previous
  item (which then filled its line);
- lines set in a monospaced font are code;
- ruled tables are read as tables (pdfplumber's table finder), each row a "column header, row
  header: cell" passage, and their text is not read again as lines.

Every block carries its page number, for citations and the viewer.
"""

from __future__ import annotations

import io
import re
import statistics
from collections import Counter
from typing import Any

from rag.errors import BadDocument
from rag.ingest.blocks import Block, render
from rag.ingest.structure import BULLET_RE, title_from_filename
from rag.ingest.tables import table_blocks
from rag.ingest.types import Document

# A heading is at least this many points larger than body text.
HEADING_DELTA = 1.5
# Lines further apart than this many line heights start a new paragraph.
PARAGRAPH_GAP = 1.5
# A list item is indented at least this many points past the body's left edge.
INDENT = 8.0
# A line at least this share of the widest line is full: the next one continues it.
FULL_LINE = 0.85
_HYPHEN_BREAK_RE = re.compile(r"(?<=\w-)\n(?=\w)")


def parse_pdf(data: bytes, source: str) -> list[Document]:
    """The document of one PDF; raises BadDocument for a corrupt, encrypted or textless one."""
    import pdfplumber

    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            pages = [_read_page(page) for page in pdf.pages]
            info = pdf.metadata or {}
        _join_split_tables(pages)
    except BadDocument:
        raise
    except Exception as exc:  # pdfminer raises many types: syntax, password, stream errors
        raise BadDocument(f"cannot read this PDF ({_reason(exc)})") from exc
    lines = [line for page in pages for line in page["lines"]]
    if not lines and not any(page["tables"] for page in pages):
        raise BadDocument("the PDF has no text layer (a scanned PDF needs OCR first)")
    body = _body_size(lines)
    levels = _heading_levels(lines, body)
    blocks: list[Block] = []
    for n, page in enumerate(pages, start=1):
        blocks.extend(_page_blocks(page, n, body, levels))
    title = str(info.get("Title") or "").strip()
    if not title:
        first = next((b for b in blocks if b.kind == "heading"), None)
        title = first.text if first else title_from_filename(source)
    meta: dict[str, Any] = {"pages": len(pages)}
    doc = render(blocks, source, title, meta)
    if doc is None:
        raise BadDocument("the PDF has no body text")
    return [doc]


def _reason(exc: BaseException) -> str:
    # pdfplumber wraps pdfminer's errors: look at what it wraps too.
    chain = [exc, *(a for a in exc.args if isinstance(a, BaseException))]
    if exc.__context__ is not None:
        chain.append(exc.__context__)
    if any("Password" in type(e).__name__ or "Encrypt" in type(e).__name__ for e in chain):
        return "it is encrypted"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_page(page: Any) -> dict[str, Any]:
    tables = []
    for table in page.find_tables():
        # A word hyphenated at a cell's line break ("on-" / "call") is one word again.
        # None marks a position covered by a merged cell.
        rows = [
            [None if cell is None else _HYPHEN_BREAK_RE.sub("", cell) for cell in row]
            for row in table.extract()
        ]
        if rows:
            tables.append({"top": table.bbox[1], "bbox": table.bbox, "rows": rows})
    lines = []
    for line in page.extract_text_lines(return_chars=True, strip=True):
        if any(_inside(line, t["bbox"]) for t in tables):
            continue
        chars = [c for c in line["chars"] if c["text"].strip()]
        if not chars:
            continue
        lines.append(
            {
                "text": line["text"],
                "top": line["top"],
                "bottom": line["bottom"],
                "x0": line["x0"],
                "x1": line["x1"],
                "size": round(statistics.median(c["size"] for c in chars) * 2) / 2,
                "bold": sum("bold" in c["fontname"].lower() for c in chars) > len(chars) / 2,
                "mono": sum(_is_mono(c["fontname"]) for c in chars) > len(chars) / 2,
                "chars": len(chars),
            }
        )
    return {"lines": lines, "tables": tables}


def _join_split_tables(pages: list[dict[str, Any]]) -> None:
    """Put a table that runs onto the next page back together, on its first page.

    A table at the top of a page with as many columns as the one that ended the page before is
    its continuation: a header row repeated there is dropped, and a first row with no row
    header is the rest of the previous page's last row.
    """
    open_table: dict[str, Any] | None = None  # a table that ended its page, maybe unfinished
    for page in pages:
        first_line = min((line["top"] for line in page["lines"]), default=float("inf"))
        tables = sorted(page["tables"], key=lambda t: t["top"])
        for n, table in enumerate(tables):
            rows = table["rows"]
            target = open_table
            if (
                n == 0
                and target is not None
                and table["top"] <= first_line
                and len(rows[0]) == len(target["rows"][0])
            ):
                if rows[0] == target["rows"][0]:
                    rows = rows[1:]
                if rows and not (rows[0][0] or "").strip():
                    last = target["rows"][-1]
                    target["rows"][-1] = [
                        f"{a or ''} {b or ''}".strip() for a, b in zip(last, rows[0], strict=False)
                    ]
                    rows = rows[1:]
                target["rows"].extend(rows)
                table["rows"] = []
                table["into"] = target
        open_table = None
        if tables:
            tail = tables[-1]
            below = any(line["top"] > tail["bbox"][3] for line in page["lines"])
            if not below:
                open_table = tail.get("into", tail)
    for page in pages:
        page["tables"] = [t for t in page["tables"] if t["rows"]]


def _grid(rows: list[list[str | None]]) -> list[list[str | None]]:
    """Cells as rag.ingest.tables reads them. A cell's line breaks are where its text wrapped,
    not paragraphs. A merged cell leaves None where it covers: in the first column that is a
    row label spanning rows, repeated in each; elsewhere a cell spanning from the left."""
    out: list[list[str | None]] = []
    for row in rows:
        cells = [None if c is None else " ".join(c.split()) for c in row]
        if cells and cells[0] is None:
            cells[0] = out[-1][0] if out and out[-1] else ""
        out.append(cells)
    return out


def _is_mono(fontname: str) -> bool:
    name = fontname.lower()
    return any(part in name for part in ("mono", "courier", "consol", "menlo", "code"))


def _inside(line: dict[str, Any], bbox: tuple[float, float, float, float]) -> bool:
    x0, top, x1, bottom = bbox
    return line["top"] >= top - 1 and line["bottom"] <= bottom + 1 and line["x0"] >= x0 - 1


def _body_size(lines: list[dict[str, Any]]) -> float:
    counts: Counter[float] = Counter()
    for line in lines:
        counts[line["size"]] += line["chars"]
    return counts.most_common(1)[0][0] if counts else 0.0


def _is_heading_text(text: str) -> bool:
    return len(text) <= 120 and len(text.split()) <= 16 and text[-1:] not in ".,;:"


def _heading_levels(lines: list[dict[str, Any]], body: float) -> dict[float, int]:
    sizes = sorted(
        {
            line["size"]
            for line in lines
            if line["size"] >= body + HEADING_DELTA and _is_heading_text(line["text"])
        },
        reverse=True,
    )
    return {size: level for level, size in enumerate(sizes, start=1)}


def _page_blocks(
    page: dict[str, Any], number: int, body: float, levels: dict[float, int]
) -> list[Block]:
    items: list[tuple[float, Block]] = []
    for table in page["tables"]:
        # A cell's line breaks are where its text wrapped, not paragraphs.
        rows = _grid(table["rows"])
        for block in table_blocks(rows, page=number):
            items.append((table["top"], block))
    lines = page["lines"]
    left = min((line["x0"] for line in lines), default=0.0)
    widest = max((line["x1"] - line["x0"] for line in lines), default=1.0)
    bold_level = len(levels) + 1
    paragraph: list[str] = []
    top = 0.0
    prev: dict[str, Any] | None = None
    listing = False

    def flush() -> None:
        if paragraph:
            items.append((top, Block("text", "\n".join(paragraph), page=number)))
            paragraph.clear()

    for i, line in enumerate(lines):
        text = line["text"].strip()
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        gap_above = line["top"] - prev["bottom"] if prev else 1e9
        gap_below = nxt["top"] - line["bottom"] if nxt else 1e9
        height = max(line["bottom"] - line["top"], 1.0)
        level = levels.get(line["size"])
        alone = gap_above > 0.4 * height and gap_below > 0.4 * height
        if level is None and line["bold"] and line["size"] >= body and alone:
            level = bold_level if _is_heading_text(text) else None
        if level is not None:
            flush()
            items.append((line["top"], Block("heading", text, level, page=number)))
            prev, listing = line, False
            continue
        if line["mono"]:
            if not (items and items[-1][1].kind == "code" and prev is not None and prev["mono"]):
                flush()
                items.append((line["top"], Block("code", text, page=number)))
            else:
                last_top, last = items[-1]
                items[-1] = (last_top, Block("code", f"{last.text}\n{text}", page=number))
            prev, listing = line, False
            continue
        indented = line["x0"] > left + INDENT
        new_paragraph = prev is None or gap_above > (PARAGRAPH_GAP - 1) * height
        if new_paragraph or (indented != listing):
            flush()
            top = line["top"]
        if indented:
            filled = prev is not None and (prev["x1"] - prev["x0"]) >= FULL_LINE * widest
            if paragraph and listing and filled and not new_paragraph:
                paragraph[-1] += " " + text
            else:
                # A list that prints its own markers ("3.", "•") keeps them, and only them.
                paragraph.append(text if BULLET_RE.match(text) else f"• {text}")
        elif paragraph and not listing:
            paragraph[-1] += " " + text
        else:
            paragraph.append(text)
        listing = indented
        prev = line
    flush()
    items.sort(key=lambda item: item[0])
    return [block for _, block in items]
