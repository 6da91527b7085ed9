"""The coverage report as a plain dict, read from the query log (shared by CLI, HTML and CSV).

Every section counts queries asked at or after ``since`` (all of them without it), thumbs-down
ratings included: a rating belongs to the period its question was asked in. The log is opened
read-only and never changed, so a report can run while a server writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rag.analytics.querylog import LOW_SCORE, db_path, percentile
from rag.analytics.report.groups import SIMILARITY, Group, group_questions
from rag.analytics.report.since import log_timestamp

# Groups and documents listed per section; every section also gives its full count.
LIMIT = 25
THUMBS_LIMIT = 100
# The volume chart shows one bar a day: a log spanning years is cut to its latest days.
MAX_DAYS = 366


def build_report(
    data_dir: Path,
    documents: Sequence[Mapping[str, Any]] | None,
    *,
    since: datetime | None = None,
    low_score: float = LOW_SCORE,
    similarity: float = SIMILARITY,
    limit: int = LIMIT,
    documents_missing: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The report over the log in ``data_dir``; ``documents`` (``[{"id", "title"}]``) are the
    index's, or None when it could not be read (``documents_missing`` says why)."""
    path = db_path(data_dir)
    rows, thumbs = _read(path, since)
    first = rows[0]["ts"] if rows else None
    last = rows[-1]["ts"] if rows else None

    def grouped(selected: Iterable[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        picked = list(selected)
        groups = group_questions(((r["query"], r) for r in picked), similarity)
        return {
            "count": len(picked),
            "groups": [_group_json(g, **extra) for g in groups[:limit]],
            "distinct": len(groups),
        }

    answers = [r for r in rows if r["answered"] is not None]
    out: dict[str, Any] = {
        "generated_at": log_timestamp(now or datetime.now(UTC)),
        "path": str(path),
        "since": log_timestamp(since) if since else None,
        "queries": len(rows),
        "first": first,
        "last": last,
        "by_endpoint": dict(sorted(Counter(r["endpoint"] for r in rows).items())),
        "low_score_threshold": low_score,
        "similarity": similarity,
        "volume": _volume(rows),
        "top": grouped(rows),
        "not_covered": {
            **grouped(r for r in answers if not r["answered"]),
            # Only answers that say whether they were answered count: /search gives none.
            "of_answers": len(answers),
        },
        "zero_hit": grouped(r for r in rows if r["n_results"] == 0),
        "low_score": grouped(
            (r for r in rows if r["top_score"] is not None and r["top_score"] < low_score),
            score=True,
        ),
        "thumbs_down": {"count": len(thumbs), "items": thumbs[:THUMBS_LIMIT]},
    }
    out.update(_citations(rows, documents, limit, documents_missing))
    return out


def _read(path: Path, since: datetime | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Queries (oldest first) and thumbs-down ratings (newest first) asked since ``since``."""
    if not path.is_file():
        return [], []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        columns = {row[1] for row in con.execute("PRAGMA table_info(queries)")}
        # A log last written by older code has no answered column until a server opens it.
        answered = "answered" if "answered" in columns else "NULL AS answered"
        cutoff = log_timestamp(since) if since else ""
        queries = con.execute(
            "SELECT ts, query_id, endpoint, query, chunk_ids, n_results, top_score, latency_ms,"
            f" {answered} FROM queries WHERE ts >= ? ORDER BY ts, id",
            (cutoff,),
        ).fetchall()
        thumbs = con.execute(
            "SELECT f.ts AS rated, q.ts AS asked, q.query, q.endpoint, q.query_id, f.comment"
            " FROM feedback f JOIN queries q USING (query_id)"
            " WHERE f.rating = 'down' AND q.ts >= ? ORDER BY f.ts DESC, f.id DESC",
            (cutoff,),
        ).fetchall()
    finally:
        con.close()
    return [dict(r) for r in queries], [dict(r) for r in thumbs]


def _group_json(group: Group, *, score: bool = False) -> dict[str, Any]:
    rows = group.values
    out: dict[str, Any] = {
        "question": group.question,
        "count": group.count,
        "variants": [{"query": q, "count": c} for q, c in group.variants.most_common()],
        "last": max(r["ts"] for r in rows),
    }
    if score:
        out["min_score"] = round(min(r["top_score"] for r in rows), 4)
    return out


def _volume(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Queries and latency p50/p95 per UTC day, days without queries included (as zero)."""
    by_day: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_day[r["ts"][:10]].append(r["latency_ms"])
    if not by_day:
        return []
    first, last = date.fromisoformat(min(by_day)), date.fromisoformat(max(by_day))
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    out = []
    for n in range((last - first).days + 1):
        day = (first + timedelta(days=n)).isoformat()
        values = sorted(by_day.get(day, ()))
        out.append(
            {
                "day": day,
                "queries": len(values),
                "p50_ms": percentile(values, 50),
                "p95_ms": percentile(values, 95),
            }
        )
    return out


def index_documents(index_dir: Path) -> list[dict[str, str]]:
    """``[{"id", "title"}]`` of every document in the index (reads no model)."""
    from rag.index.load import load_index

    index = load_index(index_dir)
    try:
        return [{"id": d.id, "title": d.title} for d in index.documents()]
    finally:
        index.close()


def doc_of(chunk_id: str) -> str:
    """The document id of a chunk id (``<doc_id>:<hash>``)."""
    return chunk_id.rsplit(":", 1)[0]


def _citations(
    rows: Sequence[dict[str, Any]],
    documents: Sequence[Mapping[str, Any]] | None,
    limit: int,
    missing: str | None,
) -> dict[str, Any]:
    """Documents by the number of queries whose passages came from them, and the uncited."""
    queries: Counter[str] = Counter()
    first: Counter[str] = Counter()
    for r in rows:
        docs = [doc_of(c) for c in json.loads(r["chunk_ids"])]
        queries.update(set(docs))
        if docs:
            first[docs[0]] += 1
    titles = {str(d["id"]): str(d.get("title") or d["id"]) for d in documents or ()}
    cited = [
        # A document no longer in the index keeps its id as its title.
        {"id": doc, "title": titles.get(doc, doc), "queries": n, "top_ranked": first[doc]}
        for doc, n in sorted(queries.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    out: dict[str, Any] = {
        "documents": {
            "available": documents is not None,
            "reason": None if documents is not None else (missing or "no index was given"),
            "count": len(titles) if documents is not None else None,
        },
        "cited": {"count": len(cited), "documents": cited[:limit]},
        "never_cited": None,
    }
    if documents is not None:
        never = [{"id": i, "title": t} for i, t in titles.items() if i not in queries]
        never.sort(key=lambda d: (d["title"].casefold(), d["id"]))
        out["never_cited"] = {"count": len(never), "documents": never}
    return out
