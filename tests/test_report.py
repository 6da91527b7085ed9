"""The coverage report: its numbers on a seeded log, `rag report`, /admin, and the page in Chromium.

The seeded log spans five days (one without queries) and holds near-duplicate questions,
unanswered ones, zero-hit and low-score ones, thumbs-down ratings with and without comments,
a rating that was changed, a document no longer in the index, and text that would be markup in
a page or a formula in a spreadsheet.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import os
import random
import re
import sqlite3
import sys
import time
import types
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from rag.analytics.querylog import QueryLog, QueryRecord, db_path
from rag.analytics.report import build_report, parse_since, render_html, to_csv
from rag.analytics.report.groups import group_questions, jaccard, normalise, stems
from rag.analytics.report.html import STYLE_HASH
from rag.cli import main
from rag.config import Settings
from rag.errors import BadQuery
from rag.search.retriever import Retriever
from rag.serve.admin_auth import Sessions
from rag.serve.app import create_app
from rag.serve.routes.admin import COOKIE
from tests.servers import ROOT, child_env, rag_serve

TOKEN = "s3cret-admin-token-for-tests"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
DE, DA = "data-engineer", "data-analyst"
XSS = "<script>alert(1)</script> salary"
FORMULA = "=cmd|' /C calc'!A0"
# (query id, UTC time, endpoint, query, documents of its passages, scores, latency ms, answered)
SEED: list[tuple[str, str, str, str, list[str], list[float], float, bool | None]] = [
    ("q01", "2026-11-24T09:00", "ask", "How much does a data engineer earn?", [DE, DE, DA], [4.0, 3.5, 2.0], 100, True),
    ("q02", "2026-11-24T10:00", "ask", "how much do data engineers earn", [DE, DA], [3.8, 3.0], 120, True),
    ("q03", "2026-11-24T11:00", "search", "What skills does a data analyst need", [DA, DE], [3.9, 2.9], 30, None),
    ("q04", "2026-11-24T12:00", "chat", "recipe for lasagna", [], [], 40, False),
    ("q05", "2026-11-25T09:00", "ask", "HOW MUCH does a data engineer earn??", [DE], [4.1], 90, True),
    ("q06", "2026-11-25T10:00", "ask", "what skills do data analysts need?", [DA, "old-guide"], [3.7, 1.0], 80, True),
    ("q07", "2026-11-25T11:00", "ask", "Is there a data engineer pension plan", [DE], [2.1], 200, False),
    ("q08", "2026-11-25T12:00", "ask", "is there a pension plan for data engineers", [DE], [2.3], 220, False),
    ("q09", "2026-11-27T09:00", "search", "Recipe for a lasagna!", [], [], 20, None),
    ("q10", "2026-11-27T10:00", "ask", "What does a data engineer do?", [DE, DA], [3.2, 3.0], 60, True),
    ("q11", "2026-11-27T11:00", "chat", "what does a data scientist do", [DA], [2.4], 300, False),
    ("q12", "2026-11-28T08:00", "ask", "How much does a data engineer earn?", [DE, DE], [4.2, 3.1], 110, True),
    ("q13", "2026-11-28T09:00", "search", FORMULA, [], [], 10, None),
    ("q14", "2026-11-28T10:00", "search", XSS, [DE], [2.2], 15, None),
]  # fmt: skip
# (query id, rating, comment), in the order given: q05's later rating replaces its first.
RATINGS = [
    ("q02", "down", "The number is from 2019"),
    ("q07", "down", "Nothing about pensions"),
    ("q11", "down", None),
    ("q10", "up", "Clear"),
    ("q05", "down", "wrong"),
    ("q05", "up", None),
]
# The documents of the small corpus (tests/conftest.py), as its index lists them.
DOCS = [
    {"id": DE, "title": "Data Engineer"},
    {"id": "technical-recruiter", "title": "Technical Recruiter"},
    {"id": DA, "title": "Data Analyst"},
]


def seed(data_dir: Path) -> Path:
    """Write SEED and RATINGS into the query log of ``data_dir`` through the log's own API."""
    qlog = QueryLog(data_dir)
    try:
        for n, (qid, ts, endpoint, query, docs, scores, ms, answered) in enumerate(SEED):
            qlog.record(
                QueryRecord(
                    query_id=qid,
                    endpoint=endpoint,
                    query=query,
                    chunk_ids=[f"{doc}:{n:04d}{i:06x}" for i, doc in enumerate(docs)],
                    scores=scores,
                    latency_ms=ms,
                    ts=f"{ts}:00.000+00:00",
                    answered=answered,
                )
            )
        for qid, rating, comment in RATINGS:
            qlog.feedback(qid, rating, comment).result(timeout=10)
    finally:
        qlog.close()
    return data_dir


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No RAG_* settings from the shell."""
    for name in [n for n in os.environ if n.startswith("RAG_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return seed(tmp_path / "data")


@pytest.fixture
def report(data_dir: Path) -> dict[str, Any]:
    return build_report(data_dir, DOCS, now=NOW)


def questions(section: dict[str, Any]) -> list[tuple[str, int]]:
    return [(g["question"], g["count"]) for g in section["groups"]]


# --------------------------------------------------------------------------- the numbers


def test_report_totals_and_volume_per_day(report: dict[str, Any], data_dir: Path) -> None:
    assert report["path"] == str(db_path(data_dir))
    assert report["generated_at"] == "2026-12-02T12:00:00.000+00:00"
    assert report["since"] is None
    assert report["queries"] == 14
    assert report["first"] == "2026-11-24T09:00:00.000+00:00"
    assert report["last"] == "2026-11-28T10:00:00.000+00:00"
    assert report["by_endpoint"] == {"ask": 8, "chat": 2, "search": 4}
    # Nearest-rank percentiles of each day's latencies; the day without queries is kept.
    assert report["volume"] == [
        {"day": "2026-11-24", "queries": 4, "p50_ms": 40.0, "p95_ms": 120.0},
        {"day": "2026-11-25", "queries": 4, "p50_ms": 90.0, "p95_ms": 220.0},
        {"day": "2026-11-26", "queries": 0, "p50_ms": None, "p95_ms": None},
        {"day": "2026-11-27", "queries": 3, "p50_ms": 60.0, "p95_ms": 300.0},
        {"day": "2026-11-28", "queries": 3, "p50_ms": 15.0, "p95_ms": 110.0},
    ]


def test_top_questions_group_near_duplicates(report: dict[str, Any]) -> None:
    top = report["top"]
    assert (top["count"], top["distinct"]) == (14, 8)
    assert questions(top) == [
        ("How much does a data engineer earn?", 4),
        ("Is there a data engineer pension plan", 2),
        ("Recipe for a lasagna!", 2),
        ("what skills do data analysts need?", 2),
        (FORMULA, 1),
        (XSS, 1),
        # One content word apart: two questions, not one.
        ("What does a data engineer do?", 1),
        ("what does a data scientist do", 1),
    ]
    earn = top["groups"][0]
    assert earn["variants"] == [
        {"query": "How much does a data engineer earn?", "count": 2},
        {"query": "HOW MUCH does a data engineer earn??", "count": 1},
        {"query": "how much do data engineers earn", "count": 1},
    ]
    assert earn["last"] == "2026-11-28T08:00:00.000+00:00"


def test_not_covered_zero_hit_and_low_score(report: dict[str, Any]) -> None:
    nc = report["not_covered"]
    assert (nc["count"], nc["distinct"], nc["of_answers"]) == (4, 3, 10)
    assert questions(nc) == [
        ("Is there a data engineer pension plan", 2),
        ("recipe for lasagna", 1),
        ("what does a data scientist do", 1),
    ]
    zero = report["zero_hit"]
    assert (zero["count"], zero["distinct"]) == (3, 2)
    assert questions(zero) == [("Recipe for a lasagna!", 2), (FORMULA, 1)]
    low = report["low_score"]
    assert report["low_score_threshold"] == 2.5
    assert (low["count"], low["distinct"]) == (4, 3)
    assert [(g["question"], g["count"], g["min_score"]) for g in low["groups"]] == [
        ("Is there a data engineer pension plan", 2, 2.1),
        (XSS, 1, 2.2),
        ("what does a data scientist do", 1, 2.4),
    ]


def test_thumbs_down_with_comments_newest_first(report: dict[str, Any]) -> None:
    thumbs = report["thumbs_down"]
    assert thumbs["count"] == 3  # q05's thumbs down was replaced by a thumbs up
    assert [(t["query_id"], t["query"], t["comment"], t["endpoint"], t["asked"]) for t in thumbs["items"]] == [
        ("q11", "what does a data scientist do", None, "chat", "2026-11-27T11:00:00.000+00:00"),
        ("q07", "Is there a data engineer pension plan", "Nothing about pensions", "ask",
         "2026-11-25T11:00:00.000+00:00"),
        ("q02", "how much do data engineers earn", "The number is from 2019", "ask",
         "2026-11-24T10:00:00.000+00:00"),
    ]  # fmt: skip
    assert all(t["rated"] >= t["asked"] for t in thumbs["items"])


def test_documents_cited_most_and_never(report: dict[str, Any]) -> None:
    assert report["documents"] == {"available": True, "reason": None, "count": 3}
    assert report["cited"] == {
        "count": 3,
        "documents": [
            {"id": DE, "title": "Data Engineer", "queries": 9, "top_ranked": 8},
            {"id": DA, "title": "Data Analyst", "queries": 6, "top_ranked": 3},
            # No longer in the index: known by its id only.
            {"id": "old-guide", "title": "old-guide", "queries": 1, "top_ranked": 0},
        ],
    }
    assert report["never_cited"] == {
        "count": 1,
        "documents": [{"id": "technical-recruiter", "title": "Technical Recruiter"}],
    }


def test_without_the_document_list_the_rest_is_reported(data_dir: Path) -> None:
    report = build_report(data_dir, None, documents_missing="no index at /x", now=NOW)
    assert report["documents"] == {"available": False, "reason": "no index at /x", "count": None}
    assert report["never_cited"] is None
    assert [d["id"] for d in report["cited"]["documents"]] == [DE, DA, "old-guide"]
    assert report["cited"]["documents"][0]["title"] == DE
    assert report["queries"] == 14
    assert "The document list is missing: no index at /x" in render_html(report)


def test_since_filters_every_section(data_dir: Path) -> None:
    since = parse_since("2026-11-27")
    report = build_report(data_dir, DOCS, since=since, now=NOW)
    assert report["since"] == "2026-11-27T00:00:00.000+00:00"
    assert report["queries"] == 6
    assert [d["day"] for d in report["volume"]] == ["2026-11-27", "2026-11-28"]
    assert report["not_covered"]["count"] == 1
    assert questions(report["zero_hit"]) == [(FORMULA, 1), ("Recipe for a lasagna!", 1)]
    assert [t["query_id"] for t in report["thumbs_down"]["items"]] == ["q11"]
    assert [(d["id"], d["queries"]) for d in report["cited"]["documents"]] == [(DE, 3), (DA, 2)]
    assert report["never_cited"]["documents"] == [
        {"id": "technical-recruiter", "title": "Technical Recruiter"}
    ]
    # A duration counts back from now: 7 days before Dec 2, noon, is Nov 25, noon (q08 on).
    week = build_report(data_dir, DOCS, since=parse_since("7d", now=NOW), now=NOW)
    assert (week["queries"], week["first"]) == (7, "2026-11-25T12:00:00.000+00:00")


def test_a_missing_log_gives_an_empty_report(tmp_path: Path) -> None:
    report = build_report(tmp_path, DOCS, now=NOW)
    assert (report["queries"], report["volume"], report["top"]["groups"]) == (0, [], [])
    assert report["never_cited"]["count"] == 3
    assert "No queries in this period." in render_html(report)


# --------------------------------------------------------------------------- the parts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", datetime(2026, 11, 25, 12, 0, tzinfo=UTC)),
        ("12h", datetime(2026, 12, 2, 0, 0, tzinfo=UTC)),
        ("2w", datetime(2026, 11, 18, 12, 0, tzinfo=UTC)),
        (" 7D ", datetime(2026, 11, 25, 12, 0, tzinfo=UTC)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T09:30", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
        ("2026-11-01T09:30+02:00", datetime(2026, 11, 1, 7, 30, tzinfo=UTC)),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "7x", "-7d", "7 days", "2026-13-01"])
def test_parse_since_refuses_what_names_no_time(text: str) -> None:
    with pytest.raises(BadQuery, match="must be a date") as caught:
        parse_since(text, now=NOW)
    assert caught.value.field == "since"


def test_normalise_and_similarity() -> None:
    assert normalise("  HOW much,  does a data-engineer earn?? ") == (
        "how much does a data engineer earn"
    )
    a, b = (
        stems(normalise("How much does a data engineer earn?")),
        stems(normalise("how much do data engineers earn")),
    )
    assert a == b == {"how", "much", "data", "engin", "earn"}
    assert jaccard(
        stems(normalise("What does a data engineer do?")),
        stems(normalise("What does a data scientist do?")),
    ) == pytest.approx(0.5)
    # Only function words: compared on all of them rather than on nothing.
    assert stems(normalise("Is it?")) == {"is", "it"}
    assert stems("") == frozenset()


def _naive_groups(asked: list[str], threshold: float) -> list[tuple[str, int]]:
    """The same rule, comparing with every group: what prefix filtering must not change."""
    by_text: dict[str, int] = {}
    for q in asked:
        by_text[normalise(q)] = by_text.get(normalise(q), 0) + 1
    groups: list[list[Any]] = []  # [lead, stems, count]
    for text in sorted(by_text, key=lambda t: (-by_text[t], t)):
        st = stems(text)
        home = next((g for g in groups if st and jaccard(st, g[1]) >= threshold), None)
        if home is None:
            groups.append([text, st, 0])
            home = groups[-1]
        home[2] += by_text[text]
    return sorted(((g[0], g[2]) for g in groups), key=lambda g: (-g[1], g[0]))


def test_prefix_filtering_groups_exactly_as_comparing_every_pair() -> None:
    rng = random.Random(7)
    words = "data engineer analyst salary skills need earn what how much remote junior senior"
    vocabulary = words.split() + ["python", "sql", "degree", "interview", "career", "uk", "us"]
    asked = [" ".join(rng.choices(vocabulary, k=rng.randint(1, 6))) for _ in range(600)]
    for threshold in (0.5, 0.7, 0.9):
        groups = group_questions(((q, None) for q in asked), threshold)
        assert [(g.lead, g.count) for g in groups] == _naive_groups(asked, threshold)
        assert sum(g.count for g in groups) == 600


def test_grouping_does_not_depend_on_the_order_of_the_log() -> None:
    asked = [row[3] for row in SEED]
    shuffled = asked[:]
    random.Random(3).shuffle(shuffled)
    first = [(g.question, g.count) for g in group_questions((q, None) for q in asked)]
    assert first == [(g.question, g.count) for g in group_questions((q, None) for q in shuffled)]


def test_html_is_self_contained_escaped_and_charted(report: dict[str, Any]) -> None:
    page = render_html(report)
    assert "<script" not in page  # the seeded markup is shown as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; salary" in page
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", page)  # nothing fetched
    assert " style=" not in page  # no inline style attributes: the CSP would refuse them
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert STYLE_HASH == f"'sha256-{digest}'"
    for section in ("volume", "top", "not_covered", "zero_hit", "low_score", "thumbs_down",
                    "cited", "never_cited"):  # fmt: skip
        assert f'<section id="{section}">' in page
    volume = page[page.index('<section id="volume">') : page.index('<section id="top">')]
    assert volume.count('<rect class="bar"') == 5
    assert "<title>2026-11-25: 4 queries, latency p50 90 ms, p95 220 ms</title>" in volume
    assert 'class="line-p50"' in volume and 'class="line-p95"' in volume
    cited = page[page.index('<section id="cited">') : page.index('<section id="never_cited">')]
    assert cited.count('<rect class="bar"') == 3
    assert "<title>Data Engineer: in the results of 9 queries</title>" in cited
    assert "Nothing about pensions" in page and "Technical Recruiter" in page
    assert "/admin/report.csv" not in page  # the toolbar is the served page's only
    assert "/admin/report.csv" in render_html(report, admin=True)


def _csv_rows(text: str) -> list[dict[str, str]]:
    assert text.startswith("\ufeff")  # so that Excel reads UTF-8
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_csv_has_a_section_column_and_defuses_formulas(report: dict[str, Any]) -> None:
    rows = _csv_rows(to_csv(report))
    sections = [r["section"] for r in rows]
    assert sections == (
        ["volume"] * 5 + ["top"] * 8 + ["not_covered"] * 3 + ["zero_hit"] * 2
        + ["low_score"] * 3 + ["thumbs_down"] * 3 + ["cited"] * 3 + ["never_cited"]
    )  # fmt: skip
    assert rows[1] == {**dict.fromkeys(rows[1], ""), "section": "volume", "day": "2026-11-25",
                       "count": "4", "p50_ms": "90.0", "p95_ms": "220.0"}  # fmt: skip
    top = rows[5]
    assert (top["question"], top["count"]) == ("How much does a data engineer earn?", "4")
    assert top["variants"] == (
        "How much does a data engineer earn? (2) | HOW MUCH does a data engineer earn?? (1)"
        " | how much do data engineers earn (1)"
    )
    assert any(r["question"] == "'" + FORMULA for r in rows if r["section"] == "top")
    low = [r for r in rows if r["section"] == "low_score"]
    assert [r["min_score"] for r in low] == ["2.1", "2.2", "2.4"]
    thumbs = [r for r in rows if r["section"] == "thumbs_down"]
    assert [r["comment"] for r in thumbs] == [
        "",
        "Nothing about pensions",
        "The number is from 2019",
    ]
    cited = [(r["doc_id"], r["count"], r["top_ranked"]) for r in rows if r["section"] == "cited"]
    assert cited == [(DE, "9", "8"), (DA, "6", "3"), ("old-guide", "1", "0")]
    assert rows[-1]["doc_id"] == "technical-recruiter"


# --------------------------------------------------------------------------- the answered column


OLD_SCHEMA = (
    "CREATE TABLE queries (id INTEGER PRIMARY KEY, ts TEXT NOT NULL,"
    " query_id TEXT NOT NULL UNIQUE, endpoint TEXT NOT NULL, query TEXT NOT NULL,"
    " chunk_ids TEXT NOT NULL, scores TEXT NOT NULL, n_results INTEGER NOT NULL,"
    " top_score REAL, latency_ms REAL NOT NULL, index_built_at TEXT, model TEXT);"
    "CREATE TABLE feedback (id INTEGER PRIMARY KEY, ts TEXT NOT NULL, query_id TEXT NOT NULL,"
    " rating TEXT NOT NULL, comment TEXT);"
    "INSERT INTO queries VALUES (1, '2026-11-20T10:00:00.000+00:00', 'old', 'ask', 'old one',"
    " '[\"data-engineer:abc\"]', '[3.0]', 1, 3.0, 12, NULL, NULL);"
)


def test_a_log_written_before_the_answered_column_still_opens(tmp_path: Path) -> None:
    con = sqlite3.connect(db_path(tmp_path))
    con.executescript(OLD_SCHEMA)
    con.close()
    # Read as it is (never opened by a newer server): answered is unknown, nothing fails.
    report = build_report(tmp_path, DOCS, now=NOW)
    assert (report["queries"], report["not_covered"]["of_answers"]) == (1, 0)
    qlog = QueryLog(tmp_path)
    qlog.record(QueryRecord("new", "ask", "new one", [], [], 5.0, answered=False))
    qlog.record(QueryRecord("yes", "ask", "answered one", ["data-engineer:x"], [3.0], 5.0,
                            answered=True))  # fmt: skip
    qlog.close()
    QueryLog(tmp_path).close()  # a second opening finds the column there
    con = sqlite3.connect(db_path(tmp_path))
    got = con.execute("SELECT query_id, answered FROM queries ORDER BY id").fetchall()
    con.close()
    assert got == [("old", None), ("new", 0), ("yes", 1)]
    report = build_report(tmp_path, DOCS, now=NOW)
    assert questions(report["not_covered"]) == [("new one", 1)]
    assert report["not_covered"]["of_answers"] == 2


# --------------------------------------------------------------------------- rag report


def test_cli_report_json(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["report", "--json", "--data", str(data_dir), "--index", str(tmp_path / "none")]) == 0
    )
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["queries"] == 14
    assert questions(report["not_covered"])[0] == ("Is there a data engineer pension plan", 2)
    assert report["documents"]["available"] is False
    assert "no index at" in report["documents"]["reason"]
    assert err.startswith("rag: warning: no list of documents, so no never-cited section: no index")


def test_cli_report_text_html_and_csv(
    data_dir: Path, index_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html, table = tmp_path / "report.html", tmp_path / "report.csv"
    argv = ["report", "--data", str(data_dir), "--index", str(index_dir), "--since", "2026-11-25",
            "--html", str(html), "--csv", str(table)]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"rag: HTML report written to {html}",
        f"rag: CSV report written to {table}",
    ]
    assert "since 2026-11-25T00:00:00.000+00:00" in out
    assert "10 queries (6 ask, 1 chat, 3 search)" in out
    assert "2026-11-26        0         -         -" in out
    assert "not covered: 3 of 7 answers" in out
    assert "     2 x 'Is there a data engineer pension plan'  2.10" in out
    assert "never cited: 1 of 3 documents\n  Technical Recruiter (technical-recruiter)" in out
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and page.count("<svg") == 2
    assert "10 queries from 2026-11-25T00:00 to 2026-11-28T10:00 (UTC)" in page
    rows = _csv_rows(table.read_text(encoding="utf-8"))
    assert [r["day"] for r in rows if r["section"] == "volume"] == [
        "2026-11-25", "2026-11-26", "2026-11-27", "2026-11-28"
    ]  # fmt: skip
    assert [r["doc_id"] for r in rows if r["section"] == "never_cited"] == ["technical-recruiter"]


def test_cli_report_refuses_a_bad_since(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--data", str(data_dir), "--since", "last week"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("rag: error: argument --since: must be a date (2026-11-01)")
    assert err.endswith("not 'last week'\n") and err.count("\n") == 1


# --------------------------------------------------------------------------- /admin


def _client(data_dir: Path, index_dir: Path, retriever: Retriever, **extra: Any) -> TestClient:
    settings = Settings(
        index_dir=index_dir, data_dir=data_dir, allowed_hosts=["testserver"],
        **{"rate_limit": "off", **extra},
    )  # fmt: skip
    return TestClient(create_app(settings, retriever))


@pytest.fixture
def admin(data_dir: Path, index_dir: Path, retriever: Retriever) -> Iterator[TestClient]:
    with _client(data_dir, index_dir, retriever, admin_token=TOKEN) as client:
        yield client


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def test_admin_is_404_without_the_setting(
    data_dir: Path, index_dir: Path, retriever: Retriever
) -> None:
    with _client(data_dir, index_dir, retriever) as client:
        for path in ("/admin", "/admin/report.csv", "/admin/report.json", "/admin/login"):
            response = client.get(path, headers=BEARER)
            assert response.status_code == 404, path
            assert response.json() == client.get("/no-such-page").json()
        assert client.post("/admin/login", data={"token": TOKEN}).status_code == 404


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-of-some-length"}, {"Authorization": TOKEN},
     {"Authorization": f"Basic {TOKEN}"}, {"Cookie": "rag_admin=forged"}],
)  # fmt: skip
def test_admin_refuses_a_missing_or_wrong_token(admin: TestClient, headers: dict[str, str]) -> None:
    for path in ("/admin", "/admin/report.csv", "/admin/report.json"):
        response = admin.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["detail"].startswith("the admin token is missing or wrong")
        assert body["errors"] == [] and body["field"] is None


def test_admin_page_with_the_token(admin: TestClient) -> None:
    response = admin.get("/admin", headers=BEARER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert f"style-src {STYLE_HASH};" in csp and "default-src 'none'" in csp
    assert "script-src" not in csp  # default-src 'none': no script at all
    assert response.headers["cache-control"] == "no-store"
    page = response.text
    assert page.count("<svg") == 2 and "Nothing about pensions" in page
    assert "Technical Recruiter" in page  # the loaded index's documents
    assert 'href="/admin/report.csv" download' in page
    head = admin.head("/admin", headers=BEARER)
    assert (head.status_code, head.content) == (200, b"")


def test_admin_csv_and_json(admin: TestClient) -> None:
    response = admin.get("/admin/report.csv", params={"since": "2026-11-27"}, headers=BEARER)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="coverage-report.csv"'
    rows = _csv_rows(response.content.decode("utf-8"))
    assert [r["day"] for r in rows if r["section"] == "volume"] == ["2026-11-27", "2026-11-28"]
    assert [r["question"] for r in rows if r["section"] == "thumbs_down"] == [
        "what does a data scientist do"
    ]
    report = admin.get("/admin/report.json", headers=BEARER).json()
    assert report["queries"] == 14 and report["never_cited"]["count"] == 1
    assert report["cited"]["documents"][0] == {
        "id": DE, "title": "Data Engineer", "queries": 9, "top_ranked": 8
    }  # fmt: skip


def test_admin_refuses_a_bad_since_with_422(admin: TestClient) -> None:
    for path in ("/admin", "/admin/report.csv"):
        response = admin.get(path, params={"since": "soon"}, headers=BEARER)
        assert response.status_code == 422
        body = response.json()
        assert body["field"] == "since"
        assert body["detail"].startswith("since: must be a date (2026-11-01)")
    assert admin.get("/admin", params={"since": ""}, headers=BEARER).status_code == 200


def test_admin_sign_in_sets_a_strict_http_only_cookie(admin: TestClient) -> None:
    form = admin.get("/admin/login")
    assert form.status_code == 200 and 'action="/admin/login"' in form.text
    wrong = admin.post("/admin/login", data={"token": "not-the-token-at-all"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "wrong admin token"
    assert "set-cookie" not in wrong.headers
    signed = admin.post("/admin/login", data={"token": TOKEN}, follow_redirects=False)
    assert (signed.status_code, signed.headers["location"]) == (303, "/admin")
    cookie = signed.headers["set-cookie"]
    assert TOKEN not in cookie
    for part in ("HttpOnly", "SameSite=strict", "Path=/admin", "Max-Age=28800"):
        assert part.lower() in cookie.lower(), part
    assert "secure" not in cookie.lower()  # plain HTTP here: a Secure cookie would never return
    assert admin.get("/admin").status_code == 200  # the client keeps the cookie
    out = admin.post("/admin/logout", follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/admin/login")
    assert admin.get("/admin").status_code == 401


def test_only_the_sign_in_takes_a_form_body(admin: TestClient) -> None:
    response = admin.post("/feedback", data={"query_id": "q01", "rating": "up"})
    assert response.status_code == 415
    assert response.json()["detail"].startswith("the body is application/x-www-form-urlencoded")


def test_admin_sign_in_is_rate_limited(
    data_dir: Path, index_dir: Path, retriever: Retriever
) -> None:
    with _client(data_dir, index_dir, retriever, admin_token=TOKEN, rate_limit="2/minute") as c:
        guesses = [f"guess-number-{n:02d}-xxxxxxxx" for n in range(3)]
        codes = [c.post("/admin/login", data={"token": g}).status_code for g in guesses]
    assert codes == [401, 401, 429]


def test_a_short_admin_token_is_refused(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings(admin_token="short")
    monkeypatch.setenv("RAG_ADMIN_TOKEN", "tooshort")
    assert main(["report", "--json"]) == 2
    err = capsys.readouterr().err
    assert "RAG_ADMIN_TOKEN: " in err and "tooshort" not in err  # never echoed


@pytest.mark.parametrize("weak", ["aaaaaaaaaaaaaaaa", "abababababababababab", "123456789" * 3])
def test_a_weak_admin_token_is_refused_at_start_up(
    weak: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="at least 10 different characters"):
        Settings(admin_token=weak)
    started = []
    runner = types.ModuleType("rag.serve.runner")
    runner.run_server = lambda *args: started.append(args)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rag.serve.runner", runner)
    monkeypatch.setenv("RAG_ADMIN_TOKEN", weak)
    assert main(["serve"]) == 2 and not started
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RAG_ADMIN_TOKEN: " in err and weak not in err
    assert "at least 10 different characters" in err
    assert Settings(admin_token="0123456789" * 2).admin_token  # ten different: enough


def test_wrong_bearer_tokens_are_429_past_the_failure_budget(
    data_dir: Path, index_dir: Path, retriever: Retriever
) -> None:
    limit = {
        "admin_token": TOKEN,
        "admin_auth_limit": "5/minute",
        "trusted_proxies": ["testclient"],
    }
    with _client(data_dir, index_dir, retriever, **limit) as c:
        guesses = [c.get("/admin/report.json", headers={"Authorization": f"Bearer guess-{n:04d}"
                                                        "-abcdefghijk"}) for n in range(8)]  # fmt: skip
        assert [r.status_code for r in guesses] == [401] * 5 + [429] * 3
        refused = guesses[-1]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["detail"].startswith("too many failed admin authentications")
        # Past the budget the right token is refused too: a guesser learns nothing.
        for path in ("/admin", "/admin/report.csv", "/admin/report.json"):
            assert c.get(path, headers=BEARER).status_code == 429, path
        assert c.post("/admin/login", data={"token": TOKEN}).status_code == 429
        # Another client (through a trusted proxy) has its own budget; asking with no
        # credentials at all is no failed attempt.
        other = {"X-Forwarded-For": "198.51.100.7"}
        assert [c.get("/admin", headers=other).status_code for _ in range(8)] == [401] * 8
        assert c.get("/admin", headers={**other, **BEARER}).status_code == 200


def test_cookies_and_sign_ins_share_the_failure_budget(
    data_dir: Path, index_dir: Path, retriever: Retriever
) -> None:
    with _client(data_dir, index_dir, retriever, admin_token=TOKEN,
                 admin_auth_limit="4/minute") as c:  # fmt: skip
        codes = [
            c.post("/admin/login", data={"token": "first-wrong-guess-xyz"}).status_code,
            c.get("/admin", headers={"Cookie": "rag_admin=forged.1.abc"}).status_code,
            c.get(
                "/admin/report.csv", headers={"Authorization": "Bearer wrong-token-xyz"}
            ).status_code,
            c.post("/admin/login", data={"token": "second-wrong-guess-xyz"}).status_code,
            c.post("/admin/login", data={"token": TOKEN}).status_code,
        ]
    assert codes == [401, 401, 401, 401, 429]


def sign_in(client: TestClient) -> str:
    signed = client.post("/admin/login", data={"token": TOKEN}, follow_redirects=False)
    assert signed.status_code == 303
    return signed.cookies[COOKIE]


def test_each_sign_in_is_a_new_session_that_sign_out_revokes(admin: TestClient) -> None:
    first, second = sign_in(admin), sign_in(admin)
    assert first != second  # a random id and the time each was issued
    session_id, issued, mac = first.split(".")
    assert len(session_id) >= 32 and abs(int(issued) - time.time()) < 3600 and len(mac) == 64
    admin.cookies.clear()

    def report(cookie: str) -> int:
        admin.cookies.clear()
        admin.cookies.set(COOKIE, cookie)
        return admin.get("/admin/report.json").status_code

    assert report(first) == report(second) == 200
    admin.cookies.set(COOKIE, first)
    out = admin.post("/admin/logout", follow_redirects=False)
    assert out.status_code == 303
    assert report(first) == 401  # replayed after sign-out: refused by the server
    assert report(second) == 200  # the other session goes on
    # The cookie is bound to its issue time and to the id: change either and it is refused.
    assert report(f"{session_id}.{int(issued) + 1}.{mac}") == 401
    assert report(f"x{session_id[1:]}.{issued}.{mac}") == 401


def test_sessions_expire_on_the_server_and_die_with_the_token(
    data_dir: Path, index_dir: Path, retriever: Retriever
) -> None:
    # Two Sessions over one data directory stand for two worker processes of one server.
    one, two = Sessions(data_dir, TOKEN), Sessions(data_dir, TOKEN)
    cookie = one.issue()
    assert two.valid(cookie)
    two.revoke(cookie)
    assert not one.valid(cookie)  # signed out in one worker: out in every worker
    live = one.issue()
    con = sqlite3.connect(data_dir / "admin.sqlite")
    with con:
        con.execute("UPDATE sessions SET expires = ?", (time.time() - 1,))
    con.close()
    assert not two.valid(live)  # past the server's expiry, whatever the browser keeps
    kept = one.issue()
    assert one.valid(kept)
    # The server restarted with a new token: no session of the old one works, or is kept.
    renewed = Sessions(data_dir, "a-brand-new-admin-token-0123")
    assert not renewed.valid(kept) and not one.valid(kept)
    con = sqlite3.connect(data_dir / "admin.sqlite")
    assert con.execute("SELECT COUNT(*) FROM sessions").fetchone() == (0,)
    con.close()
    for sessions in (one, two, renewed):
        sessions.close()
    assert (data_dir / "admin.sqlite").stat().st_mode & 0o777 == 0o600
    # Old cookies of every shape are refused without a lookup.
    fresh = Sessions(data_dir, TOKEN)
    for bad in ("", "a.b", "a.b.c.d", "x" * 500, _old_cookie(), f"id.{2**70}.{'0' * 64}"):
        assert not fresh.valid(bad)
    fresh.close()


def _old_cookie() -> str:
    # What the cookie held before sessions: an HMAC of the token and a constant.
    return hmac.new(TOKEN.encode(), b"career-rag admin session", hashlib.sha256).hexdigest()


def test_malformed_admin_inputs_are_4xx_not_500(admin: TestClient) -> None:
    crowded = admin.post("/admin/login", content=b"&" * 10,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert crowded.status_code == 400
    assert crowded.json()["detail"] == "the sign-in form has more than 10 fields: post token"
    for path in ("/admin", "/admin/report.csv", "/admin/report.json"):
        response = admin.get(path, params={"since": "999999w"}, headers=BEARER)
        assert response.status_code == 422, path
        assert response.json()["field"] == "since"
        assert "goes back before the year 1" in response.json()["detail"]


def test_cli_report_refuses_a_since_too_far_back(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--data", str(data_dir), "--since", "999999w"]) == 2
    err = capsys.readouterr().err
    assert err == "rag: error: argument --since: '999999w' goes back before the year 1\n"


@pytest.mark.slow
def test_sessions_are_shared_by_the_workers_of_a_real_server(
    real_index_dir: Path, tmp_path: Path
) -> None:
    # Each request below opens its own connection, which either worker process may accept: a
    # session kept in one process's memory would fail about half of them.
    env = child_env(real_index_dir, ROOT / "corpus", tmp_path / "data", RAG_ADMIN_TOKEN=TOKEN,
                    RAG_ADMIN_AUTH_LIMIT="1000/minute")  # fmt: skip
    with rag_serve(env, tmp_path / "server.log", workers=2) as (url, _):

        def report(cookie: str) -> int:
            headers = {"Cookie": f"{COOKIE}={cookie}"}
            return httpx.get(f"{url}/admin/report.json", headers=headers, timeout=30).status_code

        signed = httpx.post(f"{url}/admin/login", data={"token": TOKEN}, timeout=30)
        assert signed.status_code == 303
        cookie = signed.cookies[COOKIE]
        assert [report(cookie) for _ in range(30)] == [200] * 30
        out = httpx.post(f"{url}/admin/logout", headers={"Cookie": f"{COOKIE}={cookie}"},
                         timeout=30)  # fmt: skip
        assert out.status_code == 303
        assert [report(cookie) for _ in range(30)] == [401] * 30


# --------------------------------------------------------------------------- in Chromium


@pytest.mark.slow
@pytest.mark.browser
def test_admin_page_in_chromium(
    data_dir: Path, index_dir: Path, retriever: Retriever, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from tests.browser_helpers import LiveServer, browser_session, chromium_path

    if chromium_path() is None:
        pytest.fail("Chromium is missing: `apt-get install -y chromium` (.ci/run does)")
    settings = Settings(index_dir=index_dir, data_dir=data_dir, admin_token=TOKEN)
    server = LiveServer(create_app(settings, retriever)).start()
    try:
        with browser_session() as browser:
            context = browser.new_context(viewport={"width": 1100, "height": 900})
            # Without the token, in a page of its own: the 401 is logged as a failed load, and
            # so, whenever it lands, is the browser's /favicon.ico request for that JSON page.
            refused = context.new_page()
            refused.goto(f"{server.url}/admin")
            assert "the admin token is missing or wrong" in refused.content()
            refused.close()
            page = context.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{server.url}/admin/login")
            page.get_by_label("Admin token").fill(TOKEN)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{server.url}/admin")
            expect(page.get_by_role("heading", name="Coverage report")).to_be_visible()
            for name in ("Volume and latency per day", "Top questions", "Not covered",
                         "Zero hits", "Low score", "Thumbs down", "Documents cited most",
                         "Never cited"):  # fmt: skip
                expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
            volume = page.locator("#volume svg")
            expect(volume.locator("rect.bar")).to_have_count(5)
            expect(volume.locator("g.line-p95 circle")).to_have_count(4)
            # Charts are images named by their <title> for assistive technology.
            for name in ("Queries per day with latency p50 and p95", "Documents cited most"):
                expect(page.get_by_role("img", name=name)).to_be_visible()
            bars = page.locator("#cited svg rect.bar")
            expect(bars).to_have_count(3)
            widths = [float(b.get_attribute("width") or 0) for b in bars.all()]
            assert widths[0] > widths[1] > widths[2] > 0
            box = volume.bounding_box()
            assert box is not None and box["width"] > 600 and box["height"] > 200
            expect(page.locator("#thumbs_down")).to_contain_text("Nothing about pensions")
            expect(page.locator("#low_score")).to_contain_text(XSS)  # as text, not markup
            expect(page.locator("#never_cited")).to_contain_text("Technical Recruiter")
            # The inline stylesheet applied: the CSP allowed it by its hash.
            assert page.evaluate("getComputedStyle(document.body).maxWidth") == "960px"
            cookie = next(c for c in context.cookies() if c["name"] == "rag_admin")
            assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (
                True, "Strict", "/admin"
            )  # fmt: skip
            assert problems == []
            # RAG_REPORT_SCREENSHOT=docs/report.png refreshes the committed screenshot.
            shot = Path(os.environ.get("RAG_REPORT_SCREENSHOT") or tmp_path / "report.png")
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            context.close()
    finally:
        server.stop()
