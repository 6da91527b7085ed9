"""The report as one CSV: a ``section`` column, then the columns every section shares (and,
for the reports of several collections in one file, a ``collection`` column before them).

One file rather than a zip of several: a spreadsheet opens it with a double click, and a filter
on ``section`` shows one part at a time; a zip must be unpacked first, and gives eight files to
open. Cells a section has no value for are empty. The text starts with a byte-order mark so that
Excel reads it as UTF-8, and a cell that readers wrote and that begins like a formula
(``=``, ``+``, ``-``, ``@``) is prefixed with ``'`` so no spreadsheet evaluates it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

COLUMNS = (
    "section", "day", "question", "count", "variants", "p50_ms", "p95_ms", "min_score",
    "last", "asked", "rated", "comment", "endpoint", "doc_id", "title", "top_ranked",
)  # fmt: skip
SECTIONS = (
    "volume", "top", "not_covered", "zero_hit", "low_score", "thumbs_down", "cited",
    "never_cited",
)  # fmt: skip
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str | None) -> str:
    """A cell of free text, defused if a spreadsheet would read it as a formula."""
    value = value or ""
    return "'" + value if value.startswith(_FORMULA) else value


def rows(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One dict per CSV row, keyed by ``COLUMNS``, in ``SECTIONS`` order."""
    for d in report["volume"]:
        yield {"section": "volume", "day": d["day"], "count": d["queries"],
               "p50_ms": d["p50_ms"], "p95_ms": d["p95_ms"]}  # fmt: skip
    for section in ("top", "not_covered", "zero_hit", "low_score"):
        for g in report[section]["groups"]:
            variants = " | ".join(f"{v['query']} ({v['count']})" for v in g["variants"])
            yield {"section": section, "question": _text(g["question"]), "count": g["count"],
                   "variants": _text(variants), "min_score": g.get("min_score"),
                   "last": g["last"]}  # fmt: skip
    for t in report["thumbs_down"]["items"]:
        yield {"section": "thumbs_down", "question": _text(t["query"]), "asked": t["asked"],
               "rated": t["rated"], "comment": _text(t["comment"]),
               "endpoint": t["endpoint"]}  # fmt: skip
    for d in report["cited"]["documents"]:
        yield {"section": "cited", "doc_id": d["id"], "title": _text(d["title"]),
               "count": d["queries"], "top_ranked": d["top_ranked"]}  # fmt: skip
    for d in (report["never_cited"] or {}).get("documents", ()):
        yield {"section": "never_cited", "doc_id": d["id"], "title": _text(d["title"])}


def to_csv(report: dict[str, Any]) -> str:
    """The whole CSV as text, byte-order mark first."""
    return _csv(COLUMNS, rows(report))


def to_csv_all(reports: Mapping[str, dict[str, Any]]) -> str:
    """The reports of several collections as one CSV, a ``collection`` column first."""
    every = (
        {"collection": name, **row} for name, report in reports.items() for row in rows(report)
    )
    return _csv(("collection", *COLUMNS), every)


def _csv(columns: tuple[str, ...], lines: Iterator[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(lines)
    return buffer.getvalue()


def write_csv(report: dict[str, Any], path: Path) -> None:
    """Write the CSV to ``path``."""
    # newline="": the csv module writes its own CRLF line ends.
    Path(path).write_text(to_csv(report), encoding="utf-8", newline="")


def write_csv_all(reports: Mapping[str, dict[str, Any]], path: Path) -> None:
    """Write the CSV of several collections' reports to ``path``."""
    Path(path).write_text(to_csv_all(reports), encoding="utf-8", newline="")
