"""The query log: background writes, no loss under concurrency, feedback, and the summary."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from pathlib import Path

import pytest

from rag.analytics.querylog import (
    QueryLog,
    QueryNotFound,
    QueryRecord,
    db_path,
    format_summary,
    summary,
)
from tests.servers import wait_for


def record(endpoint: str = "search", query: str = "q", latency: float = 10.0, scores=(0.03,)):
    n = len(scores)
    return QueryRecord(
        query_id=uuid.uuid4().hex,
        endpoint=endpoint,
        query=query,
        chunk_ids=[f"doc:{i}" for i in range(n)],
        scores=list(scores),
        latency_ms=latency,
        index_built_at="2026-01-01T00:00:00+00:00",
        model="test-model",
    )


def rows(data_dir: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(db_path(data_dir))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_querylog_creates_missing_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "a" / "b"
    qlog = QueryLog(data)
    qlog.close()
    assert db_path(data).is_file()


def test_querylog_stores_every_field(tmp_path: Path) -> None:
    qlog = QueryLog(tmp_path)
    rec = record("ask", "What do they earn? 💰 <b>'; DROP TABLE queries;--\x00", 12.5, (0.5, 0.25))
    qlog.record(rec)
    qlog.close()
    [row] = rows(tmp_path, "SELECT * FROM queries")
    _, ts, query_id, endpoint, query, chunk_ids, scores, n, top, latency, built, model, answered = (
        row
    )
    assert (query_id, endpoint, query) == (rec.query_id, "ask", rec.query)
    assert json.loads(chunk_ids) == ["doc:0", "doc:1"]
    assert json.loads(scores) == [0.5, 0.25]
    assert (n, top, latency) == (2, 0.5, 12.5)
    assert (built, model) == ("2026-01-01T00:00:00+00:00", "test-model")
    assert answered is None  # the record did not say
    assert ts.startswith("20")


def test_querylog_loses_no_record_under_concurrent_writes(tmp_path: Path) -> None:
    qlog = QueryLog(tmp_path)
    start = threading.Barrier(16)

    def writer(n: int) -> None:
        start.wait()
        for i in range(50):
            qlog.record(record(query=f"thread {n} query {i}"))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    qlog.close()  # flushes whatever is still queued
    assert rows(tmp_path, "SELECT COUNT(*), COUNT(DISTINCT query) FROM queries") == [(800, 800)]


def test_querylog_survives_a_record_sqlite_cannot_store(tmp_path: Path) -> None:
    qlog = QueryLog(tmp_path)
    qlog.record(record(query="fine"))
    qlog.record(record(query="lone surrogate \ud800"))
    qlog.record(record(query="also fine"))
    qlog.close()
    assert rows(tmp_path, "SELECT query FROM queries ORDER BY id") == [("fine",), ("also fine",)]


def test_querylog_refuses_records_after_close(tmp_path: Path) -> None:
    qlog = QueryLog(tmp_path)
    qlog.close()
    with pytest.raises(RuntimeError):
        qlog.record(record())


def test_feedback_is_recorded_for_a_logged_query(tmp_path: Path) -> None:
    qlog = QueryLog(tmp_path)
    rec = record()
    qlog.record(rec)
    # Queued behind the record, so it finds the query even before anything was committed.
    qlog.feedback(rec.query_id, "down", "wrong role").result(timeout=30)
    qlog.close()
    assert rows(tmp_path, "SELECT query_id, rating, comment FROM feedback") == [
        (rec.query_id, "down", "wrong role")
    ]


def test_feedback_for_an_unknown_query_fails(tmp_path: Path) -> None:
    qlog = QueryLog(tmp_path)
    future = qlog.feedback(uuid.uuid4().hex, "up")
    with pytest.raises(QueryNotFound):
        future.result(timeout=30)
    qlog.close()
    assert rows(tmp_path, "SELECT COUNT(*) FROM feedback") == [(0,)]


def test_summary_of_a_missing_log_is_empty(tmp_path: Path) -> None:
    d = summary(tmp_path / "nothing")
    assert d["queries"] == 0
    assert not (tmp_path / "nothing").exists()
    assert "No queries logged yet" in format_summary(d)


def test_summary_counts_latencies_zero_hits_low_scores_and_feedback(tmp_path: Path) -> None:
    qlog = QueryLog(tmp_path)
    for ms in range(1, 101):  # search latencies 1..100 ms
        qlog.record(record("search", f"q{ms}", float(ms), (4.0, 3.0)))
    qlog.record(record("ask", "nothing matches", 5.0, ()))
    qlog.record(record("ask", "nothing matches", 7.0, ()))
    low = record("chat", "vague", 3.0, (1.0,))
    liked = record("chat", "liked", 3.0, (4.0,))
    qlog.record(low)
    qlog.record(liked)
    qlog.feedback(low.query_id, "down", "off topic").result(timeout=30)
    qlog.feedback(liked.query_id, "up").result(timeout=30)
    qlog.close()

    d = summary(tmp_path)
    assert d["queries"] == 104
    assert d["by_endpoint"]["search"] == {"count": 100, "p50_ms": 50.0, "p95_ms": 95.0}
    assert d["by_endpoint"]["ask"]["count"] == 2
    assert d["by_endpoint"]["chat"]["count"] == 2
    assert d["zero_hit"]["count"] == 2
    assert d["zero_hit"]["examples"] == [{"query": "nothing matches", "count": 2}]
    assert d["low_score"]["count"] == 1
    assert d["low_score"]["examples"] == [{"query": "vague", "top_score": 1.0}]
    assert (d["feedback"]["up"], d["feedback"]["down"]) == (1, 1)
    assert d["feedback"]["comments"] == [
        {"rating": "down", "comment": "off topic", "query": "vague"}
    ]

    text = format_summary(d)
    for expected in ("104 queries", "search", "zero-hit queries: 2", "'vague'", "1 up, 1 down"):
        assert expected in text


def test_a_later_rating_replaces_the_earlier_one(tmp_path: Path) -> None:
    qlog = QueryLog(tmp_path)
    rec = record()
    qlog.record(rec)
    for n in range(1000):
        qlog.feedback(rec.query_id, ("up", "down")[n % 2], f"comment {n}")
    qlog.feedback(rec.query_id, "up", "the last word").result(timeout=30)
    qlog.close()
    assert rows(tmp_path, "SELECT query_id, rating, comment FROM feedback") == [
        (rec.query_id, "up", "the last word")
    ]


def test_an_old_log_keeps_the_latest_rating_of_each_query(tmp_path: Path) -> None:
    # Written before one rating per query: two ratings of one query, in the old schema.
    con = sqlite3.connect(db_path(tmp_path))
    con.executescript(
        "CREATE TABLE queries (id INTEGER PRIMARY KEY, ts TEXT NOT NULL,"
        " query_id TEXT NOT NULL UNIQUE, endpoint TEXT NOT NULL, query TEXT NOT NULL,"
        " chunk_ids TEXT NOT NULL, scores TEXT NOT NULL, n_results INTEGER NOT NULL,"
        " top_score REAL, latency_ms REAL NOT NULL, index_built_at TEXT, model TEXT);"
        "CREATE TABLE feedback (id INTEGER PRIMARY KEY, ts TEXT NOT NULL, query_id TEXT NOT NULL,"
        " rating TEXT NOT NULL, comment TEXT);"
        "INSERT INTO queries VALUES (1, 't', 'q1', 'search', 'x', '[]', '[]', 0, NULL, 1, NULL, NULL);"
        "INSERT INTO feedback VALUES (1, 't', 'q1', 'down', 'first'), (2, 't', 'q1', 'up', 'second');"
    )
    con.close()
    QueryLog(tmp_path).close()
    assert rows(tmp_path, "SELECT rating, comment FROM feedback") == [("up", "second")]


def test_retention_keeps_the_newest_rows(tmp_path: Path) -> None:
    qlog = QueryLog(tmp_path, max_rows=100)
    records = [record(query=f"q{n}") for n in range(1000)]
    for rec in records:
        qlog.record(rec)
    qlog.feedback(records[0].query_id, "up")  # its query goes: so does its rating
    qlog.feedback(records[-1].query_id, "down").result(timeout=30)
    qlog.close()
    kept = [q for (q,) in rows(tmp_path, "SELECT query FROM queries ORDER BY id")]
    assert kept == [f"q{n}" for n in range(900, 1000)]
    assert rows(tmp_path, "SELECT rating FROM feedback") == [("down",)]


def test_retention_drops_rows_past_their_age(tmp_path: Path) -> None:
    qlog = QueryLog(tmp_path, max_age_days=30)
    old, new = record(query="old"), record(query="new")
    old.ts = "2020-01-01T00:00:00.000+00:00"
    qlog.record(old)
    qlog.record(new)
    qlog.close()
    assert rows(tmp_path, "SELECT query FROM queries") == [("new",)]


def test_retention_runs_while_the_server_is_idle(tmp_path: Path) -> None:
    qlog = QueryLog(tmp_path, max_age_days=90, prune_every_s=0.05)
    try:
        qlog.record(record(query="recent"))
        # A row that aged past the limit while nothing was logged (written as an old server would).
        wait_for(lambda: rows(tmp_path, "SELECT COUNT(*) FROM queries") == [(1,)], "the write")
        con = sqlite3.connect(db_path(tmp_path))
        with con:
            con.execute(
                "INSERT INTO queries (ts, query_id, endpoint, query, chunk_ids, scores, n_results,"
                " latency_ms) VALUES ('2020-01-01T00:00:00.000+00:00', 'old', 'search', 'aged',"
                " '[]', '[]', 0, 1)"
            )
        con.close()
        # No record arrives from here on: only the writer's timer can delete it.
        wait_for(lambda: rows(tmp_path, "SELECT query FROM queries") == [("recent",)],
                 "retention to delete the aged row")  # fmt: skip
    finally:
        qlog.close()


def test_log_files_are_private_to_the_servers_user(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    qlog = QueryLog(data)
    qlog.record(record())
    qlog.feedback(qlog_last_id(data, qlog), "up").result(timeout=30)
    files = sorted(data.iterdir())
    assert {f.name for f in files} >= {"querylog.sqlite", "querylog.sqlite-wal",
                                       "querylog.sqlite-shm"}  # fmt: skip
    assert {f.name: f.stat().st_mode & 0o777 for f in files} == {f.name: 0o600 for f in files}
    assert data.stat().st_mode & 0o777 == 0o700  # created by the log: its own user's only
    qlog.close()
    # A log written by older code, world-readable, is narrowed when the server opens it.
    db_path(data).chmod(0o644)
    QueryLog(data).close()
    assert db_path(data).stat().st_mode & 0o777 == 0o600


def qlog_last_id(data: Path, qlog: QueryLog) -> str:
    wait_for(lambda: rows(data, "SELECT COUNT(*) FROM queries") != [(0,)], "the write")
    return rows(data, "SELECT query_id FROM queries ORDER BY id DESC LIMIT 1")[0][0]


def test_pruned_rows_leave_nothing_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some SQLite builds have secure_delete on by default (Debian's does): start from off, as
    # others have it, so only the log's own setting can clear the deleted rows' pages.
    real_connect = sqlite3.connect

    def connect_without_secure_delete(*args, **kwargs):
        con = real_connect(*args, **kwargs)
        con.execute("PRAGMA secure_delete=OFF")
        return con

    monkeypatch.setattr(sqlite3, "connect", connect_without_secure_delete)
    secret = "what-my-manager-must-not-read-" + uuid.uuid4().hex
    qlog = QueryLog(tmp_path, max_rows=1)
    qlog.record(record(query=secret))
    qlog.feedback(qlog_last_id(tmp_path, qlog), "down", comment=secret).result(timeout=30)
    assert qlog._con.execute("PRAGMA secure_delete").fetchone() == (1,)
    for n in range(3):  # max_rows=1: the secret's row is the oldest, pruned at close
        qlog.record(record(query=f"later {n}"))
    qlog.close()
    con = real_connect(db_path(tmp_path))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    assert rows(tmp_path, f"SELECT COUNT(*) FROM queries WHERE query = '{secret}'") == [(0,)]
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("querylog.sqlite*"))
    assert secret.encode() not in stored


def test_each_client_has_a_cap_of_rows_per_hour(tmp_path: Path) -> None:
    qlog = QueryLog(tmp_path, max_rows_per_client_hour=3)
    kept = [qlog.record(record(query=f"flood {n}"), client="203.0.113.9") for n in range(6)]
    others = [qlog.record(record(query=f"reader {n}"), client=f"198.51.100.{n}") for n in range(4)]
    uncapped = [qlog.record(record(query="from the CLI")) for _ in range(5)]  # no client
    qlog.close()
    assert kept == [True] * 3 + [False] * 3
    assert others == [True] * 4 and uncapped == [True] * 5
    queries = [q for (q,) in rows(tmp_path, "SELECT query FROM queries ORDER BY id")]
    assert queries[:3] == ["flood 0", "flood 1", "flood 2"] and "flood 3" not in queries
    assert sum(q.startswith("reader") for q in queries) == 4 and len(queries) == 12
