"""One query pipeline behind every front-end: the same question gets the same passages, in the
same order, with the same answered flag, from /ask, /chat, /v1/chat/completions, MCP and the
CLI; and RAG_K reaches every one of them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from rag.cli import main
from rag.config import Settings
from rag.serve.app import create_app

pytestmark = pytest.mark.usefixtures("plain_terminal")

QUESTIONS = ["What does a data engineer build?", "What skills does a plumber need?"]


@pytest.fixture
def served(fake_index: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The whole app over the index the CLI built, loaded as `rag serve` loads it (k = 3)."""
    monkeypatch.setenv("RAG_K", "3")
    monkeypatch.setenv("RAG_ALLOWED_HOSTS", "testserver,test")
    monkeypatch.setenv("RAG_RATE_LIMIT", "off")
    app = create_app(Settings())
    with TestClient(app) as client:
        deadline = time.monotonic() + 30
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, client.get("/ready").json()
            time.sleep(0.02)
        yield SimpleNamespace(app=app, client=client)


def _spans(results: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    return [
        (r["citation"]["doc_id"], r["citation"]["start"], r["citation"]["end"]) for r in results
    ]


def _mcp(served: Any, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """One call of the SDK's client at /mcp, on the event loop the served app runs on."""

    async def call() -> Any:
        transport = httpx2.ASGITransport(app=served.app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as http:
            async with Client(streamable_http_client("http://test/mcp", http_client=http)) as c:
                return await c.call_tool(tool, args)

    result = served.client.portal.call(call)
    assert not result.is_error, result.content
    return result.structured_content


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def _v1(client: TestClient, question: str) -> dict[str, Any]:
    body = {"model": "career-rag", "messages": [{"role": "user", "content": question}]}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_rag_k_reaches_every_front_end(served: Any, capsys: pytest.CaptureFixture[str]) -> None:
    client, question = served.client, QUESTIONS[0]
    counts = {
        "/search": len(client.post("/search", json={"query": question}).json()["results"]),
        "/ask": len(client.post("/ask", json={"query": question}).json()["results"]),
        "/chat": len(
            client.post("/chat", json={"messages": [{"role": "user", "content": question}]}).json()[
                "results"
            ]
        ),
        "/v1": len(_v1(client, question)["sources"]),
        "mcp": len(_mcp(served, "search", {"query": question})["results"]),
        "rag search": len(_cli(capsys, "search", question, "--json")["results"]),
        "rag ask": len(_cli(capsys, "ask", question, "--json")["results"]),
    }
    assert counts == dict.fromkeys(counts, 3), counts


@pytest.mark.parametrize("question", QUESTIONS)
def test_one_question_gets_one_answer_on_every_front_end(
    served: Any, capsys: pytest.CaptureFixture[str], question: str
) -> None:
    client = served.client
    ask = client.post("/ask", json={"query": question}).json()
    chat = client.post("/chat", json={"messages": [{"role": "user", "content": question}]}).json()
    v1 = _v1(client, question)
    mcp = _mcp(served, "ask", {"question": question})
    cli = _cli(capsys, "ask", question, "--json")
    replies = {"/ask": ask, "/chat": chat, "/v1": {**v1, "results": v1["sources"]},
               "mcp": mcp, "rag ask": cli}  # fmt: skip
    spans = {name: _spans(r["results"]) for name, r in replies.items()}
    answered = {name: r["answered"] for name, r in replies.items()}
    assert all(s == spans["/ask"] for s in spans.values()), spans
    assert len(set(answered.values())) == 1, answered
    answers = {name: r.get("answer") for name, r in replies.items() if name != "/v1"}
    assert len(set(answers.values())) == 1, answers
    assert v1["choices"][0]["message"]["content"].startswith(ask["answer"])


def test_the_blocking_calls_work_where_an_event_loop_runs(retriever: Any) -> None:
    """A notebook runs an event loop in its thread: search_now and ask_now must still work."""
    import asyncio

    from rag.search.qa import Pipeline
    from rag.search.question import Question

    pipeline = Pipeline(retriever)

    async def inside_a_loop() -> Any:
        return pipeline.search_now(Question("data pipelines")), pipeline.ask_now(
            Question("What does a data engineer build?")
        )

    searched, asked = asyncio.run(inside_a_loop())
    assert searched.hits and asked.answer is not None and asked.answer.text
