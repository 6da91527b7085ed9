"""``rag sync``: fetch every source of a collection (or of each), then re-index what changed."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import click

from rag import terminal
from rag.cli.common import (
    base_settings,
    catalog,
    chosen_collection,
    collection_options,
    json_option,
)

if TYPE_CHECKING:
    from rich.console import Console

    from rag.upkeep import CollectionSync


@click.command(
    "sync",
    help="fetch every source of a collection (web sites by their sitemap or a crawl, folders) "
    "and re-index what changed; with a config file and no --collection, every collection",
)
@collection_options
@json_option
def sync_command(as_json: bool) -> int:
    """Sync and re-index; exit 2 when a source or the re-index failed (the previous index
    serves on)."""
    from rag.collections import DEFAULT
    from rag.errors import RagError
    from rag.upkeep import Models, build_collection, sync_collection

    base = base_settings()
    name = chosen_collection()
    if base.config is None and name not in (None, DEFAULT):
        raise click.UsageError(
            "--collection needs a config file (--config FILE or RAG_CONFIG); without one the "
            f"only collection is {DEFAULT!r}"
        )
    every = catalog(base)
    chosen = [every.get(name)] if name is not None else list(every)
    models = Models()  # loaded only if a build is needed, once for every collection
    out, err = terminal.console(), terminal.console(stderr=True)
    outcomes = []
    for collection in chosen:
        if not as_json:
            err.print(f"Syncing collection {collection.name}...", soft_wrap=True)
        outcome = sync_collection(collection, partial(build_collection, models=models))
        outcomes.append(outcome)
        if not as_json:
            _print(out, outcome)
    if as_json:
        terminal.print_json({"collections": [o.model_dump(mode="json") for o in outcomes]})
    problems = [p for o in outcomes for p in _problems(o)]
    if problems:
        raise RagError("; ".join(problems) + " (what was served before is still served)")
    return 0


def _problems(outcome: CollectionSync) -> list[str]:
    """One phrase per failed source or re-index of a collection."""
    found = [
        f"collection {outcome.collection!r}: source {s.name} failed: {s.error}"
        for s in outcome.sources
        if s.status == "failed"
    ]
    if outcome.index is not None and outcome.index.status == "failed":
        found.append(f"collection {outcome.collection!r}: re-index failed: {outcome.index.error}")
    return found


def _print(out: Console, outcome: CollectionSync) -> None:
    """A collection's sync as lines: each source's counts, then the index."""
    for s in outcome.sources:
        head = f"{s.name} ({s.type} {s.source}): {s.status} in {s.seconds:.1f} s"
        if s.status == "failed":
            out.print(f"{head}: {s.error}", soft_wrap=True)
            continue
        out.print(
            f"{head}: {s.fetched} fetched, {s.unchanged} unchanged, {s.added} added, "
            f"{s.changed} changed, {s.removed} removed, {len(s.skipped_robots)} skipped by "
            f"robots.txt, {len(s.errors)} error(s); {s.documents} documents",
            soft_wrap=True,
        )
        for url in s.skipped_robots:
            out.print(f"  robots.txt disallows {url}", soft_wrap=True)
        for url, why in s.errors.items():
            out.print(f"  error: {url}: {why}", soft_wrap=True)
    for gone in outcome.removed_sources:
        out.print(f"{gone}: no longer configured, its documents removed", soft_wrap=True)
    index = outcome.index
    if index is None:
        return
    if index.status == "unchanged":
        out.print("Index: unchanged (nothing to re-index)", soft_wrap=True)
    elif index.status == "failed":
        out.print(f"Index: re-index failed, the previous one stays: {index.error}", soft_wrap=True)
    else:
        docs: Any = index.changes.get("documents") or {}
        out.print(
            f"Index: rebuilt in {index.seconds:.1f} s ({index.documents} documents; "
            f"{docs.get('added', 0)} added, {docs.get('changed', 0)} changed, "
            f"{docs.get('removed', 0)} removed)",
            soft_wrap=True,
        )
