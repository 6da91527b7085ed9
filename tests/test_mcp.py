"""The MCP server (rag.serve.mcp_server) through the official SDK's own client.

Fast tests use the fake embedder over a copy of the corpus (one file holding five documents,
so offsets do not start at 0): an in-memory client and server pair, and the HTTP app in
process with its lifespan and middleware (httpx2's ASGI transport, the SDK's HTTP client).
The slow tests run the real model and index over both transports: ``python -m rag mcp``
launched by the SDK's stdio client, and ``python -m rag serve`` on 127.0.0.1 reached at /mcp.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from rag.cli import main
from rag.config import Settings
from rag.index import build_index, load_index
from rag.search.retriever import Retriever
from rag.serve.app import create_app
from rag.serve.mcp_http import transport_security
from rag.serve.mcp_server import MAX_READ_CHARS, build_server
from rag.serve.mcp_stdio import LoadedIndex
from tests import servers

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
FRAUD_QUERY = "what skills does an ML fraud engineer need"
FRAUD_GUIDE = "ml-fraud-detection-engineer"
TOOLS = {"search", "ask", "list_documents", "read_document"}
# The Host names httpx2's ASGI transport sends; the rate limit is tested on its own.
CLIENT = {"allowed_hosts": ["test"], "rate_limit": "off"}
EXTRA_GUIDE = "# Zorblax Wrangler\n\nA Zorblax wrangler herds zorblaxes across the plains.\n"


def call(server: Any, name: str, args: dict[str, Any] | None = None) -> CallToolResult:
    """One tool call through the SDK's in-memory client."""

    async def go() -> CallToolResult:
        async with Client(server) as client:
            return await client.call_tool(name, args or {})

    return asyncio.run(go())


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return result.content[0].text


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def guides(make_corpus) -> Path:
    """A copy of the corpus, which a test may add to."""
    return make_corpus(copy_of=CORPUS)


@pytest.fixture
def index_dir(guides: Path, make_index) -> Path:
    return make_index(guides)


@pytest.fixture
def settings(index_dir: Path, guides: Path, tmp_path: Path) -> Settings:
    return Settings(
        index_dir=index_dir, corpus_dir=guides, data_dir=tmp_path / "data", max_k=20, **CLIENT
    )


@pytest.fixture
def retriever_options() -> dict[str, Any]:
    return {"max_k": 20}


@pytest.fixture
def server(retriever: Retriever, settings: Settings) -> Any:
    """The server as ``rag mcp`` builds it, for the in-memory client."""
    return build_server(LoadedIndex(retriever, settings), settings)


# --------------------------------------------------------------------------- in memory


def test_tools_are_described_with_the_corpus_and_schemas_carry_the_limits(server: Any) -> None:
    async def go() -> Any:
        async with Client(server) as client:
            return (await client.list_tools()).tools

    tools = {t.name: t for t in asyncio.run(go())}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert "5 career documents" in tool.description
        assert "ML Fraud Detection Engineer" in tool.description
        assert tool.annotations.read_only_hint
    search = tools["search"].input_schema
    assert search["required"] == ["query"]
    assert search["properties"]["k"]["minimum"] == 1
    assert search["properties"]["k"]["maximum"] == 20  # the configured max_k
    assert search["properties"]["query"]["maxLength"] == 1000
    assert set(search["properties"]) == {"query", "k", "doc_id", "tags", "source"}
    assert tools["ask"].input_schema["required"] == ["question"]
    assert tools["list_documents"].input_schema["properties"] == {}
    read = tools["read_document"].input_schema
    assert read["required"] == ["doc_id"] and set(read["properties"]) == {"doc_id", "start", "end"}
    assert "[n]" in tools["ask"].description and "answered" in tools["ask"].description
    assert tools["search"].output_schema["properties"]["results"]["type"] == "array"


