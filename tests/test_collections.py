"""Collections: a config file naming a public and a private document set, keys scoped to them,
and every surface kept apart (the documents of the two share ids and titles on purpose)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from rag.cli import main
from rag.collections import Catalog
from rag.config import Settings
from rag.errors import CollectionNotFound, ConfigError
from rag.index import build_index, load_index
from rag.keys import KeyStore
from rag.search.retriever import Retriever
from rag.serve.app import create_app

pytestmark = pytest.mark.usefixtures("plain_terminal")

CONFIG = """
[collections.careers]
corpus = "careers"
public = true
cors_origins = ["https://careers.example.com"]
k = 2

[collections.handbook]
corpus = "handbook"
public = false
not_covered = "Our handbook does not say."
"""
# The same file name, title, headings and so document id in both; only the words differ.
GUIDE = "# Engineering Guide\n\n## Pay\n\n{pay}\n\n## Growth\n\n{growth}\n"
CAREERS = GUIDE.format(
    pay="Engineers joining us are offered a competitive salary and a signing bonus.",
    growth="Careers page readers learn that engineers grow through mentoring circles.",
)
HANDBOOK = GUIDE.format(
    pay="Internal pay band seven covers senior engineers between levels IC4 and IC5.",
    growth="Employees learn that promotion packets are reviewed by the calibration panel.",
)
PRIVATE_WORDS = ("pay band seven", "calibration panel")


@pytest.fixture
def deployment(tmp_path: Path, fake_embedder, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Two collections on disk, their indexes built, and the server's model loads faked."""
    for name, text in (("careers", CAREERS), ("handbook", HANDBOOK)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "guide.md").write_text(text, encoding="utf-8")
    config = tmp_path / "rag.toml"
    config.write_text(CONFIG, encoding="utf-8")
    for name in ("careers", "handbook"):
        build_index(tmp_path / name, tmp_path / "index" / name, fake_embedder)

    def from_settings(cls: type[Retriever], settings: Settings) -> Retriever:
        index = load_index(Path(settings.index_dir))
        return cls(index, fake_embedder, not_covered=settings.not_covered)

    monkeypatch.setattr(Retriever, "from_settings", classmethod(from_settings))
    settings = Settings(
        config=config,
        index_dir=tmp_path / "index",
        data_dir=tmp_path / "data",
        allowed_hosts=["testserver", "test"],
        rate_limit="off",
        admin_token="an-admin-token-0123456789",
    )
    keys = KeyStore(settings.data_dir)
    return SimpleNamespace(
        settings=settings,
        config=config,
        root=tmp_path,
        handbook_key=keys.create("hr tools", ["handbook"])[1],
        careers_key=keys.create("site", ["careers"])[1],
        admin_key=keys.create("ops", admin=True)[1],
    )


def wait_ready(client: TestClient, deployment: SimpleNamespace) -> None:
    """Until both collections' indexes are loaded."""
    deadline = time.monotonic() + 30
    for name in ("careers", "handbook"):
        headers = bearer(deployment.admin_key)
        while client.get(f"/c/{name}/ready", headers=headers).status_code != 200:
            assert time.monotonic() < deadline, f"{name} never became ready"
            time.sleep(0.01)


@pytest.fixture
def client(deployment: SimpleNamespace) -> Iterator[TestClient]:
    with TestClient(create_app(deployment.settings)) as c:
        wait_ready(c, deployment)
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def texts(body: dict[str, Any]) -> str:
    """What a response holds of the documents: its passages (not the question echoed)."""
    found = body.get("results") or body.get("sources") or []
    return json.dumps([r["text"] for r in found]) + json.dumps(body.get("answer", ""))


# --------------------------------------------------------------------------- the config file


