"""Build an index: parse, chunk, embed, write a temporary sibling directory, swap it into place.

Builds are incremental: every passage's vectors (and its sentences') are kept in the index's
FAISS files, keyed in ``meta.sqlite`` by a hash of exactly what was embedded, so a rebuild embeds
only passages it has not seen and deletes those that are gone. Everything else (parsing, BM25,
SQLite, FAISS) is redone from the whole corpus each time, which keeps an incremental build
identical to a full one. A failed build leaves the previous index untouched, readers never see a
half-written one, and one lock lets only one build write an index at a time.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.errors import RagError
from rag.index.ann import make_faiss_index
from rag.index.fs import swap_into_place
from rag.index.layout import MODEL_DIR, Layout
from rag.index.lexical import BM25_PARAMS, build_bm25
from rag.index.lock import build_lock, remove_debris, sibling
from rag.index.manifest import FORMAT_VERSION, BuildSpec, Manifest
from rag.index.reuse import Reuse, changes, chunk_key, reusable, stored
from rag.index.store import Index, write_meta
from rag.ingest.chunking import Chunk, ChunkerSettings, chunk_documents
from rag.ingest.loader import PARSER_VERSION, load_corpus
from rag.ingest.profiles import DEFAULT_TEXT_PROFILE, get_profile
from rag.ingest.types import Document, SourceFile
from rag.models.adaptation import AdaptSettings, adapt_model
from rag.models.embedder import Embedder, SentenceTransformerEmbedder
from rag.models.onnx import export_embedder

log = logging.getLogger(__name__)

# Sentence vectors multiply the index size by the sentences per passage (about 4 here); past
# this many passages the sentence index is left out unless asked for.
SENTENCE_INDEX_MAX_CHUNKS = 250_000

# Texts per embed call: large enough for the model's own length-sorted batching, small enough
# for a progress bar that moves.
EMBED_SLICE = 2048


class BuildProgress(Protocol):
    """Where a build reports how far it is: a terminal bar, or nothing."""

    def stage(self, name: str, total: int) -> None:
        """A new stage of ``total`` steps begins."""

    def advance(self, steps: int = 1) -> None:
        """``steps`` more steps of the current stage are done."""


class BuildBackend(Protocol):
    """Where a build's heavy steps run: in this process (LocalBackend) or on a cluster
    (rag.distributed.build). Everything else, the writer included, is shared."""

    def load(
        self, corpus_dir: Path, text_profile: str, progress: BuildProgress
    ) -> tuple[list[Document], list[SourceFile]]:
        """The corpus's documents, with unique ids, and the files read."""

    def chunk(self, docs: Sequence[Document], chunker: ChunkerSettings) -> list[Chunk]:
        """All chunks of all documents, in document order."""

    def embed(
        self, embedder: Embedder, texts: Sequence[str], progress: BuildProgress
    ) -> np.ndarray:
        """Unit vectors of ``texts``, in order, as ``embedder`` would give them."""


class LocalBackend:
    """Parse, chunk and embed in this process."""

    def load(
        self, corpus_dir: Path, text_profile: str, progress: BuildProgress
    ) -> tuple[list[Document], list[SourceFile]]:
        """The corpus read and parsed here, one file after another."""
        return load_corpus(
            corpus_dir, text_profile, on_start=_stage(progress, "Parsing"), on_file=progress.advance
        )

    def chunk(self, docs: Sequence[Document], chunker: ChunkerSettings) -> list[Chunk]:
        """All chunks, chunked here."""
        return chunk_documents(docs, chunker)

    def embed(
        self, embedder: Embedder, texts: Sequence[str], progress: BuildProgress
    ) -> np.ndarray:
        """Vectors from the embedder itself, in slices so the progress bar moves."""
        return _embed(embedder, texts, progress)


class _Silent:
    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass


def build_index(
    corpus_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    chunker: ChunkerSettings | None = None,
    *,
    progress: BuildProgress | None = None,
    faiss_kind: str = "auto",
    sentence_index: bool | None = None,
    before_swap: Callable[[Path], None] | None = None,
    onnx: bool | None = None,
    adapt: AdaptSettings | bool | None = None,
    text_profile: str = DEFAULT_TEXT_PROFILE,
    full: bool = False,
    lock_timeout: float = 0,
    backend: BuildBackend | None = None,
    previous: Index | None = None,
) -> Manifest:
    """Parse, chunk, embed and index the corpus, then atomically replace ``index_dir``.

    Passages already embedded in the index being replaced keep their vectors unless ``full``
    or the model, chunker, parser, text profile or format changed; ``manifest.extra["changes"]``
    counts what was added, changed, removed and reused. ``lock_timeout`` is how long to wait
    for another build of the same index (then IndexBusy). ``adapt`` (off by default; True means
    AdaptSettings()) first fine-tunes a copy of a sentence-transformers model on the corpus
    (rag.models.adaptation), stored in ``index_dir/model``; queries must then use it
    (``load_query_embedder`` does). ``onnx`` (default: for a sentence-transformers embedder)
    exports the query model into ``index_dir/onnx`` for torch-free queries. Plain-text files
    are read with the text profile ``text_profile`` (rag.ingest.profiles). ``backend`` is where
    parsing, chunking and embedding run (default: here); the index written is the same.
    ``previous`` is the index at ``index_dir`` already opened (the build takes it over and
    closes it), so that it is not loaded twice; it is used only if no build replaced it since.
    """
    index_dir = Path(index_dir).absolute()
    get_profile(text_profile)  # an unknown name fails before any work
    with build_lock(index_dir, lock_timeout):
        debris = remove_debris(index_dir)
        if debris:
            log.warning("removed %d director(ies) left by builds that died", len(debris))
        return _build(
            Path(corpus_dir), index_dir, embedder, chunker or ChunkerSettings(),
            progress or _Silent(), faiss_kind, sentence_index, before_swap, onnx, adapt,
            text_profile, full, debris, backend or LocalBackend(), previous,
        )  # fmt: skip