def test_search_cites_passages_that_read_document_returns_exactly(
    server: Any, retriever: Retriever
) -> None:
    result = call(server, "search", {"query": "fraud detection models", "k": 3})
    assert not result.is_error
    data = result.structured_content
    assert data["query"] == "fraud detection models" and len(data["results"]) == 3
    for hit in data["results"]:
        c = hit["citation"]
        assert {"doc_id", "title", "section", "source", "start", "end", "url"} <= set(c)
        assert c["url"].startswith(f"/view/{c['doc_id']}?start={c['start']}&end={c['end']}")
        doc = retriever.index.document(c["doc_id"])
        assert doc.text[c["start"] - doc.offset : c["end"] - doc.offset] == hit["text"]
        read = call(
            server, "read_document", {"doc_id": c["doc_id"], "start": c["start"], "end": c["end"]}
        )
        assert not read.is_error
        part = read.structured_content
        assert part["text"] == hit["text"]
        assert (part["start"], part["end"], part["truncated"]) == (c["start"], c["end"], False)
        assert part["title"] == c["title"] and part["source"] == c["source"]
    # The text content is the same result as JSON, for clients that read only text.
    assert '"results"' in result.content[0].text


def test_search_filters_by_document_tag_and_source(server: Any) -> None:
    only = call(server, "search", {"query": "skills", "k": 5, "doc_id": FRAUD_GUIDE})
    assert {h["citation"]["doc_id"] for h in only.structured_content["results"]} == {FRAUD_GUIDE}
    none = call(server, "search", {"query": "skills", "source": "no-such-folder/"})
    assert not none.is_error and none.structured_content["results"] == []
    tagged = call(server, "search", {"query": "skills", "tags": ["no-such-tag"]})
    assert not tagged.is_error and tagged.structured_content["results"] == []


def test_ask_answers_with_markers_citing_the_results(server: Any) -> None:
    result = call(server, "ask", {"question": "What does an ML fraud detection engineer do?"})
    assert not result.is_error
    data = result.structured_content
    assert set(data) == {"question", "answer", "answered", "note", "results"}
    assert isinstance(data["answered"], bool) and data["answer"]
    assert len(data["results"]) == 5  # RAG_K's default
    markers = [int(n) for n in re.findall(r"\[(\d+)\]", data["answer"])]
    assert all(1 <= n <= len(data["results"]) for n in markers)


def test_list_documents_gives_ids_titles_sources_and_counts(
    server: Any, retriever: Retriever
) -> None:
    data = call(server, "list_documents").structured_content
    index = retriever.index
    counts = index.chunk_counts()
    assert data["count"] == 5
    assert data["documents"] == [
        {"id": d.id, "title": d.title, "source": d.source, "sections": len(d.outline),
         "chunks": counts[d.id]}
        for d in index.documents()
    ]  # fmt: skip


def test_read_document_whole_text_is_capped_and_says_where_to_read_on(
    server: Any, retriever: Retriever
) -> None:
    doc = retriever.index.document("machine-learning-systems-engineer")
    assert doc.offset > 0 and len(doc.text) > MAX_READ_CHARS  # what this test is about
    first = call(server, "read_document", {"doc_id": doc.id}).structured_content
    assert first["offset"] == doc.offset and first["length"] == len(doc.text)
    assert first["start"] == doc.offset and first["end"] == doc.offset + MAX_READ_CHARS
    assert first["text"] == doc.text[:MAX_READ_CHARS]
    assert first["truncated"] and first["next_start"] == first["end"]
    rest = call(server, "read_document", {"doc_id": doc.id, "start": first["next_start"]})
    assert rest.structured_content["text"] == doc.text[MAX_READ_CHARS:]
    assert not rest.structured_content["truncated"]
    assert rest.structured_content["next_start"] is None
    end = doc.offset + len(doc.text)
    empty = call(server, "read_document", {"doc_id": doc.id, "start": end, "end": end})
    assert not empty.is_error and empty.structured_content["text"] == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"doc_id": "no-such-guide"}, "no document with id 'no-such-guide'"),
        ({"start": 31000, "end": 29000}, "start (31000) is after end (29000)"),
        ({"start": -1}, "greater than or equal to 0"),
        ({"end": 10**9}, "end (1000000000) is outside document"),
        ({"start": 0}, "start (0) is outside document"),  # before the document's offset
        ({"doc_id": ""}, "at least 1 character"),
    ],
)
def test_read_document_bounds_are_tool_errors(
    server: Any, args: dict[str, Any], message: str
) -> None:
    # The fraud guide's text runs from 28898 to 31669 in its source file.
    result = call(server, "read_document", {"doc_id": FRAUD_GUIDE, "start": 29000, **args})
    assert message in error_text(result)


