"""Uploads: the source every collection has. A file is checked whole before anything is written
(its type from its content, its size, its name, whether it parses), then kept in the
collection's ``uploads/`` folder (rag.sources.layout) under a clean name.

The folder's ``.rag-uploads.json`` lists what was uploaded; only those files can be replaced or
deleted through the API, so a folder of someone's own documents that happens to be called
``uploads`` is never touched (its files are refused as uploads' home, with a 409).
"""

from __future__ import annotations

import io
import os
import re
import unicodedata
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock
from pydantic import BaseModel, Field, ValidationError

from rag.errors import BadDocument, RagError
from rag.ingest.loader import parse_file
from rag.sources.state import now, sha256

RECORD = ".rag-uploads.json"
LOCK = ".rag-uploads.lock"
# Files in one upload request: enough for a batch of guides, few enough to answer quickly.
MAX_FILES = 20
# A DOCX is a ZIP archive whose XML python-docx reads whole into memory. Text compresses about
# tenfold, so a hundredfold is no document; the absolute cap bounds memory whatever the ratio.
MAX_UNZIP_RATIO = 100
MAX_UNZIPPED_BYTES = 64 * 1024 * 1024
MAX_ZIP_MEMBERS = 5000
MAX_NAME_CHARS = 120
TYPES = ("md", "mdx", "html", "pdf", "docx", "txt")
# What a file's name may say it is, by the class of content that must back it.
_TEXT_SUFFIXES = {".md": "md", ".markdown": "md", ".mdx": "mdx", ".txt": "txt",
                  ".html": "html", ".htm": "html"}  # fmt: skip
_BINARY_SUFFIXES = {".pdf": "pdf", ".docx": "docx"}
_HTML_START = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)[\s>]",
    re.IGNORECASE | re.DOTALL,
)
_MARKDOWN_HINT = re.compile(r"^(?:#{1,6} \S|[-*] \S|\d+\. \S|```)", re.MULTILINE)
_UNSAFE = re.compile(r"[^\w.-]+")
# Other ZIP-based formats, by a part only they have, for the message that refuses them.
_ZIPS = (("xl/workbook.xml", "an Excel workbook"), ("ppt/presentation.xml", "a PowerPoint "
         "presentation"), ("mimetype", "an OpenDocument file"))  # fmt: skip


class UploadRefused(RagError):
    """An upload that is not kept: why, and the HTTP status that says so."""

    def __init__(self, message: str, status: int, kind: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


@dataclass(frozen=True)
class Upload:
    """A checked file, ready to keep: its clean name, its type and its bytes."""

    name: str
    original: str
    type: str
    data: bytes


class Uploaded(BaseModel):
    """What the record keeps of one uploaded file."""

    original: str
    type: str
    bytes: int
    sha256: str
    uploaded_at: str


class Record(BaseModel):
    """``.rag-uploads.json``: every file uploaded into the folder, by its name there."""

    files: dict[str, Uploaded] = Field(default_factory=dict)


def check_upload(filename: str | None, data: bytes, max_bytes: int, text_profile: str) -> Upload:
    """The file as it will be kept, or UploadRefused naming the problem; parses it (slow for a
    large PDF: call from a worker thread)."""
    name = clean_name(filename)
    shown = filename or name
    if len(data) > max_bytes:
        raise UploadRefused(
            f"{shown} is {len(data)} bytes, more than the {max_bytes} an upload may be",
            413,
            "too_large",
        )
    if not data.strip():
        raise UploadRefused(f"{shown} is empty", 422, "empty")
    kind = sniff(data, shown)
    stored = f"{name}.{kind}"
    try:
        documents = parse_file(data, stored, text_profile)
    except BadDocument as exc:
        raise UploadRefused(f"{shown}: {exc}", 422, "unreadable") from None
    if not documents:
        raise UploadRefused(f"{shown}: no text to index", 422, "unreadable")
    return Upload(stored, shown, kind, data)


def clean_name(filename: str | None) -> str:
    """The stem a file is kept under; UploadRefused (400) for a name that holds a path."""
    raw = unicodedata.normalize("NFC", (filename or "").strip())
    if not raw:
        raise UploadRefused("a file was sent without a name", 400, "bad_name")
    if any(c in raw for c in "/\\") or raw in (".", "..") or any(ord(c) < 32 for c in raw):
        raise UploadRefused(
            f"file name {raw!r} holds a path or control characters: send the file's own name",
            400,
            "bad_name",
        )
    if raw.startswith("."):
        raise UploadRefused(f"file name {raw!r} is a hidden file's name", 400, "bad_name")
    stem, dot, suffix = raw.rpartition(".")
    if not dot or f".{suffix.lower()}" not in {**_TEXT_SUFFIXES, **_BINARY_SUFFIXES}:
        stem = raw
    clean = _UNSAFE.sub("-", stem).strip("-.")[:MAX_NAME_CHARS].strip("-.")
    return clean or "upload"


def sniff(data: bytes, name: str) -> str:
    """The type of a file's content (md, mdx, html, pdf, docx, txt); a name's suffix only
    chooses among text formats. UploadRefused: 415 for another type, or a name that says PDF
    or Word for other content (or the reverse); 422 for a broken archive."""
    claimed = _suffix(name)
    if b"%PDF-" in data[:1024]:
        kind = "pdf"
    elif data.startswith(b"PK\x03\x04"):
        kind = _zip_kind(data, name)
    elif _is_text(data):
        kind = _text_kind(data, claimed)
    else:
        raise UploadRefused(
            f"{name}: its content is {_describe(data)}; uploads take {', '.join(TYPES)}",
            415,
            "unsupported_type",
        )
    binary = ("pdf", "docx")
    if claimed is not None and claimed != kind and (claimed in binary or kind in binary):
        said = {"pdf": "a PDF", "docx": "a Word document", "html": "HTML"}.get(kind, "text")
        raise UploadRefused(
            f"{name} is named as {claimed} but its content is {said}", 415, "unsupported_type"
        )
    return kind


def _suffix(name: str) -> str | None:
    suffix = os.path.splitext(name)[1].lower()
    return _TEXT_SUFFIXES.get(suffix) or _BINARY_SUFFIXES.get(suffix)


def _is_text(data: bytes) -> bool:
    if b"\x00" in data[:8192]:
        return False
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return True


def _text_kind(data: bytes, claimed: str | None) -> str:
    if _HTML_START.match(data[:4096]):
        return "html"
    if claimed in ("md", "mdx", "txt", "html"):
        return claimed
    return "md" if _MARKDOWN_HINT.search(data[:65536].decode("utf-8", "replace")) else "txt"


def _zip_kind(data: bytes, name: str) -> str:
    """``docx`` for a Word document's archive within the caps; UploadRefused otherwise."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UploadRefused(f"{name}: a broken ZIP archive ({exc})", 422, "unreadable") from None
    names = {m.filename for m in members}
    if "word/document.xml" not in names:
        what = next((kind for part, kind in _ZIPS if part in names), "a ZIP archive")
        raise UploadRefused(
            f"{name}: its content is {what}, not a Word document; uploads take {', '.join(TYPES)}",
            415,
            "unsupported_type",
        )
    # zipfile stops every member at its declared size (and fails its CRC past it), so the
    # declared sizes are what reading the archive can cost.
    unzipped = sum(m.file_size for m in members)
    if (
        len(members) > MAX_ZIP_MEMBERS
        or unzipped > MAX_UNZIPPED_BYTES
        or unzipped > MAX_UNZIP_RATIO * len(data)
    ):
        raise UploadRefused(
            f"{name}: this Word file expands to {unzipped} bytes in {len(members)} parts from "
            f"{len(data)}: refused as a ZIP bomb",
            422,
            "zip_bomb",
        )
    return "docx"


def _describe(data: bytes) -> str:
    """What a file looks like, for an error message: puremagic's name for it, or its bytes."""
    import puremagic

    try:
        found = puremagic.magic_string(data[:65536])
    except (puremagic.PureError, ValueError):
        found = []
    if found:
        best = found[0]
        return f"{best.name} ({best.mime_type or best.extension})"
    return "binary data of no known type"


@dataclass
class Change:
    """Files written or removed by one request, until its build says to keep or undo them."""

    store: Uploads
    # name -> the bytes it had before (None: it did not exist), and its record entry then.
    before: dict[str, tuple[bytes | None, Uploaded | None]] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)

    def rollback(self) -> None:
        """Put every file and record entry back as it was before this change."""
        with self.store.locked() as record:
            for name, (data, entry) in self.before.items():
                path = self.store.folder / name
                if data is None:
                    path.unlink(missing_ok=True)
                    record.files.pop(name, None)
                else:
                    _write(path, data)
                    if entry is not None:
                        record.files[name] = entry
            self.store.save(record)


