"""The stored index: chunks and documents in SQLite, read on demand beside FAISS and BM25.

SQLite keeps a million chunks' text and metadata on disk rather than in memory, and one
read-only connection is shared by every request thread.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.damage import CORRUPT, detail, open_for_reading, read_problem
from rag.errors import DocumentNotFound, IndexDamaged, IndexIncompatible
from rag.index.ann import read_faiss
from rag.index.lexical import import_bm25s
from rag.index.manifest import Manifest, corpus_hashes
from rag.ingest.chunking import Chunk
from rag.ingest.types import Document
from rag.models.embedder import resolve_model


def write_meta(
    path: Path, docs: Iterable[Document], chunks: Sequence[Chunk], keys: Sequence[str]
) -> None:
    """Write the chunks (with the key of their vectors), the documents and their tags into a
    new ``meta.sqlite``."""
    docs = list(docs)
    con = sqlite3.connect(path)
    try:
        con.executescript(
            """
            CREATE TABLE chunks (row INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,
                doc_id TEXT NOT NULL, title TEXT, section_path TEXT, source TEXT,
                start INTEGER, end INTEGER, text TEXT, meta TEXT, key TEXT NOT NULL);
            CREATE INDEX chunks_doc ON chunks(doc_id);
            CREATE INDEX chunks_source ON chunks(source);
            CREATE TABLE documents (ord INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,
                title TEXT, source TEXT, offset INTEGER, text TEXT, outline TEXT, meta TEXT);
            CREATE TABLE tags (doc_id TEXT NOT NULL, tag TEXT NOT NULL);
            CREATE INDEX tags_tag ON tags(tag);
            """
        )
        con.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?,?)",
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
                    json.dumps(c.meta) if c.meta else None,
                    key,
                )  # fmt: skip
                for i, (c, key) in enumerate(zip(chunks, keys, strict=True))
            ),
        )
        con.executemany(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?)",
            (
                (
                    i,
                    d.id,
                    d.title,
                    d.source,
                    d.start,
                    d.body,
                    json.dumps(_outline(d)),
                    json.dumps(d.meta) if d.meta else None,
                )
                for i, d in enumerate(docs)
            ),  # fmt: skip
        )
        con.executemany(
            "INSERT INTO tags VALUES (?, ?)",
            ((d.id, tag) for d in docs for tag in doc_tags(d.meta)),
        )
        con.commit()
    finally:
        con.close()


def doc_tags(meta: dict[str, Any]) -> list[str]:
    """A document's tags and keywords, lowercased, each once."""
    out: list[str] = []
    for key in ("tags", "keywords"):
        value = meta.get(key) or []
        values = value.split(",") if isinstance(value, str) else value
        for tag in values:
            tag = str(tag).strip().lower()
            if tag and tag not in out:
                out.append(tag)
    return out


def _outline(doc: Document) -> list[dict[str, Any]]:
    return [
        {"path": list(s.path), "start": s.spans[0][0], "end": s.spans[-1][1]} for s in doc.sections
    ]


