"""The HTTP API through TestClient: every endpoint, every error, CORS, batching, the query log."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rag.analytics.querylog import db_path
from rag.config import Settings
from rag.index import build_index, load_index
from rag.search.retriever import Retriever
from rag.serve.app import app_factory, create_app
from rag.serve.batching import MicroBatcher
from rag.serve.protocol import GuardedHttpToolsProtocol, HttpLimits
from rag.serve.runner import run_server, settings_env, uvicorn_options

ROOT = Path(__file__).resolve().parent.parent
MAX_CHARS = 200
# The Host names TestClient and httpx's ASGI transport send; the rate limit is off, as these
# tests are not about it (tests/test_hardening.py is).
CLIENT = {"allowed_hosts": ["testserver", "test"], "rate_limit": "off"}


@pytest.fixture
def settings(index_dir: Path, small_corpus: Path, tmp_path: Path) -> Settings:
    return Settings(
        index_dir=index_dir,
        corpus_dir=small_corpus,
        data_dir=tmp_path / "data",
        max_query_chars=MAX_CHARS,
        max_body_bytes=4096,
        public_url="https://careers.example.com",
        **CLIENT,
    )


@pytest.fixture
def retriever_options() -> dict:
    return {"max_query_chars": MAX_CHARS}


def sse(text: str) -> list[tuple[str, dict]]:
    """Parse a text/event-stream body into (event, data) pairs."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def chat_body(*turns: str, **extra) -> dict:
    roles = ["user", "assistant"]
    return {
        "messages": [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)],
        **extra,
    }


def log_rows(settings: Settings, sql: str) -> list[tuple]:
    con = sqlite3.connect(db_path(settings.data_dir))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def wait_for(predicate, what: str, tries: int = 600) -> None:
    """Poll until ``predicate()``; fails after ``tries`` x 50 ms (a hang guard, not a timing check)."""
    for _ in range(tries):
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


# --------------------------------------------------------------------------- health, ready


