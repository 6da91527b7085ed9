"""/admin/sources: collections with their sources' last sync and their documents, and forms to
upload, delete an upload and sync now, behind /admin's sign-in, with a CSRF token per session.
The last test does it all in Chromium."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rag.config import Settings
from rag.index import build_index
from rag.keys import KeyStore
from rag.serve.app import create_app
from tests.conftest import ROOT, FakeEmbedder
from tests.test_uploads import patch_models
from tests.websites import Site, page, serve_site, sitemap

TOKEN = "an-admin-token-0123456789"
FILES = ROOT / "tests" / "data" / "files"
NAV = ["/guides/engineer.html", "/guides/designer.html"]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with serve_site(tmp_path / "site") as site:
        site.write("/robots.txt", "User-agent: *\nDisallow: /guides/designer.html\n")
        for path in NAV:
            site.write(path, page(Path(path).stem.title(), NAV))
        site.write("/guides/broken.html", page("Broken", NAV))
        site.answers["/guides/broken.html"] = 500
        site.write("/sitemap.xml", sitemap([site.url(p) for p in [*NAV, "/guides/broken.html"]]))
        yield site


@pytest.fixture
def deployment(
    tmp_path: Path, site: Site, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> SimpleNamespace:
    """Two collections: one from a web site and a folder (not yet synced), one from a folder."""
    (tmp_path / "handbook").mkdir()
    (tmp_path / "handbook" / "leave.md").write_text("# Leave\n\nTake leave freely.\n")
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "oncall.md").write_text("# On-call\n\nRotations last a week.\n")
    config = tmp_path / "rag.toml"
    config.write_text(
        '[collections.careers]\npublic = true\n[[collections.careers.sources]]\ntype = "web"\n'
        f'url = "{site.url("/sitemap.xml")}"\ndelay_seconds = 0\n'
        '[[collections.careers.sources]]\ntype = "folder"\npath = "extra"\n'
        '[collections.handbook]\ncorpus = "handbook"\n'
    )
    build_index(tmp_path / "handbook", tmp_path / "index" / "handbook", fake_embedder)
    patch_models(monkeypatch, fake_embedder)
    settings = Settings(config=config, index_dir=tmp_path / "index", data_dir=tmp_path / "data",
                        allowed_hosts=["testserver", "127.0.0.1"], rate_limit="off",
                        admin_token=TOKEN)  # fmt: skip
    keys = KeyStore(settings.data_dir)
    return SimpleNamespace(
        root=tmp_path, settings=settings, site=site,
        admin_key=keys.create("ops", admin=True)[1], key=keys.create("cms", ["careers"], upload=True)[1],
    )  # fmt: skip


@pytest.fixture
def client(deployment: SimpleNamespace) -> Iterator[TestClient]:
    with TestClient(create_app(deployment.settings)) as c:
        yield c


def sign_in(client: TestClient) -> str:
    """Sign in through the form; returns the page's CSRF token."""
    assert client.post("/admin/login", data={"token": TOKEN}).status_code == 200  # 303 followed
    page_text = client.get("/admin/sources").text
    tokens = set(re.findall(r'name="csrf" value="([0-9a-f]+)"', page_text))
    assert len(tokens) == 1
    return tokens.pop()


