"""Who may read /admin: sign-in sessions shared by every worker, and a budget of failed
authentications per client.

**Sessions.** The cookie the sign-in form sets is ``<id>.<issued>.<mac>``: a random id, the Unix
time it was issued and an HMAC of both, keyed by a key derived from the admin token. The id must
also be a row of the ``sessions`` table in ``admin.sqlite`` under ``data_dir`` (created 0600,
rag.analytics.private_db), whose expiry is the server's, not the browser's. So a cookie works
only until its row expires (8 hours after sign-in), signing out deletes the row (in every worker
at once: they share the file), and a new token changes the key, so no cookie made with the old
one passes its MAC (their rows are deleted when the server starts). A forged cookie gets nothing
without the token, and a copied one nothing once signed out.

**Failures.** A wrong Bearer token, a cookie that fails these checks and a wrong sign-in all
count against one budget per client address (``admin_auth_limit``, default 10 a minute), in
each worker process's memory (the `limits` library's moving window, as rag.serve.limits). Past
it, every /admin request of that client gets 429 with Retry-After, the right token included:
otherwise the budget would still tell a guesser when a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from pathlib import Path

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from rag.analytics.private_db import connect_private
from rag.config import Settings

DB_NAME = "admin.sqlite"
SESSION_TTL_S = 8 * 3600  # a browser signs in again after a working day
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    issued REAL NOT NULL,
    expires REAL NOT NULL
);
"""
# A cookie longer than this is not one of ours, whatever it holds.
_MAX_COOKIE = 200


class Sessions:
    """Admin sessions in a SQLite file every worker of the server shares."""

    def __init__(self, data_dir: Path, token: str, ttl_s: float = SESSION_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._key = hmac.new(token.encode(), b"career-rag admin sessions", hashlib.sha256).digest()
        # Which token a row was made with, without storing anything the token can be found from.
        self._key_id = hashlib.sha256(self._key).hexdigest()[:16]
        self._lock = threading.Lock()
        self._con = connect_private(Path(data_dir) / DB_NAME)
        with self._lock, self._con:
            self._con.executescript(_SCHEMA)
            # Sessions of another token, or past their expiry, can never be used again.
            self._con.execute(
                "DELETE FROM sessions WHERE key_id != ? OR expires <= ?",
                (self._key_id, time.time()),
            )

    def issue(self) -> str:
        """A new session's cookie value."""
        session_id, issued = secrets.token_urlsafe(24), int(time.time())
        with self._lock, self._con:
            self._con.execute("DELETE FROM sessions WHERE expires <= ?", (issued,))
            self._con.execute(
                "INSERT INTO sessions (id, key_id, issued, expires) VALUES (?, ?, ?, ?)",
                (session_id, self._key_id, issued, issued + self.ttl_s),
            )
        return f"{session_id}.{issued}.{self._mac(session_id, issued)}"

    def valid(self, cookie: str) -> bool:
        """Whether ``cookie`` is a session of this token, not signed out and not expired."""
        session_id = self._verified(cookie)
        if session_id is None:
            return False
        with self._lock:
            row = self._con.execute(
                "SELECT expires FROM sessions WHERE id = ? AND key_id = ?",
                (session_id, self._key_id),
            ).fetchone()
        return row is not None and time.time() < row[0]

    def revoke(self, cookie: str) -> None:
        """Sign ``cookie``'s session out, in every worker."""
        session_id = self._verified(cookie)
        if session_id is not None:
            with self._lock, self._con:
                self._con.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def _mac(self, session_id: str, issued: int) -> str:
        message = f"{session_id}.{issued}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _verified(self, cookie: str) -> str | None:
        """The id of an unexpired cookie of this token, found without reading the database."""
        parts = cookie.split(".") if len(cookie) <= _MAX_COOKIE else []
        if len(parts) != 3 or not parts[1].isdecimal():
            return None
        session_id, issued, mac = parts[0], int(parts[1]), parts[2]
        if not hmac.compare_digest(mac.encode(), self._mac(session_id, issued).encode()):
            return None
        return session_id if time.time() < issued + self.ttl_s else None


class Failures:
    """Failed admin authentications per client address, under one budget."""

    def __init__(self, rate: str) -> None:
        self.rate = rate
        self._items: list[RateLimitItem] = [] if rate == "off" else parse_many(rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again; None while it is within its budget."""
        for item in self._items:
            if not await self._limiter.test(item, "admin-auth", client):
                stats = await self._limiter.get_window_stats(item, "admin-auth", client)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None

    async def failed(self, client: str) -> None:
        """Count one failed authentication of ``client``."""
        for item in self._items:
            await self._limiter.hit(item, "admin-auth", client)


class AdminAuth:
    """The sessions and the failure budget of one running server (None when /admin is off)."""

    def __init__(self, settings: Settings, failures: Failures | None = None) -> None:
        self.sessions = Sessions(settings.data_dir, settings.admin_token)
        # Shared with API keys (rag.serve.access): one budget of failures per client.
        self.failures = failures or Failures(settings.admin_auth_limit)

    def close(self) -> None:
        self.sessions.close()
