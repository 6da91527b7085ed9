"""One loaded index as the server serves it: a snapshot taken whole by every request.

A ``Snapshot`` holds the retriever, its micro-batcher and what the handlers read once per
index (the document list), with the index's build id and
when it was loaded. Nothing in it changes: a new index is a new snapshot, swapped in whole by
``Services.install`` (rag.serve.services), so a request that took one snapshot encodes,
searches, answers and logs against one index even when a swap happens meanwhile.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.errors import RagError
from rag.index.manifest import Manifest, corpus_fingerprint
from rag.search.retriever import Retriever
from rag.serve.batching import MicroBatcher

log = logging.getLogger(__name__)

# Loads retried when the directory is swapped again while one is being read.
LOAD_ATTEMPTS = 3
# A file changed this close to a staleness check may change again with the same size and
# mtime (timestamps are 1-10 ms coarse on Linux, 2 s on FAT), so such a check is not reused.
RACY_STAT_NS = 2_000_000_000


@dataclass(frozen=True, eq=False)
class Snapshot:
    """A loaded index and everything derived from it; replaced whole, never changed."""

    retriever: Retriever
    batcher: MicroBatcher
    documents: tuple[dict[str, Any], ...]
    # The manifest's build id (its build time for an index built before build ids).
    build_id: str
    loaded_at: str
    # Whether closing the snapshot closes the index too: an injected retriever is its owner's.
    owned: bool = True
    # The last trustworthy staleness check: (corpus fingerprint, stale sources). A memo, not
    # state: kept with the index it is about, so that it goes with it.
    _stale: list[tuple[tuple[tuple[str, int, int], ...], tuple[str, ...]]] = field(
        default_factory=list, init=False, repr=False
    )
    # One hashing at a time: concurrent probes wait for it and reuse its result.
    _stale_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def of(cls, retriever: Retriever, settings: Settings, *, owned: bool = True) -> Snapshot:
        """A snapshot of a loaded retriever; reads the document list (blocking: call from a
        thread; damaged metadata raises IndexDamaged)."""
        single_threaded_kernels()
        index = retriever.index
        counts = index.chunk_counts()
        docs = index.documents()
        documents = tuple(
            {"id": d.id, "title": d.title, "source": d.source, "sections": d.outline,
             "chunks": counts.get(d.id, 0)}
            for d in docs
        )  # fmt: skip
        # Built now, in the loading thread, not by the first queries (seconds at 100k documents).
        retriever.warm()
        batcher = MicroBatcher(
            retriever.encode, max_wait_ms=settings.batch_wait_ms, max_batch=settings.batch_max
        )
        return cls(
            retriever,
            batcher,
            documents,
            build_version(index.manifest),
            datetime.now(UTC).isoformat(timespec="milliseconds"),
            owned,
        )

    @property
    def manifest(self) -> Manifest:
        return self.retriever.index.manifest

    def stale_sources(self, corpus_dir: Path) -> list[str]:
        """Sources changed since the build; re-hashes the corpus only when file stats change."""
        index = self.retriever.index
        try:
            fingerprint = corpus_fingerprint(corpus_dir)
        except OSError:  # a file vanished while listing: nothing stable to cache under
            return index.stale_sources(corpus_dir)
        with self._stale_lock:
            if self._stale and self._stale[0][0] == fingerprint:
                return list(self._stale[0][1])
            checked_at = time.time_ns()
            stale = index.stale_sources(corpus_dir)
            if all(mtime < checked_at - RACY_STAT_NS for _, _, mtime in fingerprint):
                self._stale[:] = [(fingerprint, tuple(stale))]
            return stale

    async def close(self) -> None:
        """Stop the batcher and close the index's files (once no request holds the snapshot).

        FAISS and BM25 are released with the last reference to the retriever: the server drops
        its own when it closes the snapshot.
        """
        await self.batcher.close()
        if self.owned:
            self.retriever.index.close()


def build_version(manifest: Manifest) -> str:
    """What tells one build from another: its build id, or its build time for an older one."""
    return manifest.build_id or manifest.built_at


def index_version(index_dir: Path) -> str | None:
    """The build id of the index at ``index_dir`` (see build_version); None without a readable
    manifest there."""
    try:
        return build_version(Manifest.read(index_dir))
    except RagError:
        return None


# One load at a time in a process. With several collections the lifespan starts a load per
# collection at once, each in a worker thread: the first ones import FAISS, bm25s, onnxruntime
# and the tokenizers, and those imports are not all safe to run in two threads at once (a
# module taken half-executed; import_bm25s hiding scipy from another thread's import). Loads
# are CPU-bound under the GIL, so little is lost by queueing them.
_load_lock = threading.Lock()


def load_snapshot(settings: Settings) -> Snapshot:
    """Load the configured index (blocking: call from a thread); raises what loading raises.

    A build may swap the directory while its files are being opened one by one; the manifest's
    build id is read again afterwards, and a load that straddled a swap is thrown away and
    done again, so a snapshot never mixes the files of two builds.
    """
    with _load_lock:
        return _load(settings)


def _load(settings: Settings) -> Snapshot:
    index_dir = Path(settings.index_dir)
    for _ in range(LOAD_ATTEMPTS):
        retriever = Retriever.from_settings(settings)
        try:
            snapshot = Snapshot.of(retriever, settings)
        except BaseException:
            retriever.index.close()
            raise
        if index_version(index_dir) == snapshot.build_id:
            return snapshot
        log.info("the index at %s changed while it was loaded; loading it again", index_dir)
        # The batcher has not started its thread or task yet: closing the index is all.
        retriever.index.close()
    raise RagError(f"the index at {index_dir} kept changing while it was loaded")


def single_threaded_kernels() -> None:
    """Run torch and FAISS kernels on one thread each: in a server, requests are the parallelism.

    Their default of one OpenMP thread per core fights the request threads (and any other
    process) for the same cores, which made one-query encodes many times slower on a busy
    machine (benchmarks/RESULTS.md). The setting is process-wide, hence only in the server.
    """
    import faiss

    faiss.omp_set_num_threads(1)
    torch = sys.modules.get("torch")  # a torch-free query embedder must not import it
    if torch is not None:
        torch.set_num_threads(1)
