"""The isolation checks, surface by surface, for any HTTP client of a server over the two
collections of tests/collections_helpers.py: a TestClient in process (tests/test_isolation.py)
or an httpx client of a real ``rag serve`` (tests/test_isolation_server.py). Each returns the
problems it found, one line each; none means the surface kept to its collection for every
caller, prefix and filter."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.collections_helpers import (
    CALLERS,
    OWN,
    PRIVATE,
    SHARED_ID,
    Deployment,
    foreign,
    own_passages,
    passages,
    sse_data,
)

SURFACES = ("search", "ask", "chat", "chat-stream")
# Fields that differ between two answers to the same request.
VOLATILE = {"query_id", "took_ms", "id", "created"}
NOWHERE = {"doc_id": "no-such-guide", "tags": ["no-such-tag"], "source": "no-such-folder/"}
# Runs MCP tool calls at a path with headers: (the tools' list, each call's result), or the
# exception the official client raised.
McpRunner = Callable[[str, dict[str, str], list[tuple[str, dict[str, Any]]]], Any]


def targets(d: Deployment) -> tuple[str | None, ...]:
    """Each collection's prefix, and None for the unprefixed routes."""
    return (d.public, PRIVATE, None)


def prefix(target: str | None) -> str:
    return "" if target is None else f"/c/{target}"


def others(d: Deployment, served: str | None) -> dict[str, str]:
    """What only the other collection has (the private one's, for the unprefixed routes)."""
    return OWN["private" if served is None or d.side(served) == "public" else "public"]


def report(problems: list[str]) -> str:
    return "\n".join(problems[:30]) + f"\n({len(problems)} problems)"


# --------------------------------------------------------------------------- queries


def filter_cases(d: Deployment, served: str | None) -> list[tuple[str, dict[str, Any] | None]]:
    """Every filter a request may carry: none, what both collections have, what only the
    other has, and paths out of the collection."""
    other = others(d, served)
    return [
        ("no filter", None),
        ("shared id", {"doc_id": SHARED_ID}),
        ("shared tag", {"tags": ["eng"]}),
        ("shared source", {"source": "guide"}),
        ("other's id", {"doc_id": other["id"]}),
        ("id out", {"doc_id": f"../{PRIVATE}/{SHARED_ID}"}),
        ("other's tag", {"tags": [other["tag"]]}),
        ("other's folder", {"source": other["folder"]}),
        ("other's file", {"source": other["source"]}),
        ("folder out", {"source": f"../{PRIVATE}/"}),
        ("absolute path", {"source": str(d.root / "private")}),
    ]


