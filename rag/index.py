"""Build, save and load the index directory.

An index is a directory that describes itself (after bm25s and txtai)::

    index/
      manifest.json    format version, model id and dim, chunker and FAISS settings,
                       a sha256 per source file, counts, build time
      vectors.faiss    FAISS inner-product index over unit vectors (row i = chunk row i)
      sentences.faiss  one vector per sentence or list item, each prefixed with its heading
      sentence_rows.npy  path; row j = the chunk row that sentence j belongs to
      bm25/            the bm25s index over the same rows
      meta.sqlite      chunks and documents, read on demand so a million chunks cost no RAM
      onnx/            the model exported to ONNX, so queries need neither torch nor its start-up
                       time (rag.onnx_embedder; only for sentence-transformers embedders)

A build writes a temporary sibling directory and swaps it into place, so a failed build
leaves the previous index untouched and readers never see a half-written one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import shutil
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rag.adaptation import AdaptSettings, adapt_model
from rag.chunking import Chunk, ChunkerSettings, chunk_documents, passage_sentences
from rag.documents import PARSER_VERSION, Document, file_sha256, iter_corpus_files, load_corpus
from rag.embedding import Embedder
from rag.errors import DocumentNotFound, IndexIncompatible, IndexNotFound

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Below this many vectors exact search is fast enough and has perfect recall.
EXACT_SEARCH_MAX = 200_000
# Above it: "hnsw" (IndexHNSWFlat) or "ivf" (IndexIVFFlat); benchmarks/RESULTS.md compares them.
APPROXIMATE_KIND = "hnsw"
# Sentence vectors multiply the index size by the sentences per passage (about 4 here); past
# this many passages the sentence index is left out unless asked for.
SENTENCE_INDEX_MAX_CHUNKS = 250_000
# IVF above EXACT_SEARCH_MAX: nprobe = nlist / this (benchmarks/RESULTS.md has the sweep).
IVF_NPROBE_DIVISOR = 32
IVF_KMEANS_ITERATIONS = 10
BM25_PARAMS = {"k1": 1.2, "b": 0.75, "method": "lucene", "stopwords": "en", "stemmer": "english"}


@dataclass
class Manifest:
    """What an index was built from and how; refuse to mix it with anything else."""

    format_version: int
    model: str
    dim: int
    chunker: dict[str, int]
    parser_version: int
    faiss: dict[str, Any]
    bm25: dict[str, Any]
    sources: dict[str, str]
    counts: dict[str, int]
    built_at: str
    build_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, index_dir: Path) -> Manifest:
        """Read ``manifest.json``, refusing other format versions."""
        path = Path(index_dir) / MANIFEST
        if not path.is_file():
            raise IndexNotFound(f"no index at {index_dir}: run `rag index` to build one")
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise IndexIncompatible(f"index manifest {path} is unreadable: {exc}") from exc
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexIncompatible(
                f"index at {index_dir} has format version {version}, this program reads "
                f"version {FORMAT_VERSION}: rebuild it with `rag index`"
            )
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def query_model(self) -> str:
        """The model queries must be encoded with: the corpus-adapted one when there is one."""
        adapted = self.extra.get("adapted") or {}
        return str(adapted.get("model_id") or self.model)

    def write(self, index_dir: Path) -> None:
        """Write ``manifest.json`` into ``index_dir``."""
        (Path(index_dir) / MANIFEST).write_text(json.dumps(self.__dict__, indent=2) + "\n")


# --------------------------------------------------------------------------- build


def corpus_hashes(corpus_dir: Path) -> dict[str, str]:
    """sha256 of every candidate file in the corpus, by relative path."""
    corpus_dir = Path(corpus_dir)
    return {
        p.relative_to(corpus_dir).as_posix(): file_sha256(p) for p in iter_corpus_files(corpus_dir)
    }


def corpus_fingerprint(corpus_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """(relative path, size, mtime_ns) of every file ``corpus_hashes`` reads, in path order."""
    corpus_dir = Path(corpus_dir)
    out = []
    for p in iter_corpus_files(corpus_dir):
        st = p.stat()
        out.append((p.relative_to(corpus_dir).as_posix(), st.st_size, st.st_mtime_ns))
    return tuple(out)


def make_faiss_index(vectors: np.ndarray, kind: str = "auto") -> tuple[Any, dict[str, Any]]:
    """A FAISS index for unit vectors, chosen by size; returns it with its parameters."""
    import faiss

    n, dim = vectors.shape
    if kind == "auto":
        kind = "flat" if n <= EXACT_SEARCH_MAX else APPROXIMATE_KIND
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        params: dict[str, Any] = {"type": "IndexFlatIP"}
    elif kind == "hnsw":
        m, ef_construction, ef_search = 32, 80, 128
        index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        params = {"type": "IndexHNSWFlat", "M": m, "efConstruction": ef_construction,
                  "efSearch": ef_search}  # fmt: skip
    elif kind == "ivf":
        index, params = _train_ivf(vectors)
    else:
        raise ValueError(f"unknown FAISS index kind {kind!r}")
    index.add(vectors)
    if kind == "hnsw":
        index.hnsw.efSearch = params["efSearch"]
    params["metric"] = "inner_product"
    params["ntotal"] = int(index.ntotal)
    return index, params


def _train_ivf(vectors: np.ndarray) -> tuple[Any, dict[str, Any]]:
    """An untrained-then-trained IndexIVFFlat sized for ``vectors`` (about sqrt(n) lists)."""
    import faiss

    n, dim = vectors.shape
    # sqrt(n) lists keeps both costs in check: assigning n vectors to the lists at build time
    # (n * nlist dot products) and scanning nprobe/nlist of them per query.
    nlist = int(min(65_536, max(16, 2 ** round(np.log2(max(np.sqrt(n), 1))))))
    nprobe = max(1, min(nlist, nlist // IVF_NPROBE_DIVISOR))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    # k-means on a seeded sample: 64 points per list is plenty for the centroids and keeps
    # training to seconds on 2 cores (faiss would otherwise take up to 256 per list).
    sample = min(n, 64 * nlist)
    rng = np.random.default_rng(0)
    train = vectors if sample == n else vectors[np.sort(rng.choice(n, sample, replace=False))]
    index.cp.niter = IVF_KMEANS_ITERATIONS
    index.cp.seed = 0
    index.train(train)
    index.nprobe = nprobe
    params = {"type": "IndexIVFFlat", "nlist": nlist, "nprobe": nprobe, "train_points": sample,
              "kmeans_iterations": IVF_KMEANS_ITERATIONS}  # fmt: skip
    return index, params


def filtered_search_params(index: Any, ids: np.ndarray, k: int = 0) -> Any:
    """FAISS search parameters that keep only ``ids``, of the type ``index`` requires.

    IVF indexes reject the generic SearchParameters, and a filtered IVF search must probe every
    list (the wanted rows may sit in any; only members are scored, so this stays cheap). HNSW
    takes the generic type but then searches with efSearch 16, too few once most nodes are
    filtered out.
    """
    import faiss

    selector = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=selector, nprobe=int(inner.nlist))
    if isinstance(inner, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(sel=selector)
        params.efSearch = max(int(inner.hnsw.efSearch), 2 * k)
        return params
    return faiss.SearchParameters(sel=selector)


def build_bm25(texts: Sequence[str], params: Mapping[str, Any] = BM25_PARAMS) -> Any:
    """A bm25s index over ``texts`` with ``params`` (English stopwords and stemming)."""
    import Stemmer

    bm25s = import_bm25s()

    stemmer = Stemmer.Stemmer(params["stemmer"])
    tokens = bm25s.tokenize(
        list(texts), stopwords=params["stopwords"], stemmer=stemmer, show_progress=False
    )
    bm25 = bm25s.BM25(k1=params["k1"], b=params["b"], method=params["method"])
    bm25.index(tokens, show_progress=False)
    return bm25


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
) -> Manifest:
    """Parse, chunk, embed and index the corpus, then atomically replace ``index_dir``.

    ``adapt`` (default: when the embedder is a SentenceTransformerEmbedder, with AdaptSettings())
    first fine-tunes a copy of the model on the corpus (rag.adaptation) and stores it in
    ``index_dir/model``; queries must then use it (``load_query_embedder`` does). ``onnx``
    (same default) also exports the model into ``index_dir/onnx`` for torch-free queries.
    """
    import faiss

    from rag.embedding import SentenceTransformerEmbedder

    t0 = time.perf_counter()
    chunker = chunker or ChunkerSettings()
    docs, sources = load_corpus(Path(corpus_dir))
    chunks = chunk_documents(docs, chunker)
    texts = [c.embedding_text() for c in chunks]
    is_st = isinstance(embedder, SentenceTransformerEmbedder)
    if adapt is None:
        adapt = is_st
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
        extra: dict[str, Any] = {}
        if adapt:
            embedder, extra["adapted"] = adapt_model(embedder, chunks, tmp / "model", adapt)
        vectors = embedder.embed(texts, progress=progress)
        if vectors.shape != (len(chunks), embedder.dim):
            raise ValueError(f"embedder returned shape {vectors.shape} for {len(chunks)} chunks")
        index, faiss_params = make_faiss_index(vectors, faiss_kind)
        if sentence_index is None:
            sentence_index = len(chunks) <= SENTENCE_INDEX_MAX_CHUNKS
        sent_index = sent_rows = None
        if sentence_index:
            sent_texts, sent_rows = sentence_units(chunks)
            sent_vectors = embedder.embed(sent_texts, progress=progress)
            sent_index, sent_params = make_faiss_index(sent_vectors, faiss_kind)
            faiss_params["sentences"] = sent_params
        bm25 = build_bm25(texts)

        faiss.write_index(index, str(tmp / "vectors.faiss"))
        if sent_index is not None:
            faiss.write_index(sent_index, str(tmp / "sentences.faiss"))
            np.save(tmp / "sentence_rows.npy", sent_rows)
        bm25.save(str(tmp / "bm25"), show_progress=False)
        _write_meta(tmp / "meta.sqlite", docs, chunks)
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
            faiss=faiss_params,
            bm25=dict(BM25_PARAMS),
            sources={s.path: s.sha256 for s in sources},
            counts={"sources": len(sources), "documents": len(docs), "chunks": len(chunks)},
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            build_seconds=round(time.perf_counter() - t0, 3),
            extra={k: v for k, v in extra.items() if v},
        )
        manifest.write(tmp)
        if before_swap is not None:
            before_swap(tmp)
        _swap_into_place(tmp, index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _export_onnx(embedder: Embedder, out: Path, previous: Path) -> dict[str, Any] | None:
    """Export for torch-free queries; a failure only costs that speed-up, never the build."""
    from rag.onnx_embedder import export_embedder

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
        for sentence in passage_sentences(chunk.text) or [chunk.text]:
            texts.append(f"{chunk.section}: {sentence}")
            rows.append(row)
    return texts, np.asarray(rows, dtype=np.int64)


def _write_meta(path: Path, docs: Iterable[Document], chunks: Sequence[Chunk]) -> None:
    con = sqlite3.connect(path)
    try:
        con.executescript(
            """
            CREATE TABLE chunks (row INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,
                doc_id TEXT NOT NULL, title TEXT, section_path TEXT, source TEXT,
                start INTEGER, end INTEGER, text TEXT);
            CREATE INDEX chunks_doc ON chunks(doc_id);
            CREATE TABLE documents (ord INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,
                title TEXT, source TEXT, offset INTEGER, text TEXT, outline TEXT);
            """
        )
        con.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?)",
            (
                (
                    i,
                    c.id,
                    c.doc_id,
                    c.title,
                    json.dumps(c.section_path),
                    c.source,
                    c.start,
                    c.end,
                    c.text,
                )  # fmt: skip
                for i, c in enumerate(chunks)
            ),
        )
        con.executemany(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?)",
            (
                (i, d.id, d.title, d.source, d.start, d.body, json.dumps(_outline(d)))
                for i, d in enumerate(docs)
            ),
        )
        con.commit()
    finally:
        con.close()


def _outline(doc: Document) -> list[dict[str, Any]]:
    return [
        {"path": list(s.path), "start": s.spans[0][0], "end": s.spans[-1][1]} for s in doc.sections
    ]


_RENAME_EXCHANGE = 2


def _swap_into_place(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``; an existing target is exchanged atomically, then removed."""
    if not target.exists():
        os.rename(new, target)
        return
    if not _rename_exchange(new, target):
        # No renameat2 here: two renames leave a window of microseconds without an index.
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(target, old)
        os.rename(new, target)
        new = old
    shutil.rmtree(new, ignore_errors=True)