@pytest.mark.parametrize(
    ("tool", "args", "message"),
    [
        ("search", {"query": "skills", "k": 0}, "greater than or equal to 1"),
        ("search", {"query": "skills", "k": 21}, "less than or equal to 20"),
        ("search", {"query": "skills", "k": "five"}, "valid integer"),
        ("search", {"query": "   "}, "query must not be empty"),
        ("search", {"query": "x" * 1001}, "at most 1000 characters"),
        ("search", {}, "query"),
        ("search", {"query": "skills", "doc_id": "no-such-guide"}, "unknown document"),
        ("search", {"query": "skills", "tags": ["t"] * 21}, "at most 20 items"),
        ("ask", {"question": "\n"}, "question must not be empty"),
        ("ask", {"question": 42}, "valid string"),
        ("read_document", {}, "doc_id"),
    ],
)
def test_bad_input_is_a_tool_error_and_the_session_goes_on(
    server: Any, tool: str, args: dict[str, Any], message: str
) -> None:
    async def go() -> tuple[CallToolResult, CallToolResult]:
        async with Client(server) as client:
            bad = await client.call_tool(tool, args)
            good = await client.call_tool("list_documents", {})
            return bad, good

    bad, good = asyncio.run(go())
    assert message in error_text(bad)
    assert not good.is_error


def test_an_unknown_tool_is_an_error_too(server: Any) -> None:
    assert "Unknown tool" in error_text(call(server, "delete_everything"))


# Arguments the HTTP API refuses (as /search's body) and MCP must refuse too: strings for
# numbers, booleans for k, numbers for strings, fractions.
STRICT_CASES = [
    ({"query": "skills", "k": "5"}, "k"),
    ({"query": "skills", "k": True}, "k"),
    ({"query": "skills", "k": 5.5}, "k"),
    ({"query": 42}, "query"),
    ({"query": "skills", "doc_id": 7}, "doc_id"),
    ({"query": "skills", "tags": [1]}, "tags.0"),
    ({"query": "skills", "source": False}, "source"),
]
# Words of pydantic's own report, which an agent has no use for.
INTERNALS = ("pydantic", "validation error for", "input_value", "input_type", "[type=",
             "Arguments", "http")  # fmt: skip


def http_body(args: dict[str, Any]) -> dict[str, Any]:
    """The /search body asking what ``args`` ask of the search tool."""
    filters = {key: args[key] for key in ("doc_id", "tags", "source") if key in args}
    body = {key: args[key] for key in ("query", "k") if key in args}
    return {**body, "filters": filters} if filters else body


@pytest.mark.parametrize(("args", "field"), STRICT_CASES)
def test_tool_arguments_are_as_strict_as_the_http_apis(
    server: Any, settings: Settings, retriever: Retriever, args: dict[str, Any], field: str
) -> None:
    text = error_text(call(server, "search", args))
    assert text.startswith(f"Error executing tool search: {field}: ")
    assert not any(word in text for word in INTERNALS), text
    hosts = settings.model_copy(update={"allowed_hosts": ["testserver"]})
    with TestClient(create_app(hosts, retriever)) as client:
        assert client.post("/search", json=http_body(args)).status_code == 422


def test_whole_floats_are_integers_in_both(server: Any) -> None:
    # JSON Schema's integer includes 5.0, as the HTTP API takes it.
    found = call(server, "search", {"query": "fraud", "k": 2.0})
    assert not found.is_error and len(found.structured_content["results"]) == 2
    read = call(server, "read_document", {"doc_id": FRAUD_GUIDE, "start": 29000.0,
                                          "end": 29010.0})  # fmt: skip
    assert not read.is_error and read.structured_content["start"] == 29000
    refused = call(server, "read_document", {"doc_id": FRAUD_GUIDE, "start": "29000"})
    assert error_text(refused) == (
        "Error executing tool read_document: start: Input should be a valid integer"
    )


