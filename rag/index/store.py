"""The stored index: chunks and documents in SQLite, read on demand beside FAISS and BM25.

SQLite keeps a million chunks' text and metadata on disk rather than in memory, and one
read-only connection is shared by every request thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.damage import CORRUPT, detail
from rag.errors import DocumentNotFound, IndexDamaged
from rag.index.layout import META
from rag.index.manifest import Manifest, corpus_hashes
from rag.ingest.chunking import Chunk
from rag.ingest.types import Document


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
                start INTEGER, end INTEGER, text TEXT, meta TEXT, key TEXT NOT NULL,
                sentences TEXT NOT NULL);
            CREATE INDEX chunks_doc ON chunks(doc_id);
            CREATE INDEX chunks_source ON chunks(source);
            CREATE TABLE documents (ord INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,
                title TEXT, source TEXT, offset INTEGER, text TEXT, outline TEXT, meta TEXT);
            CREATE TABLE tags (doc_id TEXT NOT NULL, tag TEXT NOT NULL);
            CREATE INDEX tags_tag ON tags(tag);
            """
        )
        con.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
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
                    json.dumps(c.sentences),
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


_CHUNK_COLUMNS = "row, id, doc_id, title, section_path, source, start, end, text, meta, sentences"


class Index:
    """A loaded index: FAISS and BM25 in memory (FAISS memory-mapped), metadata on demand."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        faiss_index: Any,
        bm25: Any,
        meta: sqlite3.Connection,
        sentences: Any = None,
        sentence_rows: np.ndarray | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.faiss = faiss_index
        self.bm25 = bm25
        self.sentences = sentences
        self.sentence_rows = sentence_rows
        # One read-only connection for every thread, opened at load so that a later rebuild
        # that swaps the directory cannot make this index read another build's rows.
        self._con = meta
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
            for r in self._query(
                f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE row IN ({marks})", part
            ):
                meta = json.loads(r[9]) if r[9] else {}
                found[r[0]] = Chunk(
                    r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7], r[8], meta,
                    json.loads(r[10]),
                )  # fmt: skip
        return [found[int(r)] for r in rows]

    def all_chunks(self) -> list[Chunk]:
        """Every chunk, in row order (for tests and evaluation, not for serving)."""
        return self.chunks(list(range(self.size)))

    def section_paths(self) -> list[tuple[int, str, list[str]]]:
        """Every chunk's row, title and heading path, in row order."""
        rows = self._query("SELECT row, title, section_path FROM chunks ORDER BY row")
        return [(r[0], r[1] or "", json.loads(r[2]) if r[2] else []) for r in rows]

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
