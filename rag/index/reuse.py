"""What a rebuild may take from the index it replaces: the vectors of every passage it already
embedded, found by a key that hashes exactly what was embedded, and the report of what changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import RagError
from rag.index.load import load_index
from rag.index.manifest import BuildSpec, Manifest
from rag.index.store import Index
from rag.ingest.chunking import Chunk


@dataclass
class Reuse:
    """What a rebuild may take from the index it replaces."""

    index: Index
    rows_by_key: dict[str, int]
    keys_by_doc: dict[str, list[str]]
    chunk_ids: set[str]


def chunk_key(chunk: Chunk) -> str:
    """Hash of everything a passage's vectors depend on, its embedded text and its sentences'
    (both embedded by the same model), so equal keys mean equal vectors."""
    data = "\0".join([chunk.embedding_text(), *chunk.sentence_units()])
    return hashlib.sha256(data.encode()).hexdigest()[:32]


def reusable(
    index_dir: Path, spec: BuildSpec, sentence_index: bool, opened: Index | None
) -> tuple[Reuse | None, str | None]:
    """The previous index (``opened`` if it is still the one in place), when its vectors can
    be reused; else None and why not."""
    try:
        index = still_in_place(opened, index_dir) or load_index(index_dir)
    except RagError as exc:
        return (
            None,
            "no previous index" if not index_dir.exists() else f"previous index unusable: {exc}",
        )
    # BM25 is rebuilt from the passages every time: its settings decide nothing about vectors.
    why = next((why for name, why in index.manifest.spec.differences(spec) if name != "bm25"), None)
    if why is None and sentence_index and index.sentences is None:
        why = "the previous index has no sentence vectors"
    if why is None:
        try:
            rows_by_key, keys_by_doc, chunk_ids = index.chunk_keys()
        except RagError as exc:
            why = f"previous index unusable: {exc}"
    if why is not None:
        index.close()
        return None, why
    return Reuse(index, rows_by_key, keys_by_doc, chunk_ids), None


def still_in_place(opened: Index | None, index_dir: Path) -> Index | None:
    """``opened`` if the index at ``index_dir`` is still the build it was opened from; else
    None, and it is closed."""
    if opened is None:
        return None
    try:
        if Manifest.read(index_dir).build_id == opened.manifest.build_id:
            return opened
    except RagError:
        pass
    opened.close()
    return None


def stored(faiss_index: Any, rows: np.ndarray) -> np.ndarray:
    """Vectors stored in a FAISS index, by row (flat and HNSW keep them as they were added)."""
    import faiss

    inner = faiss.downcast_index(faiss_index)
    if isinstance(inner, faiss.IndexIVF):
        inner.make_direct_map()
    out = np.empty((len(rows), inner.d), dtype=np.float32)
    for start in range(0, len(rows), 65_536):
        part = np.ascontiguousarray(rows[start : start + 65_536], dtype=np.int64)
        out[start : start + len(part)] = inner.reconstruct_batch(part)
    return out


def changes(
    chunks: Sequence[Chunk],
    keys: Sequence[str],
    reused: int,
    reuse: Reuse | None,
    why_full: str | None,
) -> dict[str, Any]:
    """What this build added, changed, removed and reused, by document and by passage."""
    new_keys: dict[str, list[str]] = {}
    for chunk, key in zip(chunks, keys, strict=True):
        new_keys.setdefault(chunk.doc_id, []).append(key)
    old_keys = reuse.keys_by_doc if reuse is not None else {}
    old_ids = reuse.chunk_ids if reuse is not None else set()
    new_ids = {c.id for c in chunks}
    old_rows = reuse.rows_by_key if reuse is not None else {}
    embedded = [c for c, k in zip(chunks, keys, strict=True) if k not in old_rows]
    # Ids hash the heading path and text, so an id seen before with new vectors is a passage
    # whose kind or file type changed.
    embedded_known = sum(1 for c in embedded if c.id in old_ids)
    same = [d for d in new_keys if old_keys.get(d) == new_keys[d]]
    return {
        "incremental": reuse is not None,
        "full_rebuild_reason": why_full,
        "documents": {
            "added": sum(1 for d in new_keys if d not in old_keys),
            "changed": sum(1 for d in new_keys if d in old_keys and old_keys[d] != new_keys[d]),
            "removed": sum(1 for d in old_keys if d not in new_keys),
            "reused": len(same),
        },
        "chunks": {
            "added": len(embedded) - embedded_known,
            "changed": embedded_known,
            "removed": len(old_ids - new_ids),
            "reused": reused,
        },
    }
