"""Whether an index must be rebuilt for the current settings and corpus, and why."""

from __future__ import annotations

from typing import Any

from rag.config import DEFAULT_MODEL, Settings
from rag.errors import IndexIncompatible, IndexNotFound
from rag.index.store import load_index
from rag.ingest.chunking import ChunkerSettings
from rag.ingest.loader import PARSER_VERSION
from rag.models.adaptation import AdaptSettings
from rag.models.query import check_onnx_export


def why_rebuild(settings: Settings, chunker: ChunkerSettings) -> str | None:
    """Why the index must be (re)built, or None when it is fresh for these settings."""
    try:
        index = load_index(settings.index_dir, settings.model)
    except IndexNotFound:
        return f"no index at {settings.index_dir} yet"
    except IndexIncompatible as exc:
        return str(exc)
    try:
        manifest = index.manifest
        if manifest.parser_version != PARSER_VERSION:
            return "the document parser changed since the build"
        if manifest.text_profile != settings.text_profile:
            return (
                f"the index read plain text with the {manifest.text_profile!r} profile, "
                f"RAG_TEXT_PROFILE is {settings.text_profile!r}"
            )
        if manifest.chunker != chunker.to_dict():
            return "the chunker settings differ from the build's"
        stale = index.stale_sources(settings.corpus_dir)
        if stale:
            return f"{len(stale)} corpus file(s) changed: {', '.join(stale[:5])}"
        reason = _adaptation_differs(settings, manifest)
        if reason:
            return reason
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
    finally:
        index.close()
    return None


def _adaptation_differs(settings: Settings, manifest: Any) -> str | None:
    """Why the index's corpus adaptation is not what the settings ask for, if it is not."""
    adapted = manifest.extra.get("adapted")
    if not settings.adapt:
        return "the index is adapted to the corpus but RAG_ADAPT is false" if adapted else None
    # Only sentence-transformers models are adapted; those indexes carry an ONNX export.
    if not adapted:
        if manifest.model == DEFAULT_MODEL or "onnx" in manifest.extra:
            return "the index was built without adapting the model to the corpus"
        return None
    if adapted.get("settings") != AdaptSettings().to_dict():
        return "the corpus adaptation settings changed since the build"
    return None
