"""A public website's clients: static names, HEAD, JSON errors everywhere, the Content-Type,
the Host allowlist, rate limits, one rating per query, comment and log limits, and /docs."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from rag.analytics.querylog import db_path
from rag.config import Settings
from rag.search.retriever import Retriever
from rag.serve.app import allowed_hosts, create_app
from rag.serve.middleware import BodyGuard
from rag.serve.schemas import NOT_BLANK


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "allowed_hosts": ["testserver"],
        "rate_limit": "off",
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def assert_json_error(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"detail", "field", "errors"} and body["detail"]
    return body


# --------------------------------------------------------------------------- no 500s


@pytest.mark.parametrize(
    "name",
    ["a%00.js", "a" * 300 + ".js", "..%2fchat.js", "%2e%2e", "chat.js%00", "ch%C3%A4t.js",
     "chat.js.map", ".js", "CHAT.JS", "chat.html", "%ff.css", "a b.css"],
)  # fmt: skip
def test_static_files_reject_bad_names_with_404(client: TestClient, name: str) -> None:
    for method in ("GET", "HEAD"):
        resp = client.request(method, f"/web/{name}")
        assert resp.status_code == 404, (method, name)
    assert_json_error(client.get(f"/web/{name}"), 404)
    # The connection and the server are fine afterwards.
    assert client.get("/web/chat.js").status_code == 200


@pytest.mark.parametrize(
    "path", ["/health", "/ready", "/documents", "/documents/data-engineer", "/openapi.json",
             "/docs", "/", "/widget.js", "/web/chat.css"],
)  # fmt: skip
def test_head_works_wherever_get_does(client: TestClient, path: str) -> None:
    get, head = client.get(path), client.head(path)
    assert get.status_code == head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"]


def test_head_where_get_is_refused_is_refused_in_json(client: TestClient) -> None:
    for path, status in (("/documents/nope", 404), ("/search", 405)):
        resp = client.head(path)
        assert resp.status_code == status and resp.content == b""
        assert resp.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nope", 404), ("GET", "/search", 405), ("DELETE", "/documents", 405),
     ("GET", "/documents/nope", 404), ("GET", "/docs/nope.js", 404)],
)  # fmt: skip
def test_every_4xx_is_json(client: TestClient, method: str, path: str, status: int) -> None:
    assert_json_error(client.request(method, path), status)


def test_a_refused_cors_preflight_is_json(client: TestClient) -> None:
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    body = assert_json_error(client.options("/search", headers=headers), 400)
    assert "origin" in body["detail"].lower()


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""],
)
def test_a_body_that_is_not_json_gets_415_naming_its_content_type(
    client: TestClient, content_type: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    resp = client.post("/search", content=b'{"query": "data"}', headers=headers)
    body = assert_json_error(resp, 415)
    assert (content_type or "without a Content-Type") in body["detail"]
    assert body["field"] == "body"


def test_json_content_types_are_all_accepted(client: TestClient) -> None:
    for content_type in ("application/json", "application/json; charset=utf-8",
                         "application/problem+json", "Application/JSON"):  # fmt: skip
        headers = {"Content-Type": content_type}
        resp = client.post("/search", content=b'{"query": "data"}', headers=headers)
        assert resp.status_code == 200, content_type


def test_a_slow_body_gets_408_and_closes_the_connection() -> None:
    sent: list[dict] = []

    async def app(scope, receive, send):  # pragma: no cover - never reached
        raise AssertionError("the app must not see a body that never arrived")

    async def receive() -> dict:
        if not sent:
            sent.append({})
            return {"type": "http.request", "body": b"{", "more_body": True}
        await anyio.sleep(30)
        return {"type": "http.disconnect"}

    messages: list[dict] = []

    async def send(message: dict) -> None:
        messages.append(message)

    guard = BodyGuard(app, max_bytes=1024, timeout_s=0.2)
    scope = {"type": "http", "method": "POST", "path": "/search", "headers": []}
    t0 = time.monotonic()
    anyio.run(guard, scope, receive, send)
    assert time.monotonic() - t0 < 5
    assert messages[0]["status"] == 408
    assert (b"connection", b"close") in messages[0]["headers"]


# --------------------------------------------------------------------------- Host


def test_host_allowlist_defaults_to_this_servers_names(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, host="10.1.2.3", public_url="https://careers.example.com/rag"
    )
    assert allowed_hosts(settings) == [
        "localhost", "127.0.0.1", "::1", "10.1.2.3", "careers.example.com"
    ]  # fmt: skip
    assert "0.0.0.0" not in allowed_hosts(settings.model_copy(update={"host": "0.0.0.0"}))


@pytest.mark.parametrize(
    ("host", "allowed"),
    [("localhost", True), ("localhost:8000", True), ("127.0.0.1:8000", True), ("[::1]:8000", True),
     ("careers.example.com", True), ("CAREERS.example.com:443", True),
     ("evil.example", False), ("localhost.evil.example", False), ("", False),
     ("careers.example.com.evil", False)],
)  # fmt: skip
def test_requests_for_other_hosts_get_400_json(
    tmp_path: Path, retriever: Retriever, host: str, allowed: bool
) -> None:
    settings = make_settings(tmp_path, allowed_hosts=[], public_url="https://careers.example.com")
    with TestClient(create_app(settings, retriever)) as c:
        resp = c.get("/health", headers={"Host": host})
    if allowed:
        assert resp.status_code == 200
    else:
        assert "host" in assert_json_error(resp, 400)["detail"]


def test_host_allowlist_takes_wildcards_and_star(tmp_path: Path, retriever: Retriever) -> None:
    settings = make_settings(tmp_path, allowed_hosts=["*.example.com"])
    with TestClient(create_app(settings, retriever)) as c:
        assert c.get("/health", headers={"Host": "api.example.com"}).status_code == 200
        assert c.get("/health", headers={"Host": "example.org"}).status_code == 400
    with TestClient(create_app(make_settings(tmp_path, allowed_hosts=["*"]), retriever)) as c:
        assert c.get("/health", headers={"Host": "anything.test"}).status_code == 200


# --------------------------------------------------------------------------- rate limits


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path, retriever: Retriever) -> None:
    settings = make_settings(tmp_path, rate_limit="5/minute")
    with TestClient(create_app(settings, retriever)) as c:
        statuses = [c.post("/search", json={"query": "data"}).status_code for _ in range(8)]
        assert statuses == [200] * 5 + [429] * 3
        resp = c.post("/search", json={"query": "data"})
        body = assert_json_error(resp, 429)
        assert "5/minute" in body["detail"]
        assert 1 <= int(resp.headers["retry-after"]) <= 60
        # Each endpoint has its own budget; /health and the pages have none.
        assert c.post("/ask", json={"query": "data"}).status_code == 200
        assert all(c.get("/health").status_code == 200 for _ in range(20))


def test_rate_limit_is_per_client_and_trusts_only_listed_proxies(
    tmp_path: Path, retriever: Retriever
) -> None:
    settings = make_settings(tmp_path, rate_limit="2/minute", trusted_proxies=["testclient"])

    def search(c: TestClient, forwarded: str | None) -> int:
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        return c.post("/search", json={"query": "data"}, headers=headers).status_code

    with TestClient(create_app(settings, retriever)) as c:
        # Behind a trusted proxy, each forwarded client has its own budget.
        assert [search(c, "203.0.113.1") for _ in range(3)] == [200, 200, 429]
        assert [search(c, "203.0.113.2") for _ in range(3)] == [200, 200, 429]
    untrusted = settings.model_copy(update={"trusted_proxies": []})
    with TestClient(create_app(untrusted, retriever)) as c:
        # From a peer that is not trusted, X-Forwarded-For changes nothing.
        assert [search(c, f"203.0.113.{n}") for n in range(3)] == [200, 200, 429]


def test_rate_limit_off_turns_it_off(tmp_path: Path, retriever: Retriever) -> None:
    with TestClient(create_app(make_settings(tmp_path, rate_limit="off"), retriever)) as c:
        assert all(c.post("/search", json={"query": "x"}).status_code == 200 for _ in range(100))


def test_rate_limit_setting_is_validated() -> None:
    assert Settings(rate_limit="OFF").rate_limit == "off"
    assert Settings(rate_limit="10/second;300/hour").rate_limit == "10/second;300/hour"
    with pytest.raises(ValueError, match="60/minute"):
        Settings(rate_limit="lots")


# --------------------------------------------------------------------------- feedback, log


def test_one_rating_per_query_the_later_replacing_the_earlier(
    tmp_path: Path, retriever: Retriever
) -> None:
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings, retriever)) as c:
        query_id = c.post("/search", json={"query": "data"}).json()["query_id"]
        for n in range(50):
            rating = {"query_id": query_id, "rating": ("up", "down")[n % 2], "comment": f"#{n}"}
            assert c.post("/feedback", json=rating).status_code == 200
    con = sqlite3.connect(db_path(settings.data_dir))
    assert con.execute("SELECT rating, comment FROM feedback").fetchall() == [("down", "#49")]
    con.close()


def test_comments_are_capped_by_the_setting(tmp_path: Path, retriever: Retriever) -> None:
    with TestClient(create_app(make_settings(tmp_path, max_comment_chars=10), retriever)) as c:
        query_id = c.post("/search", json={"query": "data"}).json()["query_id"]
        ok = c.post("/feedback", json={"query_id": query_id, "rating": "up", "comment": "x" * 10})
        assert ok.status_code == 200
        long = {"query_id": query_id, "rating": "up", "comment": "x" * 11}
        assert assert_json_error(c.post("/feedback", json=long), 422)["field"] == "comment"
        schema = c.get("/openapi.json").json()["components"]["schemas"]["FeedbackRequest"]
        assert schema["properties"]["comment"]["anyOf"][0]["maxLength"] == 10


def test_query_log_retention_applies_to_what_the_server_logs(
    tmp_path: Path, retriever: Retriever
) -> None:
    # benchmarks/hardening.py measures 10,000 requests against a real server.
    settings = make_settings(tmp_path, log_max_rows=50)
    with TestClient(create_app(settings, retriever)) as c:
        for n in range(300):
            assert c.post("/search", json={"query": f"data {n % 7}", "k": 1}).status_code == 200
    con = sqlite3.connect(db_path(settings.data_dir))
    assert con.execute("SELECT COUNT(*) FROM queries").fetchone() == (50,)
    con.close()


def test_one_client_cannot_push_everyone_elses_questions_out_of_the_log(
    tmp_path: Path, retriever: Retriever
) -> None:
    settings = make_settings(tmp_path, log_max_rows=20, log_max_rows_per_client_hour=5,
                             trusted_proxies=["testclient"])  # fmt: skip

    def ask(path: str, query: str, client: str) -> httpx.Response:
        body = (
            {"query": query}
            if path != "/chat"
            else {"messages": [{"role": "user", "content": query}]}
        )
        return c.post(path, json=body, headers={"X-Forwarded-For": client})

    with TestClient(create_app(settings, retriever)) as c:
        readers = [ask("/ask", f"data engineer salary {n}", f"198.51.100.{n}") for n in range(4)]
        flood = [ask(path, f"flood {n}", "203.0.113.9")
                 for n in range(60) for path in ("/search", "/ask", "/chat")]  # fmt: skip
        assert all(r.status_code == 200 for r in readers + flood)  # every one is answered
        dropped = flood[-1].json()["query_id"]
        assert c.post("/feedback", json={"query_id": dropped, "rating": "up"}).status_code == 404
    con = sqlite3.connect(db_path(settings.data_dir))
    logged = [q for (q,) in con.execute("SELECT query FROM queries ORDER BY id")]
    con.close()
    assert sum(q.startswith("flood") for q in logged) == 5  # across its endpoints
    assert [q for q in logged if q.startswith("data")] == [
        f"data engineer salary {n}" for n in range(4)
    ]


# --------------------------------------------------------------------------- /docs


def test_docs_are_served_from_local_assets_under_a_policy(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    # Nothing loaded from elsewhere: every script and style is one of ours.
    assert "http" not in page.text and "//" not in page.text
    for asset in ("/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/docs.js"):
        resp = client.get(asset)
        assert resp.status_code == 200 and resp.content, asset
    assert "openapi.json" in client.get("/docs/docs.js").text
    assert client.get("/redoc").status_code == 404


def test_docs_can_be_turned_off(tmp_path: Path, retriever: Retriever) -> None:
    with TestClient(create_app(make_settings(tmp_path, docs=False), retriever)) as c:
        assert_json_error(c.get("/docs"), 404)
        assert c.get("/openapi.json").status_code == 200


# --------------------------------------------------------------------------- the schema


def test_k_is_an_integer_as_json_schema_means_it(client: TestClient) -> None:
    assert client.post("/search", json={"query": "data", "k": 3.0}).status_code == 200
    assert len(client.post("/search", json={"query": "data", "k": 3.0}).json()["results"]) == 3
    for bad in (2.5, "3", True):
        assert client.post("/search", json={"query": "data", "k": bad}).status_code == 422


def test_schema_lists_the_document_ids_a_search_takes(client: TestClient) -> None:
    props = client.get("/openapi.json").json()["components"]["schemas"]["SearchFilters"]
    ids = props["properties"]["doc_id"]["anyOf"][0]["enum"]
    assert ids == [d["id"] for d in client.get("/documents").json()["documents"]]


def test_query_length_is_counted_as_sent_as_the_schema_counts_it(
    tmp_path: Path, retriever: Retriever
) -> None:
    with TestClient(create_app(make_settings(tmp_path, max_query_chars=20), retriever)) as c:
        assert c.post("/search", json={"query": "x" * 20}).status_code == 200
        # 20 characters once stripped, 24 as sent: over the schema's maxLength, so refused.
        assert c.post("/search", json={"query": "  " + "x" * 20 + "  "}).status_code == 422
        schema = c.get("/openapi.json").json()["components"]["schemas"]
        assert schema["SearchRequest"]["properties"]["query"]["maxLength"] == 20
        assert schema["ChatMessage"]["then"]["properties"]["content"]["maxLength"] == 20


def test_the_not_blank_pattern_is_pythons_idea_of_whitespace() -> None:
    pattern = re.compile(NOT_BLANK)
    assert all((pattern.search(chr(c)) is None) == chr(c).isspace() for c in range(0x110000))


@pytest.mark.parametrize("query", ["\x1d\x1d", "\x85", "\u3000 ", "\ufeff"])
def test_blank_means_what_the_schema_says(client: TestClient, query: str) -> None:
    blank = re.search(NOT_BLANK, query) is None
    status = client.post("/search", json={"query": query}).status_code
    assert status == (422 if blank else 200)
