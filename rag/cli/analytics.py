"""``rag log`` and ``rag report``: what the server's query log says, for operators and for the
owners of the guides. Both read the log without loading the model or the web app."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rag import terminal
from rag.analytics.querylog import LOW_SCORE

if TYPE_CHECKING:
    from rag.config import Settings

from rag.cli.common import (
    FiniteFloat,
    base_settings,
    catalog,
    chosen_collection,
    collection_options,
    collection_settings,
    data_option,
    index_option,
    json_option,
    note,
    optional_import,
    settings,
    warn,
)


class Since(click.ParamType):
    """A date (2026-11-01), a UTC date and time, or a duration back from now (7d)."""

    name = "WHEN"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        from rag.analytics.report.since import parse_since
        from rag.errors import BadQuery

        try:
            return parse_since(value)
        except BadQuery as exc:
            self.fail(str(exc), param, ctx)


@click.command("log", help="summarise the query log")
@data_option
@collection_options
@json_option
@click.option(
    "--low-score",
    type=FiniteFloat(min=0),
    default=LOW_SCORE,
    metavar="X",
    help=f"count queries whose top score is below X as low-score (default {LOW_SCORE})",
)
def log_command(data_dir: Path | None, low_score: float, as_json: bool) -> int:
    """Summarise the query log kept by the server."""
    config = settings(data_dir=data_dir)
    summary = optional_import("rag.analytics.querylog", "summary", "the query log")
    data = summary(config.data_dir, low_score=low_score)
    if as_json:
        terminal.print_json(data)
        return 0
    format_summary = optional_import("rag.analytics.querylog", "format_summary", "the query log")
    print(format_summary(data))
    return 0


@click.command("report", help="coverage report of the query log for the owners of the guides")
@data_option
@index_option
@collection_options
@json_option
@click.option(
    "--since",
    type=Since(),
    metavar="WHEN",
    help="only queries since a date (2026-11-01) or within a duration back from now (7d)",
)
@click.option(
    "--html",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="also write a self-contained page",
)
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="also write one CSV of every section",
)
def report_command(
    data_dir: Path | None,
    index_dir: Path | None,
    since: datetime | None,
    html: Path | None,
    csv_file: Path | None,
    as_json: bool,
) -> int:
    """Report what readers asked, what went unanswered or disliked, and what was cited: of
    one collection, or of each in turn when a config file names several and none is chosen
    (``--html`` and ``--csv`` then write them all in one page, one CSV)."""
    from rag.analytics.report import format_report

    base = base_settings(data_dir=data_dir, index_dir=index_dir)
    every = catalog(base)
    if base.config is not None and chosen_collection() is None and len(every.collections) > 1:
        reports = {c.name: _report(c.settings, since) for c in every}
        _write_all(reports, html, csv_file)
        if as_json:
            terminal.print_json({"collections": reports})
            return 0
        for name, report in reports.items():
            print(f"== Collection {name}\n{format_report(report)}")
        return 0
    config = collection_settings(base, chosen_collection())
    report = _report(config, since)
    _write(report, html, csv_file)
    if as_json:
        terminal.print_json(report)
    else:
        print(format_report(report))
    return 0


def _report(config: Settings, since: datetime | None) -> dict[str, Any]:
    """One collection's report, from its log and its index's document list."""
    from rag.analytics.report import build_report, index_documents
    from rag.errors import RagError

    documents, missing = None, None
    try:
        documents = index_documents(config.index_dir)
    except (RagError, OSError) as exc:
        # The rest of the report needs only the log: say what is missing and go on.
        missing = " ".join(str(exc).split())
        warn(f"no list of documents, so no never-cited section: {missing}")
    return build_report(config.data_dir, documents, since=since, documents_missing=missing)


def _write_all(
    reports: dict[str, dict[str, Any]], html: Path | None, csv_file: Path | None
) -> None:
    from rag.analytics.report import render_all_html, write_csv_all

    if html is not None:
        html.write_text(render_all_html(reports), encoding="utf-8")
        note(f"HTML report of {len(reports)} collections written to {html}")
    if csv_file is not None:
        write_csv_all(reports, csv_file)
        note(f"CSV report of {len(reports)} collections written to {csv_file}")


def _write(report: dict[str, Any], html: Path | None, csv_file: Path | None) -> None:
    from rag.analytics.report import render_html, write_csv

    if html is not None:
        html.write_text(render_html(report), encoding="utf-8")
        note(f"HTML report written to {html}")
    if csv_file is not None:
        write_csv(report, csv_file)
        note(f"CSV report written to {csv_file}")