@dataclass
class DocumentInfo:
    """A document as stored in the index: text, where it starts in its source, and outline."""

    id: str
    title: str
    source: str
    offset: int
    text: str
    outline: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


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
        self._con = _open_meta(path, manifest)
        self._lock = threading.Lock()
        self.size = int(manifest.counts["chunks"])

    def close(self) -> None:
        """Close the metadata connection."""
        self._con.close()

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._con.execute(sql, args).fetchall()
            except sqlite3.ProgrammingError:
                raise  # a closed connection, a wrong query: this program's fault, not the file's
            except sqlite3.DatabaseError as exc:
                # SQLite reads pages on demand, so damage the load did not touch shows up here.
                raise IndexDamaged(self.path, META, CORRUPT, detail(exc)) from exc

    def chunks(self, rows: Sequence[int]) -> list[Chunk]:
        """Chunks by FAISS row, in the order asked."""
        if not rows:
            return []
        found = {}
        for start in range(0, len(rows), 500):
            part = [int(r) for r in rows[start : start + 500]]
            marks = ",".join("?" * len(part))
            for r in self._query(f"SELECT * FROM chunks WHERE row IN ({marks})", part):
                meta = json.loads(r[9]) if r[9] else {}
                found[r[0]] = Chunk(
                    r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7], r[8], meta
                )
        return [found[int(r)] for r in rows]

    def all_chunks(self) -> list[Chunk]:
        """Every chunk, in row order (for tests and evaluation, not for serving)."""
        return self.chunks(list(range(self.size)))

    def rows_for_doc(self, doc_id: str) -> np.ndarray:
        """FAISS rows of one document's chunks, sorted."""
        return self.rows_where(doc_ids=(doc_id,))

    def documents(self) -> list[DocumentInfo]:
        """All documents without their text."""
        rows = self._query(
            "SELECT id, title, source, offset, '', outline, meta FROM documents ORDER BY ord"
        )
        return [_document(r) for r in rows]

    def document(self, doc_id: str) -> DocumentInfo:
        """One document with its text; raises DocumentNotFound."""
        rows = self._query(
            "SELECT id, title, source, offset, text, outline, meta FROM documents WHERE id = ?",
            (doc_id,),
        )
        if not rows:
            raise DocumentNotFound(f"no document with id {doc_id!r}")
        return _document(rows[0])

    def rows_where(
        self,
        doc_ids: Sequence[str] = (),
        tags: Sequence[str] = (),
        source_prefix: str | None = None,
    ) -> np.ndarray:
        """Rows of the chunks that pass every filter given: in one of ``doc_ids``, tagged with
        one of ``tags``, under ``source_prefix``; sorted."""
        where, args = [], []
        if doc_ids:
            where.append(f"doc_id IN ({','.join('?' * len(doc_ids))})")
            args += list(doc_ids)
        if tags:
            where.append(
                f"doc_id IN (SELECT doc_id FROM tags WHERE tag IN ({','.join('?' * len(tags))}))"
            )
            args += [t.strip().lower() for t in tags]
        if source_prefix:
            # GLOB, unlike LIKE, treats % and _ literally once * ? [ are escaped.
            escaped = "".join(f"[{c}]" if c in "*?[" else c for c in source_prefix)
            where.append("source GLOB ?")
            args.append(escaped + "*")
        sql = "SELECT row FROM chunks" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._query(sql + " ORDER BY row", args)
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def chunk_keys(self) -> tuple[dict[str, int], dict[str, list[str]], set[str]]:
        """For reuse by the next build: the row of each vector key, each document's keys in
        order, and every chunk id."""
        rows_by_key: dict[str, int] = {}
        keys_by_doc: dict[str, list[str]] = {}
        ids: set[str] = set()
        for row, cid, doc_id, key in self._query(
            "SELECT row, id, doc_id, key FROM chunks ORDER BY row"
        ):
            rows_by_key.setdefault(key, row)
            keys_by_doc.setdefault(doc_id, []).append(key)
            ids.add(cid)
        return rows_by_key, keys_by_doc, ids

    def tags(self) -> list[str]:
        """Every tag in the index, sorted."""
        return [r[0] for r in self._query("SELECT DISTINCT tag FROM tags ORDER BY tag")]

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


def _document(r: Sequence[Any]) -> DocumentInfo:
    meta = json.loads(r[6]) if r[6] else {}
    return DocumentInfo(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), meta)


