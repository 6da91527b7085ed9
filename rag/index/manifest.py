"""The manifest that makes an index directory describe itself, and the corpus it was built from."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import IndexIncompatible, IndexNotFound
from rag.ingest.loader import file_sha256, iter_corpus_files
from rag.ingest.profiles import DEFAULT_TEXT_PROFILE

# 2: chunk and document metadata (source spans, pages, kinds, tags) in meta.sqlite.
# 3: each chunk's vector key in meta.sqlite, for incremental builds.
FORMAT_VERSION = 3
MANIFEST = "manifest.json"


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
    # Unique per build: a server compares it to notice that a new index was swapped in.
    build_id: str = ""
    # Plain text is read through this profile (rag.ingest.profiles); others ignore it.
    text_profile: str = DEFAULT_TEXT_PROFILE
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