class Uploads:
    """A collection's uploads folder and its record."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @contextmanager
    def locked(self) -> Iterator[Record]:
        """The record, read under the folder's lock (workers and processes share it)."""
        self.record()  # a folder that is not ours is refused before anything is written in it
        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(self.folder / LOCK, thread_local=False):
            yield self.record()

    def record(self) -> Record:
        """What was uploaded; refuses (409) a folder of files this server did not upload."""
        path = self.folder / RECORD
        try:
            return Record.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            pass
        except (OSError, ValidationError, ValueError) as exc:
            raise UploadRefused(
                f"the uploads record cannot be read ({exc})", 409, "conflict"
            ) from None
        # The lock is made only in a folder found to be ours (another upload may be writing
        # its first file now, before its record).
        ours = (self.folder / LOCK).exists()
        if not ours and any(
            p.is_file() and not p.name.startswith(".") for p in self.folder.glob("*")
        ):
            raise UploadRefused(
                f"the folder {self.folder.name}/ holds files that were not uploaded here: "
                "rename it, and uploads get a folder of their own",
                409,
                "conflict",
            )
        return Record()

    def save(self, record: Record) -> None:
        """Write the record atomically."""
        _write(self.folder / RECORD, record.model_dump_json(indent=1).encode())

    def add(self, uploads: list[Upload]) -> Change:
        """Keep checked files (replacing earlier uploads of the same name)."""
        change = Change(self)
        with self.locked() as record:
            for upload in uploads:
                path = self.folder / upload.name
                if path.exists() and upload.name not in record.files:
                    raise UploadRefused(
                        f"{upload.name} is in the uploads folder but was not uploaded",
                        409,
                        "conflict",
                    )
                old = path.read_bytes() if path.exists() else None
                change.before.setdefault(upload.name, (old, record.files.get(upload.name)))
                _write(path, upload.data)
                record.files[upload.name] = Uploaded(
                    original=upload.original,
                    type=upload.type,
                    bytes=len(upload.data),
                    sha256=sha256(upload.data),
                    uploaded_at=now(),
                )
                change.names.append(upload.name)
            self.save(record)
        return change

    def remove(self, name: str) -> Change:
        """Delete an uploaded file; UploadRefused (404) when it is not one."""
        change = Change(self)
        with self.locked() as record:
            path = self.folder / name
            if name not in record.files or not path.is_file():
                raise UploadRefused(f"{name} is not an uploaded file", 404, "not_found")
            change.before[name] = (path.read_bytes(), record.files.pop(name))
            path.unlink()
            self.save(record)
        change.names.append(name)
        return change


def _write(path: Path, data: bytes) -> None:
    """Write a file whole or not at all: the index never reads half of one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
