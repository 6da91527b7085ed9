"""``rag index``: build the index once, only when stale, or on every change to the corpus."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rag import terminal
from rag.cli.common import (
    FiniteFloat,
    base_settings,
    catalog,
    chosen_collection,
    collection_settings,
    index_options,
    json_option,
    ray_address,
    ray_option,
    warn,
)

if TYPE_CHECKING:
    from rich.console import Console

    from rag.config import Settings
    from rag.index.manifest import Manifest
    from rag.index.store import Index
    from rag.index.watch import WatchEvent
    from rag.ingest.chunking import ChunkerSettings


def _chunker(ctx: click.Context, param: click.Parameter, value: int | None) -> Any:
    """--max-chars as the chunker settings it asks for; the chunker owns the bounds."""
    if value is None:
        return None
    from rag.ingest.chunking import ChunkerSettings

    try:
        return ChunkerSettings(max_chars=value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@click.command("index", help="build the index from the corpus")
@index_options
@json_option
@click.option(
    "--if-stale",
    is_flag=True,
    help="skip the build when the index exists, matches the model and the corpus is unchanged",
)
@click.option(
    "--max-chars",
    "chunker",
    type=int,
    callback=_chunker,
    metavar="N",
    help="longest passage in characters",
)
@click.option(
    "--full",
    is_flag=True,
    help="re-embed every passage instead of reusing the vectors of unchanged ones",
)
@click.option(
    "--wait",
    type=FiniteFloat(min=0),
    default=0.0,
    metavar="SECONDS",
    help="wait this long for another build of the same index to finish (default: fail)",
)
@click.option(
    "--watch",
    is_flag=True,
    help="stay running and re-index whenever the corpus changes (Ctrl-C stops)",
)
@click.option(
    "--debounce",
    type=click.IntRange(0, 600_000),
    default=1000,
    metavar="MS",
    help="with --watch: wait for this many quiet milliseconds before re-indexing",
)
@ray_option(
    "parse and embed on Ray (the [ray] extra): 'auto' joins a running cluster, no value "
    "starts a local one (RAG_RAY_ADDRESS)"
)
def index_command(
    index_dir: Path | None,
    corpus_dir: Path | None,
    model: str | None,
    as_json: bool,
    if_stale: bool,
    chunker: ChunkerSettings | None,
    full: bool,
    wait: float,
    watch: bool,
    debounce: int,
    ray: str | None,
) -> int:
    """Build the index (incrementally), once, only when stale, or on every corpus change;
    with a config file and no --collection, every collection's index in turn."""
    if watch and if_stale:
        raise click.UsageError(
            "--watch and --if-stale cannot be combined: --watch builds when stale"
        )
    base = base_settings(index_dir=index_dir, corpus_dir=corpus_dir, model=model)
    if base.config is None or chosen_collection() is not None:
        config = collection_settings(base, chosen_collection())
        if base.config is not None:
            # Its folder sources linked into its corpus (rag.sources.layout); `rag sync` fetches.
            catalog(base).get(chosen_collection()).layout.assemble()
        return _index(config, as_json, if_stale, chunker, full, wait, watch, debounce, ray)
    every = catalog(base)
    if watch and len(every.collections) > 1:
        raise click.UsageError("--watch follows one collection: name it with --collection")
    for collection in every:
        terminal.console(stderr=True).print(f"Collection {collection.name}:", soft_wrap=True)
        collection.layout.assemble()
        _index(collection.settings, as_json, if_stale, chunker, full, wait, watch, debounce, ray)
    return 0


def _index(
    config: Settings,
    as_json: bool,
    if_stale: bool,
    chunker: ChunkerSettings | None,
    full: bool,
    wait: float,
    watch: bool,
    debounce: int,
    ray: str | None,
) -> int:
    """One collection's build, as ``rag index`` describes it."""
    from rag.errors import CorpusEmpty

    address = ray_address(ray, config)
    if address is not None and config.adapt:
        raise click.UsageError("--ray cannot adapt the model (RAG_ADAPT): adapt with a local build")
    out = terminal.console()
    # The index in place, opened once: judged for freshness, then handed to the build.
    previous, reason = stale_check(config, chunker) if if_stale else (None, None)
    if if_stale and reason is None:
        if previous is not None:
            previous.close()
        _print_up_to_date(config, as_json, out)
        return 0
    if previous is not None and not Path(config.corpus_dir).is_dir():
        previous.close()
    if not Path(config.corpus_dir).is_dir():
        # Say so before spending seconds on loading the model.
        raise CorpusEmpty(f"corpus folder {config.corpus_dir} does not exist")
    err = terminal.console(stderr=True)
    if reason:
        err.print(f"Rebuilding: {reason}", soft_wrap=True)
    err.print(
        f"Indexing {config.corpus_dir} into {config.index_dir} with {config.model}",
        soft_wrap=True,
    )
    with ExitStack() as stack:
        if watch:
            stack.enter_context(_until_interrupted(err))
        embedder = _load_embedder(config)
        if config.adapt:
            err.print("Adapting the model to the corpus first (RAG_ADAPT=false skips this)")
        backend = stack.enter_context(_ray_backend(address, config)) if address else None
        build = partial(
            build_once,
            config,
            chunker,
            embedder,
            wait=wait,
            backend=backend,
            as_json=as_json,
            lines=watch,
            out=out,
            bar_to=err if not as_json and err.is_terminal else None,
        )
        if watch:
            if previous is not None:
                previous.close()
            _watch(config, build, full, debounce, err)
        else:
            build(full, previous=previous)
    return 0


