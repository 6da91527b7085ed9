"""The OpenAI-compatible API (/v1): in process with the fake embedder (shapes, errors, the rate
limit, the stream's framing, the query log), and with the official ``openai`` client against a
real ``rag serve`` subprocess on the real model and index (slow).

``RAG_OPENAI_TRANSCRIPTS=docs/openai-transcripts.md`` makes the slow transcript test write the
calls it records there.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from rag.analytics.querylog import db_path
from rag.config import Settings
from rag.search.retriever import Retriever
from rag.serve.app import create_app
from rag.serve.openai_schemas import strip_appendix
from tests.servers import child_env, rag_serve

ROOT = Path(__file__).resolve().parent.parent
MAX_CHARS = 200
PUBLIC = "https://careers.example.com"
NOT_COVERED = Settings.model_fields["not_covered"].default
NEAREST = "Nearest passages (they may not answer it):"
QUESTION = "What does a data engineer do?"


@pytest.fixture
def retriever_options() -> dict[str, Any]:
    return {"max_query_chars": MAX_CHARS}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "index_dir": tmp_path / "index",
        "data_dir": tmp_path / "data",
        "max_query_chars": MAX_CHARS,
        "max_body_bytes": 4096,
        "public_url": PUBLIC,
        "allowed_hosts": ["testserver"],
        "rate_limit": "off",
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def ask(*turns: str | list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    """A completion request: user and assistant turns in turn, then ``extra`` fields."""
    roles = ["user", "assistant"]
    messages = [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]
    return {"model": "career-rag", "messages": messages, **extra}


def chunks(text: str) -> list[Any]:
    """A stream's data lines, parsed (``[DONE]`` as it is); every event is one data line."""
    out = []
    for block in text.split("\n\n"):
        if not block:
            continue
        assert block.startswith("data: ") and "\n" not in block, block
        data = block.removeprefix("data: ")
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def assert_openai_error(resp: httpx.Response, status: int, param: str | None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"] and body["error"]["param"] == param
    return body["error"]


def log_rows(settings: Settings) -> list[tuple]:
    con = sqlite3.connect(db_path(settings.data_dir))
    try:
        return con.execute("SELECT query_id, endpoint, query, answered FROM queries").fetchall()
    finally:
        con.close()


# --------------------------------------------------------------------------- models


def test_models_lists_the_index_as_one_model(tmp_path: Path, retriever: Retriever) -> None:
    settings = make_settings(tmp_path, openai_model="guides")
    with TestClient(create_app(settings, retriever)) as c:
        resp = c.get("/v1/models", headers={"Authorization": "Bearer sk-anything"})
    built = datetime.fromisoformat(retriever.index.manifest.built_at)
    assert resp.status_code == 200
    assert resp.json() == {
        "object": "list",
        "data": [
            {"id": "guides", "object": "model", "created": int(built.timestamp()),
             "owned_by": "career-rag"}
        ],
    }  # fmt: skip


def test_models_is_503_in_openai_shape_until_the_index_loads(app: FastAPI) -> None:
    resp = TestClient(app).get("/v1/models")  # no `with`: the lifespan never runs
    assert assert_openai_error(resp, 503, None)["type"] == "server_error"


def test_a_model_is_retrieved_by_id_with_the_official_client(client: TestClient) -> None:
    import openai

    # TestClient is an httpx.Client: the official client talks to the app in process.
    api = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client,
                        max_retries=0)  # fmt: skip
    model = api.models.retrieve("career-rag")
    assert (model.id, model.object, model.owned_by) == ("career-rag", "model", "career-rag")
    assert model.created == api.models.list().data[0].created
    with pytest.raises(openai.NotFoundError) as caught:
        api.models.retrieve("gpt-4o")
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    assert "'gpt-4o' does not exist" in caught.value.message


@pytest.mark.parametrize("name", ["gpt-4o", "career-rag/extra", "Career-rag", "%00"])
def test_an_unknown_model_is_404_in_openai_shape(client: TestClient, name: str) -> None:
    error = assert_openai_error(client.get(f"/v1/models/{name}"), 404, "model")
    assert error["type"] == "invalid_request_error" and error["code"] == "model_not_found"


# --------------------------------------------------------------------------- completions


