"""Read a corpus folder: find the files, decode them, parse each by its format, dedupe, name."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

from rag.errors import CorpusEmpty
from rag.ingest.html import html_to_markdown
from rag.ingest.ids import slugify, unique_id
from rag.ingest.markdown import parse_markdown
from rag.ingest.plaintext import parse_text
from rag.ingest.profiles import DEFAULT_TEXT_PROFILE, profile_for
from rag.ingest.types import Document, SourceFile

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")
# Bumped whenever parsing changes what documents or sections come out of the same files.
PARSER_VERSION = 4


def file_sha256(path: Path) -> str:
    """Content hash of a file, used for staleness checks."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def iter_corpus_files(corpus_dir: Path) -> Iterator[Path]:
    """Every candidate file below ``corpus_dir``, in a stable order; hidden files are ignored."""
    for path in sorted(corpus_dir.rglob("*")):
        rel = path.relative_to(corpus_dir)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in SUFFIXES:
            yield path


def decode_source(raw: bytes, path: Path) -> str | None:
    """The text of a corpus file's bytes, or None (with a warning naming it) if unusable."""
    if b"\x00" in raw[:8192]:
        log.warning("skipping %s: binary file", path)
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        log.warning("skipping %s: not UTF-8 (byte %d)", path, exc.start)
        return None
    if not text.strip():
        log.warning("skipping %s: empty file", path)
        return None
    # Offsets are into this exact string, so normalise newlines once, here.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load_corpus(
    corpus_dir: Path, text_profile: str = DEFAULT_TEXT_PROFILE
) -> tuple[list[Document], list[SourceFile]]:
    """Parse every readable file under ``corpus_dir`` into documents with unique ids.

    Plain-text files are read with the text profile ``text_profile`` (rag.ingest.profiles).
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise CorpusEmpty(f"corpus folder {corpus_dir} does not exist")
    docs: list[Document] = []
    sources: list[SourceFile] = []
    seen_ids: set[str] = set()
    seen_bodies: set[str] = set()
    for path in iter_corpus_files(corpus_dir):
        rel = path.relative_to(corpus_dir).as_posix()
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("skipping %s: cannot read it (%s)", path, exc.strerror or exc)
            continue
        raw = decode_source(data, path)
        # Skipped files are recorded too (with no text), so that staleness checks, which hash
        # the bytes of every candidate file, do not see them as new on every run.
        sources.append(SourceFile(rel, raw or "", hashlib.sha256(data).hexdigest()))
        if raw is None:
            continue
        text = html_to_markdown(raw) if path.suffix.lower() in (".html", ".htm") else raw
        sources[-1].text = text
        for doc in parse_source(text, rel, text_profile):
            # Guide sites repeat the same short guides on many pages; index each once.
            digest = hashlib.sha256(f"{doc.title}\n{doc.body}".encode()).hexdigest()
            if digest in seen_bodies:
                continue
            seen_bodies.add(digest)
            doc.id = _unique_id(doc.id, rel, seen_ids)
            docs.append(doc)
    if not docs:
        raise CorpusEmpty(f"no readable .txt, .md or .html documents in {corpus_dir}")
    return docs, sources


def parse_source(
    text: str, source: str, text_profile: str = DEFAULT_TEXT_PROFILE
) -> list[Document]:
    """Split one source text into documents, by the source's format."""
    if source.lower().endswith((".md", ".markdown", ".html", ".htm")):
        return parse_markdown(text, source)
    return parse_text(text, source, profile_for(source, text_profile))


def _unique_id(base: str, source: str, seen: set[str]) -> str:
    # Two guides with one title: the second is named after its file before being numbered.
    return unique_id(base, seen, f"{slugify(Path(source).stem)}-{base}")
