"""The manifest that makes an index directory describe itself, and the corpus it was built from."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.damage import detail, read_problem
from rag.errors import IndexDamaged, IndexIncompatible, IndexNotFound
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
        """Read ``manifest.json``, refusing other format versions; raises IndexDamaged when it
        is unreadable, not a JSON object, or lacks a field or has one of the wrong type."""
        path = Path(index_dir) / MANIFEST
        if not path.exists():
            raise IndexNotFound(f"no index at {index_dir}: run `rag index` to build one")
        data = _read_object(index_dir, path)
        version = data.get("format_version")
        if "format_version" in data and _is_int(version) and version != FORMAT_VERSION:
            raise IndexIncompatible(
                f"index at {index_dir} has format version {version}, this program reads "
                f"version {FORMAT_VERSION}: rebuild it with `rag index`"
            )
        _check_fields(index_dir, data)
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


# The fields of every manifest of this format and their types; the optional ones may be absent.
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format_version": int, "model": str, "dim": int, "chunker": dict, "parser_version": int,
    "faiss": dict, "bm25": dict, "sources": dict, "counts": dict, "built_at": str,
}  # fmt: skip
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "build_seconds": (int, float), "build_id": str, "text_profile": str, "extra": dict,
}  # fmt: skip
COUNTS = ("sources", "documents", "chunks")
# Parts of ``extra`` that code reads as objects, when present.
_EXTRA_OBJECTS = ("onnx", "adapted", "skipped")


def _read_object(index_dir: Path, path: Path) -> dict[str, Any]:
    """The manifest's JSON object; IndexDamaged when it cannot be read or is not one."""
    try:
        # The builtin open, not Path.read_bytes: one way in for every file of the index.
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise IndexDamaged(index_dir, MANIFEST, read_problem(exc), detail(exc)) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IndexDamaged(index_dir, MANIFEST, "is not valid UTF-8", detail(exc)) from exc
    if not text.strip():
        raise IndexDamaged(index_dir, MANIFEST, "is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IndexDamaged(index_dir, MANIFEST, "is not valid JSON", detail(exc)) from exc
    if not isinstance(data, dict):
        raise IndexDamaged(index_dir, MANIFEST, "is not a JSON object", type(data).__name__)
    return data


def _check_fields(index_dir: Path, data: dict[str, Any]) -> None:
    """IndexDamaged naming every field that is missing, then every one of the wrong type."""
    missing = [name for name in _FIELDS if name not in data]
    wrong = [
        name
        for name, kind in {**_FIELDS, **_OPTIONAL}.items()
        if name in data and not _is(data[name], kind)
    ]
    counts = data.get("counts")
    if isinstance(counts, dict):
        missing += [f"counts.{name}" for name in COUNTS if name not in counts]
        wrong += [
            f"counts.{name}"
            for name in COUNTS
            if name in counts and not (_is_int(counts[name]) and counts[name] >= 0)
        ]
    if "dim" in data and _is_int(data["dim"]) and data["dim"] <= 0:
        wrong.append("dim")
    extra = data.get("extra")
    if isinstance(extra, dict):
        wrong += [f"extra.{k}" for k in _EXTRA_OBJECTS if extra.get(k) and not _is(extra[k], dict)]
    if missing:
        fields = "field" if len(missing) == 1 else "fields"
        raise IndexDamaged(index_dir, MANIFEST, f"lacks the {fields} {', '.join(sorted(missing))}")
    if wrong:
        fields = "a field" if len(wrong) == 1 else "fields"
        raise IndexDamaged(
            index_dir, MANIFEST, f"has {fields} of the wrong type: {', '.join(sorted(wrong))}"
        )


def _is(value: object, kind: type | tuple[type, ...]) -> bool:
    """isinstance, except that a JSON true or false is not a number."""
    return isinstance(value, kind) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return _is(value, int)


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
