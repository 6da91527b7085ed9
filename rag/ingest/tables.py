"""Tables as labelled lines: every cell with the labels that say what it is about.

The parsers of marked-up formats (markdown, HTML, DOCX, PDF) reduce a table to rows of cell
texts and call ``table_blocks``. A table's header rows give the column labels; the first cell
of a row is its own label ("Scope"); a row whose other cells are all empty is a group label
("Skill") that the rows below it are filed under. A cell becomes the line "column label, row
label: cell" ("Senior Programmer (L3), Scope: Capable of ..."), so a passage cut from the rows
still says which level and which category each cell describes.

Every word the table shows is kept: rows above the header (a caption such as "Version 2") and
the rows of a one-column table become text, not labels of nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from rag.ingest.blocks import Block, clean_line

# A grid of at least this many rows and value columns (a job ladder: categories down, levels
# across) is also read down each column, so "what is expected of a senior?" finds one passage
# about seniors rather than a row that mentions every level.
COLUMN_PASSAGES = True
GRID_MIN = 3

Span = tuple[int | None, int | None]


def table_blocks(
    rows: Sequence[Sequence[str]],
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
    first row with at least two filled cells, the rows above it being a caption. ``row_spans``
    gives each row's span in the source file, ``span`` the whole table's.
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
    for n, path, text in labelled:
        out.append(Block("row", text, 0, path, *spans[header_rows + n], page))
    if COLUMN_PASSAGES:
        for _, path, text in _columns(header, labelled):
            out.append(Block("row", text, 0, path, *span, page))
    return out


def _cell(text: str | None) -> str:
    return clean_line(text or "").replace("\n", " ")


def _guess_header(cells: list[list[str]]) -> int:
    """Rows up to and including the first with two filled cells, when those cells read as
    labels; 0 when that row holds sentences (a table with no header)."""
    for i, row in enumerate(cells):
        filled = [c for c in row if c]
        if len(filled) >= 2:
            return i + 1 if all(map(label_like, filled)) else 0
    return 0


def label_like(text: str) -> bool:
    """Whether a cell reads as a label ("Scope", "Senior Engineer (L3)"), not as a sentence."""
    return 0 < len(text) <= 80 and not text.endswith(".")


def _header(rows: Sequence[Sequence[str]]) -> list[str]:
    """One label per column: the header rows' texts of that column, each once."""
    width = max((len(r) for r in rows), default=0)
    out = []
    for j in range(width):
        parts = [r[j] for r in rows if j < len(r) and r[j]]
        out.append(" ".join(dict.fromkeys(parts)))
    return out


def _rows(
    header: Sequence[str], rows: Sequence[Sequence[str]]
) -> list[tuple[int, tuple[str, ...], str]]:
    """Each data row as (row index, path, text), every cell with its column label.

    A group label is written once, above the first row filed under it, so its words are in
    the text as well as in the path of every row under it.
    """
    out: list[tuple[int, tuple[str, ...], str]] = []
    group = announce = ""
    filled = [n for n, cells in enumerate(rows) if any(cells)]
    for n, cells in enumerate(rows):
        if not any(cells):
            continue
        label = cells[0] or f"Row {n + 1}"
        rest = cells[1:]
        path = (group, label) if group else (label,)
        if rest and not any(rest):
            after = next((rows[m] for m in filled if m > n), None)
            if after is not None and any(after[1:]):
                group = announce = label
                continue
            rest = []  # a label over no row (another label follows, or none): text
        lines = [announce] if announce else []
        announce = ""
        if not rest:
            lines.append(label)
        for j, cell in enumerate(rest, start=1):
            if not cell:
                continue
            column = header[j].strip() if j < len(header) else ""
            lines.append(f"{column}, {label}: {cell}" if column else f"{label}: {cell}")
        out.append((n, path, "\n".join(lines)))
    return out


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
