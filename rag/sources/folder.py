"""Sync a folder source: its documents stay where they are; the sync only says what changed.

What the last sync saw (each file's hash) is kept in a state file in ``state_dir``, so the
report counts added, changed, removed and unchanged files like a web source's.
"""

from __future__ import annotations

from pathlib import Path

from rag.ingest.loader import iter_corpus_files
from rag.sources.config import FolderSource
from rag.sources.report import SyncReport
from rag.sources.state import Entry, State, now, sha256
from rag.sources.web import SyncFailed


def sync_folder(source: FolderSource, state_dir: Path, report: SyncReport) -> None:
    """Compare the folder with the last sync's record, and record it anew; SyncFailed if none."""
    folder = Path(source.path)
    if not folder.is_dir():
        raise SyncFailed(f"folder {folder} does not exist")
    previous = State.read(state_dir)
    state = State(source=source.label())
    stamp = now()
    for path in iter_corpus_files(folder):
        rel = path.relative_to(folder).as_posix()
        try:
            digest = sha256(path.read_bytes())
        except OSError as exc:
            report.errors[rel] = f"cannot read it: {exc.strerror or exc}"
            if rel in previous.files:
                state.files[rel] = previous.files[rel]
            continue
        report.fetched += 1
        before = previous.files.get(rel)
        if before is None:
            report.added += 1
        elif before.sha256 != digest:
            report.changed += 1
        else:
            report.unchanged += 1
        # No URL: a folder's files are cited through the viewer only.
        state.files[rel] = Entry(
            url="", canonical_url="", sha256=digest, status=200,
            fetched_at=stamp if before is None or before.sha256 != digest else before.fetched_at,
            checked_at=stamp,
        )  # fmt: skip
    report.removed = len(set(previous.files) - set(state.files))
    report.documents = len(state.files)
    state.synced_at = stamp
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    state.write(state_dir)
