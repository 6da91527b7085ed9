"""API keys scoped to collections, stored hashed in ``<data_dir>/keys.sqlite``.

A key reads ``rag_<id>_<secret>``: the id finds its row, and the SHA-256 of the secret is
compared with the stored one in constant time. The secret is 32 random bytes, so a fast hash is
enough (a slow one protects guessable passwords, which these are not), and the plain key is
shown once, when it is made. An admin key may use every collection and the admin pages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rag.errors import KeyNotFound

DB_NAME = "keys.sqlite"
PREFIX = "rag_"
_KEY_RE = re.compile(r"^rag_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
# A key's last use is written at most this often: a write per request would contend between
# server workers for nothing a person reads more precisely.
TOUCH_EVERY_S = 60.0
# Compared against when the id is unknown, so that a miss costs what a hit costs.
_DUMMY = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    """A key's record, without its secret."""

    id: str
    name: str
    collections: tuple[str, ...]
    admin: bool
    upload: bool
    created_at: str
    last_used_at: str | None = None
    revoked_at: str | None = None

    def may_use(self, collection: str) -> bool:
        """Whether this key reaches ``collection``."""
        return self.revoked_at is None and (self.admin or collection in self.collections)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"id": self.id, "name": self.name, "collections": list(self.collections),
                "admin": self.admin, "upload": self.upload, "created_at": self.created_at,
                "last_used_at": self.last_used_at, "revoked_at": self.revoked_at}  # fmt: skip


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyStore:
    """The keys of one data directory; every method opens its own short connection, so one
    store serves threads and worker processes alike."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / DB_NAME
        self._touched: dict[str, float] = {}

    def _connect(self) -> sqlite3.Connection:
        new = not self.path.exists()
        if new:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Created 0600 before SQLite writes into it: hashes are still not for other users.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        con = sqlite3.connect(self.path, timeout=10)
        con.execute("PRAGMA secure_delete = ON")
        con.execute(
            "CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
            "hash TEXT NOT NULL, collections TEXT NOT NULL, admin INTEGER NOT NULL, "
            "upload INTEGER NOT NULL, created_at TEXT NOT NULL, last_used_at TEXT, "
            "revoked_at TEXT)"
        )
        return con

    def create(
        self,
        name: str,
        collections: Iterable[str] = (),
        *,
        admin: bool = False,
        upload: bool = False,
    ) -> tuple[KeyInfo, str]:
        """A new key: its record and the plain key, which is not stored and not shown again."""
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        info = KeyInfo(key_id, name, tuple(dict.fromkeys(collections)), admin, upload, _now())
        con = self._connect()
        try:
            with con:
                con.execute(
                    "INSERT INTO keys VALUES (?,?,?,?,?,?,?,NULL,NULL)",
                    (key_id, name, _digest(secret), json.dumps(list(info.collections)),
                     int(admin), int(upload), info.created_at),
                )  # fmt: skip
        finally:
            con.close()
        return info, f"{PREFIX}{key_id}_{secret}"

    def list(self) -> list[KeyInfo]:
        """Every key, revoked ones too, oldest first."""
        con = self._connect()
        try:
            rows = con.execute(
                "SELECT id, name, collections, admin, upload, created_at, last_used_at, "
                "revoked_at FROM keys ORDER BY created_at, id"
            ).fetchall()
        finally:
            con.close()
        return [_info(r) for r in rows]

    def revoke(self, key_id: str) -> KeyInfo:
        """Revoke a key from now on; KeyNotFound for an unknown id."""
        con = self._connect()
        try:
            with con:
                con.execute(
                    "UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                    (_now(), key_id),
                )
            row = con.execute(
                "SELECT id, name, collections, admin, upload, created_at, last_used_at, "
                "revoked_at FROM keys WHERE id = ?",
                (key_id,),
            ).fetchone()
        finally:
            con.close()
        if row is None:
            raise KeyNotFound(f"no key with id {key_id!r}")
        return _info(row)

    def check(self, presented: str) -> KeyInfo | None:
        """The live key ``presented`` is, or None; compared in constant time."""
        match = _KEY_RE.match(presented)
        key_id, secret = match.groups() if match else ("", presented)
        if not self.path.exists():
            hmac.compare_digest(_digest(secret), _DUMMY)
            return None
        con = self._connect()
        try:
            row = con.execute(
                "SELECT id, name, collections, admin, upload, created_at, last_used_at, "
                "revoked_at, hash FROM keys WHERE id = ?",
                (key_id,),
            ).fetchone()
            same = hmac.compare_digest(_digest(secret), row[8] if row else _DUMMY)
            if row is None or not same or row[7] is not None:
                return None
            self._touch(con, key_id)
        finally:
            con.close()
        return _info(row[:8])

    def _touch(self, con: sqlite3.Connection, key_id: str) -> None:
        now = time.monotonic()
        if now - self._touched.get(key_id, -TOUCH_EVERY_S) < TOUCH_EVERY_S:
            return
        self._touched[key_id] = now
        with con:
            con.execute("UPDATE keys SET last_used_at = ? WHERE id = ?", (_now(), key_id))


def _info(row: tuple[object, ...]) -> KeyInfo:
    key_id, name, collections, admin, upload, created, used, revoked = row
    return KeyInfo(
        str(key_id), str(name), tuple(json.loads(str(collections))), bool(admin), bool(upload),
        str(created), used if used is None else str(used), revoked if revoked is None else str(revoked),
    )  # fmt: skip