def stale_check(
    config: Settings, chunker: ChunkerSettings | None
) -> tuple[Index | None, str | None]:
    """The library call behind ``--if-stale``: the index in place (if it loads) and why it
    must be rebuilt, or None when it is fresh."""
    from rag.index.freshness import open_previous, why_stale
    from rag.ingest.chunking import ChunkerSettings

    previous, why = open_previous(config)
    if previous is None:
        return None, why
    try:
        return previous, why_stale(previous, config, chunker or ChunkerSettings())
    except BaseException:
        previous.close()
        raise


def build_once(
    config: Settings,
    chunker: ChunkerSettings | None,
    embedder: Any,
    full: bool = False,
    *,
    previous: Index | None = None,
    wait: float,
    backend: Any,
    as_json: bool,
    lines: bool,
    out: Console,
    bar_to: Console | None,
) -> Manifest:
    """The library call behind one build, reported on stdout as a line or JSON."""
    # The bar goes to ``bar_to`` (a terminal's stderr); under --watch, ``lines`` prints one
    # JSON line per build, flushed as it happens.
    from rag.index.build import build_index

    bar = terminal.BuildBar(bar_to) if bar_to is not None else None
    with bar or nullcontext():
        manifest = build_index(
            config.corpus_dir,
            config.index_dir,
            embedder,
            chunker,
            progress=bar,
            adapt=config.adapt,
            text_profile=config.text_profile,
            full=full,
            lock_timeout=wait,
            backend=backend,
            previous=previous,
        )
    for path, why in (manifest.extra.get("skipped") or {}).items():
        warn(f"skipped {path}: {why}")
    if as_json:
        terminal.print_json(terminal.index_json(config, manifest, built=True), lines=lines)
        return manifest
    c = manifest.counts
    out.print(
        f"Indexed {c['documents']} documents from {c['sources']} source file(s) into "
        f"{c['chunks']} chunks in {manifest.build_seconds:.1f} s: {config.index_dir}",
        soft_wrap=True,
    )
    out.print(terminal.changes_line(manifest), soft_wrap=True)
    return manifest


def _watch(
    config: Settings, build: Callable[[bool], Manifest], full: bool, debounce: int, err: Console
) -> None:
    """Build, then re-index after each burst of corpus changes, reporting as it goes."""
    from rag.index.watch import watch_corpus

    def report(event: WatchEvent) -> None:
        if event.kind == "watching":
            err.print(f"Watching {config.corpus_dir} for changes (Ctrl-C stops)", soft_wrap=True)
        elif event.kind == "changed":
            err.print(
                f"{len(event.paths)} file(s) changed in the corpus: re-indexing after "
                f"{debounce} ms without changes",
                soft_wrap=True,
            )
        elif event.kind == "rebuilding":
            err.print(f"Re-indexing: {len(event.paths)} file(s) changed", soft_wrap=True)
        elif event.kind == "failed":
            warn(f"re-indexing failed, the previous index stays: {event.error}")

    watch_corpus(
        config.corpus_dir, config.index_dir, build, debounce_ms=debounce, full=full, on_event=report
    )


@contextmanager
def _until_interrupted(err: Console) -> Iterator[None]:
    """Ctrl-C (or SIGTERM) is how a watch ends, wherever it lands: exit 0 and say so."""
    from rag.runtime import interruptible

    # Installed here, not inherited: a process started with SIGINT ignored must stop too.
    with interruptible(signal.SIGTERM):
        try:
            yield
        except KeyboardInterrupt:
            pass  # a build it cut short left no temporary directory, and the previous index
        err.print("Stopped watching.")


def _print_up_to_date(config: Settings, as_json: bool, out: Console) -> None:
    from rag.index.manifest import Manifest

    manifest = Manifest.read(config.index_dir)
    if as_json:
        terminal.print_json(terminal.index_json(config, manifest, built=False))
        return
    out.print(
        f"Index at {config.index_dir} is up to date "
        f"({manifest.counts['documents']} documents, {manifest.counts['chunks']} chunks, "
        f"built {manifest.built_at}): nothing to do.",
        soft_wrap=True,
    )


def _load_embedder(config: Settings) -> Any:
    from rag.models.embedder import load_embedder

    return load_embedder(config.model, config.batch_size)


@contextmanager
def _ray_backend(address: str, config: Settings) -> Iterator[Any]:
    """A Ray session for the build, yielding the backend that parses and embeds on it."""
    from rag.distributed.build import RayBackend
    from rag.distributed.cluster import ray_session

    with ray_session(address):
        yield RayBackend.from_settings(config)