def test_completion_is_chats_answer_in_openai_shape(client: TestClient) -> None:
    resp = client.post("/v1/chat/completions", json=ask(QUESTION))
    assert resp.status_code == 200
    body = resp.json()
    chat = client.post("/chat", json={"messages": ask(QUESTION)["messages"]}).json()
    assert body["id"] == f"chatcmpl-{body['query_id']}"
    assert body["object"] == "chat.completion" and body["model"] == "career-rag"
    assert abs(body["created"] - time.time()) < 60
    [choice] = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    content = choice["message"]["content"]
    answer, sources = content.split("\n\nSources:\n")
    assert answer == chat["answer"] and re.search(r"\[\d\]", answer)
    # Each passage the answer cites, once, in number order, with an absolute link.
    cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", answer)})
    lines = sources.split("\n")
    assert [int(line[1 : line.index("]")]) for line in lines] == cited
    for n, line in zip(cited, lines, strict=True):
        hit = chat["results"][n - 1]["citation"]
        assert line == f"[{n}] {' > '.join(hit['section_path'])}: {hit['url']}"
        assert hit["url"].startswith(f"{PUBLIC}/view/")
    # The structured answer, in fields of our own.
    assert body["sources"] == chat["results"] and body["answered"] is True
    assert body["query"] == chat["query"] and "note" in body
    words = len(QUESTION.split())
    assert body["usage"] == {"prompt_tokens": words, "completion_tokens": len(content.split()),
                             "total_tokens": words + len(content.split())}  # fmt: skip


def test_links_are_absolute_without_a_public_url(tmp_path: Path, retriever: Retriever) -> None:
    with TestClient(create_app(make_settings(tmp_path, public_url=""), retriever)) as c:
        body = c.post("/v1/chat/completions", json=ask(QUESTION)).json()
    assert "\n[1] Data Engineer" in body["choices"][0]["message"]["content"]
    assert body["sources"][0]["citation"]["url"].startswith("http://testserver/view/")


def test_a_question_the_documents_do_not_answer_says_so(client: TestClient) -> None:
    body = client.post("/v1/chat/completions", json=ask("What is the capital of Australia?"))
    body = body.json()
    content = body["choices"][0]["message"]["content"]
    assert content.startswith(NOT_COVERED) and body["answered"] is False
    answer, nearest = content.split(f"\n\n{NEAREST}\n")
    assert "[1]" not in answer
    assert len(nearest.split("\n")) == len(body["sources"]) > 0  # every passage, none cited


def test_content_parts_system_messages_model_and_unknown_fields(client: TestClient) -> None:
    plain = client.post("/v1/chat/completions", json=ask(QUESTION)).json()
    lenient = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant about recruiters."},
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [{"type": "text", "text": "What does a data"},
                                         {"type": "text", "text": "engineer do?"}],
             "name": "sam"},
        ],
        "temperature": 0.2, "max_tokens": 50, "n": 1, "user": "u-1", "seed": 7,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "tool_choice": "auto", "response_format": {"type": "text"}, "metadata": {"a": "b"},
        "stream": False, "stream_options": {"include_usage": True}, "something_new": [1],
    }  # fmt: skip
    body = client.post("/v1/chat/completions", json=lenient).json()
    # The parts are joined; system messages change nothing; the one model answers any name.
    assert body["query"] == "What does a data\nengineer do?"
    assert body["model"] == "career-rag"
    first, second = (b["choices"][0]["message"]["content"] for b in (plain, body))
    assert second == first


def test_follow_ups_resolve_as_on_chat_with_our_own_answer_sent_back(client: TestClient) -> None:
    first = client.post("/v1/chat/completions", json=ask(QUESTION)).json()
    content = first["choices"][0]["message"]["content"]
    follow = client.post(
        "/v1/chat/completions", json=ask(QUESTION, content, "How much do they earn?")
    )
    chat = client.post(
        "/chat", json={"messages": ask(QUESTION, "x", "How much do they earn?")["messages"]}
    )
    assert follow.json()["query"] == chat.json()["query"] == "How much do data engineers earn?"
    # The sources sent back are not read as a list the next question could point into.
    answer = content.split("\n\nSources:")[0]
    ordinal = "Tell me more about the second one"
    with_sources = client.post("/v1/chat/completions", json=ask(QUESTION, content, ordinal))
    bare = client.post("/v1/chat/completions", json=ask(QUESTION, answer, ordinal))
    assert with_sources.json()["query"] == bare.json()["query"]


