"""Query log: every /search, /ask and /chat, plus user feedback, in SQLite under ``data_dir``.

Request handlers only put records on a queue; one writer thread drains it and commits in
batches, so logging never blocks the event loop and concurrent writers never contend for the
database inside one process. ``close()`` drains the queue before it returns, so no record is lost
on shutdown. Several server processes may share one file: WAL mode and a busy timeout let their
writers take turns.

A query has at most one rating: a later one replaces it. Retention (``max_age_days``,
``max_rows``) is applied by the writer thread too, on a timer whether or not records arrive, so
no request waits for it. Each client may add at most ``max_rows_per_client_hour`` records in any
hour; past it its queries are still answered but not logged, so one client cannot push everyone
else's questions out of a log capped at ``max_rows``. The files are private to the server's user
and deleted rows are overwritten (rag.analytics.private_db).
"""

from __future__ import annotations

import json
import logging
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rag.analytics.private_db import connect_private
from rag.errors import RagError

log = logging.getLogger(__name__)

DB_NAME = "querylog.sqlite"
# A hybrid score is a weighted mean of z-scores over the query's candidates, so it says how far
# a passage stands out from the others, not whether the corpus covers the question. Top scores
# measured on our three question sets: 5th percentile 2.46, median 3.65; off-topic queries
# ("recipe for lasagna") 2.3-3.4. Under 2.5 the best passage barely stands out: worth a look.
LOW_SCORE = 2.5
_EXAMPLES = 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    query_id TEXT NOT NULL UNIQUE,
    endpoint TEXT NOT NULL,
    query TEXT NOT NULL,
    chunk_ids TEXT NOT NULL,
    scores TEXT NOT NULL,
    n_results INTEGER NOT NULL,
    top_score REAL,
    latency_ms REAL NOT NULL,
    index_built_at TEXT,
    model TEXT,
    answered INTEGER
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    query_id TEXT NOT NULL REFERENCES queries(query_id),
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT
);
CREATE INDEX IF NOT EXISTS feedback_query ON feedback(query_id);
"""
# One rating per query: logs written before this rule keep their latest rating of each query.
_ONE_RATING = """
DELETE FROM feedback WHERE id NOT IN (SELECT MAX(id) FROM feedback GROUP BY query_id);
CREATE UNIQUE INDEX IF NOT EXISTS feedback_one_per_query ON feedback(query_id);
"""
# Columns added after the first release, in order: (name, type). Old rows read NULL.
_ADDED_COLUMNS = (("answered", "INTEGER"),)
# Retention runs this often, idle or not, and after max_rows / 10 new records.
PRUNE_EVERY_S = 60.0


class QueryNotFound(RagError, KeyError):
    """Feedback names a query id that is not in the log."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else "query not found"


@dataclass
class QueryRecord:
    """One logged query: what was asked, what came back, how long it took, against what index."""

    query_id: str
    endpoint: str
    query: str
    chunk_ids: Sequence[str]
    scores: Sequence[float]
    latency_ms: float
    index_built_at: str | None = None
    model: str | None = None
    ts: str = field(default_factory=lambda: _now())
    # Whether an answer was given (/ask, /chat); None where none is asked for (/search).
    answered: bool | None = None

    def row(self) -> tuple[Any, ...]:
        """The values of one ``queries`` row, in column order after ``id``."""
        scores = [round(float(s), 6) for s in self.scores]
        return (
            self.ts,
            self.query_id,
            self.endpoint,
            self.query,
            json.dumps(list(self.chunk_ids)),
            json.dumps(scores),
            len(scores),
            scores[0] if scores else None,
            round(float(self.latency_ms), 3),
            self.index_built_at,
            self.model,
            None if self.answered is None else int(self.answered),
        )


@dataclass
class _Feedback:
    query_id: str
    rating: str
    comment: str | None
    done: Future[None]
    ts: str = field(default_factory=lambda: _now())