def test_health_is_ok(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def test_ready_reports_the_loaded_index(client: TestClient, retriever: Retriever) -> None:
    body = client.get("/ready").json()
    manifest = retriever.index.manifest
    assert body["status"] == "ready"
    assert body["model"] == "fake-hash-embedder"
    assert body["built_at"] == manifest.built_at
    assert body["counts"] == manifest.counts
    assert body["stale"] is False and body["stale_sources"] == []


def test_ready_flags_a_stale_corpus(client: TestClient, small_corpus: Path) -> None:
    (small_corpus / "recruiter.txt").write_text("Technical Recruiter\n\nChanged.\n")
    body = client.get("/ready").json()
    assert body["stale"] is True
    assert body["stale_sources"] == ["recruiter.txt"]


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every corpus hashing (rag.index.store.corpus_hashes) and lets it run."""
    import rag.index.store

    calls: list[Path] = []
    real = rag.index.store.corpus_hashes

    def spy(corpus_dir: Path) -> dict[str, str]:
        calls.append(corpus_dir)
        return real(corpus_dir)

    monkeypatch.setattr(rag.index.store, "corpus_hashes", spy)
    return calls


def age_corpus(corpus: Path, seconds: int = 60) -> None:
    """Give every corpus file an mtime old enough for /ready to trust its stat."""
    when = time.time_ns() - seconds * 1_000_000_000
    for path in corpus.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(when, when))


def test_ready_does_not_rehash_an_unchanged_corpus(
    client: TestClient, small_corpus: Path, hash_calls: list[Path]
) -> None:
    age_corpus(small_corpus)
    for _ in range(5):
        body = client.get("/ready").json()
        assert body["stale"] is False and body["stale_sources"] == []
    assert len(hash_calls) == 1


def test_ready_flags_a_changed_file_after_a_cached_check(
    client: TestClient, small_corpus: Path, hash_calls: list[Path]
) -> None:
    age_corpus(small_corpus)
    assert client.get("/ready").json()["stale"] is False
    (small_corpus / "sub" / "analyst.html").write_text("<h1>Data Analyst</h1><p>Changed.</p>")
    body = client.get("/ready").json()
    assert body["stale"] is True
    assert body["stale_sources"] == ["sub/analyst.html"]
    assert len(hash_calls) == 2


def test_ready_flags_added_and_removed_files_after_a_cached_check(
    client: TestClient, small_corpus: Path
) -> None:
    age_corpus(small_corpus)
    assert client.get("/ready").json()["stale"] is False
    (small_corpus / "new.md").write_text("# New\n\nA new guide.\n")
    (small_corpus / "recruiter.txt").unlink()
    assert client.get("/ready").json()["stale_sources"] == ["new.md", "recruiter.txt"]
    (small_corpus / "new.md").unlink()
    assert client.get("/ready").json()["stale_sources"] == ["recruiter.txt"]


def test_ready_lets_the_hash_decide_for_a_touched_but_identical_file(
    client: TestClient, small_corpus: Path, hash_calls: list[Path]
) -> None:
    age_corpus(small_corpus, seconds=60)
    assert client.get("/ready").json()["stale"] is False
    age_corpus(small_corpus, seconds=30)  # like `touch`, but still past the racy window
    body = client.get("/ready").json()
    assert body["stale"] is False and body["stale_sources"] == []
    assert len(hash_calls) == 2  # the stat changed, so it hashed again
    assert client.get("/ready").json()["stale"] is False
    assert len(hash_calls) == 2


def test_ready_rehashes_a_file_written_too_recently_to_trust_its_stat(
    client: TestClient, small_corpus: Path
) -> None:
    # Same size and the same mtime as when /ready last looked: only the hash can tell.
    path = small_corpus / "recruiter.txt"
    before = path.stat()
    assert client.get("/ready").json()["stale"] is False
    text = path.read_text()
    path.write_text(text.replace("hires", "HIRES"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert client.get("/ready").json()["stale_sources"] == ["recruiter.txt"]


def test_ready_forgets_the_cached_check_when_another_index_is_attached(
    app: FastAPI, client: TestClient, small_corpus: Path, tmp_path: Path, fake_embedder
) -> None:
    (small_corpus / "recruiter.txt").write_text("Technical Recruiter\n\nChanged.\n")
    age_corpus(small_corpus)
    assert client.get("/ready").json()["stale_sources"] == ["recruiter.txt"]
    build_index(small_corpus, tmp_path / "rebuilt", fake_embedder)
    rebuilt = Retriever(load_index(tmp_path / "rebuilt"), fake_embedder)
    client.portal.call(app.state.services.attach, rebuilt)
    body = client.get("/ready").json()
    assert body["built_at"] == rebuilt.index.manifest.built_at
    assert body["stale"] is False and body["stale_sources"] == []


def test_ready_is_503_until_the_index_loads(
    settings: Settings, retriever: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def slow_load(cls, s: Settings) -> Retriever:
        assert s is settings
        release.wait(30)
        return retriever

    monkeypatch.setattr(Retriever, "from_settings", classmethod(slow_load))
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        loading = client.get("/ready")
        assert loading.status_code == 503
        assert loading.json()["status"] == "loading"
        busy = client.post("/search", json={"query": "pipelines"})
        assert busy.status_code == 503 and "loading" in busy.json()["detail"]
        assert busy.headers["retry-after"]
        release.set()
        wait_for(lambda: client.get("/ready").status_code == 200, "the index to load")
        assert client.post("/search", json={"query": "pipelines"}).status_code == 200
        assert client.app.state.services.current.retriever is retriever


def test_ready_reports_why_the_index_failed_to_load(tmp_path: Path) -> None:
    settings = Settings(index_dir=tmp_path / "missing", data_dir=tmp_path / "data", **CLIENT)
    with TestClient(create_app(settings)) as client:
        wait_for(lambda: client.get("/ready").json()["status"] == "error", "the load to fail")
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "no index" in ready.json()["detail"]
        assert client.get("/health").status_code == 200
        search = client.post("/search", json={"query": "x"})
        assert search.status_code == 503 and "no index" in search.json()["detail"]


def test_app_without_its_lifespan_answers_503_not_500(app: FastAPI) -> None:
    client = TestClient(app)  # no `with`: the lifespan never runs
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 503
    assert client.post("/search", json={"query": "x"}).status_code == 503


# --------------------------------------------------------------------------- search


def test_search_returns_ranked_hits_with_citations(client: TestClient) -> None:
    resp = client.post("/search", json={"query": "  data engineer salary  ", "k": 3})
    assert resp.status_code == 200
    body = resp.json()
    assert body["query"] == "data engineer salary"
    assert re.fullmatch(r"[0-9a-f]{32}", body["query_id"])
    assert body["took_ms"] >= 0
    results = body["results"]
    assert 1 <= len(results) <= 3
    assert [r["rank"] for r in results] == list(range(1, len(results) + 1))
    assert any("$120,000" in r["text"] for r in results)
    c = results[0]["citation"]
    assert c["url"] == (
        f"https://careers.example.com/view/data-engineer?start={c['start']}&end={c['end']}#passage"
    )


def test_search_uses_default_k_of_5(client: TestClient) -> None:
    assert len(client.post("/search", json={"query": "data"}).json()["results"]) == 5


def test_search_filters_by_document(client: TestClient) -> None:
    body = {"query": "skills", "k": 10, "filters": {"doc_id": "technical-recruiter"}}
    results = client.post("/search", json=body).json()["results"]
    assert results and {r["citation"]["doc_id"] for r in results} == {"technical-recruiter"}


def test_search_rejects_unknown_doc_id_naming_filters_doc_id(client: TestClient) -> None:
    resp = client.post("/search", json={"query": "skills", "filters": {"doc_id": "nope"}})
    assert resp.status_code == 422
    assert resp.json()["field"] == "filters.doc_id"
    assert "nope" in resp.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   \n\t "}, "query"),
        ({"query": "x" * (MAX_CHARS + 1)}, "query"),
        ({"query": "x", "k": 0}, "k"),
        ({"query": "x", "k": 51}, "k"),
        ({"query": "x", "k": -3}, "k"),
        ({"query": "x", "k": "5"}, "k"),
        ({"query": "x", "k": 2.5}, "k"),
        ({"query": "x", "k": True}, "k"),
        ({"query": "x", "k": None}, "k"),
        ({"query": 5}, "query"),
        ({"query": None}, "query"),
        ({"query": ["a"]}, "query"),
        ({}, "query"),
        ({"k": 3}, "query"),
        ({"query": "x", "filters": {"doc_id": 3}}, "filters.doc_id"),
        ({"query": "x", "filters": "data-engineer"}, "filters"),
        ({"query": "x", "top_k": 3}, "top_k"),
        ([{"query": "x"}], "body"),
        ("data engineer", "body"),
    ],
)
def test_search_rejects_invalid_body(client: TestClient, body: object, field: str) -> None:
    resp = client.post("/search", json=body)
    assert resp.status_code == 422
    err = resp.json()
    assert err["field"] == field
    assert field in err["detail"] or err["detail"].startswith(field.split(".")[-1])
    assert err["errors"] and err["errors"][0]["field"] == field


def test_search_rejects_malformed_json(client: TestClient) -> None:
    resp = client.post(
        "/search", content=b'{"query": "x",', headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["field"] == "body"
    assert "not valid JSON" in resp.json()["detail"]


def test_search_rejects_non_utf8_body(client: TestClient) -> None:
    resp = client.post(
        "/search", content=b'{"query": "caf\xe9"}', headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["field"] == "body"
    assert "UTF-8" in resp.json()["detail"]


def test_search_rejects_lone_surrogate(client: TestClient) -> None:
    resp = client.post(
        "/search", content=rb'{"query": "bad \ud800"}', headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 422
    assert resp.json()["field"] == "query"


def test_search_rejects_body_over_limit_by_content_length(client: TestClient) -> None:
    resp = client.post("/search", json={"query": "x" * 5000})
    assert resp.status_code == 413
    assert resp.json()["field"] == "body"


def test_search_rejects_streamed_body_over_limit_without_content_length(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"query": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    resp = client.post("/search", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in resp.request.headers
    assert resp.status_code == 413
    assert resp.json()["field"] == "body"


@pytest.mark.parametrize(
    "query",
    [
        "Ingénieur données à Zürich — 数据工程师",
        "data engineer 🚀🔥 salary",
        "'; DROP TABLE queries; -- OR 1=1",
        "<script>alert('x')</script> <b>pipelines</b>",
        "pipelines\x00with a NUL",
        "\u202etext\u200b with bidi and zero-width",
    ],
)
def test_search_accepts_unusual_text(client: TestClient, query: str) -> None:
    resp = client.post("/search", json={"query": query})
    assert resp.status_code == 200
    assert resp.json()["query"] == query.strip()


# --------------------------------------------------------------------------- ask, chat


def test_ask_answer_cites_returned_results(client: TestClient) -> None:
    body = client.post("/ask", json={"query": "What does a data engineer build?", "k": 3}).json()
    assert body["query"] == "What does a data engineer build?"
    assert body["answer"]
    refs = [int(n) for n in re.findall(r"\[(\d+)\]", body["answer"])]
    assert refs and all(1 <= n <= len(body["results"]) for n in refs)
    assert re.fullmatch(r"[0-9a-f]{32}", body["query_id"])


@pytest.mark.parametrize(
    ("body", "field"),
    [({"query": " "}, "query"), ({"query": "x", "k": 99}, "k"), ({"question": "x"}, "query")],
)
def test_ask_rejects_invalid_body(client: TestClient, body: dict, field: str) -> None:
    resp = client.post("/ask", json=body)
    assert resp.status_code == 422 and resp.json()["field"] == field


def test_chat_resolves_pronoun_follow_up(client: TestClient) -> None:
    body = chat_body("What does a data engineer do?", "They build pipelines.", "What do they earn?")
    resp = client.post("/chat", json=body)
    assert resp.status_code == 200
    out = resp.json()
    assert out["query"] == "What do data engineers earn?"
    assert any("$120,000" in r["text"] for r in out["results"])
    assert out["answer"]
    refs = [int(n) for n in re.findall(r"\[(\d+)\]", out["answer"])]
    assert refs and all(1 <= n <= len(out["results"]) for n in refs)


def test_chat_uses_index_titles_as_subjects(client: TestClient) -> None:
    body = chat_body("Tell me about technical recruiter work", "Sure.", "What skills do I need?")
    assert client.post("/chat", json=body).json()["query"] == (
        "What skills do I need for technical recruiters?"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "assistant", "content": "hello"}]}, "messages"),
        (chat_body("   ", "hello", "What do they earn?"), "messages.0.content"),
        (chat_body("x" * (MAX_CHARS + 1), "hello", "What do they earn?"), "messages.0.content"),
        ({"messages": [{"role": "system", "content": "be nice"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "   "}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": "x" * (MAX_CHARS + 1)}]}, "messages.0.content"),
        ({"messages": [{"role": "user"}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages.0.content"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
        ({"messages": [{"role": "user", "content": "x"}], "k": 0}, "k"),
        ({}, "messages"),
    ],
)
def test_chat_rejects_invalid_body(client: TestClient, body: dict, field: str) -> None:
    resp = client.post("/chat", json=body)
    assert resp.status_code == 422
    assert resp.json()["field"] == field


def test_chat_streams_sources_then_deltas_then_done(client: TestClient) -> None:
    body = chat_body("What does a data engineer do?", "Pipelines.", "How much do they earn?")
    resp = client.post("/chat", json={**body, "stream": True})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse(resp.text)
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "done"
    assert set(names[1:-1]) == {"delta"} and len(names) >= 3
    sources, done = events[0][1], events[-1][1]
    assert sources["query"] == "How much do data engineers earn?"
    assert sources["results"] and sources["query_id"] == done["query_id"]
    assert "".join(data["text"] for name, data in events if name == "delta") == done["answer"]
    refs = [int(n) for n in re.findall(r"\[(\d+)\]", done["answer"])]
    assert refs and all(1 <= n <= len(sources["results"]) for n in refs)


def test_chat_answers_the_latest_user_message_leaving_out_assistant_turns_after_it(
    client: TestClient,
) -> None:
    # The schema cannot say "the last item is the user's", so the server does not require it:
    # a conversation sent back with the answer being redone is answered as without it.
    body = chat_body("What does a data engineer do?", "They build pipelines.", "What do they earn?")
    redo = {"messages": [*body["messages"], {"role": "assistant", "content": "They earn $1."}]}
    assert client.post("/chat", json=redo).json()["query"] == "What do data engineers earn?"


def test_chat_stream_validates_before_streaming(client: TestClient) -> None:
    no_question = {"messages": [{"role": "assistant", "content": "hello"}]}
    resp = client.post("/chat", json={**no_question, "stream": True})
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/json")


# --------------------------------------------------------------------------- documents


def test_documents_lists_sections_and_chunk_counts(
    client: TestClient, retriever: Retriever
) -> None:
    docs = client.get("/documents").json()["documents"]
    assert [d["id"] for d in docs] == ["data-engineer", "technical-recruiter", "data-analyst"]
    counts = retriever.index.chunk_counts()
    for d in docs:
        assert d["chunks"] == counts[d["id"]] > 0
        assert d["sections"] and all({"path", "start", "end"} <= set(s) for s in d["sections"])
    engineer = docs[0]
    assert engineer["title"] == "Data Engineer" and engineer["source"] == "data-engineer.md"
    assert ["Data Engineer", "Salary"] in [s["path"] for s in engineer["sections"]]


def test_document_returns_text_at_its_offset(client: TestClient, small_corpus: Path) -> None:
    doc = client.get("/documents/technical-recruiter").json()
    source = (small_corpus / doc["source"]).read_text(encoding="utf-8")
    assert doc["title"] == "Technical Recruiter"
    assert source[doc["offset"] : doc["offset"] + len(doc["text"])] == doc["text"]
    for section in doc["sections"]:
        assert 0 <= section["start"] < section["end"] <= len(source)


def test_document_unknown_id_is_404_json(client: TestClient) -> None:
    resp = client.get("/documents/no-such-guide")
    assert resp.status_code == 404
    assert resp.json()["field"] == "doc_id"
    assert "no-such-guide" in resp.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/documents/..%2F..%2F..%2Fetc%2Fpasswd",
        "/documents/%2Fetc%2Fpasswd",
        "/documents/%2E%2E",
        "/documents/data-engineer%00",
        "/documents/data-engineer.md",
        "/documents/%2e%2e%2fpyproject.toml",
    ],
)
def test_document_ids_are_never_paths(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 404
    assert "root:" not in resp.text and "[project]" not in resp.text
    assert resp.json()["detail"]


# --------------------------------------------------------------------------- feedback, log


def test_feedback_is_recorded_against_the_query(settings: Settings, app: FastAPI) -> None:
    with TestClient(app) as client:
        query_id = client.post("/search", json={"query": "pipelines"}).json()["query_id"]
        resp = client.post(
            "/feedback", json={"query_id": query_id, "rating": "down", "comment": "off topic"}
        )
        assert resp.status_code == 200
        assert resp.json() == {"status": "recorded", "query_id": query_id}
    assert log_rows(settings, "SELECT query_id, rating, comment FROM feedback") == [
        (query_id, "down", "off topic")
    ]


def test_feedback_for_unknown_query_is_404(client: TestClient) -> None:
    resp = client.post("/feedback", json={"query_id": "0" * 32, "rating": "up"})
    assert resp.status_code == 404
    assert resp.json()["field"] == "query_id"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query_id": "0" * 32, "rating": "meh"}, "rating"),
        ({"query_id": "not-an-id", "rating": "up"}, "query_id"),
        ({"rating": "up"}, "query_id"),
        ({"query_id": "0" * 32, "rating": "up", "comment": "x" * 2001}, "comment"),
    ],
)
def test_feedback_rejects_invalid_body(client: TestClient, body: dict, field: str) -> None:
    resp = client.post("/feedback", json=body)
    assert resp.status_code == 422 and resp.json()["field"] == field


def test_every_query_endpoint_is_logged(
    settings: Settings, app: FastAPI, retriever: Retriever
) -> None:
    with TestClient(app) as client:
        ids = {
            "search": client.post("/search", json={"query": "spark"}).json()["query_id"],
            "ask": client.post("/ask", json={"query": "what is etl"}).json()["query_id"],
            "chat": client.post("/chat", json=chat_body("recruiter skills")).json()["query_id"],
        }
        stream = client.post("/chat", json={**chat_body("recruiter skills"), "stream": True})
        ids["chat-stream"] = sse(stream.text)[-1][1]["query_id"]
    # Leaving the client ran the shutdown, which flushes the log.
    rows = log_rows(
        settings, "SELECT query_id, endpoint, query, chunk_ids, model, index_built_at FROM queries"
    )
    assert {r[0]: r[1] for r in rows} == {
        ids["search"]: "search",
        ids["ask"]: "ask",
        ids["chat"]: "chat",
        ids["chat-stream"]: "chat",
    }
    for _, _, query, chunk_ids, model, built_at in rows:
        assert query and json.loads(chunk_ids)
        assert model == "fake-hash-embedder"
        assert built_at == retriever.index.manifest.built_at


def test_failed_queries_are_not_logged(settings: Settings, app: FastAPI) -> None:
    with TestClient(app) as client:
        client.post("/search", json={"query": " "})
        client.post("/search", json={"query": "x", "filters": {"doc_id": "nope"}})
    assert log_rows(settings, "SELECT COUNT(*) FROM queries") == [(0,)]


# --------------------------------------------------------------------------- CORS, errors


def preflight(client: TestClient, origin: str) -> httpx.Response:
    return client.options(
        "/search",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


@pytest.mark.parametrize(
    "origin",
    ["http://localhost:3000", "http://127.0.0.1:5173", "https://careers.example.com"],
)
def test_cors_preflight_allows_listed_origins(client: TestClient, origin: str) -> None:
    resp = preflight(client, origin)
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == origin
    assert "POST" in resp.headers["access-control-allow-methods"]
    simple = client.post("/search", json={"query": "x"}, headers={"Origin": origin})
    assert simple.headers["access-control-allow-origin"] == origin


def test_cors_gives_unlisted_origin_no_allow_header(client: TestClient) -> None:
    resp = preflight(client, "https://evil.example")
    assert "access-control-allow-origin" not in resp.headers
    simple = client.post("/search", json={"query": "x"}, headers={"Origin": "https://evil.example"})
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers


def test_cors_origins_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, retriever: Retriever, tmp_path: Path
) -> None:
    monkeypatch.setenv("RAG_CORS_ORIGINS", "https://a.example, https://b.example/")
    settings = Settings(data_dir=tmp_path / "data", **CLIENT)
    with TestClient(create_app(settings, retriever)) as client:
        assert preflight(client, "https://b.example").headers["access-control-allow-origin"] == (
            "https://b.example"
        )
        assert (
            "access-control-allow-origin" not in preflight(client, "http://localhost:3000").headers
        )
        # The server's own origin stays allowed whatever the list says.
        own = preflight(client, "http://127.0.0.1:8000")
        assert own.headers["access-control-allow-origin"] == "http://127.0.0.1:8000"


def test_cors_headers_are_on_error_responses_too(client: TestClient) -> None:
    resp = client.post(
        "/search", json={"query": "x" * 5000}, headers={"Origin": "http://localhost:3000"}
    )
    assert resp.status_code == 413
    assert resp.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_unknown_route_and_wrong_method_answer_json(client: TestClient) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.json()["detail"] == "Not Found"
    wrong = client.get("/search")
    assert wrong.status_code == 405 and wrong.json()["detail"]


def test_openapi_documents_every_endpoint_with_models(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    expected = {
        ("/search", "post"): "SearchResponse",
        ("/ask", "post"): "AskResponse",
        ("/chat", "post"): "ChatResponse",
        ("/documents", "get"): "DocumentList",
        ("/documents/{doc_id}", "get"): "DocumentDetail",
        ("/health", "get"): "HealthResponse",
        ("/ready", "get"): "ReadyResponse",
        ("/feedback", "post"): "FeedbackResponse",
    }
    for (path, method), model in expected.items():
        op = spec["paths"][path][method]
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok["$ref"].endswith("/" + model), path
        if method == "post":
            assert "$ref" in op["requestBody"]["content"]["application/json"]["schema"], path
        assert "ErrorResponse" in json.dumps(op["responses"].get("422", {})) or path in (
            "/health",
            "/ready",
        )
    search = spec["components"]["schemas"]["SearchRequest"]["properties"]
    assert search["query"]["maxLength"] == MAX_CHARS  # the configured limit, not the default
    assert search["k"]["maximum"] == 50
    chat = spec["paths"]["/chat"]["post"]
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    assert "event: sources" in chat["description"]


# --------------------------------------------------------------------------- serving


def test_settings_travel_to_worker_processes_through_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings


def test_run_server_with_workers_uses_the_factory_import_string(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    for name in settings_env(settings):
        # Registered with monkeypatch, so what run_server puts in os.environ is undone after.
        monkeypatch.setenv(name, "overwritten by run_server")
    run_server(settings, "127.0.0.1", 8123, workers=3)
    [(app, kw)] = calls
    assert app == "rag.serve.app:app_factory"
    limits = without_protocol(kw)
    assert limits == {"factory": True, "host": "127.0.0.1", "port": 8123, "workers": 3,
                      **without_protocol(uvicorn_options(settings))}  # fmt: skip
    worker_settings = Settings()
    assert worker_settings.index_dir == settings.index_dir and worker_settings.port == 8123
    assert isinstance(app_factory(), FastAPI)


def test_run_server_with_one_worker_serves_the_app_in_process(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    run_server(settings, None, 8124)
    [(app, kw)] = calls
    assert isinstance(app, FastAPI)
    expected = {"host": settings.host, "port": 8124, **without_protocol(uvicorn_options(settings))}
    assert without_protocol(kw) == expected


def without_protocol(options: dict) -> dict:
    """uvicorn options without ``http`` (a partial, equal only to itself), checking it."""
    http = options["http"]
    assert http.func is GuardedHttpToolsProtocol and isinstance(http.keywords["limits"], HttpLimits)
    return {k: v for k, v in options.items() if k != "http"}


def test_uvicorn_options_carry_every_http_limit(settings: Settings) -> None:
    custom = settings.model_copy(
        update={"header_timeout_s": 3, "keepalive_timeout_s": 4, "graceful_timeout_s": 6,
                "max_connections": 7, "max_header_bytes": 8192, "backlog": 9}
    )  # fmt: skip
    options = uvicorn_options(custom)
    assert options["http"].keywords["limits"] == HttpLimits(3, 8192, 7)
    assert (options["timeout_keep_alive"], options["timeout_graceful_shutdown"]) == (4, 6)
    assert options["backlog"] == 9 and options["proxy_headers"] is False
    # Workers get it by pickling.
    assert pickle.loads(pickle.dumps(options["http"])).keywords == options["http"].keywords


# --------------------------------------------------------------------------- concurrency


def vectors(texts: list[str]) -> np.ndarray:
    return np.array([[float(len(t)), 1.0] for t in texts], dtype=np.float32)


def test_batcher_encodes_concurrent_queries_together() -> None:
    gate = threading.Event()
    batches: list[list[str]] = []

    def encode(texts):
        batches.append(list(texts))
        if len(batches) == 1:
            gate.wait(30)  # hold the first batch while the others queue up
        return vectors(list(texts))

    async def main() -> list[np.ndarray]:
        batcher = MicroBatcher(encode, max_wait_ms=0, max_batch=64)
        first = asyncio.ensure_future(batcher.encode("a"))
        while not batches:
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(batcher.encode("b" * n)) for n in range(2, 12)]
        await asyncio.sleep(0.01)
        gate.set()
        out = await asyncio.gather(first, *rest)
        await batcher.close()
        assert (batcher.batches, batcher.encoded, batcher.largest_batch) == (2, 11, 10)
        return out

    out = asyncio.run(main())
    assert [len(b) for b in batches] == [1, 10]
    # Every caller gets the vector of its own text.
    assert [v[0] for v in out] == [1.0] + [float(n) for n in range(2, 12)]


def test_batcher_caps_batches_at_max_batch() -> None:
    gate = threading.Event()
    sizes: list[int] = []

    def encode(texts):
        sizes.append(len(texts))
        if len(sizes) == 1:
            gate.wait(30)
        return vectors(list(texts))

    async def main() -> None:
        batcher = MicroBatcher(encode, max_wait_ms=0, max_batch=4)
        first = asyncio.ensure_future(batcher.encode("a"))
        while not sizes:
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(batcher.encode("b")) for _ in range(10)]
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(first, *rest)
        await batcher.close()

    asyncio.run(main())
    assert sizes == [1, 4, 4, 2]


def test_batcher_starts_a_lone_query_without_waiting_for_the_window() -> None:
    async def main() -> np.ndarray:
        # A one-minute window: a batcher that waited for it would trip the hang guard below.
        batcher = MicroBatcher(vectors, max_wait_ms=60_000, max_batch=64)
        try:
            return await asyncio.wait_for(batcher.encode("lonely"), timeout=30)
        finally:
            await batcher.close()

    assert asyncio.run(main())[0] == 6.0


def test_batcher_fails_every_caller_when_encoding_fails() -> None:
    def broken(texts):
        raise RuntimeError("model exploded")

    async def main() -> list:
        batcher = MicroBatcher(broken, max_wait_ms=1)
        results = await asyncio.gather(
            *(batcher.encode(str(i)) for i in range(5)), return_exceptions=True
        )
        # The batcher keeps serving after a failed batch.
        assert batcher._task is not None and not batcher._task.done()
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)


def test_concurrent_requests_all_succeed_in_shared_batches(
    settings: Settings, retriever: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    encode = retriever.encode

    def slow_encode(texts):
        time.sleep(0.02)  # a real model takes a while; concurrent queries pile up meanwhile
        return encode(texts)

    monkeypatch.setattr(retriever, "encode", slow_encode)
    app = create_app(settings, retriever)

    async def main() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                queries = [c.post("/search", json={"query": f"data {i}"}) for i in range(32)]
                health = [c.get("/health") for _ in range(8)]
                out = await asyncio.gather(*queries, *health)
                batcher = app.state.services.current.batcher
                assert batcher.encoded == 32 and batcher.batches < 32
        return out[:32], out[32:]

    searches, health = asyncio.run(main())
    assert [r.status_code for r in searches] == [200] * 32
    assert [r.json()["query"] for r in searches] == [f"data {i}" for i in range(32)]
    assert [r.status_code for r in health] == [200] * 8


# --------------------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def real_client(real_index_dir: Path, real_retriever: Retriever, tmp_path_factory) -> Iterator:
    settings = Settings(
        index_dir=real_index_dir,
        corpus_dir=ROOT / "corpus",
        data_dir=tmp_path_factory.mktemp("real-data"),
        **CLIENT,
    )
    with TestClient(create_app(settings, real_retriever)) as client:
        yield client


@pytest.mark.slow
def test_real_search_ranks_fraud_engineer_guide_first(real_client: TestClient) -> None:
    body = {"query": "what skills does an ML fraud engineer need"}
    results = real_client.post("/search", json=body).json()["results"]
    assert results[0]["citation"]["doc_id"] == "ml-fraud-detection-engineer"


@pytest.mark.slow
def test_real_chat_answers_two_turn_follow_up(real_client: TestClient) -> None:
    body = chat_body(
        "What does a lead data scientist do?",
        "A Lead Data Scientist is a senior role that leads data science teams. [1]",
        "How much do they earn?",
    )
    out = real_client.post("/chat", json=body).json()
    assert out["query"] == "How much do lead data scientists earn?"
    assert "$150,000 to $250,000" in out["results"][0]["text"]
    assert "[1]" in out["answer"]


@pytest.mark.slow
def test_real_chat_follow_up_about_another_company(real_client: TestClient) -> None:
    body = chat_body(
        "How much do ML engineers make at Meta?", "$231,000 to $338,000.", "And at Google?"
    )
    out = real_client.post("/chat", json={**body, "stream": True})
    events = sse(out.text)
    assert events[0][1]["query"] == "How much do ML engineers make at Google?"
    assert "$139,769 to $147,992" in events[0][1]["results"][0]["text"]


@pytest.mark.slow
def test_real_ask_cites_its_sources(real_client: TestClient) -> None:
    out = real_client.post("/ask", json={"query": "What is the salary of a senior ML engineer?"})
    body = out.json()
    refs = [int(n) for n in re.findall(r"\[(\d+)\]", body["answer"])]
    assert refs and all(1 <= n <= len(body["results"]) for n in refs)
    assert any("$189,477" in r["text"] for r in body["results"])


def test_search_ask_and_chat_filter_by_source_prefix_and_tag(client: TestClient) -> None:
    body = {"query": "skills", "k": 10, "filters": {"source": "sub/"}}
    results = client.post("/search", json=body).json()["results"]
    assert results and {r["citation"]["source"] for r in results} == {"sub/analyst.html"}
    ask = client.post("/ask", json={"query": "skills", "filters": {"source": "recruiter"}})
    assert {r["citation"]["source"] for r in ask.json()["results"]} == {"recruiter.txt"}
    chat = {"messages": [{"role": "user", "content": "skills"}], "filters": {"source": "data-"}}
    results = client.post("/chat", json=chat).json()["results"]
    assert results and {r["citation"]["source"] for r in results} == {"data-engineer.md"}
    # A filter that matches nothing is an empty result, as the schema says, not an error.
    none = client.post("/search", json={"query": "skills", "filters": {"tags": ["sourdough"]}})
    assert none.status_code == 200 and none.json()["results"] == []


def test_citations_say_where_a_markdown_passage_is_in_its_file(client: TestClient) -> None:
    body = {"query": "ETL pipelines Spark", "k": 3, "filters": {"source": "data-engineer.md"}}
    citation = client.post("/search", json=body).json()["results"][0]["citation"]
    assert citation["page"] is None
    assert 0 <= citation["source_start"] < citation["source_end"]
