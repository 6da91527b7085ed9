"""Build a collection's index from where it stands: the model loaded once per process, the
build lock waited for, and a cheap check of whether anything changed."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.config import Settings
from rag.errors import RagError
from rag.index.manifest import Manifest, corpus_hashes

if TYPE_CHECKING:
    from rag.models.embedder import Embedder

# A build started by the server or `rag sync` waits this long for one already writing the
# index (a `rag index` from the shell, another worker's upload) before it fails with IndexBusy.
BUILD_WAIT_S = 600.0


class Models:
    """The embedding model builds use, loaded on first use and kept for the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, int], Embedder] = {}

    def get(self, settings: Settings) -> Embedder:
        """The model ``settings`` name, loaded once (threads asking at once wait for it)."""
        # sentence-transformers, as `rag index` builds: vectors are reused across builds by the
        # hash of the text embedded, so every build must embed exactly as the others do, and
        # the ONNX export agrees with torch only to rounding. The build exports ONNX from it.
        from rag.models import embedder

        key = (settings.model, settings.batch_size)
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = embedder.load_embedder(settings.model, settings.batch_size)
            return self._loaded[key]


def build_collection(
    settings: Settings, models: Models, *, wait_s: float = BUILD_WAIT_S, progress: Any = None
) -> Manifest:
    """Re-index a collection's corpus incrementally; the previous index serves until the
    swap, and stays if the build fails."""
    from rag.index.build import build_index

    return build_index(
        settings.corpus_dir,
        settings.index_dir,
        models.get(settings),
        progress=progress,
        adapt=settings.adapt,
        text_profile=settings.text_profile,
        lock_timeout=wait_s,
    )


def why_build(settings: Settings) -> str | None:
    """Why the index does not hold the corpus as it is now, or None: its manifest's file
    hashes against the corpus's (a change of model or chunker is `rag index`'s to make)."""
    try:
        manifest = Manifest.read(Path(settings.index_dir))
    except RagError:
        return "no index to serve yet"
    if manifest.sources != corpus_hashes(Path(settings.corpus_dir)):
        return "the documents changed since the last build"
    return None