# What the pattern that stripped an answer's appendix matched; strip_appendix must agree.
OLD_APPENDIX_RE = re.compile(
    r"\n\n(?:Note: .*?\n\n)?(?:Sources:|Nearest passages \(they may not answer it\):)\n.*\Z",
    re.S,
)


@hypothesis_settings(max_examples=400, deadline=None, database=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "\n",
                "\n\n",
                "Note: ",
                "Sources:",
                NEAREST,
                "x",
                " ",
                "[1] a: b",
                "\n\nNote: ",
                "\n\nSources:\n",
            ]
        ),
        max_size=12,
    ).map("".join)
)
def test_stripping_an_answers_appendix_matches_the_old_pattern(text: str) -> None:
    assert strip_appendix(text) == OLD_APPENDIX_RE.sub("", text)


def test_stripping_keeps_an_answer_and_drops_its_note_and_sources() -> None:
    answer = "They build pipelines. [1]"
    sent = f"{answer}\n\nNote: the guide is old.\n\nSources:\n[1] Data Engineer: https://x"
    assert strip_appendix(sent) == answer
    assert strip_appendix(f"{answer}\n\n{NEAREST}\n[1] a: b") == answer
    assert (
        strip_appendix(answer + "\n\nNote: no list follows") == answer + "\n\nNote: no list follows"
    )


def test_the_latest_user_message_is_answered(client: TestClient) -> None:
    redo = ask(QUESTION, "They build pipelines.", "What do they earn?", "They earn $1.")
    assert client.post("/v1/chat/completions", json=redo).json()["query"] == (
        "What do data engineers earn?"
    )


# --------------------------------------------------------------------------- streaming


def test_stream_frames_the_answer_as_chunks_then_done(client: TestClient) -> None:
    whole = client.post("/v1/chat/completions", json=ask(QUESTION)).json()
    resp = client.post("/v1/chat/completions", json=ask(QUESTION, stream=True))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["cache-control"] == "no-cache"
    *events, done = chunks(resp.text)
    assert done == "[DONE]"
    first, *pieces, last = events
    assert {e["id"] for e in events} == {f"chatcmpl-{last['query_id']}"}
    assert {e["object"] for e in events} == {"chat.completion.chunk"}
    assert first["choices"][0]["delta"] == {"role": "assistant"}
    assert all(e["choices"][0]["finish_reason"] is None for e in [first, *pieces])
    assert last["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}]
    texts = [p["choices"][0]["delta"]["content"] for p in pieces]
    assert len(texts) >= 2 and texts[-1].startswith("\n\nSources:\n")
    # The answer's pieces as /chat streams them, then the sources: the whole content.
    assert "".join(texts) == whole["choices"][0]["message"]["content"]
    assert all(re.search(r"\[\d+\]\s*$", t) for t in texts[:-2])
    assert last["sources"] == whole["sources"] and last["answered"] is True
    assert all("usage" not in e for e in events)


def test_stream_sends_usage_last_when_asked(client: TestClient) -> None:
    body = ask(QUESTION, stream=True, stream_options={"include_usage": True})
    *events, usage, done = chunks(client.post("/v1/chat/completions", json=body).text)
    assert done == "[DONE]" and usage["choices"] == []
    content = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    assert usage["usage"]["completion_tokens"] == len(content.split())
    assert usage["usage"]["prompt_tokens"] == len(QUESTION.split())
    assert all(e["usage"] is None for e in events)


def test_stream_of_an_unanswered_question(client: TestClient) -> None:
    body = ask("What is the capital of Australia?", stream=True)
    *events, done = chunks(client.post("/v1/chat/completions", json=body).text)
    content = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    assert content.startswith(NOT_COVERED) and f"\n\n{NEAREST}\n[1] " in content
    assert events[-1]["answered"] is False and done == "[DONE]"


def test_stream_validates_before_streaming(client: TestClient) -> None:
    resp = client.post("/v1/chat/completions", json={"messages": [], "stream": True})
    assert_openai_error(resp, 400, "messages")


def test_stream_ends_with_an_error_chunk_when_the_answer_fails(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self, result):
        raise RuntimeError("boom")

    monkeypatch.setattr(Retriever, "answer", broken)
    *_, last = chunks(client.post("/v1/chat/completions", json=ask(QUESTION, stream=True)).text)
    assert last == {"error": {"message": "could not build the answer", "type": "server_error",
                              "param": None, "code": None}}  # fmt: skip


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"messages": [{"role": "system", "content": "hi"}]}, "messages", "no user message"),
        ({"messages": []}, "messages", "at least 1 item"),
        ({"messages": [{"role": "user", "content": "  "}]}, "messages.0.content", "blank"),
        ({"messages": [{"role": "system", "content": "x"}, {"role": "user"}]},
         "messages.1.content", "blank"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": " "}]}]},
         "messages.0.content", "blank"),
        ({"messages": [{"role": "user", "content": "x" * (MAX_CHARS + 1)}]},
         "messages.0.content", f"longer than {MAX_CHARS}"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x" * 150}] * 2}]},
         "messages.0.content", f"longer than {MAX_CHARS}"),
        ({"messages": [{"role": "tool", "content": "42", "tool_call_id": "c1"}]},
         "messages.0.role", "'assistant'"),
        ({"messages": [{"content": "hi"}]}, "messages.0.role", "Field required"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x.example/a.png"}}]}]},
         "messages.0.content.parts.0.type", "'text'"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]},
         "messages.0.content.parts.0.text", "Field required"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content",
         "a string or a list of text parts"),
        ({"messages": [{"role": "user", "content": "\ud800"}]}, "messages.0.content.string",
         "surrogate"),
        ({**ask("hi"), "stream": "yes"}, "stream", "boolean"),
        ({**ask("hi"), "model": 4}, "model", "string"),
        ([1], "body", "dictionary"),
    ],
)  # fmt: skip
def test_invalid_requests_are_400_in_openai_shape(
    client: TestClient, body: Any, param: str, says: str
) -> None:
    # Sent as ASCII JSON: a lone surrogate is then "\\ud800", as a client can send it.
    sent = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    resp = client.post("/v1/chat/completions", content=sent, headers=headers)
    error = assert_openai_error(resp, 400, param)
    assert error["type"] == "invalid_request_error" and says in error["message"]


