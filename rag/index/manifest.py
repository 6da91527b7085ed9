"""The manifest that makes an index directory describe itself, and the corpus it was built from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    field_validator,
)
from typing_extensions import TypedDict

from rag.damage import detail, read_problem
from rag.errors import IndexDamaged, IndexIncompatible, IndexNotFound
from rag.index.layout import MANIFEST, Layout
from rag.ingest.loader import file_sha256, iter_corpus_files
from rag.ingest.profiles import DEFAULT_TEXT_PROFILE

# 2: chunk and document metadata (source spans, pages, kinds, tags) in meta.sqlite.
# 3: each chunk's vector key in meta.sqlite, for incremental builds.
# 4: each chunk's sentences in meta.sqlite, split once at build time.
FORMAT_VERSION = 4
COUNTS = ("sources", "documents", "chunks")


class Counts(TypedDict):
    """How much the index holds."""

    sources: NonNegativeInt
    documents: NonNegativeInt
    chunks: NonNegativeInt


class BuildSpec(BaseModel):
    """Everything an index's passages and vectors depend on besides the corpus: compared in
    one place (``differences``) to tell whether an index is fresh and whether a build may
    reuse its vectors."""

    model_config = ConfigDict(frozen=True)

    model: str
    chunker: dict[str, int]
    parser_version: int
    text_profile: str
    bm25: dict[str, Any]
    # The corpus-adaptation settings when the model was adapted (rag.models.adaptation).
    adaptation: dict[str, Any] | None = None
    # Known once the model is loaded (a build); None in a spec made from settings alone.
    query_model: str | None = None
    dim: int | None = None

    def differences(self, wanted: BuildSpec) -> list[tuple[str, str]]:
        """(input, why) for each input ``wanted`` asks for differently, most telling first;
        inputs ``wanted`` leaves unknown (None) are not compared."""
        out: list[tuple[str, str]] = []
        if (
            self.model != wanted.model
            or _known_differs(self.query_model, wanted.query_model)
            or _known_differs(self.dim, wanted.dim)
        ):
            out.append(("model", "the model changed"))
        if self.chunker != wanted.chunker:
            out.append(("chunker", "the chunker settings changed"))
        if self.parser_version != wanted.parser_version:
            out.append(("parser_version", "the document parser changed"))
        if self.text_profile != wanted.text_profile:
            out.append(
                ("text_profile", f"the text profile changed (the index read plain text with "
                 f"{self.text_profile!r}, now {wanted.text_profile!r})")
            )  # fmt: skip
        if self.bm25 != wanted.bm25:
            out.append(("bm25", "the BM25 settings changed"))
        if self.adaptation != wanted.adaptation:
            if self.adaptation is None:
                why = "the index was built without adapting the model to the corpus"
            elif wanted.adaptation is None:
                why = "the index is adapted to the corpus but RAG_ADAPT is false"
            else:
                why = "the corpus adaptation settings changed"
            out.append(("adaptation", why))
        return out


def _known_differs(built: object, wanted: object) -> bool:
    return wanted is not None and built != wanted


class Manifest(BaseModel):
    """What an index was built from and how; refuse to mix it with anything else."""

    # Strict: a JSON true is not a count, "384" is not a dimension.
    model_config = ConfigDict(strict=True, extra="ignore", validate_assignment=False)

    format_version: int
    model: str
    dim: PositiveInt
    chunker: dict[str, int]
    parser_version: int
    faiss: dict[str, Any]
    bm25: dict[str, Any]
    sources: dict[str, str]
    counts: Counts
    built_at: str
    build_seconds: float = 0.0
    # Unique per build: a server compares it to notice that a new index was swapped in.
    build_id: str = ""
    # Plain text is read through this profile (rag.ingest.profiles); others ignore it.
    text_profile: str = DEFAULT_TEXT_PROFILE
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("extra")
    @classmethod
    def _extra_objects(cls, extra: dict[str, Any]) -> dict[str, Any]:
        wrong = [k for k in _EXTRA_OBJECTS if extra.get(k) and not isinstance(extra[k], dict)]
        if wrong:
            raise ValueError(", ".join(f"extra.{k}" for k in wrong))
        return extra

    @classmethod
    def read(cls, index_dir: Path) -> Manifest:
        """Read ``manifest.json``, refusing other format versions; raises IndexDamaged when it
        is unreadable, not a JSON object, or lacks a field or has one of the wrong type."""
        path = Layout(Path(index_dir)).manifest
        if not path.exists():
            raise IndexNotFound(f"no index at {index_dir}: run `rag index` to build one")
        data = _read_object(index_dir, path)
        version = data.get("format_version")
        if isinstance(version, int) and not isinstance(version, bool) and version != FORMAT_VERSION:
            raise IndexIncompatible(
                f"index at {index_dir} has format version {version}, this program reads "
                f"version {FORMAT_VERSION}: rebuild it with `rag index`"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise IndexDamaged(index_dir, MANIFEST, _problem(exc)) from exc

    @property
    def query_model(self) -> str:
        """The model queries must be encoded with: the corpus-adapted one when there is one."""
        adapted = self.extra.get("adapted") or {}
        return str(adapted.get("model_id") or self.model)

    @property
    def spec(self) -> BuildSpec:
        """The inputs this index was built from."""
        adapted = self.extra.get("adapted") or {}
        return BuildSpec(
            model=self.model,
            chunker=self.chunker,
            parser_version=self.parser_version,
            text_profile=self.text_profile,
            bm25=self.bm25,
            adaptation=adapted.get("settings") if adapted else None,
            query_model=self.query_model,
            dim=self.dim,
        )

    def write(self, index_dir: Path) -> None:
        """Write ``manifest.json`` into ``index_dir``."""
        Layout(Path(index_dir)).manifest.write_text(self.model_dump_json(indent=2) + "\n")


# Parts of ``extra`` that code reads as objects, when present.
_EXTRA_OBJECTS = ("onnx", "adapted", "skipped")


def _problem(exc: ValidationError) -> str:
    """What is wrong with the manifest, in the words of a damaged index: the fields missing,
    else those of the wrong type."""
    missing, wrong = [], []
    for error in exc.errors():
        if error["type"] == "value_error":  # the extra objects, named by the validator
            wrong.append(str(error.get("ctx", {}).get("error", "extra")))
            continue
        name = ".".join(str(part) for part in error["loc"])
        (missing if error["type"] == "missing" else wrong).append(name)
    if missing:
        fields = "field" if len(missing) == 1 else "fields"
        return f"lacks the {fields} {', '.join(sorted(set(missing)))}"
    fields = "a field" if len(wrong) == 1 else "fields"
    return f"has {fields} of the wrong type: {', '.join(sorted(set(wrong)))}"


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