def normalised(body: Any, *values: Any) -> str:
    """A body without the fields that differ between two answers, ``values`` blanked."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    text = json.dumps(strip(body), sort_keys=True)
    for value in values:
        for word in value if isinstance(value, list) else [value]:
            text = text.replace(json.dumps(word)[1:-1], "<VALUE>")
    return text


def ask(
    client: Any, surface: str, path: str, headers: dict[str, str], question: str,
    filters: dict[str, Any] | None,
) -> tuple[int, Any, str]:  # fmt: skip
    """One request of a query surface: its status, parsed body and raw text."""
    if surface in ("search", "ask"):
        body: dict[str, Any] = {"query": question}
    else:
        body = {"messages": [{"role": "user", "content": question}]}
        body["stream"] = surface == "chat-stream"
    if filters:
        body["filters"] = filters
    response = client.post(f"{path}/{surface.removesuffix('-stream')}", json=body, headers=headers)
    streamed = response.headers.get("content-type", "").startswith("text/event-stream")
    parsed = sse_data(response.text) if streamed else response.json()
    return response.status_code, parsed, response.text


def query_problems(client: Any, d: Deployment, surface: str) -> list[str]:
    """Every caller asks every prefix with every filter: the expected status, nothing of the
    other collection, passages of its own, and a filter naming what only the other has
    answered exactly as one naming nothing at all."""
    problems = []
    for caller in CALLERS:
        headers = d.headers(caller)
        for target in targets(d):
            served, access = d.served(target), d.status(caller, target)
            question = f"How are engineers paid and how do they grow? asked-of-{target}"
            for label, filters in filter_cases(d, served):
                where = f"{surface} {caller} {prefix(target) or '/'} {label}:"
                status, body, text = ask(client, surface, prefix(target), headers, question,
                                         filters)  # fmt: skip
                unknown = label in ("other's id", "id out")
                if status != (access if access != 200 else 422 if unknown else 200):
                    problems.append(f"{where} status {status}: {text[:200]}")
                if leaked := foreign(d, served, text, json.dumps(filters or {})):
                    problems.append(f"{where} carries {leaked}")
                if status != 200 or served is None:
                    continue
                found = passages(body)
                if label.startswith(("no filter", "shared")) and not found:
                    problems.append(f"{where} found no passage")
                problems += [f"{where} {p}" for p in own_passages(d, served, prefix(target), found)]
                if filters and not label.startswith("shared"):
                    nothing = {field: NOWHERE[field] for field in filters}
                    _, missing, _ = ask(client, surface, prefix(target), headers, question, nothing)
                    values = [*filters.values(), *nothing.values()]
                    if normalised(body, *values) != normalised(missing, *values):
                        problems.append(f"{where} differs from a filter naming nothing: {text}")
    return problems


# --------------------------------------------------------------------------- documents


def document_cases(d: Deployment, served: str) -> list[tuple[str, str, int]]:
    """Ids and paths a documents or viewer request may name: (label, as sent, status).

    An encoded slash is a slash to the router: no route has one in an id, so whoever asks gets
    the 404 of a path that does not exist, before any collection is looked at.
    """
    other, own = others(d, served), OWN[d.side(served)]
    return [
        ("shared id", SHARED_ID, 200),
        ("own id", own["id"], 200),
        ("other's id", other["id"], 404),
        ("no such id", "no-such-guide", 404),
        ("id out, encoded", f"..%2F..%2Fc%2F{PRIVATE}%2Fdocuments%2F{SHARED_ID}", 404),
        ("dots", "%2E%2E", 404),
        ("dots and id", f"%2E%2E%2F{other['id']}", 404),
        ("backslashes", f"..%5C{PRIVATE}%5C{SHARED_ID}", 404),
        ("other's source", other["source"].replace("/", "%2F"), 404),
    ]


def document_problems(client: Any, d: Deployment) -> list[str]:
    """The documents list, each document and its viewer page, for every caller and prefix."""
    problems = []
    for caller in CALLERS:
        headers = d.headers(caller)
        for target in targets(d):
            served, access, path = d.served(target), d.status(caller, target), prefix(target)
            where = f"{caller} {path or '/'}"
            listed = client.get(f"{path}/documents", headers=headers)
            if listed.status_code != access:
                problems.append(f"{where} /documents: status {listed.status_code}")
            if leaked := foreign(d, served, listed.text):
                problems.append(f"{where} /documents carries {leaked}")
            if listed.status_code == 200 and served is not None:
                ids = {doc["id"] for doc in listed.json()["documents"]}
                if ids != {SHARED_ID, OWN[d.side(served)]["id"]}:
                    problems.append(f"{where} /documents lists {sorted(ids)}")
            for label, sent, found in document_cases(d, served or d.public):
                want = found if "%2F" in sent or access == 200 else access
                for kind in ("documents", "view"):
                    response = client.get(f"{path}/{kind}/{sent}", headers=headers)
                    if response.status_code != want:
                        problems.append(f"{where} /{kind} {label}: {response.status_code}")
                    if leaked := foreign(d, served, response.text, sent):
                        problems.append(f"{where} /{kind} {label} carries {leaked}")
                    if kind == "documents" and response.status_code == 200 and served:
                        mark = OWN[d.side(served)]["mark"]
                        if mark not in response.json()["text"]:
                            problems.append(f"{where} /documents {label} lacks {mark}")
    return problems


def feedback_problems(client: Any, d: Deployment) -> list[str]:
    """A query logged by each collection, rated by every caller at every prefix: only the
    collection that logged it takes the rating."""
    admin = d.headers("admin_key")
    logged = {}
    for name in d.names:
        reply = client.post(f"/c/{name}/search", json={"query": "pay"}, headers=admin)
        logged[name] = reply.json()["query_id"]
    problems = []
    for caller in CALLERS:
        for target in targets(d):
            served, access = d.served(target), d.status(caller, target)
            for owner, query_id in logged.items():
                rating = {"query_id": query_id, "rating": "down", "comment": f"by {caller}"}
                response = client.post(
                    f"{prefix(target)}/feedback", json=rating, headers=d.headers(caller)
                )
                want = access if access != 200 else (200 if owner == served else 404)
                if response.status_code != want:
                    problems.append(
                        f"{caller} {prefix(target) or '/'} rating {owner}'s query: "
                        f"{response.status_code}, expected {want}"
                    )
    return problems


# --------------------------------------------------------------------------- /v1


def openai_problems(d: Deployment, base_url: str, http_client: Any = None) -> list[str]:
    """OpenAI's official client (which always sends a key: a made-up one for a caller without
    one, as a front-end set up for a public server does) lists the models and asks each
    collection, whole and streamed, as every caller."""
    import openai

    problems = []
    for caller in CALLERS:
        key = d.keys.get(caller, "sk-made-up")
        api = openai.OpenAI(
            base_url=f"{base_url}/v1", api_key=key, http_client=http_client, max_retries=0
        )
        visible = {d.public, PRIVATE} if caller in ("private_key", "admin_key") else {d.public}
        try:
            listed: set[str] | None = {m.id for m in api.models.list()}
        except openai.AuthenticationError:
            listed = None
        if listed != (None if caller == "wrong_key" else visible):
            problems.append(f"{caller} /v1/models: {listed}")
        for target in targets(d):
            access, served = d.status(caller, target), d.served(target)
            model = target or "career-rag"  # the configured model id names the default
            where = f"{caller} model {model}"
            try:
                status = 200 if api.models.retrieve(model).id == (served or model) else -1
            except openai.APIStatusError as exc:
                status = exc.status_code
            if status != access:
                problems.append(f"{where} models.retrieve: {status}, expected {access}")
            for stream in (False, True):
                problems += [
                    f"{where} stream={stream}: {p}"
                    for p in _completion(api, d, base_url, model, served, access, stream)
                ]
    return problems


def _completion(
    api: Any, d: Deployment, base_url: str, model: str, served: str | None, access: int,
    stream: bool,
) -> list[str]:  # fmt: skip
    import openai

    messages = [{"role": "user", "content": "How are engineers paid?"}]
    try:
        if stream:
            chunks = list(api.chat.completions.create(model=model, messages=messages, stream=True))
            text = "".join(c.model_dump_json() for c in chunks)
            found = [s for c in chunks for s in (c.model_extra or {}).get("sources") or []]
        else:
            reply = api.chat.completions.create(model=model, messages=messages)
            text, found = reply.model_dump_json(), reply.model_extra["sources"]
        status = 200
    except openai.APIStatusError as exc:
        status, text, found = exc.status_code, exc.response.text, []
    problems = []
    if status != access:
        problems.append(f"{status}, expected {access}")
    if leaked := foreign(d, served, text, model):
        problems.append(f"carries {leaked}")
    if status == 200 and served is not None:
        link = "" if served == d.served(None) else f"/c/{served}"
        if not found:
            problems.append("no sources")
        problems += own_passages(d, served, f"{base_url}{link}", found)
    return problems


# --------------------------------------------------------------------------- MCP


def mcp_problems(client: Any, d: Deployment, run: McpRunner) -> list[str]:
    """Every caller at every prefix's /mcp: refused as the routes are, else the official
    client's tools described with this collection's documents only and each tool (search with
    every filter, ask, list_documents, read_document of every id) keeping to it."""
    problems = []
    for caller in CALLERS:
        headers = d.headers(caller)
        for target in targets(d):
            served, access, path = d.served(target), d.status(caller, target), prefix(target)
            where = f"{caller} {path}/mcp"
            raw = client.post(
                f"{path}/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={**headers, "Accept": "application/json, text/event-stream"},
            )
            if access != 200 or served is None:
                if raw.status_code != access:
                    problems.append(f"{where}: status {raw.status_code}, expected {access}")
                continue
            other = others(d, served)
            calls = [("search", {"query": "How are engineers paid?"}), ("ask", {"question": "pay"}),
                     ("list_documents", {}), ("read_document", {"doc_id": SHARED_ID}),
                     ("read_document", {"doc_id": other["id"]}),
                     ("read_document", {"doc_id": f"../{PRIVATE}/{SHARED_ID}"})]  # fmt: skip
            calls += [
                ("search", {"query": "pay", **f}) for _, f in filter_cases(d, served)[1:] if f
            ]
            result = run(f"{path}/mcp", headers, calls)
            if isinstance(result, BaseException):
                problems.append(f"{where}: {result!r}")
                continue
            tools, results = result
            described = " ".join(t.description or "" for t in tools)
            if leaked := foreign(d, served, described):
                problems.append(f"{where} tool descriptions carry {leaked}")
            link = "" if served == d.served(None) else path
            for (name, args), got in zip(calls, results, strict=True):
                text = json.dumps(got.structured_content) + " ".join(
                    getattr(c, "text", "") for c in got.content
                )
                if leaked := foreign(d, served, text, json.dumps(args)):
                    problems.append(f"{where} {name} {args} carries {leaked}")
                found = passages(got.structured_content or {})
                problems += [f"{where} {name}: {p}" for p in own_passages(d, served, link, found)]
            if not passages(results[0].structured_content):
                problems.append(f"{where} search found nothing")
            listed = {doc["id"] for doc in results[2].structured_content["documents"]}
            if listed != {SHARED_ID, OWN[d.side(served)]["id"]}:
                problems.append(f"{where} list_documents: {sorted(listed)}")
            if not (results[4].is_error and results[5].is_error):
                problems.append(f"{where} read another's document: no tool error")
    return problems


async def mcp_session(
    http: Any, url: str, calls: list[tuple[str, dict[str, Any]]]
) -> tuple[list[Any], list[Any]]:
    """The official MCP client at ``url`` over ``http`` (an httpx2 client): the tools, then
    each call's result."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with Client(streamable_http_client(url, http_client=http)) as c:
        tools = (await c.list_tools()).tools
        return tools, [await c.call_tool(name, args) for name, args in calls]