def _rename_exchange(a: Path, b: Path) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


# --------------------------------------------------------------------------- load


@dataclass
class DocumentInfo:
    """A document as stored in the index: text, where it starts in its source, and outline."""

    id: str
    title: str
    source: str
    offset: int
    text: str
    outline: list[dict[str, Any]]


class Index:
    """A loaded index: FAISS and BM25 in memory (FAISS memory-mapped), metadata on demand."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        faiss_index: Any,
        bm25: Any,
        sentences: Any = None,
        sentence_rows: np.ndarray | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.faiss = faiss_index
        self.bm25 = bm25
        self.sentences = sentences
        self.sentence_rows = sentence_rows
        # One read-only connection for every thread, opened now so that a later rebuild that
        # swaps the directory cannot make this index read another build's rows.
        self._con = sqlite3.connect(
            f"file:{path / 'meta.sqlite'}?mode=ro", uri=True, check_same_thread=False
        )
        self._lock = threading.Lock()
        self.size = int(manifest.counts["chunks"])

    def close(self) -> None:
        """Close the metadata connection."""
        self._con.close()

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._con.execute(sql, args).fetchall()

    def chunks(self, rows: Sequence[int]) -> list[Chunk]:
        """Chunks by FAISS row, in the order asked."""
        if not rows:
            return []
        found = {}
        for start in range(0, len(rows), 500):
            part = [int(r) for r in rows[start : start + 500]]
            marks = ",".join("?" * len(part))
            for r in self._query(f"SELECT * FROM chunks WHERE row IN ({marks})", part):
                found[r[0]] = Chunk(r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7], r[8])
        return [found[int(r)] for r in rows]

    def all_chunks(self) -> list[Chunk]:
        """Every chunk, in row order (for tests and evaluation, not for serving)."""
        return self.chunks(list(range(self.size)))

    def rows_for_doc(self, doc_id: str) -> np.ndarray:
        """FAISS rows of one document's chunks."""
        rows = self._query("SELECT row FROM chunks WHERE doc_id = ?", (doc_id,))
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def documents(self) -> list[DocumentInfo]:
        """All documents without their text."""
        rows = self._query(
            "SELECT id, title, source, offset, '', outline FROM documents ORDER BY ord"
        )
        return [DocumentInfo(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def document(self, doc_id: str) -> DocumentInfo:
        """One document with its text; raises DocumentNotFound."""
        rows = self._query(
            "SELECT id, title, source, offset, text, outline FROM documents WHERE id = ?", (doc_id,)
        )
        if not rows:
            raise DocumentNotFound(f"no document with id {doc_id!r}")
        r = rows[0]
        return DocumentInfo(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]))

    def sentence_vectors(self, row: int) -> np.ndarray | None:
        """Stored vectors of one chunk's sentences, in order; None where the index has none."""
        if self.sentences is None or self.sentence_rows is None:
            return None
        # Sentences were added chunk by chunk, so each chunk's vectors are one sorted run.
        lo = int(np.searchsorted(self.sentence_rows, row, side="left"))
        hi = int(np.searchsorted(self.sentence_rows, row, side="right"))
        try:
            return np.asarray(self.sentences.reconstruct_n(lo, hi - lo), dtype=np.float32)
        except RuntimeError:  # an index type that cannot give its vectors back
            return None

    def chunk_counts(self) -> dict[str, int]:
        """Number of chunks per document id."""
        return dict(self._query("SELECT doc_id, COUNT(*) FROM chunks GROUP BY doc_id"))

    def stale_sources(self, corpus_dir: Path) -> list[str]:
        """Source files added, removed or changed since the build (empty when fresh)."""
        try:
            current = corpus_hashes(Path(corpus_dir))
        except OSError:
            return sorted(self.manifest.sources)
        built = self.manifest.sources
        return sorted(p for p in set(current) | set(built) if current.get(p) != built.get(p))


