"""Walk a corpus folder: every file outside hidden folders, through symbolic links, sorted."""

from __future__ import annotations

import os
from pathlib import Path


def walk_files(root: Path) -> list[Path]:
    """Every file below ``root`` outside hidden folders, through symbolic links, sorted."""
    # A collection's corpus folder links to each of its sources' folders (rag.sources.layout),
    # so links to folders are followed. A folder already walked (through another link, or a
    # link back up the tree) is not walked again: a loop ends, and nothing is read twice.
    root = Path(root)
    seen: set[tuple[int, int]] = set()
    out: list[Path] = []

    def walk(folder: Path) -> None:
        try:
            st = folder.stat()
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        for entry in entries:
            path = folder / entry.name
            try:
                is_dir = entry.is_dir()  # follows a link
            except OSError:
                continue
            if is_dir:
                if not entry.name.startswith("."):
                    walk(path)
            elif path.is_file():
                out.append(path)

    walk(root)
    # The order rglob gave before links were followed: by path, part by part.
    return sorted(out)
