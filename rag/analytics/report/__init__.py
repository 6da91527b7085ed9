"""The coverage report for the owners of the guides, from the server's query log.

``build_report`` computes one plain dict; ``render_html``, ``to_csv`` and ``format_report``
present it, and ``render_all_html`` and ``to_csv_all`` the reports of several collections. ``rag report`` and the server's ``/admin`` pages are thin layers over these.
"""

from rag.analytics.report.csv_export import to_csv, to_csv_all, write_csv, write_csv_all
from rag.analytics.report.data import build_report, index_documents
from rag.analytics.report.html import render_all_html, render_html, render_login
from rag.analytics.report.since import parse_since
from rag.analytics.report.text import format_report

__all__ = [
    "build_report",
    "format_report",
    "index_documents",
    "parse_since",
    "render_all_html",
    "render_html",
    "render_login",
    "to_csv",
    "to_csv_all",
    "write_csv",
    "write_csv_all",
]