def test_config_names_collections_with_their_own_folders_and_overrides(
    deployment: SimpleNamespace,
) -> None:
    catalog = Catalog.from_settings(deployment.settings)
    assert list(catalog.collections) == ["careers", "handbook"]
    careers, handbook = catalog.collections["careers"], catalog.collections["handbook"]
    assert careers.public and not handbook.public
    assert careers.corpus_dir == deployment.root / "careers"
    assert handbook.index_dir == deployment.root / "index" / "handbook"
    assert careers.settings.k == 2 and handbook.settings.k == 5
    assert handbook.settings.not_covered == "Our handbook does not say."
    assert careers.settings.cors_origins == ["https://careers.example.com"]
    assert catalog.default is None  # two, and none called "default"
    with pytest.raises(CollectionNotFound, match="/c/NAME"):
        catalog.get(None)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[collections.x\n", "not valid TOML"),
        ("[collections.Bad-Name]\ncorpus = 'a'\n", "collections.Bad-Name"),
        ("[collections.a]\ncorpus = 'a'\nsecret = 1\n", "secret"),
        ("[collections.a]\nk = 0\n", "k"),
        ("[collections.a]\nrate_limit = 'lots'\n", "rate_limit"),
        ("collections = {}\n", "collections"),
    ],
)
def test_a_bad_config_file_is_one_clear_error(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "rag.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=says) as caught:
        Catalog.from_settings(Settings(config=path))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_without_a_config_file_there_is_one_public_default_collection(tmp_path: Path) -> None:
    settings = Settings(corpus_dir=tmp_path / "c", index_dir=tmp_path / "i")
    catalog = Catalog.from_settings(settings)
    (only,) = catalog
    assert (only.name, only.public, catalog.default) == ("default", True, "default")
    assert only.settings is settings  # the folders as they are: make run is unchanged


# --------------------------------------------------------------------------- access


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        (None, "/c/careers/search", 200),
        (None, "/c/handbook/search", 401),
        ("careers_key", "/c/handbook/search", 403),
        ("handbook_key", "/c/handbook/search", 200),
        ("handbook_key", "/c/careers/search", 200),  # public to everyone
        ("admin_key", "/c/handbook/search", 200),
        (None, "/c/nothing/search", 404),
        (None, "/search", 404),  # several collections and no default
    ],
)
def test_who_reaches_which_collection(
    client: TestClient, deployment: SimpleNamespace, who: str | None, path: str, status: int
) -> None:
    headers = bearer(getattr(deployment, who)) if who else {}
    response = client.post(path, json={"query": "engineers"}, headers=headers)
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.json()["detail"]  # the API's JSON error shape
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_collections_lists_what_the_caller_may_use(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    def names(headers: dict[str, str]) -> list[str]:
        return [
            c["name"] for c in client.get("/collections", headers=headers).json()["collections"]
        ]

    assert names({}) == ["careers"]
    assert names(bearer(deployment.handbook_key)) == ["careers", "handbook"]
    assert names(bearer(deployment.admin_key)) == ["careers", "handbook"]


def test_a_wrong_key_is_401_and_counts_toward_429(
    deployment: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = deployment.settings.model_copy(update={"admin_auth_limit": "3/minute"})
    wrong = deployment.handbook_key[:-4] + "AAAA"
    with TestClient(create_app(settings)) as c:
        statuses = [
            c.post("/c/careers/search", json={"query": "x"}, headers=bearer(wrong)).status_code
            for _ in range(5)
        ]
        right = c.post(
            "/c/careers/search", json={"query": "x"}, headers=bearer(deployment.handbook_key)
        )
    assert statuses == [401, 401, 401, 429, 429]
    assert right.status_code == 429 and int(right.headers["retry-after"]) >= 1


def test_a_made_up_key_of_another_kind_is_ignored_on_a_public_collection(
    client: TestClient,
) -> None:
    # OpenAI's clients always send a key; one invented for a public collection still works.
    response = client.post("/c/careers/search", json={"query": "x"}, headers=bearer("sk-none"))
    assert response.status_code == 200


# --------------------------------------------------------------------------- isolation


def test_same_ids_and_titles_never_cross_between_collections(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    key = bearer(deployment.handbook_key)
    public = client.post("/c/careers/search", json={"query": "pay band calibration panel"})
    assert public.status_code == 200 and public.json()["results"]
    assert not any(w in texts(public.json()) for w in PRIVATE_WORDS)
    assert len(public.json()["results"]) <= 2  # careers' own k
    doc = client.get("/c/careers/documents/engineering-guide").json()
    assert "signing bonus" in doc["text"] and "pay band" not in doc["text"]
    private = client.get("/c/handbook/documents/engineering-guide", headers=key).json()
    assert "pay band seven" in private["text"]
    assert client.get("/c/handbook/documents/engineering-guide").status_code == 401
    assert client.get("/c/handbook/view/engineering-guide").status_code == 401
    # Filters cannot reach across either: the id names careers' document here.
    filtered = client.post(
        "/c/careers/search",
        json={"query": "pay", "filters": {"doc_id": "engineering-guide"}},
    ).json()
    assert not any(w in texts(filtered) for w in PRIVATE_WORDS)


def test_citations_link_to_their_own_collection(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    body = client.post(
        "/c/handbook/ask", json={"query": "pay band"}, headers=bearer(deployment.handbook_key)
    ).json()
    assert body["results"][0]["citation"]["url"].startswith("/c/handbook/view/")


def test_pages_under_a_collection_load_their_files_from_under_it(client: TestClient) -> None:
    # chat.html and viewer.html name their script and stylesheet by relative URL.
    assert client.get("/c/careers/").status_code == 200
    for name in ("chat.js", "chat.css", "viewer.js"):
        response = client.get(f"/c/careers/web/{name}")
        assert response.status_code == 200 and response.text == client.get(f"/web/{name}").text
    assert client.get("/c/careers/web/api.py").status_code == 404


def test_feedback_reaches_only_the_collection_that_logged_the_query(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    key = bearer(deployment.handbook_key)
    query_id = client.post("/c/handbook/search", json={"query": "pay"}, headers=key).json()[
        "query_id"
    ]
    rating = {"query_id": query_id, "rating": "up"}
    assert client.post("/c/careers/feedback", json=rating).status_code == 404
    assert client.post("/c/handbook/feedback", json=rating, headers=key).status_code == 200


def test_each_collection_keeps_its_own_query_log(
    deployment: SimpleNamespace,
) -> None:
    key = bearer(deployment.handbook_key)
    with TestClient(create_app(deployment.settings)) as c:
        wait_ready(c, deployment)
        assert c.post("/c/careers/search", json={"query": "signing bonus question"}).is_success
        asked = c.post(
            "/c/handbook/search", json={"query": "calibration panel question"}, headers=key
        )
        assert asked.is_success
    logged = {}
    for name in ("careers", "handbook"):
        db = deployment.settings.data_dir / name / "querylog.sqlite"
        with sqlite3.connect(db) as con:
            logged[name] = [r[0] for r in con.execute("SELECT query FROM queries")]
    assert logged == {
        "careers": ["signing bonus question"],
        "handbook": ["calibration panel question"],
    }


def test_openai_models_are_the_collections_the_caller_may_use(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    def ids(headers: dict[str, str]) -> list[str]:
        return [m["id"] for m in client.get("/v1/models", headers=headers).json()["data"]]

    assert ids({}) == ["careers"]
    assert ids(bearer(deployment.handbook_key)) == ["careers", "handbook"]
    ask = {"model": "handbook", "messages": [{"role": "user", "content": "pay band"}]}
    assert client.post("/v1/chat/completions", json=ask).status_code == 401
    answer = client.post(
        "/v1/chat/completions", json=ask, headers=bearer(deployment.handbook_key)
    ).json()
    assert answer["model"] == "handbook"
    assert all("/c/handbook/view/" in s["citation"]["url"] for s in answer["sources"])
    careers = client.post("/v1/chat/completions", json={**ask, "model": "careers"}).json()
    assert not any(w in texts(careers) for w in PRIVATE_WORDS)
    missing = client.post("/v1/chat/completions", json={**ask, "model": "gpt-4o"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_mcp_of_a_private_collection_needs_its_key(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    app = client.app

    def call(path: str, headers: dict[str, str]) -> Any:
        async def go() -> Any:
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(
                transport=transport, base_url="http://test", headers=headers
            ) as http:
                async with Client(
                    streamable_http_client(f"http://test{path}", http_client=http)
                ) as c:
                    return await c.call_tool("search", {"query": "pay band calibration"})

        return client.portal.call(go)

    found = call("/c/handbook/mcp", bearer(deployment.handbook_key))
    assert any(w in texts(found.structured_content) for w in PRIVATE_WORDS)
    public = call("/c/careers/mcp", {})
    assert not any(w in texts(public.structured_content) for w in PRIVATE_WORDS)
    refused = client.post(
        "/c/handbook/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Accept": "application/json, text/event-stream"},
    )
    assert refused.status_code == 401 and refused.json()["detail"]


# --------------------------------------------------------------------------- the command line


def test_rag_keys_create_list_revoke_and_the_key_is_stored_hashed(
    capsys: pytest.CaptureFixture[str], deployment: SimpleNamespace
) -> None:
    data = str(deployment.settings.data_dir)
    config = str(deployment.config)
    args = ["keys", "create", "--collection", "handbook", "--name", "tool", "--data", data]
    assert main([*args, "--config", config, "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert set(made) >= {"id", "key", "collections"} and made["collections"] == ["handbook"]
    stored = (deployment.settings.data_dir / "keys.sqlite").read_bytes()
    assert made["key"].encode() not in stored and made["key"].split("_")[-1].encode() not in stored
    assert main(["keys", "list", "--data", data, "--json"]) == 0
    listed = {k["id"]: k for k in json.loads(capsys.readouterr().out)["keys"]}
    assert listed[made["id"]]["name"] == "tool" and "key" not in listed[made["id"]]
    assert main(["keys", "revoke", made["id"], "--data", data]) == 0
    assert KeyStore(deployment.settings.data_dir).check(made["key"]) is None
    assert main(["keys", "revoke", "nope", "--data", data]) == 2
    assert main([*args[:2], "--collection", "payroll", "--name", "x", "--data", data,
                 "--config", config]) == 2  # fmt: skip
    assert "payroll" in capsys.readouterr().err


def test_rag_index_with_a_config_builds_every_collection_or_the_one_named(
    capsys: pytest.CaptureFixture[str], deployment: SimpleNamespace, fake_env: SimpleNamespace
) -> None:
    index = deployment.root / "fresh"
    common = ["--config", str(deployment.config), "--index", str(index)]
    assert main(["index", *common, "--collection", "careers", "--json"]) == 0
    assert (index / "careers" / "manifest.json").exists()
    assert not (index / "handbook").exists()
    assert main(["index", *common, "--json"]) == 0
    assert (index / "handbook" / "manifest.json").exists()
    capsys.readouterr()
    code = main(["search", "pay band", *common, "--collection", "handbook", "--json"])
    assert code == 0
    assert any(w in capsys.readouterr().out for w in PRIVATE_WORDS)
    assert main(["search", "pay", *common, "--collection", "nothing"]) == 2
    assert "nothing" in capsys.readouterr().err
