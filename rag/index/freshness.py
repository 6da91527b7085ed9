"""Whether an index must be rebuilt for the current settings and corpus, and why."""

from __future__ import annotations

from pathlib import Path

from rag.config import DEFAULT_MODEL, Settings
from rag.errors import IndexIncompatible, IndexNotFound
from rag.index.lexical import BM25_PARAMS
from rag.index.load import load_index
from rag.index.manifest import BuildSpec
from rag.index.store import Index
from rag.ingest.chunking import ChunkerSettings
from rag.ingest.loader import PARSER_VERSION
from rag.models.adaptation import AdaptSettings
from rag.models.embedder import resolve_model
from rag.models.query import check_onnx_export


def wanted_spec(settings: Settings, chunker: ChunkerSettings, *, adaptable: bool) -> BuildSpec:
    """The build inputs the settings ask for (the model's dimension and adapted id unknown).

    ``adaptable``: whether the model is one that RAG_ADAPT adapts (a sentence-transformers
    model); any other is built without adaptation whatever the setting says.
    """
    return BuildSpec(
        model=resolve_model(settings.model)[0],
        chunker=chunker.to_dict(),
        parser_version=PARSER_VERSION,
        text_profile=settings.text_profile,
        bm25=dict(BM25_PARAMS),
        adaptation=AdaptSettings().to_dict() if settings.adapt and adaptable else None,
    )


def why_stale(index: Index, settings: Settings, chunker: ChunkerSettings) -> str | None:
    """Why this loaded index is not what ``settings`` would build now, or None."""
    manifest = index.manifest
    # Only sentence-transformers models are adapted; their indexes carry an ONNX export.
    adaptable = manifest.model == DEFAULT_MODEL or "onnx" in manifest.extra
    differences = manifest.spec.differences(wanted_spec(settings, chunker, adaptable=adaptable))
    if differences:
        return differences[0][1]
    stale = index.stale_sources(Path(settings.corpus_dir))
    if stale:
        return f"{len(stale)} corpus file(s) changed: {', '.join(stale[:5])}"
    # Indexes from before the ONNX export would keep querying through torch (slow start).
    if (
        manifest.model == DEFAULT_MODEL
        and "onnx" not in manifest.extra
        and settings.query_backend != "torch"
    ):
        return "the index has no ONNX export of its model for fast queries"
    # Last, as it costs a model load: a damaged export would otherwise only fail queries.
    try:
        check_onnx_export(settings, index)
    except IndexIncompatible as exc:
        return str(exc)
    return None


def open_previous(settings: Settings) -> tuple[Index | None, str | None]:
    """The index at ``settings.index_dir`` if it loads for the configured model, else None and
    why not (missing, another model or format, damaged)."""
    try:
        return load_index(settings.index_dir, settings.model), None
    except IndexNotFound:
        return None, f"no index at {settings.index_dir} yet"
    except IndexIncompatible as exc:
        return None, str(exc)


def why_rebuild(settings: Settings, chunker: ChunkerSettings) -> str | None:
    """Why the index must be (re)built, or None when it is fresh for these settings."""
    index, why = open_previous(settings)
    if index is None:
        return why
    try:
        return why_stale(index, settings, chunker)
    finally:
        index.close()