@pytest.mark.parametrize(
    ("tool", "args"),
    [("search", {}), ("search", {"query": "x" * 2000, "k": 0, "tags": "nope"}),
     ("ask", {"question": ["a"]}), ("read_document", {"doc_id": "x" * 600}),
     ("read_document", {"doc_id": FRAUD_GUIDE, "start": -1, "end": {"a": 1}}),
     ("search", {"query": "\ud800"})],
)  # fmt: skip
def test_tool_errors_carry_no_library_internals(
    server: Any, tool: str, args: dict[str, Any]
) -> None:
    text = error_text(call(server, tool, args))
    assert text.startswith(f"Error executing tool {tool}: ")
    assert not any(word in text for word in INTERNALS), text
    assert len(text) < 500  # the rejected input is not echoed back


# --------------------------------------------------------------------------- /mcp in process


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
    """The app's lifespan (index, session manager); yields its services."""
    async with app.router.lifespan_context(app):
        yield app.state.services


def asgi_client(app: FastAPI, **options: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://test", **options
    )


@asynccontextmanager
async def mcp_client(app: FastAPI, mode: str = "auto") -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP at /mcp, through the app's whole stack."""
    async with asgi_client(app) as http:
        transport = streamable_http_client("http://test/mcp", http_client=http)
        async with Client(transport, mode=mode) as client:
            yield client


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_http_serves_the_apps_index_in_both_protocol_eras(
    mode: str, settings: Settings, retriever: Retriever
) -> None:
    # auto: the 2026-07-28 single-request protocol; legacy: the initialize handshake first.
    app = create_app(settings, retriever)

    async def go() -> tuple[Any, ...]:
        async with lifespan(app) as svc, mcp_client(app, mode) as client:
            tools = (await client.list_tools()).tools
            found = await client.call_tool("search", {"query": "fraud", "k": 2})
            missing = await client.call_tool("read_document", {"doc_id": "nope"})
            docs = await client.call_tool("list_documents", {})
            return client.protocol_version, tools, found, missing, docs, svc.current

    version, tools, found, missing, docs, current = asyncio.run(go())
    assert version == ("2026-07-28" if mode == "auto" else "2025-11-25")
    assert {t.name for t in tools} == TOOLS
    assert "5 career documents" in tools[0].description
    assert len(found.structured_content["results"]) == 2
    assert "no document with id 'nope'" in error_text(missing)
    assert docs.structured_content["documents"] == [
        {**d, "sections": len(d["sections"])} for d in current.documents
    ]


def test_http_get_delete_and_event_stream_pass_the_middleware(
    settings: Settings, retriever: Retriever
) -> None:
    app = create_app(settings, retriever)
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}

    async def go() -> list[httpx2.Response]:
        async with lifespan(app), asgi_client(app) as http:
            sse = {"accept": "text/event-stream"}
            both = {"accept": "application/json, text/event-stream"}
            return [
                await http.get("/mcp", headers=sse),
                await http.delete("/mcp", headers=both),
                await http.post("/mcp", json=listing, headers=both),
                await http.post("/mcp", json=listing, headers={"accept": "text/plain"}),
                await http.head("/mcp"),
            ]

    get, delete, post, unacceptable, head = asyncio.run(go())
    # No session, so no stream to GET and none to DELETE: 405s, as the MCP spec allows.
    assert get.status_code == 405 and get.headers["allow"] == "POST"
    assert "no event stream" in get.json()["detail"]
    assert delete.status_code == 405 and "Session termination" in delete.text
    assert post.status_code == 200
    assert {t["name"] for t in post.json()["result"]["tools"]} == TOOLS
    assert unacceptable.status_code == 406  # the SDK's answer: it reached the SDK
    assert head.status_code == 405 and head.content == b""