def _build(
    corpus_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    chunker: ChunkerSettings,
    progress: BuildProgress,
    faiss_kind: str,
    sentence_index: bool | None,
    before_swap: Callable[[Path], None] | None,
    onnx: bool | None,
    adapt: AdaptSettings | bool | None,
    text_profile: str,
    full: bool,
    debris: list[str],
    backend: BuildBackend,
    previous: Index | None,
) -> Manifest:
    import faiss

    t0 = time.perf_counter()
    docs, sources = backend.load(corpus_dir, text_profile, progress)
    chunks = backend.chunk(docs, chunker)
    is_st = isinstance(embedder, SentenceTransformerEmbedder)
    if adapt is True:
        adapt = AdaptSettings()
    if adapt and not is_st:
        raise ValueError("only a sentence-transformers model can be adapted to the corpus")
    base_model = embedder.model_id

    # Named before the try and made inside it: a Ctrl-C that lands the moment the directory
    # exists (the main thread can wait that long for the GIL) still removes it.
    tmp = sibling(index_dir, "tmp")
    out = Layout(tmp)
    reuse: Reuse | None = None
    try:
        tmp.mkdir()
        # Files that could not be parsed, with why: reported by `rag index`, never fatal.
        extra: dict[str, Any] = {"skipped": {s.path: s.error for s in sources if s.error}}
        if adapt:
            embedder, extra["adapted"] = adapt_model(
                embedder, chunks, out.model, adapt, _previous_adaptation(index_dir)
            )
        if sentence_index is None:
            sentence_index = len(chunks) <= SENTENCE_INDEX_MAX_CHUNKS
        spec = BuildSpec(
            model=base_model,
            chunker=chunker.to_dict(),
            parser_version=PARSER_VERSION,
            text_profile=text_profile,
            bm25=dict(BM25_PARAMS),
            adaptation=extra["adapted"]["settings"] if adapt else None,
            query_model=embedder.model_id,
            dim=embedder.dim,
        )
        why_full = "asked for (--full)" if full else None
        if not full:
            reuse, why_full = reusable(index_dir, spec, sentence_index, previous)
            previous = None
        elif previous is not None:
            previous.close()
            previous = None
        keys = [chunk_key(c) for c in chunks]
        vectors, sent_vectors, sent_rows, reused = _vectors(
            chunks, keys, embedder, reuse, sentence_index, progress, backend
        )
        extra["changes"] = changes(chunks, keys, reused, reuse, why_full)
        if reuse is not None:
            reuse.index.close()
            reuse = None

        progress.stage("Writing", 4)
        index, faiss_params = make_faiss_index(vectors, faiss_kind)
        faiss.write_index(index, str(out.vectors))
        del index
        progress.advance()
        if sent_vectors is not None:
            sent_index, faiss_params["sentences"] = make_faiss_index(sent_vectors, faiss_kind)
            faiss.write_index(sent_index, str(out.sentences))
            np.save(out.sentence_rows, sent_rows)
            del sent_index
        progress.advance()
        build_bm25([c.embedding_text() for c in chunks], spec.bm25).save(
            str(out.bm25), show_progress=False
        )
        progress.advance()
        write_meta(out.meta, docs, chunks, keys)
        progress.advance()
        if onnx is None:
            onnx = is_st
        if onnx:
            extra["onnx"] = _export_onnx(embedder, out.onnx, Layout(index_dir).onnx)
        if debris:
            extra["removed_debris"] = debris
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            # The configured model, so settings still match; extra["adapted"] names the weights.
            model=spec.model,
            dim=embedder.dim,
            chunker=spec.chunker,
            parser_version=spec.parser_version,
            text_profile=spec.text_profile,
            faiss=faiss_params,
            bm25=spec.bm25,
            sources={s.path: s.sha256 for s in sources},
            counts={"sources": len(sources), "documents": len(docs), "chunks": len(chunks)},
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            build_seconds=round(time.perf_counter() - t0, 3),
            build_id=uuid.uuid4().hex,
            extra={k: v for k, v in extra.items() if v},
        )
        manifest.write(tmp)
        if before_swap is not None:
            before_swap(tmp)
        swap_into_place(tmp, index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # first: closing an index can fail too
        for index in (reuse.index if reuse is not None else None, previous):
            if index is not None:
                index.close()
        raise
    return manifest


def _stage(progress: BuildProgress, name: str) -> Callable[[int], None]:
    return lambda total: progress.stage(name, total)


def _vectors(
    chunks: Sequence[Chunk],
    keys: Sequence[str],
    embedder: Embedder,
    reuse: Reuse | None,
    sentence_index: bool,
    progress: BuildProgress,
    backend: BuildBackend,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, int]:
    """Passage vectors, sentence vectors and their passage rows: reused where the previous index
    has the same key, embedded otherwise. Returns the number of passages reused too."""
    old_rows = np.full(len(chunks), -1, dtype=np.int64)
    if reuse is not None:
        for i, key in enumerate(keys):
            old_rows[i] = reuse.rows_by_key.get(key, -1)
    new = np.flatnonzero(old_rows < 0)
    kept = np.flatnonzero(old_rows >= 0)
    texts = [chunks[i].embedding_text() for i in new]
    sent_texts: list[str] = []
    sent_owner: list[int] = []  # chunk position of each new sentence text
    if sentence_index:
        for i in new:
            units = chunks[i].sentence_units()
            sent_texts += units
            sent_owner += [int(i)] * len(units)
    progress.stage("Embedding", len(texts) + len(sent_texts))
    dim = embedder.dim
    vectors = np.empty((len(chunks), dim), dtype=np.float32)
    # One call for passages and sentences: a cluster backend starts its workers once per call.
    both = texts + sent_texts
    embedded = (
        _checked(backend.embed(embedder, both, progress), len(both))
        if both
        else np.empty((0, dim), np.float32)
    )
    if len(new):
        vectors[new] = embedded[: len(texts)]
    if len(kept):
        assert reuse is not None
        vectors[kept] = stored(reuse.index.faiss, old_rows[kept])
    if not sentence_index:
        return vectors, None, None, len(kept)

    # Sentences, in passage order: each passage's run comes from the old index or the new embed.
    fresh = embedded[len(texts) :]
    fresh_starts = np.searchsorted(np.asarray(sent_owner, dtype=np.int64), np.arange(len(chunks)))
    counts = np.zeros(len(chunks), dtype=np.int64)
    if sent_owner:
        np.add.at(counts, np.asarray(sent_owner, dtype=np.int64), 1)
    old_lo = old_hi = None
    if reuse is not None and len(kept):
        rows = np.asarray(reuse.index.sentence_rows)
        old_lo = np.searchsorted(rows, old_rows[kept], side="left")
        old_hi = np.searchsorted(rows, old_rows[kept], side="right")
        counts[kept] = old_hi - old_lo
    total = int(counts.sum())
    sent_vectors = np.empty((total, dim), dtype=np.float32)
    sent_rows = np.repeat(np.arange(len(chunks), dtype=np.int64), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(chunks) else counts
    for i in new:
        n = counts[i]
        sent_vectors[starts[i] : starts[i] + n] = fresh[fresh_starts[i] : fresh_starts[i] + n]
    if old_lo is not None and old_hi is not None:
        assert reuse is not None
        src = np.concatenate([np.arange(lo, hi) for lo, hi in zip(old_lo, old_hi, strict=True)])
        dst = np.concatenate([np.arange(starts[i], starts[i] + counts[i]) for i in kept])
        sent_vectors[dst] = stored(reuse.index.sentences, src)
    return vectors, sent_vectors, sent_rows, len(kept)


def _embed(embedder: Embedder, texts: Sequence[str], progress: BuildProgress) -> np.ndarray:
    parts = []
    for start in range(0, len(texts), EMBED_SLICE):
        part = embedder.embed(texts[start : start + EMBED_SLICE])
        if part.ndim != 2 or part.shape[0] != len(texts[start : start + EMBED_SLICE]):
            raise ValueError(f"embedder returned shape {part.shape} for {len(texts)} texts")
        parts.append(np.asarray(part, dtype=np.float32))
        progress.advance(part.shape[0])
    return np.concatenate(parts) if parts else np.empty((0, embedder.dim), np.float32)


def _checked(vectors: np.ndarray, n: int) -> np.ndarray:
    """A backend's vectors, refused unless there is one row per text."""
    if vectors.ndim != 2 or vectors.shape[0] != n:
        raise ValueError(f"embedding backend returned shape {vectors.shape} for {n} texts")
    return np.asarray(vectors, dtype=np.float32)


def _previous_adaptation(index_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The adapted model of the index being replaced, if it has one, for reuse."""
    try:
        adapted = Manifest.read(index_dir).extra.get("adapted")
    except RagError:
        return None
    if not adapted:
        return None
    return index_dir / str(adapted.get("path", MODEL_DIR)), adapted


def _export_onnx(embedder: Embedder, out: Path, previous: Path) -> dict[str, Any] | None:
    """Export for torch-free queries; a failure only costs that speed-up, never the build."""
    try:
        return export_embedder(embedder, out, reuse_from=previous)
    except Exception as exc:  # an architecture the exporter cannot reproduce, say
        log.warning("no ONNX export of %s, queries will load torch: %s", embedder.model_id, exc)
        shutil.rmtree(out, ignore_errors=True)
        return None


def sentence_units(chunks: Sequence[Chunk]) -> tuple[list[str], np.ndarray]:
    """Texts of every sentence or list item, with its heading path, and its chunk row."""
    texts: list[str] = []
    rows: list[int] = []
    for row, chunk in enumerate(chunks):
        units = chunk.sentence_units()
        texts += units
        rows += [row] * len(units)
    return texts, np.asarray(rows, dtype=np.int64)
