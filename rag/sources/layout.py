"""Where a collection's sources keep their documents, and the one folder its index reads.

A collection whose only source is one folder (``corpus = "..."``, or no config file) is indexed
from that folder, as before sources existed. Any other is indexed from a folder the server
keeps, ``<data_dir>/corpus/``, with one entry per source::

    corpus/
      careers.example.com/      a web source's mirror (the sync writes it here)
      extra-guides -> /srv/...  a folder source: a link to the folder, read where it is
      uploads/                  files uploaded through the API or the admin page

The loader follows links (rag.ingest.walk), so the index reads all of them as one corpus, and
a document's ``source`` names its entry (``careers.example.com/guides-pay-1a2b3c4d.html``).
Every collection has ``uploads/`` in the folder it is indexed from.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rag.ingest.urls import STATE_FILE
from rag.sources.config import FolderSource, WebSource

log = logging.getLogger(__name__)

UPLOADS = "uploads"
# Under the collection's data folder: the corpus of entries, and each source's sync state.
CORPUS = "corpus"
STATES = "sources"

Source = WebSource | FolderSource


@dataclass(frozen=True)
class Entry:
    """One source of a collection: its name, where its sync writes, where its documents are."""

    name: str
    source: Source
    # What ``sync(source, mirror_dir)`` is given: a web mirror, or a folder's state folder.
    mirror_dir: Path

    @property
    def documents_dir(self) -> Path:
        """Where the index finds this source's documents."""
        return Path(self.source.path) if isinstance(self.source, FolderSource) else self.mirror_dir


@dataclass(frozen=True)
class Layout:
    """The folders of one collection's sources."""

    corpus_dir: Path
    # Whether corpus_dir is the server's folder of entries (else a folder source itself).
    managed: bool
    entries: tuple[Entry, ...]

    @classmethod
    def plan(cls, sources: tuple[Source, ...], corpus_dir: Path, data_dir: Path) -> Layout:
        """The layout of ``sources``; ``corpus_dir`` is used when they are one folder."""
        data_dir = Path(data_dir)
        managed = not (len(sources) == 1 and isinstance(sources[0], FolderSource))
        root = data_dir / CORPUS if managed else Path(corpus_dir)
        taken = {UPLOADS}
        entries = []
        for source in sources:
            name = _unique(_entry_name(source), taken)
            if isinstance(source, WebSource):
                mirror = root / name
            else:
                mirror = data_dir / STATES / name
            entries.append(Entry(name, source, mirror))
        return cls(root, managed, tuple(entries))

    @property
    def uploads_dir(self) -> Path:
        """Where uploaded files go."""
        return self.corpus_dir / UPLOADS

    def entry(self, name: str) -> Entry | None:
        """The entry called ``name``."""
        return next((e for e in self.entries if e.name == name), None)

    def assemble(self) -> list[str]:
        """Make the managed folder match the sources: a link per folder source, and no entry
        of a source no longer configured. Returns the entries removed."""
        if not self.managed:
            return []
        root = self.corpus_dir
        root.mkdir(parents=True, exist_ok=True)
        wanted = {e.name: e for e in self.entries}
        for entry in self.entries:
            if isinstance(entry.source, FolderSource):
                _link(root / entry.name, Path(entry.source.path).absolute())
        removed = []
        for path in sorted(root.iterdir()):
            name = path.name
            if name.startswith(".") or name == UPLOADS or name in wanted:
                continue
            # Only what a sync made here goes: a link, or a mirror with its state file.
            # Tolerant of a sync and an upload's build laying the folder out at once.
            if path.is_symlink():
                path.unlink(missing_ok=True)
            elif path.is_dir() and (path / STATE_FILE).is_file():
                shutil.rmtree(path, ignore_errors=True)
            else:
                log.warning("leaving %s in %s: no configured source made it", name, root)
                continue
            removed.append(name)
        return removed


def _link(link: Path, target: Path) -> None:
    """Point ``link`` at ``target``, replacing a link that points elsewhere."""
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return
        link.unlink(missing_ok=True)
    elif link.exists():
        raise FileExistsError(f"{link} exists and is not a link to a source folder")
    try:
        link.symlink_to(target, target_is_directory=True)
    except FileExistsError:
        if not (link.is_symlink() and Path(os.readlink(link)) == target):
            raise


def _entry_name(source: Source) -> str:
    """A readable folder name: the site and section (``careers.example.com-guides``), or the
    folder's own name."""
    if isinstance(source, WebSource):
        parts = urlsplit(source.url)
        host = (parts.hostname or "site") + (f"-{parts.port}" if parts.port else "")
        folder = (
            parts.path.rsplit("/", 1)[0] if "." in parts.path.rsplit("/", 1)[-1] else parts.path
        )
        raw = f"{host}-{folder}" if folder.strip("/") else host
    else:
        raw = Path(source.path).name
    name = re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("-.")[:80]
    return name or source.type


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{name}-{n}"
        n += 1
    taken.add(candidate)
    return candidate
