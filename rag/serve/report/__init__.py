"""The coverage report for the owners of the guides, from the server's query log.

``build_report`` computes one plain dict; ``render_html``, ``to_csv`` and ``format_report``
present it. ``rag report`` and the server's ``/admin`` pages are thin layers over these.
"""

from rag.serve.report.csv_export import to_csv, write_csv
from rag.serve.report.data import build_report, index_documents
from rag.serve.report.html import render_html, render_login
from rag.serve.report.since import parse_since
from rag.serve.report.text import format_report

__all__ = [
    "build_report",
    "format_report",
    "index_documents",
    "parse_since",
    "render_html",
    "render_login",
    "to_csv",
    "write_csv",
]
