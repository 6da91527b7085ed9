"""Isolation through a real ``python -m rag serve --config FILE`` on 127.0.0.1 with the real
model, the indexes built by ``python -m rag index --config FILE``: the checks of
tests/isolation_checks.py over HTTP, the official ``openai`` and ``mcp`` clients over the
network, and paths that climb out of a collection sent as they are (a client library would
have resolved the dots itself)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest

from tests.collections_helpers import PRIVATE, SHARED_ID, TOKEN, Deployment, foreign
from tests.collections_helpers import make_deployment as deployment_on_disk
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
from tests.servers import ROOT, child_env, rag_serve, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, str]]:
    """Both collections, the public one called ``default`` (so the unprefixed routes serve it),
    indexed and served by the real commands; yields the deployment and the server's URL."""
    root = tmp_path_factory.mktemp("isolation")
    d = deployment_on_disk(root, None, "default")
    # Every request comes from one address: no cap on its share of the log (feedback needs
    # its queries logged) and a failed-key budget above the wrong keys the checks send.
    env = child_env(root / "index", root / "public", root / "data", RAG_CONFIG=str(d.config),
                    RAG_ADMIN_TOKEN=TOKEN, RAG_ADMIN_AUTH_LIMIT="100000/minute",
                    RAG_LOG_MAX_ROWS_PER_CLIENT_HOUR="0")  # fmt: skip
    built = subprocess.run(
        [sys.executable, "-m", "rag", "index", "--json"], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=900,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    with rag_serve(env, root / "serve.log") as (url, _):
        admin = d.headers("admin_key")
        wait_for(
            lambda: httpx.get(f"{url}/c/{PRIVATE}/ready", headers=admin).status_code == 200,
            "the private collection to load",
            120,
        )
        yield d, url


@pytest.fixture
def client(served: tuple[Deployment, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[1], timeout=60) as c:
        yield c


@pytest.mark.parametrize("surface", SURFACES)
def test_query_surfaces_of_a_real_server(
    client: httpx.Client, served: tuple[Deployment, str], surface: str
) -> None:
    problems = query_problems(client, served[0], surface)
    assert not problems, report(problems)


def test_documents_viewer_and_feedback_of_a_real_server(
    client: httpx.Client, served: tuple[Deployment, str]
) -> None:
    problems = document_problems(client, served[0]) + feedback_problems(client, served[0])
    assert not problems, report(problems)


def test_the_openai_client_over_the_network(served: tuple[Deployment, str]) -> None:
    problems = openai_problems(*served)
    assert not problems, report(problems)


def test_the_mcp_client_over_the_network(
    client: httpx.Client, served: tuple[Deployment, str]
) -> None:
    d, url = served

    def run(path: str, headers: dict[str, str], calls: list[Any]) -> Any:
        async def go() -> Any:
            async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
                return await mcp_session(http, f"{url}{path}", calls)

        try:
            return asyncio.run(go())
        except Exception as exc:  # the client's own error for a refused request
            return exc

    problems = mcp_problems(client, d, run)
    assert not problems, report(problems)


def raw_get(url: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """GET ``path`` byte for byte as written (dots and all), on a connection of its own."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.decode("utf-8", "replace").partition("\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize("caller", ["anonymous", "public_key"])
@pytest.mark.parametrize(
    "path",
    [
        f"/documents/../c/{PRIVATE}/documents/{SHARED_ID}",
        f"/c/default/documents/../../{PRIVATE}/documents/salary-bands",
        f"/view/../c/{PRIVATE}/view/salary-bands",
        f"/c/default/view/..%2F..%2F{PRIVATE}%2Fview%2Fsalary-bands",
        f"/c/default/documents/%2e%2e/%2e%2e/{PRIVATE}/documents/{SHARED_ID}",
        f"/c/default/../{PRIVATE}/documents/{SHARED_ID}",
        f"/c/default/web/../../{PRIVATE}/documents/{SHARED_ID}",
    ],
)
def test_paths_that_climb_out_of_a_collection_reach_nothing(
    served: tuple[Deployment, str], path: str, caller: str
) -> None:
    d, url = served
    status, body = raw_get(url, path, d.headers(caller))
    assert status in (400, 404), (status, body[:300])
    assert not foreign(d, "default", body), body[:300]
    assert "handbookonly" not in body and "pay band" not in body