def test_http_checks_host_and_origin_against_the_apps_own(
    settings: Settings, retriever: Retriever
) -> None:
    settings = settings.model_copy(update={"cors_origins": ["https://tools.example"]})
    app = create_app(settings, retriever)
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"accept": "application/json"}

    async def go() -> list[httpx2.Response]:
        async with lifespan(app), asgi_client(app) as http:
            preflight = {
                "origin": "https://tools.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type, mcp-protocol-version",
            }
            return [
                await http.post("/mcp", json=listing, headers={**accept, "host": "evil.example"}),
                await http.post(
                    "/mcp", json=listing, headers={**accept, "origin": "https://evil.example"}
                ),
                await http.post(
                    "/mcp", json=listing, headers={**accept, "origin": "https://tools.example"}
                ),
                await http.options("/mcp", headers=preflight),
            ]

    rebound, foreign, listed, preflight = asyncio.run(go())
    assert rebound.status_code == 400  # HostGuard, in front of every path
    assert "does not answer for host 'evil.example'" in rebound.json()["detail"]
    assert foreign.status_code == 403  # the Origin check, with the CORS origins
    assert foreign.json() == {
        "detail": "origin 'https://evil.example' may not call /mcp: it is not in RAG_CORS_ORIGINS",
        "field": None, "errors": [],
    }  # fmt: skip
    assert listed.status_code == 200
    assert listed.headers["access-control-allow-origin"] == "https://tools.example"
    assert preflight.status_code == 200
    assert "mcp-protocol-version" in preflight.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize("version", [None, "2026-07-28"])
def test_http_protocol_errors_are_json_rpc_errors_without_internals(
    settings: Settings, retriever: Retriever, version: str | None
) -> None:
    app = create_app(settings, retriever)
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    if version:
        headers["mcp-protocol-version"] = version
    bodies = [b'{"jsonrpc": "1.0", "id": 1}', b"[1, 2]", b'"x"', b'{"id": 1, "method": 5}']

    async def go() -> list[httpx2.Response]:
        async with lifespan(app), asgi_client(app) as http:
            return [await http.post("/mcp", content=body, headers=headers) for body in bodies]

    for body, response in zip(bodies, asyncio.run(go()), strict=True):
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert response.json()["jsonrpc"] == "2.0" and error["code"] == -32600, body
        assert not any(word in error["message"] for word in INTERNALS), error


def test_http_refusals_of_the_sdk_are_json(settings: Settings, retriever: Retriever) -> None:
    app = create_app(settings, retriever)
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}

    async def go() -> httpx2.Response:
        async with lifespan(app), asgi_client(app) as http:
            # The new protocol's transport answers an unacceptable Accept with an empty 406.
            headers = {"accept": "text/plain", "mcp-protocol-version": "2026-07-28"}
            return await http.post("/mcp", json=listing, headers=headers)

    refused = asyncio.run(go())
    assert refused.status_code == 406
    assert refused.json() == {"detail": "/mcp: Not Acceptable", "field": None, "errors": []}


def test_transport_security_allows_the_apps_hosts_on_any_port() -> None:
    sdk = transport_security(["localhost", "::1", "rag.example.com:8443"], ["http://x:1"])
    assert sdk.enable_dns_rebinding_protection
    assert sdk.allowed_hosts == [
        "localhost", "localhost:*", "[::1]", "[::1]:*", "rag.example.com", "rag.example.com:*",
    ]  # fmt: skip
    assert sdk.allowed_origins == ["http://x:1"]
    # The SDK matches exact names: wildcards are left to HostGuard (and CORS).
    assert not transport_security(["*.example.com"], []).enable_dns_rebinding_protection
    assert not transport_security(["*"], []).enable_dns_rebinding_protection
    assert not transport_security(["localhost"], ["*"]).enable_dns_rebinding_protection


def test_http_posts_are_rate_limited_and_bodies_guarded(
    settings: Settings, retriever: Retriever
) -> None:
    settings = settings.model_copy(update={"rate_limit": "4/minute", "max_body_bytes": 2048})
    app = create_app(settings, retriever)
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"accept": "application/json"}

    async def go() -> list[httpx2.Response]:
        async with lifespan(app), asgi_client(app) as http:
            text = {**accept, "content-type": "text/plain"}
            responses = [
                await http.post("/mcp", content=b'{"jsonrpc": "2.0"}', headers=text),
                await http.post("/mcp", content=b"x" * 4096, headers=accept),
                await http.post("/mcp", json=listing, headers=accept),
                await http.post("/mcp", json=listing, headers=accept),
                await http.post("/mcp", json=listing, headers=accept),
            ]
            responses.append(await http.get("/mcp"))  # GETs are not counted
            return responses

    *guarded, ok, limited, get = asyncio.run(go())
    assert [r.status_code for r in guarded] == [415, 413, 200]
    assert ok.status_code == 200
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert "/mcp" in limited.json()["detail"]
    assert get.status_code == 405


