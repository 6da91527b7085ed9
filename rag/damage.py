"""What is wrong with a file, in the plain words of an IndexDamaged message.

Shared by the index (rag.index.store, rag.index.manifest) and the models kept inside it
(rag.models.onnx), which cannot import each other's modules without a cycle.
"""

from __future__ import annotations

from pathlib import Path

CORRUPT = "is truncated or corrupt"


def read_problem(exc: OSError) -> str:
    """Why a file could not be opened or read: "is missing", "cannot be read (...)"..."""
    if isinstance(exc, FileNotFoundError):
        return "is missing"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    if isinstance(exc, NotADirectoryError):
        return "is a file, not a directory"
    if isinstance(exc, PermissionError):
        return "cannot be read (permission denied)"
    reason = exc.strerror or type(exc).__name__
    return f"cannot be read ({reason[:1].lower()}{reason[1:]})"


def detail(exc: BaseException) -> str:
    """The underlying error, for the log (it may name paths and library internals)."""
    return f"{type(exc).__name__}: {exc}"


def open_for_reading(path: Path) -> None:
    """Open and close ``path``, so that a missing or unreadable file raises OSError now, before
    a library (FAISS, SQLite, onnxruntime) reports it in its own words."""
    with open(path, "rb"):
        pass