def overview(client: TestClient) -> dict[str, dict[str, Any]]:
    data = client.get("/admin/sources.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    return {c["name"]: c for c in data["collections"]}


def wait_until(predicate: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)
    return value


def test_the_page_needs_the_admin_token_and_is_off_without_one(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    for path in ("/admin/sources", "/admin/sources.json"):
        assert client.get(path).status_code == 401
        assert (
            client.get(path, headers={"Authorization": f"Bearer {deployment.key}"}).status_code
            == 401
        )
        assert (
            client.get(
                path, headers={"Authorization": f"Bearer {deployment.admin_key}"}
            ).status_code
            == 200
        )
    assert client.post("/admin/sources/careers/sync", data={"csrf": "x"}).status_code == 401
    off = deployment.settings.model_copy(update={"admin_token": ""})
    with TestClient(create_app(off)) as plain:
        assert (
            plain.get("/admin/sources", headers={"Authorization": f"Bearer {TOKEN}"}).status_code
            == 404
        )


def test_sync_now_runs_in_the_background_and_the_page_shows_each_source(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    csrf = sign_in(client)
    before = overview(client)["careers"]
    assert [s["last"] for s in before["sources"]] == [None, None] and before["build_id"] is None
    response = client.post("/admin/sources/careers/sync", data={"csrf": csrf})
    assert response.status_code == 202 and "Syncing careers" in response.text
    done = wait_until(
        lambda: (c := overview(client)["careers"])["last_sync"] and c["build_id"] and c
    )
    web, folder = done["sources"]
    assert (web["type"], web["last"]["fetched"], web["last"]["status"]) == ("web", 1, "partial")
    assert web["last"]["skipped_robots"] == [deployment.site.url("/guides/designer.html")]
    assert web["last"]["errors"] == {deployment.site.url("/guides/broken.html"): "HTTP 500"}
    assert folder["last"]["added"] == 1 and folder["synced_at"]
    assert sorted(d["title"] for d in done["documents"]) == ["Engineer", "On-call"]
    text = client.get("/admin/sources").text
    for shown in ("HTTP 500", "Sync now", "partial", "On-call"):
        assert shown in text, shown
    assert text.count("never synced") == 1  # the handbook's folder only
    assert 'action="/admin/sources/handbook/upload"' in text


def test_upload_and_delete_through_the_forms(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    csrf = sign_in(client)
    files = {"files": ("guide.docx", (FILES / "guide.docx").read_bytes())}
    response = client.post("/admin/sources/handbook/upload", data={"csrf": csrf}, files=files)
    assert response.status_code == 201, response.text
    assert "Uploaded to handbook: guide.docx." in response.text
    handbook = overview(client)["handbook"]
    (doc,) = [d for d in handbook["documents"] if d["upload"]]
    assert (doc["source"], doc["origin"]) == ("uploads/guide.docx", "upload")
    assert f'name="doc_id" value="{doc["id"]}"' in response.text  # a delete button for it
    assert 'name="doc_id" value="leave"' not in response.text  # and none for the folder's
    refused = client.post("/admin/sources/handbook/upload", data={"csrf": csrf},
                          files={"files": ("x.pdf", (FILES / "encrypted.pdf").read_bytes())})  # fmt: skip
    assert (
        refused.status_code == 422
        and "Not uploaded" in refused.text
        and "encrypted" in refused.text
    )
    gone = client.post("/admin/sources/handbook/delete", data={"csrf": csrf, "doc_id": doc["id"]})
    assert gone.status_code == 200 and f"Deleted {doc['id']}" in gone.text
    assert not (deployment.root / "handbook" / "uploads" / "guide.docx").exists()
    assert [d["id"] for d in overview(client)["handbook"]["documents"]] == ["leave"]
    folder = client.post("/admin/sources/handbook/delete", data={"csrf": csrf, "doc_id": "leave"})
    assert folder.status_code == 409 and (deployment.root / "handbook" / "leave.md").exists()


def test_forms_without_their_session_token_are_refused(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    csrf = sign_in(client)
    files = {"files": ("guide.md", (FILES / "guide.md").read_bytes())}
    for data in ({}, {"csrf": "0" * 64}, {"csrf": csrf[:-1] + "0"}):
        upload = client.post("/admin/sources/handbook/upload", data=data, files=files)
        assert upload.status_code == 403 and "token" in upload.json()["detail"]
        assert client.post("/admin/sources/handbook/sync", data=data).status_code == 403
    assert not (deployment.root / "handbook" / "uploads").exists()
    # Another session's token is no good in this one.
    with TestClient(create_app(deployment.settings)) as other:
        theirs = sign_in(other)
    assert theirs != csrf
    assert client.post("/admin/sources/handbook/sync", data={"csrf": theirs}).status_code == 403
    # A script with the token as Bearer has no ambient credential to abuse: no CSRF token.
    scripted = TestClient(client.app)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    response = scripted.post("/admin/sources/handbook/upload", files=files, headers=bearer)
    assert response.status_code == 201


@pytest.mark.slow
@pytest.mark.browser
def test_the_sources_page_in_chromium(deployment: SimpleNamespace, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from tests.browser_helpers import LiveServer, browser_session, chromium_path

    if chromium_path() is None:
        pytest.fail("Chromium is missing: `apt-get install -y chromium` (.ci/run does)")
    upload = tmp_path / "Pay Bands.md"
    upload.write_text("# Pay Bands\n\nPay bands are reviewed every spring by the finance team.\n")
    server = LiveServer(create_app(deployment.settings)).start()
    try:
        with browser_session() as browser:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            tab = context.new_page()
            problems: list[str] = []
            tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: problems.append(str(e)))
            tab.goto(f"{server.url}/admin/login")
            tab.get_by_label("Admin token").fill(TOKEN)
            tab.get_by_role("button", name="Sign in").click()
            tab.wait_for_url(f"{server.url}/admin")
            tab.goto(f"{server.url}/admin/sources")
            expect(tab.get_by_role("heading", name="Sources and documents")).to_be_visible()
            careers = tab.locator("#c-careers")
            expect(careers.get_by_role("table", name="Sources of careers")).to_contain_text(
                "never synced"
            )
            careers.get_by_role("button", name="Sync careers now", exact=True).click()
            expect(tab.get_by_role("status")).to_contain_text("Syncing careers")
            for _ in range(600):  # the sync runs on after the answer: reload until it shows
                tab.goto(f"{server.url}/admin/sources")
                if "Last sync" in (tab.locator("#c-careers").text_content() or ""):
                    break
                time.sleep(0.1)
            sources = tab.locator("#c-careers").get_by_role("table", name="Sources of careers")
            expect(sources).to_contain_text("HTTP 500")
            expect(sources).to_contain_text("extra")
            handbook = tab.locator("#c-handbook")
            handbook.get_by_label("Files to upload to handbook").set_input_files(str(upload))
            handbook.get_by_role("button", name="Upload to handbook", exact=True).click()
            expect(tab.get_by_role("status")).to_contain_text("Uploaded to handbook: Pay Bands.md")
            documents = tab.locator("#c-handbook").get_by_role(
                "table", name="Documents of handbook"
            )
            expect(documents).to_contain_text("uploads/Pay-Bands.md")
            # Searchable through the API at once.
            found = tab.request.post(f"{server.url}/c/handbook/search",
                                     data={"query": "pay bands finance", "k": 1},
                                     headers={"Authorization": f"Bearer {deployment.admin_key}"})  # fmt: skip
            assert found.json()["results"][0]["citation"]["source"] == "uploads/Pay-Bands.md"
            documents.get_by_role("button", name="Delete pay-bands", exact=True).click()
            expect(tab.get_by_role("status")).to_contain_text("Deleted pay-bands")
            expect(
                tab.locator("#c-handbook").get_by_role("table", name="Documents of handbook")
            ).not_to_contain_text("Pay-Bands")
            # The stylesheet applied under the page's CSP, and no script error anywhere.
            assert tab.evaluate("getComputedStyle(document.body).maxWidth") == "1152px"
            assert problems == []
            context.close()
    finally:
        server.stop()


def test_an_upload_before_any_sync_indexes_the_folder_sources_too(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    files = {"files": ("pay.md", b"# Pay Bands\n\nReviewed every spring.\n")}
    bearer = {"Authorization": f"Bearer {deployment.key}"}
    response = client.post("/c/careers/documents", files=files, headers=bearer)
    assert response.status_code == 201, response.text
    docs = client.get("/c/careers/documents").json()["documents"]
    assert sorted(d["source"] for d in docs) == ["extra/oncall.md", "uploads/pay.md"]
    assert deployment.site.paths() == []  # the web source is the sync's to fetch