def load_index(index_dir: Path, model: str | None = None, *, mmap: bool = True) -> Index:
    """Open an index; refuse one built by another model or format (IndexIncompatible) and one
    with a missing, unreadable, truncated or inconsistent file (IndexDamaged, naming it)."""
    index_dir = Path(index_dir)
    manifest = Manifest.read(index_dir)
    if model is not None:
        wanted = resolve_model(model)[0] if model else model
        if wanted != manifest.model:
            raise IndexIncompatible(
                f"index at {index_dir} was built with model {manifest.model!r}, but the "
                f"configured model is {wanted!r}: rebuild with `rag index` or set RAG_MODEL"
            )
    chunks = manifest.counts["chunks"]
    vectors = _read_vectors(index_dir, "vectors.faiss", manifest.dim, chunks, mmap)
    sentences = sentence_rows = None
    described = manifest.faiss.get("sentences")
    if described or (index_dir / "sentences.faiss").exists():
        ntotal = described.get("ntotal") if isinstance(described, dict) else None
        sentences = _read_vectors(index_dir, "sentences.faiss", manifest.dim, ntotal, mmap)
        sentence_rows = _read_sentence_rows(index_dir, int(sentences.ntotal), chunks, mmap)
    bm25 = _read_bm25(index_dir, chunks, mmap)
    return Index(index_dir, manifest, vectors, bm25, sentences, sentence_rows)


META = "meta.sqlite"
SENTENCE_ROWS = "sentence_rows.npy"
BM25_DIR = "bm25"
# What bm25s (0.2 to 0.3) saves and loads, the parameters first.
BM25_FILES = (
    "params.index.json", "vocab.index.json",
    "data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy",
)  # fmt: skip
SQLITE_HEADER = b"SQLite format 3\x00"
META_TABLES = ("chunks", "documents", "tags")


def _readable(index_dir: Path, name: str) -> Path:
    """The path of one file of the index, opened once so that a missing or unreadable one is
    IndexDamaged naming it rather than a library's error."""
    path = index_dir / name
    try:
        open_for_reading(path)
    except OSError as exc:
        raise IndexDamaged(index_dir, name, read_problem(exc), detail(exc)) from exc
    return path


def _read_vectors(index_dir: Path, name: str, dim: int, count: int | None, mmap: bool) -> Any:
    """A FAISS index of the index directory, checked against the manifest's dim and count."""
    path = _readable(index_dir, name)
    try:
        vectors = read_faiss(path, mmap)
    except (RuntimeError, MemoryError, ValueError) as exc:  # faiss turns its C++ errors into these
        raise IndexDamaged(index_dir, name, CORRUPT, detail(exc)) from exc
    if vectors.d != dim:
        raise IndexDamaged(
            index_dir,
            name,
            f"does not match the manifest (dimension {vectors.d}, manifest says {dim})",
        )
    if count is not None and vectors.ntotal != count:
        raise IndexDamaged(
            index_dir,
            name,
            f"does not match the manifest ({vectors.ntotal} vectors, manifest says {count})",
        )
    return vectors


def _read_sentence_rows(index_dir: Path, sentences: int, chunks: int, mmap: bool) -> np.ndarray:
    """The chunk row of every sentence vector: one per vector, sorted, each a row of the index.
    Only the ends are compared (sorted rows lie between them): loading stays O(1)."""
    path = _readable(index_dir, SENTENCE_ROWS)
    try:
        rows = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:  # numpy: a bad header, short data, a pickle
        raise IndexDamaged(index_dir, SENTENCE_ROWS, CORRUPT, detail(exc)) from exc
    if not isinstance(rows, np.ndarray) or rows.ndim != 1 or rows.dtype.kind not in "iu":
        raise IndexDamaged(index_dir, SENTENCE_ROWS, CORRUPT, f"{type(rows).__name__}")
    if len(rows) != sentences:
        raise IndexDamaged(
            index_dir,
            SENTENCE_ROWS,
            f"does not match sentences.faiss ({len(rows)} rows for {sentences} sentences)",
        )
    if len(rows) and not (0 <= int(rows[0]) <= int(rows[-1]) < chunks):
        raise IndexDamaged(
            index_dir,
            SENTENCE_ROWS,
            f"does not match the manifest (rows {int(rows[0])} to {int(rows[-1])}, "
            f"manifest says {chunks} chunks)",
        )
    return rows


