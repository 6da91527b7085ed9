"""A mirror is replaced whole or not at all, like an index.

A sync writes the new mirror into a hidden sibling directory (files it keeps are hard-linked from
the current mirror, not copied), writes its state last, and swaps it into place with one atomic
exchange (rag.index.fs). A sync that fails or is killed leaves the previous mirror and state as
they were; the next one removes what a dead one left. One sync per mirror at a time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from rag.index.fs import swap_into_place
from rag.index.lock import lock_path, new_temp_dir, remove_debris


class MirrorBusy(Exception):
    """Another sync holds this mirror's lock."""


@contextmanager
def mirror_lock(mirror_dir: Path) -> Iterator[None]:
    """Hold the mirror's lock, or raise MirrorBusy at once."""
    mirror_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path(mirror_dir), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise MirrorBusy(f"another sync is writing {mirror_dir}") from None
    try:
        yield
    finally:
        lock.release()


class Staging:
    """The next mirror being written beside the current one; ``commit`` swaps it into place."""

    def __init__(self, mirror_dir: Path) -> None:
        self.target = Path(mirror_dir).absolute()
        remove_debris(self.target)
        self.dir = new_temp_dir(self.target)

    def keep(self, name: str) -> None:
        """Carry a file of the current mirror over unchanged."""
        src, dst = self.target / name, self.dir / name
        try:
            os.link(src, dst)
        except OSError:  # a file system without hard links
            shutil.copy2(src, dst)

    def write(self, name: str, data: bytes) -> None:
        """Write a new or changed file."""
        (self.dir / name).write_bytes(data)

    def path(self, name: str) -> Path:
        """Where a file of the next mirror is."""
        return self.dir / name

    def commit(self) -> None:
        """Put the next mirror in place of the current one, atomically."""
        swap_into_place(self.dir, self.target)

    def discard(self) -> None:
        """Throw the next mirror away; the current one stays."""
        shutil.rmtree(self.dir, ignore_errors=True)
