"""Copying model files that are never modified: a hard link where the filesystem allows one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def link_or_copy(src: Path, dst: Path) -> None:
    """Put ``src`` at ``dst`` as a hard link, or as a copy across filesystems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
