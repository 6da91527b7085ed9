"""Tables as labelled lines: every cell with the labels that say what it is about.

The parsers of marked-up formats (markdown, HTML, DOCX, PDF) reduce a table to rows of cells
and call ``table_blocks``. A cell is its text, its paragraphs and list items on lines of their
own, or None where a cell spanning from the left covers it. A table's header rows give the
column labels (a label spanning several columns heads each of them). The first cell of a row
is its own label ("Scope") when it reads as one; a row whose other cells are all empty is a
group label ("Skill", "M3") that the rows below it are filed under, and the label of those
rows whose first cell is content rather than a label. Every paragraph of a cell becomes the
line "column label, row label: text" ("Senior Programmer (L3), Scope: Capable of ..."), so a
passage cut anywhere in a table, even inside a long cell, still says which level and which
category each line describes. A cell spanning every value column is "row label: text".

Every word the table shows is kept: rows above the header (a caption such as "Version 2") and
the rows of a one-column table become text, not labels of nothing.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from rag.ingest.blocks import Block, clean_line

# A grid of at least this many rows and value columns (a job ladder: categories down, levels
# across) is also read down each column, so "what is expected of a senior?" finds one passage
# about seniors rather than a row that mentions every level.
COLUMN_PASSAGES = True
GRID_MIN = 3
# A cell's paragraph longer than this is cut between sentences into lines that each carry the
# labels, so a passage boundary inside a long cell still leaves every piece labelled (lines up
# to this length fit in a default passage whole).
LONG_CELL = 600
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
# Each table's rows share a number; numbers are only ever compared within one document.
_TABLES = itertools.count()

Span = tuple[int | None, int | None]
Cell = str | None


def table_blocks(
    rows: Sequence[Sequence[Cell]],
    header_rows: int | None = None,
    *,
    row_spans: Sequence[Span] | None = None,
    span: Span = (None, None),
    page: int | None = None,
) -> list[Block]:
    """The blocks of one table: caption text, then one "row" block per data row (and, for a
    grid, per value column).

    ``header_rows`` is how many leading rows are the header when the format says so (a GFM
    table's first row, HTML ``<th>`` rows, DOCX repeated header rows); None guesses it: the
    first row with at least two filled cells when they read as labels, the rows above it being
    a caption. ``row_spans`` gives each row's span in the source file, ``span`` the whole
    table's.
    """
    cells = [[_cell(c) for c in row] for row in rows]
    spans = list(row_spans) if row_spans is not None else [span] * len(cells)
    if max((len(r) for r in cells), default=0) <= 1:
        # One column: a boxed list of paragraphs, with nothing to label.
        return [Block("text", r[0], 0, (), *s, page) for r, s in zip(cells, spans, strict=True)
                if r and r[0]]  # fmt: skip
    lead = 0
    if header_rows is None:
        header_rows = _guess_header(cells)
        lead = max(header_rows - 1, 0)
    if header_rows >= len(cells):
        lead = len(cells)  # a header over no rows labels nothing: its words are text
    out: list[Block] = []
    caption = [c for row in cells[:lead] for c in row if c]
    if caption:
        out.append(Block("text", "\n".join(caption), 0, (), *spans[0], page))
    header = _header(cells[lead:header_rows])
    labelled = _rows(header, cells[header_rows:])
    rows_id, columns_id = next(_TABLES), next(_TABLES)
    for n, path, text in labelled:
        out.append(Block("row", text, 0, path, *spans[header_rows + n], page, rows_id))
    if COLUMN_PASSAGES:
        for _, path, text in _columns(header, labelled):
            out.append(Block("row", text, 0, path, *span, page, columns_id))
    return out


def label_like(text: str) -> bool:
    """Whether a cell reads as a label ("Scope", "Senior Engineer (L3)"), not as content."""
    return 0 < len(text) <= 80 and "\n" not in text and not text.endswith(".")


def _cell(text: Cell) -> Cell:
    if text is None:
        return None
    lines = (clean_line(line) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _guess_header(cells: list[list[Cell]]) -> int:
    """Rows up to and including the first with two filled cells, when those cells read as
    labels; 0 when that row holds content (a table with no header)."""
    for i, row in enumerate(cells):
        filled = [c for c in row if c]
        if len(filled) >= 2:
            return i + 1 if all(map(label_like, filled)) else 0
    return 0


def _header(rows: Sequence[Sequence[Cell]]) -> list[str]:
    """One label per column: the header rows' texts of that column, each once; a header cell
    spanning several columns heads each of them."""
    width = max((len(r) for r in rows), default=0)
    filled = []
    for row in rows:
        out: list[str] = []
        for j in range(width):
            cell = row[j] if j < len(row) else ""
            out.append(out[-1] if cell is None and out else " ".join((cell or "").split()))
        filled.append(out)
    return [" ".join(dict.fromkeys(r[j] for r in filled if r[j])) for j in range(width)]


def _rows(
    header: Sequence[str], rows: Sequence[Sequence[Cell]]
) -> list[tuple[int, tuple[str, ...], str]]:
    """Each data row as (row index, path, text), every paragraph of a cell with its labels.

    A group label is written once, above the first row filed under it, so its words are in
    the text as well as in the path of every row under it.
    """
    out: list[tuple[int, tuple[str, ...], str]] = []
    group = announce = ""
    filled = [n for n, cells in enumerate(rows) if any(cells)]
    for n, cells in enumerate(rows):
        if not any(cells):
            continue
        first = cells[0] or ""
        own = label_like(first)
        rest = list(cells[1:])
        if own and rest and not any(rest):
            after = next((rows[m] for m in filled if m > n), None)
            if after is not None and any(after[1:]):
                group = announce = first
                continue
        label = first if own else group
        path = tuple(p for p in ((group, first) if own and group != first else (label,)) if p)
        values = list(enumerate(cells)) if not own else list(enumerate(rest, start=1))
        lines = [announce] if announce else []
        announce = ""
        if own and not any(rest):
            lines.append(first)  # a label over no row: its words are text
        others = [c for _, c in values[1:]]
        # One text across the row: a cell spanning every value column, or a row of content
        # with no label of its own and nothing beside it.
        spanning = (
            bool(values and values[0][1])
            and bool(others)
            and (all(c is None for c in others) if own else not any(others))
        )
        for j, cell in values:
            column = "" if spanning else header[j] if j < len(header) else ""
            for paragraph in (cell or "").split("\n"):
                for line in _pieces(paragraph):
                    lines.append(_line(column, label, line))
        if lines:
            out.append((n, path, "\n".join(lines)))
    return out


def _pieces(paragraph: str) -> list[str]:
    """A cell's paragraph, cut between sentences into lines of at most ``LONG_CELL``
    characters, each of which will carry the labels."""
    if len(paragraph) <= LONG_CELL:
        return [paragraph] if paragraph else []
    out: list[str] = []
    for sentence in _SENTENCE_END_RE.split(paragraph):
        if out and len(out[-1]) + 1 + len(sentence) <= LONG_CELL:
            out[-1] += " " + sentence
        else:
            out.append(sentence)
    return out


def _line(column: str, label: str, text: str) -> str:
    labels = ", ".join(x for x in (column, label) if x)
    return f"{labels}: {text}" if labels else text


def _columns(
    header: Sequence[str], rows: list[tuple[int, tuple[str, ...], str]]
) -> list[tuple[int, tuple[str, ...], str]]:
    """One more passage per value column of a grid: that column's cells, each labelled."""
    columns = [h.strip() for h in header[1:] if h.strip()]
    if len(columns) < GRID_MIN or len(rows) < GRID_MIN:
        return []
    out = []
    for column in columns:
        prefix = f"{column}, "
        lines = [
            line for _, _, text in rows for line in text.split("\n") if line.startswith(prefix)
        ]
        if lines:
            out.append((-1, (column,), "\n".join(lines)))  # -1: the whole table
    return out