def test_body_errors_are_in_openai_shape(client: TestClient) -> None:
    url = "/v1/chat/completions"
    json_type = {"Content-Type": "application/json"}
    bad = client.post(url, content=b'{"messages": [', headers=json_type)
    assert assert_openai_error(bad, 400, "body")["code"] == "json_invalid"
    big = client.post(url, content=b"x" * 5000, headers=json_type)
    assert assert_openai_error(big, 413, "body")["code"] == "too_large"
    text = client.post(url, content=b"hello", headers={"Content-Type": "text/plain"})
    assert assert_openai_error(text, 415, "body")["code"] == "unsupported_media_type"
    latin = client.post(url, content=b'{"x": "\xff"}', headers=json_type)
    assert assert_openai_error(latin, 400, "body")["code"] == "not_utf8"
    assert assert_openai_error(client.get("/v1/nope"), 404, None)
    assert assert_openai_error(client.get(url), 405, None)


def test_the_native_api_keeps_its_error_shape(client: TestClient) -> None:
    resp = client.post("/chat", json={"messages": []})
    assert resp.status_code == 422 and set(resp.json()) == {"detail", "field", "errors"}


def test_host_guard_and_cors_apply(client: TestClient) -> None:
    other = client.get("/v1/models", headers={"Host": "evil.example"})
    assert assert_openai_error(other, 400, None)["code"] == "host_not_allowed"
    origin = {"Origin": "http://localhost:3000"}
    big = client.post("/v1/chat/completions", content=b"x" * 5000,
                      headers={**origin, "Content-Type": "application/json"})  # fmt: skip
    assert big.headers["access-control-allow-origin"] == origin["Origin"]
    ok = client.post("/v1/chat/completions", json=ask(QUESTION), headers=origin)
    assert ok.headers["access-control-allow-origin"] == origin["Origin"]


def test_an_api_key_is_accepted_and_ignored(client: TestClient) -> None:
    resp = client.post(
        "/v1/chat/completions", json=ask(QUESTION), headers={"Authorization": "Bearer sk-x"}
    )
    assert resp.status_code == 200


