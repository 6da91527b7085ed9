"""Directory operations that keep an index whole: an atomic exchange of two directories."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
from pathlib import Path

from rag.index.lock import sibling

_RENAME_EXCHANGE = 2


def swap_into_place(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``; an existing target is exchanged atomically, then removed."""
    if not target.exists():
        os.rename(new, target)
        return
    if not _rename_exchange(new, target):
        # No renameat2 here: two renames leave a window of microseconds without an index.
        old = sibling(target, "old")
        os.rename(target, old)
        os.rename(new, target)
        new = old
    shutil.rmtree(new, ignore_errors=True)


def _rename_exchange(a: Path, b: Path) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0
