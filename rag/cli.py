"""The ``rag`` command: a thin layer that parses arguments, calls the library and formats.

Heavy modules (torch, sentence-transformers, faiss) are imported inside the command functions,
never at module level, so ``rag --help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rag import __version__, terminal
from rag.errors import CorpusEmpty, RagError

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.search import Retriever

PROG = "rag"
EXIT_USAGE = 2
# Kept in step with rag.search.MODES (a test checks) without importing it at start-up.
MODES = ("hybrid", "dense", "sentence", "bm25")
MODES_FOR_EVAL = ("dense", "sentence", "bm25", "hybrid")
# Kept in step with rag.analytics.querylog.LOW_SCORE (a test checks), so `rag --help` need not import it.
LOW_SCORE = 2.5


class UsageError(Exception):
    """A command line that cannot be carried out as written (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors become one line and an exception instead of usage + sys.exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rag`` command line and return its exit code."""
    from rag.runtime import configure_process

    configure_process()
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help and --version exit from inside argparse
            return exc.code if isinstance(exc.code, int) else 0
        return int(args.func(args) or 0)
    except (UsageError, RagError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (`| head`) went away; say nothing more and let the shell carry on.
        sys.stdout = open(os.devnull, "w")
        return 0
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), 1)
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            return _fail(terminal.settings_error(exc), EXIT_USAGE)
        raise


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``rag`` command."""
    parser = _Parser(
        prog=PROG,
        description="Retrieval question answering over career guides, with exact citations.",
        epilog="Settings also come from RAG_* environment variables; flags override them.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    index_opts = _Parser(add_help=False)
    index_opts.add_argument("--index", metavar="DIR", help="index directory (RAG_INDEX_DIR)")
    index_opts.add_argument("--corpus", metavar="DIR", help="corpus folder (RAG_CORPUS_DIR)")
    index_opts.add_argument("--model", metavar="NAME", help="embedding model (RAG_MODEL)")
    json_opt = _Parser(add_help=False)
    json_opt.add_argument("--json", action="store_true", help="print JSON instead of tables")

    p = sub.add_parser(
        "index", parents=[index_opts, json_opt], help="build the index from the corpus"
    )
    p.add_argument(
        "--if-stale",
        action="store_true",
        help="skip the build when the index exists, matches the model and the corpus is unchanged",
    )
    p.add_argument("--max-chars", type=int, metavar="N", help="longest passage in characters")
    p.add_argument(
        "--full",
        action="store_true",
        help="re-embed every passage instead of reusing the vectors of unchanged ones",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another build of the same index to finish (default: fail)",
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="stay running and re-index whenever the corpus changes (Ctrl-C stops)",
    )
    p.add_argument(
        "--debounce",
        type=int,
        default=1000,
        metavar="MS",
        help="with --watch: wait for this many quiet milliseconds before re-indexing",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="parse and embed on Ray (the [ray] extra): 'auto' joins a running cluster, no value "
        "starts a local one (RAG_RAY_ADDRESS)",
    )
    p.set_defaults(func=cmd_index)

    p = sub.add_parser(
        "search", parents=[index_opts, json_opt], help="ranked passages with citations"
    )
    p.add_argument("query", metavar="QUERY")
    p.add_argument("-k", type=int, metavar="N", help="number of passages (default RAG_K, 5)")
    _filter_options(p)
    p.add_argument("--mode", choices=MODES, default="hybrid", help="ranking (default hybrid)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "ask", parents=[index_opts, json_opt], help="a short extractive answer with its sources"
    )
    p.add_argument("question", metavar="QUESTION")
    p.add_argument("-k", type=int, metavar="N", help="passages to read (default RAG_K, 5)")
    _filter_options(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser(
        "eval", parents=[index_opts, json_opt], help="score retrieval on a question set"
    )
    p.add_argument(
        "questions", metavar="QUESTIONS.jsonl", type=Path, nargs="+", help="one or more sets"
    )
    p.add_argument("-k", type=int, default=10, metavar="N", help="ranks scored (default 10)")
    p.add_argument(
        "--modes",
        default=",".join(MODES_FOR_EVAL),
        metavar="LIST",
        help=f"comma-separated ranking modes (default {','.join(MODES_FOR_EVAL)})",
    )
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="write a bar chart of metrics")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("serve", parents=[index_opts], help="run the HTTP API and web pages")
    p.add_argument("--host", help="address to listen on (RAG_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (RAG_PORT, default 8000)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="server processes")
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="serve with Ray Serve replicas (the [ray] extra): 'auto' joins a running cluster, "
        "no value starts a local one (RAG_RAY_ADDRESS)",
    )
    p.add_argument(
        "--replicas",
        type=int,
        metavar="N",
        help="with --ray: N replicas (default: autoscale within RAG_RAY_MIN/MAX_REPLICAS)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "mcp", parents=[index_opts], help="serve the index to MCP clients over stdin and stdout"
    )
    p.set_defaults(func=cmd_mcp)

    p = sub.add_parser("log", parents=[json_opt], help="summarise the query log")
    p.add_argument("--data", metavar="DIR", help="data directory (RAG_DATA_DIR)")
    p.add_argument(
        "--low-score",
        type=_non_negative_float,
        default=LOW_SCORE,
        metavar="X",
        help=f"count queries whose top score is below X as low-score (default {LOW_SCORE})",
    )
    p.set_defaults(func=cmd_log)

    p = sub.add_parser(
        "report",
        parents=[json_opt],
        help="coverage report of the query log for the owners of the guides",
    )
    p.add_argument("--data", metavar="DIR", help="data directory (RAG_DATA_DIR)")
    p.add_argument(
        "--index", metavar="DIR", help="index directory, for its documents (RAG_INDEX_DIR)"
    )
    p.add_argument(
        "--since",
        metavar="WHEN",
        help="only queries since a date (2026-11-01) or within a duration back from now (7d)",
    )
    p.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained page")
    p.add_argument("--csv", type=Path, metavar="FILE", help="also write one CSV of every section")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "documents", parents=[index_opts, json_opt], help="list the indexed documents"
    )
    p.set_defaults(func=cmd_documents)
    return parser


# --------------------------------------------------------------------------- commands


def cmd_index(args: argparse.Namespace) -> int:
    """Build the index (incrementally), once, only when stale, or on every corpus change."""
    from rag.index.freshness import why_rebuild
    from rag.ingest.chunking import ChunkerSettings

    settings = _settings(args)
    try:
        chunker = ChunkerSettings(max_chars=args.max_chars) if args.max_chars is not None else None
    except ValueError as exc:
        raise UsageError(f"argument --max-chars: {exc}") from exc
    if args.wait < 0:
        raise UsageError("argument --wait: must not be negative")
    if args.watch and args.if_stale:
        raise UsageError("--watch and --if-stale cannot be combined: --watch builds when stale")
    if not 0 <= args.debounce <= 600_000:
        raise UsageError("argument --debounce: must be from 0 to 600000 milliseconds")
    ray_address = _ray_address(args, settings)
    if ray_address is not None and settings.adapt:
        raise UsageError("--ray cannot adapt the model (RAG_ADAPT): adapt with a local build")
    out = terminal.console()
    reason = why_rebuild(settings, chunker or ChunkerSettings()) if args.if_stale else None
    if args.if_stale and reason is None:
        from rag.index.manifest import Manifest

        manifest = Manifest.read(settings.index_dir)
        if args.json:
            terminal.print_json(terminal.index_json(settings, manifest, built=False))
        else:
            out.print(
                f"Index at {settings.index_dir} is up to date "
                f"({manifest.counts['documents']} documents, {manifest.counts['chunks']} chunks, "
                f"built {manifest.built_at}): nothing to do.",
                soft_wrap=True,
            )
        return 0

    from rag.models.embedder import load_embedder

    if not Path(settings.corpus_dir).is_dir():
        # Say so before spending seconds on loading the model.
        raise CorpusEmpty(f"corpus folder {settings.corpus_dir} does not exist")
    _quiet_model_loading()
    err = terminal.console(stderr=True)
    if reason:
        err.print(f"Rebuilding: {reason}", soft_wrap=True)
    err.print(
        f"Indexing {settings.corpus_dir} into {settings.index_dir} with {settings.model}",
        soft_wrap=True,
    )
    embedder = load_embedder(settings.model, settings.batch_size)
    if settings.adapt:
        err.print("Adapting the model to the corpus first (RAG_ADAPT=false skips this)")
    with ExitStack() as stack:
        backend = None
        if ray_address is not None:
            from rag.distributed.build import RayBackend
            from rag.distributed.cluster import ray_session

            stack.enter_context(ray_session(ray_address))
            backend = RayBackend.from_settings(settings)
        build = partial(_build_once, args, settings, chunker, embedder, out, err, backend=backend)
        if args.watch:
            _watch(args, settings, build, err)
        else:
            build(full=args.full)
    return 0


def _build_once(
    args: argparse.Namespace,
    settings: Settings,
    chunker: Any,
    embedder: Any,
    out: Any,
    err: Any,
    *,
    full: bool = False,
    backend: Any = None,
) -> None:
    """One build, reported on stdout (a line, or JSON) with a progress bar on a terminal."""
    from contextlib import nullcontext

    from rag.index.build import build_index

    show_bar = not args.json and err.is_terminal
    bar = terminal.BuildBar(err) if show_bar else None
    with bar or nullcontext():
        manifest = build_index(
            settings.corpus_dir,
            settings.index_dir,
            embedder,
            chunker,
            progress=bar,
            adapt=settings.adapt,
            text_profile=settings.text_profile,
            full=full,
            lock_timeout=args.wait,
            backend=backend,
        )
    skipped = manifest.extra.get("skipped") or {}
    for path, why in skipped.items():
        _warn(f"skipped {path}: {why}")
    if args.json:
        # Under --watch, one build per line (JSON Lines), flushed as it happens.
        terminal.print_json(terminal.index_json(settings, manifest, built=True), lines=args.watch)
        return
    c = manifest.counts
    out.print(
        f"Indexed {c['documents']} documents from {c['sources']} source file(s) into "
        f"{c['chunks']} chunks in {manifest.build_seconds:.1f} s: {settings.index_dir}",
        soft_wrap=True,
    )
    out.print(terminal.changes_line(manifest), soft_wrap=True)


def _watch(
    args: argparse.Namespace, settings: Settings, build: Callable[..., None], err: Any
) -> None:
    """Build, then re-index after every burst of corpus changes until interrupted. A failed
    re-index is reported and the watch goes on (the previous index keeps serving)."""
    import watchfiles

    index_dir = Path(settings.index_dir).absolute()
    hidden = f".{index_dir.name}."

    def in_corpus(change: watchfiles.Change, path: str) -> bool:
        # An index kept inside the corpus folder must not trigger its own rebuilds.
        p = Path(path)
        inside = p == index_dir or index_dir in p.parents
        temp = any(q.name.startswith(hidden) for q in (p, *p.parents))
        return not inside and not temp and watchfiles.DefaultFilter()(change, path)

    changes = watchfiles.watch(
        settings.corpus_dir,
        watch_filter=in_corpus,
        debounce=args.debounce,
        step=min(50, args.debounce or 50),
        # The first (empty) yield means the watcher is running: changes made during the first
        # build are then seen, not lost.
        yield_on_timeout=True,
        rust_timeout=500,
        raise_interrupt=False,  # Ctrl-C while waiting is how a watch ends: exit 0
    )
    try:
        next(changes, None)
        build(full=args.full)
        err.print(f"Watching {settings.corpus_dir} for changes (Ctrl-C stops)", soft_wrap=True)
        for batch in changes:
            if not batch:
                continue
            err.print(f"{len(batch)} change(s) in the corpus: re-indexing", soft_wrap=True)
            try:
                build()
            except (RagError, OSError) as exc:
                _warn(f"re-indexing failed, the previous index stays: {exc}")
    except KeyboardInterrupt:
        # Ctrl-C is how a watch ends, wherever it lands; a build it cut short left no debris
        # and the previous index serving.
        pass
    err.print("Stopped watching.")


def cmd_search(args: argparse.Namespace) -> int:
    """Print the top-k passages for a query, with citations."""
    from rag.present import hits_json

    settings = _settings(args)
    k = _check_request(args.query, args.k, settings)
    retriever = _retriever(settings)
    result = retriever.search(args.query, k, mode=args.mode, filters=_filters(args))
    if args.json:
        terminal.print_json(
            {
                "query": result.query,
                "results": hits_json(result.hits, settings.public_url.rstrip("/")),
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


def cmd_ask(args: argparse.Namespace) -> int:
    """Print an extractive answer and the passages it cites."""
    from rag.present import hits_json

    settings = _settings(args)
    k = _check_request(args.question, args.k, settings)
    retriever = _retriever(settings)
    t0 = time.perf_counter()
    result = retriever.search(args.question, k, filters=_filters(args))
    answer = retriever.answer(result)
    took_ms = (time.perf_counter() - t0) * 1000
    if args.json:
        terminal.print_json(
            {
                "query": result.query,
                "answer": answer.text,
                "answered": answer.answered,
                "note": answer.note,
                "results": hits_json(result.hits, settings.public_url.rstrip("/")),
                "took_ms": round(took_ms, 2),
            }
        )
        return 0
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
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Score each ranking mode on a question set by the evidence rule."""
    from rag.evaluation import compare, load_questions

    settings = _settings(args)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if not modes or unknown:
        raise UsageError(
            f"argument --modes: unknown mode {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(MODES)}"
        )
    k = _check_k(args.k, settings)
    if args.plot is not None and args.plot.suffix.lower() != ".png":
        raise UsageError("argument --plot: the chart is written as PNG; name a .png file")
    sets = {path: load_questions(path) for path in args.questions}
    retriever = _retriever(settings)
    # compare() resolves conversation questions the way /chat does, so scores match the server.
    results = {path: compare(retriever, qs, modes, k) for path, qs in sets.items()}
    if args.plot is not None:
        from rag.evaluation import plot_reports

        plot_reports({p.stem: reps for p, reps in results.items()}, args.plot)
    if args.json:
        terminal.print_json(
            {
                "k": k,
                "reports": [r.to_dict() for r in results[args.questions[0]]],
                "sets": [
                    {"path": str(p), "reports": [r.to_dict() for r in reps]}
                    for p, reps in results.items()
                ],
            }
        )
        return 0
    out = terminal.console()
    for path, reports in results.items():
        terminal.print_eval(out, path, len(sets[path]), k, reports)
    if args.plot is not None:
        out.print(f"chart written to {args.plot}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP server in the foreground."""
    if args.workers < 1:
        raise UsageError("argument --workers: must be at least 1")
    settings = _settings(args, host=args.host, port=args.port)
    ray_address = _ray_address(args, settings)
    if args.replicas is not None and ray_address is None:
        raise UsageError("--replicas needs --ray (without Ray, --workers runs several processes)")
    if ray_address is not None and args.workers > 1:
        raise UsageError("--workers and --ray cannot be combined: use --replicas N with --ray")
    if args.replicas is not None and args.replicas < 1:
        raise UsageError("argument --replicas: must be at least 1")
    _quiet_model_loading()
    if ray_address is not None:
        from rag.distributed.serve import run_serve

        run_serve(settings, ray_address, args.replicas)
        return 0
    run_server = _optional_import("rag.serve.runner", "run_server", "the HTTP server")
    run_server(settings, settings.host, settings.port, args.workers)
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve the index to one MCP client on stdin and stdout (stdout carries only the protocol)."""
    from rag.serve.mcp_stdio import log_to_stderr, serve_stdio, stdout_to_stderr

    settings = _settings(args)
    log_to_stderr()
    with stdout_to_stderr():  # what loading prints must not reach the protocol's stream
        retriever = _retriever(settings)
    try:
        serve_stdio(retriever, settings)
    finally:
        retriever.index.close()
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    """Summarise the query log kept by the server."""
    from rag.config import get_settings

    settings = get_settings(data_dir=args.data)
    summary = _optional_import("rag.analytics.querylog", "summary", "the query log")
    data = summary(settings.data_dir, low_score=args.low_score)
    if args.json:
        terminal.print_json(data)
    else:
        format_summary = _optional_import(
            "rag.analytics.querylog", "format_summary", "the query log"
        )
        print(format_summary(data))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Report what readers asked, what went unanswered or disliked, and what was cited."""
    from rag.analytics.report import (
        build_report,
        format_report,
        index_documents,
        parse_since,
        render_html,
        write_csv,
    )
    from rag.config import get_settings
    from rag.errors import BadQuery

    settings = get_settings(data_dir=args.data, index_dir=args.index)
    try:
        since = parse_since(args.since) if args.since is not None else None
    except BadQuery as exc:
        raise UsageError(f"argument --since: {exc}") from None
    documents, missing = None, None
    try:
        documents = index_documents(settings.index_dir)
    except (RagError, OSError) as exc:
        # The rest of the report needs only the log: say what is missing and go on.
        missing = " ".join(str(exc).split())
        _warn(f"no list of documents, so no never-cited section: {missing}")
    report = build_report(settings.data_dir, documents, since=since, documents_missing=missing)
    if args.html is not None:
        args.html.write_text(render_html(report), encoding="utf-8")
        print(f"{PROG}: HTML report written to {args.html}", file=sys.stderr)
    if args.csv is not None:
        write_csv(report, args.csv)
        print(f"{PROG}: CSV report written to {args.csv}", file=sys.stderr)
    if args.json:
        terminal.print_json(report)
    else:
        print(format_report(report))
    return 0


def cmd_documents(args: argparse.Namespace) -> int:
    """List the indexed documents with their section and chunk counts."""
    from rag.index.load import load_index

    settings = _settings(args)
    # Listing needs no embedding model, so an index built by another model is still readable.
    index = load_index(settings.index_dir)
    try:
        counts = index.chunk_counts()
        docs = [
            {
                "id": d.id,
                "title": d.title,
                "source": d.source,
                "sections": len(d.outline),
                "chunks": counts.get(d.id, 0),
            }
            for d in index.documents()
        ]
        model = index.manifest.model
    finally:
        index.close()
    if args.json:
        terminal.print_json(
            {"index_dir": str(settings.index_dir), "model": model, "documents": docs}
        )
        return 0
    terminal.print_documents(terminal.console(), docs, settings.index_dir, model)
    return 0


# --------------------------------------------------------------------------- helpers


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    """Settings from the environment, overridden by whichever flags were given."""
    from rag.config import get_settings

    return get_settings(
        corpus_dir=getattr(args, "corpus", None),
        index_dir=getattr(args, "index", None),
        model=getattr(args, "model", None),
        **extra,
    )


def _ray_address(args: argparse.Namespace, settings: Settings) -> str | None:
    """The Ray cluster to use ("local", "auto" or an address), or None for no Ray; fails with
    the install hint, before anything slow, when Ray is not installed."""
    if args.ray is None and not settings.ray_address:
        return None
    from rag.distributed.cluster import RayMissing, require_ray

    try:
        require_ray()
    except RayMissing as exc:
        raise UsageError(str(exc)) from None
    return args.ray or settings.ray_address or "local"


def _check_k(k: int | None, settings: Settings) -> int:
    """k, defaulted from the settings and checked before anything slow is loaded."""
    k = settings.k if k is None else k
    if not 1 <= k <= settings.max_k:
        raise UsageError(f"argument -k: must be from 1 to {settings.max_k}, not {k}")
    return k


def _check_request(query: str, k: int | None, settings: Settings) -> int:
    """Reject an empty or oversized query and a bad k early; returns k."""
    if not query.strip():
        raise UsageError("the query must not be empty")
    if len(query.strip()) > settings.max_query_chars:
        raise UsageError(f"the query is longer than {settings.max_query_chars} characters")
    return _check_k(k, settings)


def _retriever(settings: Settings) -> Retriever:
    """Load the index and model, warning on stderr when the corpus changed since the build."""
    from rag.search.retriever import Retriever

    _quiet_model_loading()
    retriever = Retriever.from_settings(settings)
    corpus = Path(settings.corpus_dir)
    # Without the corpus at hand (an index copied elsewhere) freshness cannot be judged.
    if corpus.is_dir():
        stale = retriever.index.stale_sources(corpus)
        if stale:
            shown = ", ".join(stale[:3]) + (f" and {len(stale) - 3} more" if len(stale) > 3 else "")
            _warn(
                f"the index is stale: {len(stale)} corpus file(s) changed since it was built "
                f"({shown}); run `rag index` to rebuild it"
            )
    return retriever


def _filter_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--doc", metavar="ID", action="append", help="only this document (repeatable)")
    p.add_argument(
        "--tag", metavar="TAG", action="append", help="only documents with this tag (repeatable)"
    )
    p.add_argument("--source", metavar="PREFIX", help="only source files under this path")


def _filters(args: argparse.Namespace) -> Any:
    from rag.search import Filters

    return Filters(tuple(args.doc or ()), tuple(args.tag or ()), args.source or None)


def _non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    # float() also accepts "nan" and "inf", which no score threshold can sensibly be.
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _optional_import(module: str, name: str, what: str) -> Callable[..., Any]:
    """A function from a module that may be absent in a partial installation."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise RagError(f"{what} is not available: module {module} is missing") from exc


def _quiet_model_loading() -> None:
    """Silence the weight-loading progress bar and a rename warning that users cannot act on."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings(
        "ignore", message=".*get_sentence_embedding_dimension.*", category=FutureWarning
    )


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _fail(message: str, code: int) -> int:
    # One line, so the message is never lost in a wrapped block or a traceback.
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return code
