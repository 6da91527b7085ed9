"""Build an index: parse, chunk, embed, write a temporary sibling directory, swap it into place.

A failed build leaves the previous index untouched, and readers never see a half-written one.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import RagError
from rag.index.ann import make_faiss_index
from rag.index.fs import swap_into_place
from rag.index.lexical import BM25_PARAMS, build_bm25
from rag.index.manifest import FORMAT_VERSION, Manifest
from rag.index.store import write_meta
from rag.ingest.chunking import Chunk, ChunkerSettings, chunk_documents, chunk_sentences
from rag.ingest.loader import PARSER_VERSION, load_corpus
from rag.ingest.profiles import DEFAULT_TEXT_PROFILE, get_profile
from rag.models.adaptation import AdaptSettings, adapt_model
from rag.models.embedder import Embedder, SentenceTransformerEmbedder
from rag.models.onnx import export_embedder

log = logging.getLogger(__name__)

# Sentence vectors multiply the index size by the sentences per passage (about 4 here); past
# this many passages the sentence index is left out unless asked for.
SENTENCE_INDEX_MAX_CHUNKS = 250_000


def build_index(
    corpus_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    chunker: ChunkerSettings | None = None,
    *,
    progress: bool = False,
    faiss_kind: str = "auto",
    sentence_index: bool | None = None,
    before_swap: Callable[[Path], None] | None = None,
    onnx: bool | None = None,
    adapt: AdaptSettings | bool | None = None,
    text_profile: str = DEFAULT_TEXT_PROFILE,
) -> Manifest:
    """Parse, chunk, embed and index the corpus, then atomically replace ``index_dir``.

    ``adapt`` (off by default; True means AdaptSettings()) first fine-tunes a copy of a
    sentence-transformers model on the corpus (rag.models.adaptation) and stores it in
    ``index_dir/model``, reusing the previous index's when the corpus and settings are the same;
    queries must then use it (``load_query_embedder`` does). ``onnx`` (default: for a
    sentence-transformers embedder) exports the query model into ``index_dir/onnx`` for
    torch-free queries.
    Plain-text files are read with the text profile ``text_profile`` (rag.ingest.profiles).
    """
    import faiss

    t0 = time.perf_counter()
    chunker = chunker or ChunkerSettings()
    get_profile(text_profile)  # an unknown name fails before any work
    docs, sources = load_corpus(Path(corpus_dir), text_profile)
    chunks = chunk_documents(docs, chunker)
    texts = [c.embedding_text() for c in chunks]
    is_st = isinstance(embedder, SentenceTransformerEmbedder)
    if adapt is None:
        adapt = False
    if adapt is True:
        adapt = AdaptSettings()
    if adapt and not is_st:
        raise ValueError("only a sentence-transformers model can be adapted to the corpus")
    base_model = embedder.model_id

    index_dir = Path(index_dir).absolute()
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = index_dir.parent / f".{index_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        # Files that could not be parsed, with why: reported by `rag index`, never fatal.
        extra: dict[str, Any] = {"skipped": {s.path: s.error for s in sources if s.error}}
        if adapt:
            embedder, extra["adapted"] = adapt_model(
                embedder,
                chunks,
                tmp / "model",
                adapt,
                text_profile,
                _previous_adaptation(index_dir),
            )
        vectors = embedder.embed(texts, progress=progress)
        if vectors.shape != (len(chunks), embedder.dim):
            raise ValueError(f"embedder returned shape {vectors.shape} for {len(chunks)} chunks")
        index, faiss_params = make_faiss_index(vectors, faiss_kind)
        if sentence_index is None:
            sentence_index = len(chunks) <= SENTENCE_INDEX_MAX_CHUNKS
        sent_index = sent_rows = None
        if sentence_index:
            sent_texts, sent_rows = sentence_units(chunks, text_profile)
            sent_vectors = embedder.embed(sent_texts, progress=progress)
            sent_index, sent_params = make_faiss_index(sent_vectors, faiss_kind)
            faiss_params["sentences"] = sent_params
        bm25 = build_bm25(texts)

        faiss.write_index(index, str(tmp / "vectors.faiss"))
        if sent_index is not None:
            faiss.write_index(sent_index, str(tmp / "sentences.faiss"))
            np.save(tmp / "sentence_rows.npy", sent_rows)
        bm25.save(str(tmp / "bm25"), show_progress=False)
        write_meta(tmp / "meta.sqlite", docs, chunks)
        if onnx is None:
            onnx = is_st
        if onnx:
            extra["onnx"] = _export_onnx(embedder, tmp / "onnx", index_dir / "onnx")
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            # The configured model, so settings still match; extra["adapted"] names the weights.
            model=base_model,
            dim=embedder.dim,
            chunker=chunker.to_dict(),
            parser_version=PARSER_VERSION,
            text_profile=text_profile,
            faiss=faiss_params,
            bm25=dict(BM25_PARAMS),
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
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _previous_adaptation(index_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The adapted model of the index being replaced, if it has one, for reuse."""
    try:
        adapted = Manifest.read(index_dir).extra.get("adapted")
    except RagError:
        return None
    if not adapted:
        return None
    return index_dir / str(adapted.get("path", "model")), adapted


def _export_onnx(embedder: Embedder, out: Path, previous: Path) -> dict[str, Any] | None:
    """Export for torch-free queries; a failure only costs that speed-up, never the build."""
    try:
        return export_embedder(embedder, out, reuse_from=previous)
    except Exception as exc:  # an architecture the exporter cannot reproduce, say
        log.warning("no ONNX export of %s, queries will load torch: %s", embedder.model_id, exc)
        shutil.rmtree(out, ignore_errors=True)
        return None


def sentence_units(
    chunks: Sequence[Chunk], text_profile: str = DEFAULT_TEXT_PROFILE
) -> tuple[list[str], np.ndarray]:
    """Texts of every sentence or list item, with its heading path, and its chunk row."""
    texts: list[str] = []
    rows: list[int] = []
    for row, chunk in enumerate(chunks):
        for sentence in chunk_sentences(chunk, text_profile) or [chunk.text]:
            texts.append(f"{chunk.section}: {sentence}")
            rows.append(row)
    return texts, np.asarray(rows, dtype=np.int64)