def load_index(index_dir: Path, model: str | None = None, *, mmap: bool = True) -> Index:
    """Open an index; refuse one built by another model or format."""
    from rag.embedding import resolve_model

    index_dir = Path(index_dir)
    manifest = Manifest.read(index_dir)
    if model is not None:
        wanted = resolve_model(model)[0] if model else model
        if wanted != manifest.model:
            raise IndexIncompatible(
                f"index at {index_dir} was built with model {manifest.model!r}, but the "
                f"configured model is {wanted!r}: rebuild with `rag index` or set RAG_MODEL"
            )
    try:
        vectors = _read_faiss(index_dir / "vectors.faiss", mmap)
        sentences = sentence_rows = None
        if (index_dir / "sentences.faiss").exists():
            sentences = _read_faiss(index_dir / "sentences.faiss", mmap)
            sentence_rows = np.load(
                index_dir / "sentence_rows.npy", mmap_mode="r" if mmap else None
            )
        bm25 = import_bm25s().BM25.load(str(index_dir / "bm25"), mmap=mmap, show_progress=False)
    except (RuntimeError, OSError, ValueError) as exc:
        raise IndexIncompatible(f"index at {index_dir} is damaged: {exc}") from exc
    if vectors.d != manifest.dim or vectors.ntotal != manifest.counts["chunks"]:
        raise IndexIncompatible(f"index at {index_dir} does not match its manifest")
    return Index(index_dir, manifest, vectors, bm25, sentences, sentence_rows)