_STOP = object()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def db_path(data_dir: Path) -> Path:
    """Where the query log of a data directory lives."""
    return Path(data_dir) / DB_NAME


def _connect(path: Path) -> sqlite3.Connection:
    con = connect_private(path)
    con.executescript(_SCHEMA)
    _add_missing_columns(con)
    con.executescript(_ONE_RATING)
    return con


def _add_missing_columns(con: sqlite3.Connection) -> None:
    """Bring a log written by older code up to the current columns (all nullable)."""
    have = {row[1] for row in con.execute("PRAGMA table_info(queries)")}
    for name, kind in _ADDED_COLUMNS:
        if name in have:
            continue
        try:
            con.execute(f"ALTER TABLE queries ADD COLUMN {name} {kind}")
        except sqlite3.OperationalError as exc:
            # Another server process sharing the file added it first.
            if "duplicate column" not in str(exc):
                raise


class ClientCap:
    """At most ``per_hour`` records per client in any hour, counted in this process."""

    # The `limits` library's moving window in memory: expired windows are dropped, so memory
    # follows the clients of the last hour.

    def __init__(self, per_hour: int) -> None:
        from limits import RateLimitItemPerHour
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        self.per_hour = per_hour
        self._item = RateLimitItemPerHour(per_hour)
        self._warning = RateLimitItemPerHour(1)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def admit(self, client: str) -> bool:
        """Count one record of ``client``; False when it is past its cap (and is not logged)."""
        if self._limiter.hit(self._item, "rows", client):
            return True
        if self._limiter.hit(self._warning, "warned", client):  # once an hour per client
            log.warning(
                "query log: client %s logged %d queries within an hour; its next ones are "
                "answered but not logged until the hour's first expires",
                client,
                self.per_hour,
            )
        return False