def test_http_without_an_index_says_so_in_a_tool_error(settings: Settings, tmp_path: Path) -> None:
    app = create_app(settings.model_copy(update={"index_dir": tmp_path / "nothing"}))

    async def go() -> tuple[Any, CallToolResult, CallToolResult]:
        async with lifespan(app) as svc:
            while svc.error is None:  # the loader's first attempt fails fast
                await asyncio.sleep(0.02)
            async with mcp_client(app) as client:
                tools = (await client.list_tools()).tools
                return (
                    tools,
                    await client.call_tool("search", {"query": "skills"}),
                    await client.call_tool("list_documents", {}),
                )

    tools, search, listing = asyncio.run(go())
    assert all("none is loaded yet" in t.description for t in tools)
    for result in (search, listing):
        text = error_text(result)
        assert "no index is loaded" in text and "rag index" in text
        assert str(tmp_path) not in text  # no server paths in what clients read


def test_a_call_keeps_its_snapshot_across_a_swap_and_descriptions_follow_the_new_index(
    guides: Path, settings: Settings, tmp_path: Path, fake_embedder
) -> None:
    old = Retriever(load_index(settings.index_dir), fake_embedder)
    (guides / "zorblax.md").write_text(EXTRA_GUIDE, encoding="utf-8")
    build_index(guides, tmp_path / "new", fake_embedder)
    new = Retriever(load_index(tmp_path / "new"), fake_embedder)
    entered, release = threading.Event(), threading.Event()
    real = old.search_vector

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    old.search_vector = held  # type: ignore[method-assign]
    app = create_app(settings, Retriever(load_index(settings.index_dir), fake_embedder))

    async def go() -> tuple[CallToolResult, bool, Any, bool]:
        async with lifespan(app) as svc, mcp_client(app) as client:
            await svc.attach(old, owned=True)  # owned: retiring it closes its index
            call = asyncio.create_task(client.call_tool("search", {"query": "zorblax herds"}))
            await anyio.to_thread.run_sync(entered.wait, 30)
            await svc.attach(new, owned=True)
            tools = (await client.list_tools()).tools
            closed_while_held = is_closed(old)
            release.set()
            result = await call
            for _ in range(500):
                if is_closed(old):
                    break
                await asyncio.sleep(0.01)
            return result, closed_while_held, tools, is_closed(old)

    result, closed_while_held, tools, closed_after = asyncio.run(go())
    # The call searched the index it started on, which has no Zorblax guide.
    assert not result.is_error
    assert "zorblax" not in {h["citation"]["doc_id"] for h in result.structured_content["results"]}
    assert not closed_while_held and closed_after
    assert all("6 career documents" in t.description for t in tools)


def is_closed(retriever: Retriever) -> bool:
    import sqlite3

    try:
        retriever.index.chunk_counts()
    except sqlite3.ProgrammingError:
        return True
    return False


# --------------------------------------------------------------------------- rag mcp


def test_rag_mcp_is_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mcp", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--index" in out and "--corpus" in out and "--model" in out