def import_bm25s() -> Any:
    """bm25s, without letting it import numba and scipy when nothing has loaded them yet.

    bm25s imports both at start-up for backends this project never selects (it indexes and
    scores with numpy): that is 0.3-0.6 s of a cold ``rag search`` on 2 cores. They stay
    importable afterwards for any other code that wants them.
    """
    if "bm25s" in sys.modules:
        return sys.modules["bm25s"]
    hidden = [name for name in ("numba", "scipy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail fast
    try:
        import bm25s
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return bm25s


def _read_faiss(path: Path, mmap: bool) -> Any:
    """Read a FAISS index memory-mapped where its type allows, so workers share the pages."""
    import faiss

    if mmap:
        # IO_FLAG_MMAP alone maps only IVF inverted lists: a flat or HNSW index read with it is
        # copied into private memory (measured with faiss 1.15, see benchmarks/RESULTS.md).
        # IO_FLAG_MMAP_IFC maps flat codes, the HNSW graph and IVF lists alike.
        flags = [getattr(faiss, "IO_FLAG_MMAP_IFC", None), faiss.IO_FLAG_MMAP]
        for flag in (f for f in flags if f is not None):
            try:
                return faiss.read_index(str(path), flag | faiss.IO_FLAG_READ_ONLY)
            except RuntimeError:
                pass  # this index type (or faiss build) cannot be memory-mapped this way
    return faiss.read_index(str(path))