def _read_bm25(index_dir: Path, chunks: int, mmap: bool) -> Any:
    """The bm25s index, checked to score exactly the index's chunks."""
    folder = index_dir / BM25_DIR
    if not folder.is_dir():
        problem = "is a file, not a directory" if folder.exists() else "is missing"
        raise IndexDamaged(index_dir, f"{BM25_DIR}/", problem)
    try:
        bm25 = import_bm25s().BM25.load(str(folder), mmap=mmap, show_progress=False)
    except Exception as exc:  # bm25s reports a bad file as whatever json or numpy raised
        raise _bm25_damage(index_dir, exc) from exc
    scores = getattr(bm25, "scores", None) or {}
    try:
        num_docs, data, indices, indptr = (
            scores["num_docs"], scores["data"], scores["indices"], scores["indptr"]
        )  # fmt: skip
        consistent = len(data) == len(indices) == int(indptr[-1])
    except (KeyError, IndexError, TypeError) as exc:
        raise IndexDamaged(index_dir, f"{BM25_DIR}/", CORRUPT, detail(exc)) from exc
    if num_docs != chunks:
        raise IndexDamaged(
            index_dir,
            f"{BM25_DIR}/{BM25_FILES[0]}",
            f"does not match the manifest ({num_docs} documents, manifest says {chunks} chunks)",
        )
    if not consistent:
        raise IndexDamaged(index_dir, f"{BM25_DIR}/", CORRUPT, "the score arrays differ in length")
    return bm25


def _bm25_damage(index_dir: Path, exc: Exception) -> IndexDamaged:
    """Which bm25 file made loading fail, found by reading each the way bm25s does."""
    for name in BM25_FILES:
        file = f"{BM25_DIR}/{name}"
        path = _readable(index_dir, file)  # raises for a missing or unreadable one
        try:
            if name.endswith(".json"):
                with open(path, encoding="utf-8") as f:
                    if not isinstance(json.load(f), dict):
                        raise ValueError("not a JSON object")
            else:
                np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, EOFError) as bad:  # UnicodeDecodeError and JSONDecodeError among them
            return IndexDamaged(index_dir, file, CORRUPT, detail(bad))
    return IndexDamaged(index_dir, f"{BM25_DIR}/", CORRUPT, detail(exc))


def _open_meta(index_dir: Path, manifest: Manifest) -> sqlite3.Connection:
    """A read-only connection to ``meta.sqlite``, once it has proved to be the SQLite database
    this manifest describes: header, size, tables and counts (COUNT(*) reads an index of the
    chunks, about 10 ms for a million). Damage deeper in the file is found by the query that
    reads it (Index._query)."""
    path = index_dir / META
    try:
        with open(path, "rb") as f:
            header = f.read(100)
            size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise IndexDamaged(index_dir, META, read_problem(exc), detail(exc)) from exc
    if not header:
        raise IndexDamaged(index_dir, META, "is empty")
    if len(header) < 100 or not header.startswith(SQLITE_HEADER):
        raise IndexDamaged(index_dir, META, "is not a SQLite database", f"header {header[:16]!r}")
    # The header's page count is to be trusted when its change counter matches (sqlite.org/fileformat2).
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if header[24:28] == header[92:96] and size < pages * page_size:
        raise IndexDamaged(
            index_dir, META, CORRUPT, f"{size} bytes, the header says {pages} pages of {page_size}"
        )
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in META_TABLES if t not in tables]
        if missing:
            s = "" if len(missing) == 1 else "s"
            raise IndexDamaged(index_dir, META, f"lacks the table{s} {', '.join(missing)}")
        found = con.execute(
            "SELECT (SELECT COUNT(*) FROM chunks), (SELECT COUNT(*) FROM documents)"
        ).fetchone()
        for what, n in zip(("chunks", "documents"), found, strict=True):
            if n != manifest.counts[what]:
                raise IndexDamaged(
                    index_dir,
                    META,
                    f"does not match the manifest ({n} {what}, manifest says "
                    f"{manifest.counts[what]})",
                )
    except sqlite3.DatabaseError as exc:
        con.close()
        raise IndexDamaged(index_dir, META, CORRUPT, detail(exc)) from exc
    except BaseException:
        con.close()
        raise
    return con