def test_completions_are_rate_limited_like_chat(tmp_path: Path, retriever: Retriever) -> None:
    settings = make_settings(tmp_path, rate_limit="2/minute")
    with TestClient(create_app(settings, retriever)) as c:
        codes = [c.post("/v1/chat/completions", json=ask(QUESTION)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = c.post("/v1/chat/completions", json=ask(QUESTION, stream=True))
        error = assert_openai_error(limited, 429, None)
        assert error["type"] == "requests" and "/v1/chat/completions" in error["message"]
        assert int(limited.headers["retry-after"]) >= 1
        # Its own budget, as every endpoint has; listing models is not limited.
        assert c.post("/chat", json={"messages": ask(QUESTION)["messages"]}).status_code == 200
        assert {c.get("/v1/models").status_code for _ in range(4)} == {200}


def test_completions_are_logged_as_openai(settings: Settings, app: FastAPI) -> None:
    with TestClient(app) as c:
        answered = c.post("/v1/chat/completions", json=ask(QUESTION)).json()
        body = ask("What is the capital of Australia?", stream=True)
        streamed = chunks(c.post("/v1/chat/completions", json=body).text)[-2]
        c.post("/v1/chat/completions", json={"messages": []})  # refused: not logged
        rating = {"query_id": answered["query_id"], "rating": "up"}
        assert c.post("/feedback", json=rating).status_code == 200
    # Leaving the client ran the shutdown, which flushes the log.
    assert sorted(log_rows(settings)) == sorted(
        [
            (answered["query_id"], "openai", QUESTION, 1),
            (streamed["query_id"], "openai", "What is the capital of Australia?", 0),
        ]
    )


def test_openapi_documents_the_v1_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    completions = spec["paths"]["/v1/chat/completions"]["post"]
    ok = completions["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["$ref"].endswith("/ChatCompletion")
    assert "text/event-stream" in ok
    assert "422" not in completions["responses"]
    assert "OpenAIErrorResponse" in json.dumps(completions["responses"]["400"])
    models = spec["paths"]["/v1/models"]["get"]["responses"]["200"]["content"]
    assert models["application/json"]["schema"]["$ref"].endswith("/ModelList")
    user = spec["components"]["schemas"]["CompletionMessage"]["then"]["properties"]["content"]
    assert user["anyOf"][0]["maxLength"] == MAX_CHARS


# --------------------------------------------------------------------------- a real server


@dataclass(frozen=True)
class RealServer:
    url: str
    data_dir: Path


@pytest.fixture(scope="module")
def real_server(
    real_index_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealServer]:
    """``rag serve`` on the real index in a subprocess on a free port of 127.0.0.1."""
    work = tmp_path_factory.mktemp("openai-server")
    env = child_env(real_index_dir, ROOT / "corpus", work / "data")
    with rag_serve(env, work / "server.log") as (url, _):
        yield RealServer(url, work / "data")


@pytest.fixture(scope="module")
def server(real_server: RealServer) -> str:
    return real_server.url


@pytest.fixture(scope="module")
def openai_client(server: str):
    import openai

    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=60)


REAL_QUESTION = "What does a machine learning systems engineer do?"


@pytest.mark.slow
def test_real_models_list(openai_client, real_index_dir: Path) -> None:
    models = openai_client.models.list()
    [model] = models.data
    assert model.id == "career-rag" and model.owned_by == "career-rag"
    built = json.loads((real_index_dir / "manifest.json").read_text())["built_at"]
    assert model.created == int(datetime.fromisoformat(built).timestamp())


@pytest.mark.slow
def test_real_models_retrieve(openai_client) -> None:
    import openai

    assert openai_client.models.retrieve("career-rag") == openai_client.models.list().data[0]
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.models.retrieve("gpt-4o-mini")
    assert caught.value.code == "model_not_found"


@pytest.mark.slow
def test_real_completion(openai_client, server: str) -> None:
    response = openai_client.chat.completions.create(
        model="career-rag", messages=[{"role": "user", "content": REAL_QUESTION}]
    )
    [choice] = response.choices
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    answer, sources = choice.message.content.split("\n\nSources:\n")
    assert "[1]" in answer
    assert re.match(rf"\[\d+\] Machine Learning Systems Engineer > .+: {server}/view/", sources)
    extra = response.model_extra
    assert extra["answered"] is True and extra["query"] == REAL_QUESTION
    assert extra["sources"][0]["citation"]["url"].startswith(f"{server}/view/")
    assert response.to_dict()["sources"] == extra["sources"]
    assert response.usage.completion_tokens == len(choice.message.content.split())


@pytest.mark.slow
def test_real_stream(openai_client, server: str) -> None:
    messages = [{"role": "user", "content": REAL_QUESTION}]
    whole = openai_client.chat.completions.create(model="career-rag", messages=messages)
    stream = openai_client.chat.completions.create(
        model="career-rag", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    events = list(stream)
    assert events[0].choices[0].delta.role == "assistant"
    text = "".join(e.choices[0].delta.content or "" for e in events if e.choices)
    assert text == whole.choices[0].message.content
    finish = [e.choices[0].finish_reason for e in events if e.choices]
    assert finish[-1] == "stop" and set(finish[:-1]) == {None}
    assert events[-1].choices == [] and events[-1].usage.completion_tokens == len(text.split())
    # The client stops at [DONE]; the raw stream does end with it.
    body = {"model": "career-rag", "messages": messages, "stream": True}
    raw = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=60)
    assert raw.text.endswith("data: [DONE]\n\n")


@pytest.mark.slow
def test_real_follow_up_with_an_assistant_turn(openai_client) -> None:
    first = openai_client.chat.completions.create(
        model="career-rag", messages=[{"role": "user", "content": REAL_QUESTION}]
    )
    messages = [
        {"role": "system", "content": "You answer questions about careers."},
        {"role": "user", "content": REAL_QUESTION},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "What skills do they need?"},
    ]
    response = openai_client.chat.completions.create(model="career-rag", messages=messages)
    query = response.model_extra["query"].lower()
    assert "machine learning systems engineer" in query and "skills" in query
    assert "[1]" in response.choices[0].message.content


@pytest.mark.slow
def test_real_content_parts_and_unknown_fields(openai_client) -> None:
    response = openai_client.chat.completions.create(
        model="some-other-model",
        messages=[{"role": "user", "content": [{"type": "text", "text": REAL_QUESTION}]}],
        temperature=0.7, max_tokens=20, n=1, user="someone", seed=1,
        tools=[{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
        extra_body={"top_k": 3, "something_new": True},
    )  # fmt: skip
    assert response.model == "career-rag" and response.model_extra["answered"] is True
    assert "\n\nSources:\n[" in response.choices[0].message.content


@pytest.mark.slow
def test_real_not_covered_question(openai_client) -> None:
    response = openai_client.chat.completions.create(
        model="career-rag",
        messages=[{"role": "user", "content": "What is the capital of Australia?"}],
    )
    content = response.choices[0].message.content
    assert content.startswith(NOT_COVERED) and f"\n\n{NEAREST}\n[1] " in content
    assert response.model_extra["answered"] is False


@pytest.mark.slow
def test_real_error_raises_bad_request(openai_client) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(
            model="career-rag", messages=[{"role": "system", "content": "Be nice."}]
        )
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == "messages"
    assert "the conversation has no user message" in caught.value.message


@pytest.mark.slow
def test_real_completions_are_logged(openai_client, real_server: RealServer) -> None:
    asked = {
        openai_client.chat.completions.create(
            model="career-rag", messages=[{"role": "user", "content": q}]
        ).model_extra["query_id"]: answered
        for q, answered in [(REAL_QUESTION, 1), ("What is the capital of Australia?", 0)]
    }
    for _ in range(600):  # a hang guard: the log's writer commits within milliseconds
        con = sqlite3.connect(db_path(real_server.data_dir))
        try:
            rows = con.execute("SELECT query_id, endpoint, answered FROM queries").fetchall()
        finally:
            con.close()
        logged = {q: (e, a) for q, e, a in rows if q in asked}
        if len(logged) == len(asked):
            break
        time.sleep(0.05)
    assert logged == {q: ("openai", a) for q, a in asked.items()}


@pytest.mark.slow
def test_real_concurrent_streams_leave_the_server_responsive(server: str) -> None:
    """32 completions, half of them streamed, 8 at a time, while /health is probed (run with
    -s for its latency): every one answered, every stream ended, /health always up."""
    import asyncio

    questions = [REAL_QUESTION, "How much do they earn?", "What is the capital of Australia?"]

    async def main() -> tuple[list[tuple[int, str]], list[float]]:
        limits = httpx.Limits(max_connections=10)
        async with httpx.AsyncClient(base_url=server, timeout=120, limits=limits) as client:
            gate = asyncio.Semaphore(8)
            finished = asyncio.Event()
            health: list[float] = []

            async def one(i: int) -> tuple[int, str]:
                body = ask(questions[i % 3], stream=i % 2 == 0)
                async with gate:
                    resp = await client.post("/v1/chat/completions", json=body)
                return resp.status_code, resp.text

            async def probe() -> None:
                while not finished.is_set():
                    t0 = time.perf_counter()
                    assert (await client.get("/health")).status_code == 200
                    health.append((time.perf_counter() - t0) * 1000)
                    await asyncio.sleep(0.05)

            prober = asyncio.create_task(probe())
            replies = await asyncio.gather(*(one(i) for i in range(32)))
            finished.set()
            await prober
            return replies, health

    replies, health = asyncio.run(main())
    assert [status for status, _ in replies] == [200] * 32
    streamed = [text for i, (_, text) in enumerate(replies) if i % 2 == 0]
    assert all(text.endswith("data: [DONE]\n\n") for text in streamed)
    assert health
    print(f"\n/health during 32 completions: {len(health)} probes, max {max(health):.0f} ms")


@pytest.mark.slow
def test_real_transcripts(openai_client, server: str, tmp_path: Path) -> None:
    """Record a call and a streamed call as the client saw them (docs/openai-transcripts.md)."""
    out = Path(os.environ.get("RAG_OPENAI_TRANSCRIPTS") or tmp_path / "transcripts.md")
    messages = [
        {"role": "user", "content": "What skills does a machine learning systems engineer need?"}
    ]
    response = openai_client.chat.completions.create(model="career-rag", messages=messages)
    follow = [
        *messages,
        {"role": "assistant", "content": response.choices[0].message.content},
        {"role": "user", "content": "How do they progress in their career?"},
    ]
    stream = openai_client.chat.completions.create(model="career-rag", messages=follow, stream=True)
    events = [e for e in stream if e.choices]
    deltas = [(e.choices[0].delta.model_dump(exclude_none=True), e.choices[0].finish_reason)
              for e in events]  # fmt: skip
    last = events[-1].model_extra
    text = "".join(d.get("content", "") for d, _ in deltas)
    whole = response.to_dict()
    shown = {**whole, "sources": [_short(s) for s in whole["sources"][:1]] + ["..."]}
    port = server.rsplit(":", 1)[1]
    lines = [
        "# OpenAI-compatible API: transcripts",
        "",
        "Recorded by `tests/test_openai_api.py::test_real_transcripts` with the official `openai`",
        f"client against `rag serve` on the real index and model (port {port}), regenerated with",
        "`RAG_OPENAI_TRANSCRIPTS=docs/openai-transcripts.md pytest -m slow "
        "tests/test_openai_api.py -k transcripts`.",
        "",
        "## A completion",
        "",
        "```python",
        'client = openai.OpenAI(base_url="http://127.0.0.1:PORT/v1", api_key="unused")',
        f'response = client.chat.completions.create(model="career-rag", messages={messages!r})',
        "```",
        "",
        "`response.choices[0].message.content`:",
        "",
        "```text",
        response.choices[0].message.content,
        "```",
        "",
        "`response.to_dict()` (`sources` cut to its first passage, its text shortened):",
        "",
        "```json",
        json.dumps(shown, indent=2, ensure_ascii=False),
        "```",
        "",
        "## A streamed follow-up",
        "",
        "The answer above sent back as the assistant's turn, then a follow-up:",
        "",
        "```python",
        "stream = client.chat.completions.create(",
        '    model="career-rag",',
        '    messages=[*messages, {"role": "assistant", "content": response.choices[0]'
        ".message.content},",
        f"              {follow[-1]!r}],",
        "    stream=True,",
        ")",
        "for chunk in stream: ...",
        "```",
        "",
        "Each chunk's `choices[0].delta` and `finish_reason`, in order:",
        "",
        "```text",
        *(f"{json.dumps(d, ensure_ascii=False)}  finish_reason={f}" for d, f in deltas),
        "```",
        "",
        "The deltas' content joined:",
        "",
        "```text",
        text,
        "```",
        "",
        "The last chunk's own fields: `answered` is "
        f"`{json.dumps(last['answered'])}`, `query` (what the follow-up resolved to) is "
        f"`{last['query']}`, and `sources` lists the {len(last['sources'])} passages.",
        "",
    ]
    out.write_text("\n".join(lines), encoding="utf-8")
    assert deltas[0][0] == {"role": "assistant"} and deltas[-1][1] == "stop"
    assert "[1]" in text and "\n\nSources:\n" in text


def _short(hit: dict[str, Any]) -> dict[str, Any]:
    text = hit["text"]
    return {**hit, "text": text[:120] + ("..." if len(text) > 120 else "")}
