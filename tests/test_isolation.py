"""Isolation: a request to one collection never returns another collection's passages,
documents, viewer pages, MCP results or /v1 sources, whoever sends it (anonymous, a key for
either collection, an admin key, a wrong key) and whatever its filters, document ids or paths.

The two collections of tests/collections_helpers.py share a guide's file name, title and id, and
each has a document, a tag and a folder of its own; every sentence carries its collection's
mark. Each surface is asked by every caller, of each collection and of the unprefixed routes
(which serve the public collection when it is called ``default``, and nothing otherwise), with
every filter: none, the shared id, tag and path, the other collection's id, tag, folder and
file, and paths climbing out (``../handbook``). A filter naming what only the other collection
has must be answered exactly as one naming nothing at all. Query logs, the report and the
command line: tests/test_isolation_logs.py; the same checks against a real ``rag serve`` with
the real model: tests/test_isolation_server.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from rag.config import Settings
from rag.index import load_index
from rag.search.retriever import Retriever
from rag.serve.app import create_app
from tests.collections_helpers import PRIVATE, Deployment, foreign, make_deployment, wait_ready
from tests.isolation_checks import (
    SURFACES,
    document_problems,
    feedback_problems,
    mcp_problems,
    mcp_session,
    openai_problems,
    query_problems,
    report,
)


@pytest.fixture(params=["careers", "default"])
def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, fake_embedder: Any, monkeypatch: Any
) -> Deployment:
    """Both collections, the public one called ``careers`` (the unprefixed routes serve
    nothing) or ``default`` (they serve it); the server's model loads faked."""

    def from_settings(cls: type[Retriever], settings: Settings) -> Retriever:
        return cls(load_index(Path(settings.index_dir)), fake_embedder)

    monkeypatch.setattr(Retriever, "from_settings", classmethod(from_settings))
    return make_deployment(tmp_path, fake_embedder, request.param)


@pytest.fixture
def client(deployment: Deployment) -> Iterator[TestClient]:
    with TestClient(create_app(deployment.settings)) as c:
        wait_ready(c, deployment)
        yield c


@pytest.mark.parametrize("surface", SURFACES)
def test_query_surfaces_keep_to_their_collection(
    client: TestClient, deployment: Deployment, surface: str
) -> None:
    problems = query_problems(client, deployment, surface)
    assert not problems, report(problems)


def test_documents_and_viewer_keep_to_their_collection(
    client: TestClient, deployment: Deployment
) -> None:
    problems = document_problems(client, deployment)
    assert not problems, report(problems)


def test_feedback_rates_only_the_collection_that_logged_the_query(
    client: TestClient, deployment: Deployment
) -> None:
    problems = feedback_problems(client, deployment)
    assert not problems, report(problems)


def test_openai_models_and_completions_keep_to_their_collection(
    client: TestClient, deployment: Deployment
) -> None:
    # The official client over the app: a TestClient is an httpx client.
    problems = openai_problems(deployment, "http://testserver", client)
    assert not problems, report(problems)


def test_mcp_tools_keep_to_their_collection(client: TestClient, deployment: Deployment) -> None:
    def run(path: str, headers: dict[str, str], calls: list[Any]) -> Any:
        async def go() -> Any:
            transport = httpx2.ASGITransport(app=client.app)
            async with httpx2.AsyncClient(
                transport=transport, base_url="http://test", headers=headers
            ) as http:
                return await mcp_session(http, f"http://test{path}", calls)

        try:
            return client.portal.call(go)
        except Exception as exc:  # the client's own error for a refused request
            return exc

    problems = mcp_problems(client, deployment, run)
    assert not problems, report(problems)


# --------------------------------------------------------------------------- what is listed


def test_listings_name_only_what_the_caller_may_use(
    client: TestClient, deployment: Deployment
) -> None:
    d = deployment
    anonymous = client.get("/openapi.json").text
    assert PRIVATE not in anonymous and not foreign(d, d.public, anonymous)
    for caller, names in [("anonymous", [d.public]), ("public_key", [d.public]),
                          ("private_key", [d.public, PRIVATE]),
                          ("admin_key", [d.public, PRIVATE])]:  # fmt: skip
        listed = client.get("/collections", headers=d.headers(caller)).json()["collections"]
        assert [c["name"] for c in listed] == names, caller
    assert client.get("/collections", headers=d.headers("wrong_key")).status_code == 401
    # A request of the unprefixed routes with no default collection names none of them.
    if d.served(None) is None:
        refused = client.post("/search", json={"query": "pay"})
        assert refused.status_code == 404 and PRIVATE not in refused.text
    pages = [client.get(f"/c/{name}/").status_code for name in d.names]
    assert pages == [200, 401]  # the chat page of a private collection needs its key
