"""``rag search`` and ``rag ask``: a query in, passages (and an answer) out, as text or JSON."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from rag import terminal
from rag.cli.common import check_k, index_options, json_option, load_retriever, settings
from rag.modes import MODES

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.search import Filters, SearchResult
    from rag.search.answer import Answer

F = TypeVar("F", bound=Callable[..., Any])


def filter_options(f: F) -> F:
    """``--doc``, ``--tag`` and ``--source``: which passages a query may return."""
    f = click.option("--source", metavar="PREFIX", help="only source files under this path")(f)
    f = click.option(
        "--tag",
        "tags",
        metavar="TAG",
        multiple=True,
        help="only documents with this tag (repeatable)",
    )(f)
    return click.option(
        "--doc", "docs", metavar="ID", multiple=True, help="only this document (repeatable)"
    )(f)


@click.command("search", help="ranked passages with citations")
@click.argument("query", metavar="QUERY")
@index_options
@json_option
@click.option("-k", "k", type=int, metavar="N", help="number of passages (default RAG_K, 5)")
@filter_options
@click.option("--mode", type=click.Choice(MODES), default="hybrid", help="ranking (default hybrid)")
def search_command(query: str, k: int | None, mode: str, as_json: bool, **options: Any) -> int:
    """Print the top-k passages for a query, with citations."""
    from rag.present import hits_json

    config = _settings(options)
    k = _check_request(query, k, config)
    result = run_search(config, query, k, mode, _filters(options))
    if as_json:
        terminal.print_json(
            {
                "query": result.query,
                "results": hits_json(result.hits, config.public_url.rstrip("/")),
                "took_ms": round(result.took_ms, 2),
            }
        )
        return 0
    out = terminal.console()
    out.print(
        f'{len(result.hits)} passages for "{result.query}" '
        f"({result.mode}, {result.took_ms:.0f} ms)",
        style="bold",
        soft_wrap=True,
        markup=False,
    )
    if not result.hits:
        out.print("No passage matches this query.")
    for hit in result.hits:
        terminal.print_hit(out, hit)
    return 0


@click.command("ask", help="a short extractive answer with its sources")
@click.argument("question", metavar="QUESTION")
@index_options
@json_option
@click.option("-k", "k", type=int, metavar="N", help="passages to read (default RAG_K, 5)")
@filter_options
def ask_command(question: str, k: int | None, as_json: bool, **options: Any) -> int:
    """Print an extractive answer and the passages it cites."""
    from rag.present import hits_json

    config = _settings(options)
    k = _check_request(question, k, config)
    result, answer, took_ms = run_ask(config, question, k, _filters(options))
    if as_json:
        terminal.print_json(
            {
                "query": result.query,
                "answer": answer.text,
                "answered": answer.answered,
                "note": answer.note,
                "results": hits_json(result.hits, config.public_url.rstrip("/")),
                "took_ms": round(took_ms, 2),
            }
        )
        return 0
    _print_answer(result, answer, took_ms)
    return 0


def run_search(config: Settings, query: str, k: int, mode: str, filters: Filters) -> SearchResult:
    """The library call behind ``rag search``."""
    retriever = load_retriever(config)
    return retriever.search(query, k, mode=mode, filters=filters)


def run_ask(
    config: Settings, question: str, k: int, filters: Filters
) -> tuple[SearchResult, Answer, float]:
    """The library call behind ``rag ask``: the passages, the answer, and the time both took."""
    retriever = load_retriever(config)
    t0 = time.perf_counter()
    result = retriever.search(question, k, filters=filters)
    answer = retriever.answer(result)
    return result, answer, (time.perf_counter() - t0) * 1000


def _print_answer(result: SearchResult, answer: Answer, took_ms: float) -> None:
    from rich.panel import Panel
    from rich.text import Text

    out = terminal.console()
    body = Text(answer.text or "No sentence in the top passages answers this question.")
    if answer.note:
        body = Text(f"{answer.note}\n\n") + body
    title, colour = ("Answer", "green") if answer.answered else ("Not covered", "yellow")
    out.print(Panel(body, title=title, title_align="left", border_style=colour))
    cited = {s.ref for s in answer.sentences}
    shown = [h for h in result.hits if h.rank in cited] or result.hits
    heading = "Sources" if answer.answered else "Nearest passages (they may not answer it)"
    out.print(f"{heading} ({took_ms:.0f} ms)", style="bold")
    for hit in shown:
        terminal.print_hit(out, hit)


def _settings(options: dict[str, Any]) -> Settings:
    return settings(
        index_dir=options["index_dir"], corpus_dir=options["corpus_dir"], model=options["model"]
    )


def _check_request(query: str, k: int | None, config: Settings) -> int:
    """Reject an empty or oversized query and a bad k early; returns k."""
    if not query.strip():
        raise click.UsageError("the query must not be empty")
    if len(query.strip()) > config.max_query_chars:
        raise click.UsageError(f"the query is longer than {config.max_query_chars} characters")
    return check_k(k, config)


def _filters(options: dict[str, Any]) -> Filters:
    from rag.search import Filters

    return Filters(tuple(options["docs"]), tuple(options["tags"]), options["source"] or None)
