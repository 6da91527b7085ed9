"""Which embedder queries an index: its ONNX export when it has one, else its own model.

An index may hold the model it must be queried with: a corpus-adapted copy (rag.models.adaptation)
and an ONNX export of it (rag.models.onnx), which lets a query process skip torch entirely.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag.config import DEFAULT_MODEL
from rag.errors import IndexDamaged, IndexIncompatible, RagError
from rag.models.embedder import Embedder, SentenceTransformerEmbedder, load_embedder
from rag.models.onnx import MODEL, ExportDamaged, OnnxEmbedder, check_export_files

_lock = threading.Lock()

QUERY_BACKENDS = ("auto", "onnx", "torch")


# Models kept inside an index (its ONNX export, its adapted weights), one per directory.
_index_models: dict[str, tuple[tuple[int, int], Embedder]] = {}


def load_query_embedder(settings: Any, index: Any) -> Embedder:
    """The embedder for queries against ``index``: its ONNX export when allowed, else torch.

    ``settings`` is anything with ``model``, ``batch_size`` and ``query_backend`` attributes
    (Settings, an argparse namespace); ``query_backend`` is "auto" (ONNX when the index has an
    export of its model, else sentence-transformers), "onnx" (required) or "torch".
    """
    backend = str(getattr(settings, "query_backend", "auto") or "auto").lower()
    if backend not in QUERY_BACKENDS:
        raise RagError(
            f"invalid setting RAG_QUERY_BACKEND={backend!r}: use {', '.join(QUERY_BACKENDS)}"
        )
    model = getattr(settings, "model", None) or DEFAULT_MODEL
    batch_size = int(getattr(settings, "batch_size", 64) or 64)
    if backend != "torch":
        onnx_dir = onnx_dir_of(index)
        if onnx_dir is not None:
            return _open_onnx(index, onnx_dir)
        if backend == "onnx":
            raise IndexIncompatible(
                f"the index at {index.path} has no ONNX export of its model: rebuild it with "
                "`rag index`, or set RAG_QUERY_BACKEND=torch"
            )
    adapted = index.manifest.extra.get("adapted")
    if adapted:
        path = Path(index.path) / adapted.get("path", "model")
        if not path.is_dir():
            raise IndexIncompatible(
                f"the index at {index.path} lacks its corpus-adapted model: rebuild it with "
                "`rag index`"
            )
        weights = next(path.glob("*.safetensors"), None) or path / "config.json"
        return _load_index_model(
            path,
            weights,
            lambda: SentenceTransformerEmbedder(
                str(path), batch_size, model_id=adapted["model_id"]
            ),
        )
    return load_embedder(model, batch_size)


def onnx_dir_of(index: Any) -> Path | None:
    """The index's ONNX export of the model it queries with, if it has one; IndexDamaged when
    the manifest records one that is missing or unreadable."""
    info = index.manifest.extra.get("onnx") or {}
    if not info or info.get("model_id") != index.manifest.query_model:
        return None
    path = Path(index.path) / str(info.get("path", "onnx"))
    try:
        check_export_files(path)
    except ExportDamaged as exc:
        raise _damaged(index, path, exc) from exc
    return path


def check_onnx_export(settings: Any, index: Any) -> None:
    """Load the export queries would use, as they would (and kept for them), so that damage is
    found now; raises IndexDamaged. Nothing to check for the torch backend or without one."""
    if str(getattr(settings, "query_backend", "auto") or "auto").lower() == "torch":
        return
    onnx_dir = onnx_dir_of(index)
    if onnx_dir is not None:
        _open_onnx(index, onnx_dir)


def _open_onnx(index: Any, directory: Path) -> Embedder:
    try:
        return _load_onnx(directory)
    except ExportDamaged as exc:
        raise _damaged(index, directory, exc) from exc


def _damaged(index: Any, directory: Path, exc: ExportDamaged) -> IndexDamaged:
    """The index's IndexDamaged for a bad file of its export, named from the index's folder."""
    try:
        folder = directory.relative_to(index.path).as_posix()
    except ValueError:  # a manifest naming a folder outside the index
        folder = directory.name
    file = f"{folder}/{exc.file}" if exc.file else f"{folder}/"
    return IndexDamaged(index.path, file, exc.problem, exc.detail)


def _load_onnx(directory: Path) -> Embedder:
    return _load_index_model(directory, directory / MODEL, lambda: OnnxEmbedder(directory))


def _load_index_model(directory: Path, weights: Path, load: Callable[[], Embedder]) -> Embedder:
    # One per directory, checked against the weights file's identity: a rebuild swaps new weights
    # in at the same path, and the old model should not be kept alive beside it.
    st = weights.stat()
    key, stamp = str(directory.resolve()), (st.st_ino, st.st_mtime_ns)
    with _lock:
        cached = _index_models.get(key)
        if cached is None or cached[0] != stamp:
            cached = _index_models[key] = (stamp, load())
        return cached[1]