class QueryLog:
    """Appends query and feedback records from any thread through one writer thread."""

    def __init__(
        self,
        data_dir: Path,
        *,
        max_age_days: float = 0,
        max_rows: int = 0,
        max_rows_per_client_hour: int = 0,
        prune_every_s: float = PRUNE_EVERY_S,
    ) -> None:
        self.max_age_days = max_age_days
        self.max_rows = max_rows
        self.prune_every_s = prune_every_s
        self._cap = ClientCap(max_rows_per_client_hour) if max_rows_per_client_hour else None
        self._since_prune = 0
        self._pruned_at = 0.0
        self.path = db_path(data_dir)
        # Open (and create the tables) now, so a bad data_dir fails at start-up, not later.
        self._con = _connect(self.path)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="rag-querylog", daemon=True)
        self._thread.start()

    def record(self, rec: QueryRecord, client: str | None = None) -> bool:
        """Queue a record of ``client`` (None: uncapped); False when it is over its cap."""
        if self._closed:
            raise RuntimeError("query log is closed")
        if client is not None and self._cap is not None and not self._cap.admit(client):
            return False
        self._queue.put(rec)
        return True

    def feedback(self, query_id: str, rating: str, comment: str | None = None) -> Future[None]:
        """Queue feedback; the future fails with QueryNotFound if the query was never logged."""
        if self._closed:
            raise RuntimeError("query log is closed")
        done: Future[None] = Future()
        # Queued behind every earlier record, so a query logged before is committed by then.
        self._queue.put(_Feedback(query_id, rating, comment, done))
        return done

    def close(self) -> None:
        """Write everything queued, then stop the writer and close the database."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        self._con.close()

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                # Woken for retention too: rows age while the server is idle.
                batch = [self._queue.get(timeout=self._until_prune())]
            except queue.Empty:
                batch = []
            # Drain what else is waiting so a burst costs one transaction, not one per record.
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stop = True
                batch = [item for item in batch if item is not _STOP]
            if batch:
                self._write(batch)
            self._since_prune += len(batch)
            if stop or self._prune_due():
                self._prune()

    def _until_prune(self) -> float | None:
        """Seconds until retention is due by time (None: no retention, wait for records)."""
        if not (self.max_age_days or self.max_rows):
            return None
        return max(0.0, self.prune_every_s - (time.monotonic() - self._pruned_at))

    def _prune_due(self) -> bool:
        if not (self.max_age_days or self.max_rows):
            return False
        if self.max_rows and self._since_prune >= max(1, self.max_rows // 10):
            return True
        return time.monotonic() - self._pruned_at >= self.prune_every_s

    def _prune(self) -> None:
        """Delete queries past their age or beyond the newest ``max_rows``, and their feedback."""
        self._since_prune, self._pruned_at = 0, time.monotonic()
        if not (self.max_age_days or self.max_rows):
            return
        try:
            with self._con:
                if self.max_age_days:
                    cutoff = datetime.now(UTC) - timedelta(days=self.max_age_days)
                    self._con.execute(
                        "DELETE FROM queries WHERE ts < ?",
                        (cutoff.isoformat(timespec="milliseconds"),),
                    )
                if self.max_rows:
                    self._con.execute(
                        "DELETE FROM queries WHERE id <= (SELECT id FROM queries"
                        " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (self.max_rows,),
                    )
                self._con.execute(
                    "DELETE FROM feedback WHERE query_id NOT IN (SELECT query_id FROM queries)"
                )
        except Exception:
            log.exception("query log: could not apply retention")

    def _write(self, batch: list[object]) -> None:
        records = [item for item in batch if isinstance(item, QueryRecord)]
        if records:
            try:
                self._insert(records)
            except Exception:
                # One bad record (say, text SQLite cannot encode) must not cost its batch.
                for rec in records:
                    try:
                        self._insert([rec])
                    except Exception:
                        # The writer must survive anything: log loudly and go on.
                        log.exception("query log: could not write record %s", rec.query_id)
        for item in batch:
            if isinstance(item, _Feedback):
                self._write_feedback(item)

    def _insert(self, records: Sequence[QueryRecord]) -> None:
        with self._con:
            self._con.executemany(
                "INSERT OR IGNORE INTO queries (ts, query_id, endpoint, query, chunk_ids, scores,"
                " n_results, top_score, latency_ms, index_built_at, model, answered)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [rec.row() for rec in records],
            )

    def _write_feedback(self, fb: _Feedback) -> None:
        try:
            with self._con:
                known = self._con.execute(
                    "SELECT 1 FROM queries WHERE query_id = ?", (fb.query_id,)
                ).fetchone()
                if known is None:
                    fb.done.set_exception(QueryNotFound(f"no logged query with id {fb.query_id}"))
                    return
                # A later rating of the same query replaces the earlier one.
                self._con.execute(
                    "INSERT INTO feedback (ts, query_id, rating, comment) VALUES (?,?,?,?)"
                    " ON CONFLICT (query_id) DO UPDATE SET ts = excluded.ts,"
                    " rating = excluded.rating, comment = excluded.comment",
                    (fb.ts, fb.query_id, fb.rating, fb.comment),
                )
        except Exception as exc:
            log.exception("query log: could not write feedback for %s", fb.query_id)
            fb.done.set_exception(exc)
            return
        fb.done.set_result(None)


# --------------------------------------------------------------------------- reading


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return round(sorted_values[rank - 1], 3)


def summary(data_dir: Path, *, low_score: float = LOW_SCORE) -> dict[str, Any]:
    """Counts by endpoint, p50/p95 latency, zero-hit and low-score queries, feedback totals."""
    path = db_path(data_dir)
    out: dict[str, Any] = {
        "path": str(path),
        "queries": 0,
        "first": None,
        "last": None,
        "by_endpoint": {},
        "latency_ms": {"p50": None, "p95": None},
        "zero_hit": {"count": 0, "examples": []},
        "low_score": {"threshold": low_score, "count": 0, "examples": []},
        "feedback": {"up": 0, "down": 0, "comments": []},
    }
    if not path.is_file():
        return out
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        n, first, last = con.execute("SELECT COUNT(*), MIN(ts), MAX(ts) FROM queries").fetchone()
        out.update(queries=n, first=first, last=last)
        latencies: dict[str, list[float]] = {}
        for endpoint, ms in con.execute(
            "SELECT endpoint, latency_ms FROM queries ORDER BY latency_ms"
        ):
            latencies.setdefault(endpoint, []).append(ms)
        everything = sorted(ms for values in latencies.values() for ms in values)
        out["latency_ms"] = {"p50": percentile(everything, 50), "p95": percentile(everything, 95)}
        out["by_endpoint"] = {
            endpoint: {
                "count": len(values),
                "p50_ms": percentile(values, 50),
                "p95_ms": percentile(values, 95),
            }
            for endpoint, values in sorted(latencies.items())
        }
        zero = con.execute(
            "SELECT query, COUNT(*) AS c FROM queries WHERE n_results = 0"
            " GROUP BY query ORDER BY c DESC, query LIMIT ?",
            (_EXAMPLES,),
        ).fetchall()
        out["zero_hit"] = {
            "count": con.execute("SELECT COUNT(*) FROM queries WHERE n_results = 0").fetchone()[0],
            "examples": [{"query": q, "count": c} for q, c in zero],
        }
        low = con.execute(
            "SELECT query, MIN(top_score) AS s FROM queries WHERE top_score < ?"
            " GROUP BY query ORDER BY s, query LIMIT ?",
            (low_score, _EXAMPLES),
        ).fetchall()
        low_count = con.execute(
            "SELECT COUNT(*) FROM queries WHERE top_score < ?", (low_score,)
        ).fetchone()[0]
        out["low_score"] = {
            "threshold": low_score,
            "count": low_count,
            "examples": [{"query": q, "top_score": s} for q, s in low],
        }
        ratings = dict(con.execute("SELECT rating, COUNT(*) FROM feedback GROUP BY rating"))
        comments = con.execute(
            "SELECT f.rating, f.comment, q.query FROM feedback f JOIN queries q USING (query_id)"
            " WHERE f.comment IS NOT NULL AND f.comment != '' ORDER BY f.id DESC LIMIT ?",
            (_EXAMPLES,),
        ).fetchall()
        out["feedback"] = {
            "up": ratings.get("up", 0),
            "down": ratings.get("down", 0),
            "comments": [{"rating": r, "comment": c, "query": q} for r, c, q in comments],
        }
    finally:
        con.close()
    return out


def format_summary(d: dict[str, Any]) -> str:
    """Plain-text report of ``summary()`` for the ``rag log`` command."""
    if not d["queries"]:
        return f"No queries logged yet in {d['path']}."
    lat = d["latency_ms"]
    lines = [
        f"Query log {d['path']}",
        f"{d['queries']} queries from {d['first']} to {d['last']}",
        f"latency p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms",
        "",
        f"{'endpoint':<10} {'queries':>8} {'p50 ms':>9} {'p95 ms':>9}",
    ]
    for endpoint, e in d["by_endpoint"].items():
        lines.append(f"{endpoint:<10} {e['count']:>8} {e['p50_ms']:>9.1f} {e['p95_ms']:>9.1f}")
    zero = d["zero_hit"]
    lines += ["", f"zero-hit queries: {zero['count']}"]
    lines += [f"  {x['count']:>4} x {x['query']!r}" for x in zero["examples"]]
    low = d["low_score"]
    lines += ["", f"low-score queries (top score < {low['threshold']}): {low['count']}"]
    lines += [f"  {x['top_score']:.4f}  {x['query']!r}" for x in low["examples"]]
    fb = d["feedback"]
    lines += ["", f"feedback: {fb['up']} up, {fb['down']} down"]
    lines += [f"  [{c['rating']}] {c['comment']!r} on {c['query']!r}" for c in fb["comments"]]
    return "\n".join(lines)