def test_rag_mcp_without_an_index_fails_on_stderr_and_writes_nothing_to_stdout(
    tmp_path: Path,
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rag", "mcp", "--index", str(tmp_path / "nothing")],
        env=child_env(tmp_path / "nothing"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("rag: error: no index at") and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- real model


def child_env(index_dir: Path, **extra: str) -> dict[str, str]:
    """What a `rag` subprocess needs: this checkout, the index, no download, no RAG_* leaks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return {
        **env,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "RAG_INDEX_DIR": str(index_dir),
        "RAG_CORPUS_DIR": str(CORPUS),
        **extra,
    }


async def check_real_tools(client: Client) -> None:
    """Every tool against the real index, and its errors, through one client."""
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert "5 career documents" in tool.description, tool.description
        assert "ML Fraud Detection Engineer" in tool.description
    assert tools["search"].input_schema["properties"]["k"]["maximum"] == 50

    found = await client.call_tool("search", {"query": FRAUD_QUERY, "k": 3})
    assert not found.is_error
    results = found.structured_content["results"]
    assert results[0]["citation"]["doc_id"] == FRAUD_GUIDE
    assert results[0]["citation"]["title"] == "ML Fraud Detection Engineer"
    for hit in results:
        c = hit["citation"]
        read = await client.call_tool(
            "read_document", {"doc_id": c["doc_id"], "start": c["start"], "end": c["end"]}
        )
        assert read.structured_content["text"] == hit["text"]
        source = (CORPUS / c["source"]).read_text(encoding="utf-8")
        assert source[c["start"] : c["end"]] == hit["text"]

    answered = await client.call_tool(
        "ask", {"question": "What skills does an ML fraud detection engineer need?"}
    )
    data = answered.structured_content
    assert data["answered"] is True and "[1]" in data["answer"]
    assert data["results"][0]["citation"]["doc_id"] == FRAUD_GUIDE
    off_topic = await client.call_tool("ask", {"question": "What is the capital of Australia?"})
    assert off_topic.structured_content["answered"] is False
    assert "don't answer" in off_topic.structured_content["answer"]

    docs = (await client.call_tool("list_documents", {})).structured_content
    assert docs["count"] == 5
    assert FRAUD_GUIDE in {d["id"] for d in docs["documents"]}

    unknown = await client.call_tool("read_document", {"doc_id": "astronaut"})
    assert "no document with id 'astronaut'" in error_text(unknown)
    for k in (0, 51, "many"):
        bad_k = await client.call_tool("search", {"query": FRAUD_QUERY, "k": k})
        assert "Error executing tool search" in error_text(bad_k)
    still = await client.call_tool("search", {"query": FRAUD_QUERY, "k": 1})
    assert not still.is_error


@pytest.mark.slow
def test_stdio_real_index_every_tool(real_index_dir: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "rag", "mcp"], env=child_env(real_index_dir), cwd=ROOT
    )

    async def go() -> None:
        with anyio.fail_after(240):
            async with Client(params) as client:
                await check_real_tools(client)
            async with Client(params, mode="legacy") as client:  # the initialize handshake
                assert (await client.call_tool("list_documents", {})).structured_content["count"]

    asyncio.run(go())


@contextmanager
def rag_serve(index_dir: Path, tmp_path: Path) -> Iterator[str]:
    """``python -m rag serve`` on a free port of 127.0.0.1, ready; yields its URL."""
    log = tmp_path / "server.log"
    env = child_env(index_dir, RAG_DATA_DIR=str(tmp_path / "data"), RAG_RATE_LIMIT="off")
    with servers.rag_serve(env, log) as (url, _):
        yield url
    # uvicorn ends by re-raising SIGTERM; its lifespan (and the MCP session manager's) ended.
    text = log.read_text()
    assert "Application shutdown complete" in text and "Traceback" not in text, text[-3000:]


@pytest.mark.slow
def test_http_real_server_every_tool(real_index_dir: Path, tmp_path: Path) -> None:
    async def go(url: str) -> None:
        with anyio.fail_after(240):
            async with Client(f"{url}/mcp") as client:
                await check_real_tools(client)
            async with Client(f"{url}/mcp", mode="legacy") as client:
                result = await client.call_tool("search", {"query": FRAUD_QUERY, "k": 1})
                assert result.structured_content["results"][0]["citation"]["doc_id"] == FRAUD_GUIDE

    with rag_serve(real_index_dir, tmp_path) as url:
        asyncio.run(go(url))
        # The HTTP API answers from the same index as before.
        body = {"query": FRAUD_QUERY, "k": 1}
        hit = httpx.post(f"{url}/search", json=body, timeout=30).json()["results"][0]
        assert hit["citation"]["doc_id"] == FRAUD_GUIDE
