"""``rag search`` and ``rag ask``: a query in, passages (and an answer) out, as text or JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from rag import terminal
from rag.cli.common import index_options, json_option, load_retriever, settings
from rag.modes import MODES

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.search import Filters, SearchResult
    from rag.search.answer import Answer
    from rag.search.qa import Pipeline, Reply
    from rag.search.question import Question

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
    reply = run_search(config, _question(config, query, k, options, mode=mode))
    result = reply.result
    if as_json:
        terminal.print_json(
            {
                "query": reply.query,
                "results": hits_json(result.hits, config.public_url.rstrip("/")),
                "took_ms": round(reply.took_ms, 2),
            }
        )
        return 0
    out = terminal.console()
    out.print(
        f'{len(result.hits)} passages for "{reply.query}" ({result.mode}, {reply.took_ms:.0f} ms)',
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
    reply = run_ask(config, _question(config, question, k, options))
    answer = reply.answer
    assert answer is not None
    if as_json:
        terminal.print_json(
            {
                "query": reply.query,
                "answer": answer.text,
                "answered": answer.answered,
                "note": answer.note,
                "results": hits_json(reply.hits, config.public_url.rstrip("/")),
                "took_ms": round(reply.took_ms, 2),
            }
        )
        return 0
    _print_answer(reply.result, answer, reply.took_ms)
    return 0


def run_search(config: Settings, question: Question) -> Reply:
    """The library call behind ``rag search``: the query pipeline, run here."""
    return _pipeline(config).search_now(question)


def run_ask(config: Settings, question: Question) -> Reply:
    """The library call behind ``rag ask``: the query pipeline, run here."""
    return _pipeline(config).ask_now(question)


def _pipeline(config: Settings) -> Pipeline:
    from rag.search.qa import Pipeline
    from rag.search.question import Limits

    return Pipeline(load_retriever(config), Limits.from_settings(config))


def _question(
    config: Settings, text: str, k: int | None, options: dict[str, Any], mode: str = "hybrid"
) -> Question:
    """The command line's question, checked by the pipeline's rules before anything slow loads."""
    from rag.search.question import Limits, Question, check

    asked = Question(text, k=k, filters=_filters(options), mode=mode)  # type: ignore[arg-type]
    return check(asked, Limits.from_settings(config))


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


def _filters(options: dict[str, Any]) -> Filters:
    from rag.search import Filters

    return Filters(tuple(options["docs"]), tuple(options["tags"]), options["source"] or None)
