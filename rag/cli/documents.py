"""``rag documents``: the indexed documents with their section and passage counts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rag import terminal
from rag.cli.common import index_options, json_option, settings

if TYPE_CHECKING:
    from rag.config import Settings


@click.command("documents", help="list the indexed documents")
@index_options
@json_option
def documents_command(
    index_dir: Path | None, corpus_dir: Path | None, model: str | None, as_json: bool
) -> int:
    """List the indexed documents with their section and chunk counts."""
    config = settings(index_dir=index_dir, corpus_dir=corpus_dir, model=model)
    docs, model_id = list_documents(config)
    if as_json:
        terminal.print_json(
            {"index_dir": str(config.index_dir), "model": model_id, "documents": docs}
        )
        return 0
    terminal.print_documents(terminal.console(), docs, config.index_dir, model_id)
    return 0


def list_documents(config: Settings) -> tuple[list[dict[str, Any]], str]:
    """The library call behind ``rag documents``: one row per document, and the index's model."""
    from rag.index.load import load_index

    # Listing needs no embedding model, so an index built by another model is still readable.
    index = load_index(config.index_dir)
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
        return docs, index.manifest.model
    finally:
        index.close()
