"""The query log: background writes, no loss under concurrency, feedback, and the summary."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from pathlib import Path

import pytest

from rag.serve.querylog import (
    QueryLog,
    QueryNotFound,
    QueryRecord,
    db_path,
    format_summary,
    summary,
)


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
    _, ts, query_id, endpoint, query, chunk_ids, scores, n, top, latency, built, model = row
    assert (query_id, endpoint, query) == (rec.query_id, "ask", rec.query)
    assert json.loads(chunk_ids) == ["doc:0", "doc:1"]
    assert json.loads(scores) == [0.5, 0.25]
    assert (n, top, latency) == (2, 0.5, 12.5)
    assert (built, model) == ("2026-01-01T00:00:00+00:00", "test-model")
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
    qlog.record(low)
    qlog.feedback(low.query_id, "down", "off topic").result(timeout=30)
    qlog.feedback(low.query_id, "up").result(timeout=30)
    qlog.close()

    d = summary(tmp_path)
    assert d["queries"] == 103
    assert d["by_endpoint"]["search"] == {"count": 100, "p50_ms": 50.0, "p95_ms": 95.0}
    assert d["by_endpoint"]["ask"]["count"] == 2
    assert d["by_endpoint"]["chat"]["count"] == 1
    assert d["zero_hit"]["count"] == 2
    assert d["zero_hit"]["examples"] == [{"query": "nothing matches", "count": 2}]
    assert d["low_score"]["count"] == 1
    assert d["low_score"]["examples"] == [{"query": "vague", "top_score": 1.0}]
    assert (d["feedback"]["up"], d["feedback"]["down"]) == (1, 1)
    assert d["feedback"]["comments"] == [
        {"rating": "down", "comment": "off topic", "query": "vague"}
    ]

    text = format_summary(d)
    for expected in ("103 queries", "search", "zero-hit queries: 2", "'vague'", "1 up, 1 down"):
        assert expected in text
