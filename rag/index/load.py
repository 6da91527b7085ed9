"""Open an index directory: every file read and checked against the manifest, so a damaged
or mismatched index is refused at load with the file at fault named (IndexDamaged)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from rag.damage import CORRUPT, detail, open_for_reading, read_problem
from rag.errors import IndexDamaged, IndexIncompatible
from rag.index.ann import read_faiss
from rag.index.layout import BM25_DIR, BM25_FILES, META, SENTENCE_ROWS, SENTENCES, VECTORS
from rag.index.lexical import import_bm25s
from rag.index.manifest import Manifest
from rag.index.store import Index
from rag.models.embedder import resolve_model


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
    vectors = _read_vectors(index_dir, VECTORS, manifest.dim, chunks, mmap)
    sentences = sentence_rows = None
    described = manifest.faiss.get("sentences")
    if described or (index_dir / SENTENCES).exists():
        ntotal = described.get("ntotal") if isinstance(described, dict) else None
        sentences = _read_vectors(index_dir, SENTENCES, manifest.dim, ntotal, mmap)
        sentence_rows = _read_sentence_rows(index_dir, int(sentences.ntotal), chunks, mmap)
    bm25 = _read_bm25(index_dir, chunks, mmap)
    meta = _open_meta(index_dir, manifest)
    return Index(index_dir, manifest, vectors, bm25, meta, sentences, sentence_rows)


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
    chunks, cheap even for a million). Damage deeper in the file is found by the query that
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
