"""Read a corpus folder: find the files, parse each by its format, dedupe, name.

A file that cannot be parsed (corrupt, encrypted, empty, not UTF-8) is skipped with a warning
naming it and the reason; the rest of the corpus is still read. Skipped files are returned too,
with their reason, so builds can report them and staleness checks see them as known.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.errors import BadDocument, CorpusEmpty
from rag.ingest.docx import parse_docx
from rag.ingest.html import parse_html
from rag.ingest.ids import slugify, unique_id
from rag.ingest.markdown import parse_markdown
from rag.ingest.pdf import parse_pdf
from rag.ingest.plaintext import parse_text
from rag.ingest.profiles import DEFAULT_TEXT_PROFILE, profile_for
from rag.ingest.types import Document, SourceFile
from rag.ingest.urls import file_urls
from rag.ingest.walk import walk_files

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".mdx", ".html", ".htm")
BINARY_SUFFIXES = (".pdf", ".docx")
SUFFIXES = TEXT_SUFFIXES + BINARY_SUFFIXES
# Bumped whenever parsing or chunking changes what documents, sections or passages come out of
# the same files (it makes every index stale, and a build re-embeds everything).
# 6: every word kept, headings in the rendered text, passages that stand on their own,
# labelled table lines.
PARSER_VERSION = 6

_BINARY: dict[str, Callable[[bytes, str], list[Document]]] = {
    ".pdf": parse_pdf,
    ".docx": parse_docx,
}


def file_sha256(path: Path) -> str:
    """Content hash of a file, used for staleness checks."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def iter_corpus_files(corpus_dir: Path) -> Iterator[Path]:
    """Every candidate file below ``corpus_dir``, in a stable order; hidden files are ignored."""
    for path in walk_files(corpus_dir):
        if not path.name.startswith(".") and path.suffix.lower() in SUFFIXES:
            yield path


def decode_text(raw: bytes) -> str:
    """The text of a text file's bytes with newlines normalised; raises BadDocument."""
    if b"\x00" in raw[:8192]:
        raise BadDocument("binary file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadDocument(f"not UTF-8 (byte {exc.start})") from exc
    if not text.strip():
        raise BadDocument("empty file")
    # Offsets are into this exact string, so normalise newlines once, here.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_file(
    data: bytes, source: str, text_profile: str = DEFAULT_TEXT_PROFILE
) -> list[Document]:
    """The documents of one file's bytes, by its format; raises BadDocument."""
    suffix = Path(source).suffix.lower()
    if not data.strip():
        raise BadDocument("empty file")
    if suffix in _BINARY:
        return _BINARY[suffix](data, source)
    return parse_source(decode_text(data), source, text_profile)


def parse_source(
    text: str, source: str, text_profile: str = DEFAULT_TEXT_PROFILE
) -> list[Document]:
    """Split one source text into documents, by the source's format."""
    suffix = Path(source).suffix.lower()
    if suffix in (".md", ".markdown", ".mdx"):
        return parse_markdown(text, source)
    if suffix in (".html", ".htm"):
        return parse_html(text, source)
    profile = profile_for(source, text_profile)
    docs = parse_text(text, source, profile)
    for doc in docs:
        doc.profile = profile.name
    return docs


def load_corpus(
    corpus_dir: Path,
    text_profile: str = DEFAULT_TEXT_PROFILE,
    *,
    on_start: Callable[[int], None] | None = None,
    on_file: Callable[[], None] | None = None,
) -> tuple[list[Document], list[SourceFile]]:
    """Parse every readable file under ``corpus_dir`` into documents with unique ids.

    Plain-text files are read with the text profile ``text_profile`` (rag.ingest.profiles).
    ``on_start`` hears how many files there are, ``on_file`` each one done (a progress bar).
    """
    files = read_corpus(corpus_dir, on_start=on_start, on_file=on_file)
    return assemble_corpus(corpus_dir, [parse_read(f, text_profile) for f in files])


@dataclass
class ReadFile:
    """A corpus file's relative path, bytes and their hash, as read on the driver."""

    rel: str
    data: bytes
    digest: str


@dataclass
class ParsedFile:
    """What parsing one file gave: its documents, or why it was skipped."""

    rel: str
    digest: str
    docs: list[Document]
    error: str | None = None


def read_corpus(
    corpus_dir: Path,
    *,
    on_start: Callable[[int], None] | None = None,
    on_file: Callable[[], None] | None = None,
) -> list[ReadFile]:
    """Every readable candidate file's bytes and hash, in a stable order."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise CorpusEmpty(f"corpus folder {corpus_dir} does not exist")
    paths = list(iter_corpus_files(corpus_dir))
    if on_start is not None:
        on_start(len(paths))
    out: list[ReadFile] = []
    for path in paths:
        if on_file is not None:
            on_file()
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("skipping %s: cannot read it (%s)", path, exc.strerror or exc)
            continue
        rel = path.relative_to(corpus_dir).as_posix()
        out.append(ReadFile(rel, data, hashlib.sha256(data).hexdigest()))
    return out


def parse_read(file: ReadFile, text_profile: str = DEFAULT_TEXT_PROFILE) -> ParsedFile:
    """Parse one file read by read_corpus; a pure function of its bytes, so it runs anywhere."""
    try:
        parsed = parse_file(file.data, file.rel, text_profile)
        if not parsed:
            raise BadDocument("no text to index")
    except BadDocument as exc:
        return ParsedFile(file.rel, file.digest, [], str(exc))
    return ParsedFile(file.rel, file.digest, parsed)


def assemble_corpus(
    corpus_dir: Path, parsed_files: Iterable[ParsedFile]
) -> tuple[list[Document], list[SourceFile]]:
    """Drop repeated bodies and make ids unique across the corpus, in file order.

    Done in one place over the whole corpus (never per file) so a build that parses files
    elsewhere (rag.distributed) names documents exactly as a local one.
    """
    docs: list[Document] = []
    sources: list[SourceFile] = []
    seen_ids: set[str] = set()
    seen_bodies: set[str] = set()
    # Files mirrored from the web (rag.sources) are listed with their page's URL.
    urls = file_urls(corpus_dir)
    for pf in parsed_files:
        rel = pf.rel
        if pf.error is not None:
            log.warning("skipping %s: %s", Path(corpus_dir) / rel, pf.error)
            # Recorded with no text, so staleness checks (which hash every candidate file's
            # bytes) do not see a skipped file as new on every run.
            sources.append(SourceFile(rel, "", pf.digest, pf.error))
            continue
        sources.append(SourceFile(rel, pf.docs[0].text, pf.digest))
        for doc in pf.docs:
            # Guide sites repeat the same short guides on many pages; index each once.
            body = hashlib.sha256(f"{doc.title}\n{doc.body}".encode()).hexdigest()
            if body in seen_bodies:
                continue
            seen_bodies.add(body)
            doc.id = _unique_id(doc.id, rel, seen_ids)
            if rel in urls:
                doc.meta["url"] = urls[rel]
            docs.append(doc)
    if not docs:
        names = ", ".join(SUFFIXES)
        raise CorpusEmpty(f"no readable documents ({names}) in {corpus_dir}")
    return docs, sources


def _unique_id(base: str, source: str, seen: set[str]) -> str:
    # Two guides with one title: the second is named after its file before being numbered.
    return unique_id(base, seen, f"{slugify(Path(source).stem)}-{base}")
