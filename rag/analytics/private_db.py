"""The SQLite files the server writes under ``data_dir``: readable by its own user only, and with
the content of deleted rows overwritten.

The query log quotes what readers asked and the admin sessions table says who is signed in:
neither is for other users of the machine, so each file is created 0600 (its journal and WAL
files take the database file's mode: SQLite gives them the same permissions), a file left by
older code is narrowed to 0600, and a data directory this code creates is 0700.
``secure_delete`` is set on every connection that deletes: without it, retention would remove
rows from the tables but leave their text in the file's free pages, readable by anyone who
copies the file. Some builds of SQLite turn it on by default; others do not.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
# What SQLite writes beside a database: the rollback journal, or the WAL and its index.
_SIDECARS = ("-journal", "-wal", "-shm")


def connect_private(path: Path, *, timeout: float = 30) -> sqlite3.Connection:
    """A connection to ``path``, created for this user only, with ``secure_delete`` on."""
    path = Path(path)
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    # Created before SQLite opens it, so it never exists with the umask's wider mode.
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE_FILE))
    for file in [path, *(path.with_name(path.name + suffix) for suffix in _SIDECARS)]:
        _narrow(file)
    con = sqlite3.connect(path, timeout=timeout, check_same_thread=False)
    con.execute("PRAGMA secure_delete=ON")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    return con


def _narrow(file: Path) -> None:
    """Make a file of older code (created 0644) private, if it is ours to change."""
    try:
        if file.stat().st_mode & 0o777 != PRIVATE_FILE:
            file.chmod(PRIVATE_FILE)
    except FileNotFoundError:
        return
    except PermissionError:
        log.warning("%s is readable by other users and not ours to change: chmod 600 it", file)
