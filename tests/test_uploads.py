"""Uploads through the API: POST /documents and DELETE /documents/{id}, per collection, with
keys that may or may not upload; every bad file refused with nothing written or indexed.

The files are the parser fixtures made by real tools (pandoc, Chromium's print, qpdf); the
server is the real app with its lifespan, re-indexing with the fake embedder (the real model's
upload path is the slow test at the end, against `rag serve`)."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from rag.config import Settings
from rag.index import build_index, load_index
from rag.keys import KeyStore
from rag.search.retriever import Retriever
from rag.serve.app import create_app
from rag.sources.uploads import RECORD
from tests.conftest import ROOT, FakeEmbedder

FILES = ROOT / "tests" / "data" / "files"
CONFIG = """
[collections.careers]
corpus = "careers"
public = true

[collections.handbook]
corpus = "handbook"
public = false
"""
GUIDE = "# {title}\n\n## Pay\n\n{pay}\n"
PNG = (ROOT / "docs" / "eval.png").read_bytes()


def docx_bomb() -> bytes:
    """pandoc's guide.docx with its document.xml padded to 300 MB of spaces (about 300 KB
    compressed): what a DOCX zip bomb looks like to a parser."""
    source = zipfile.ZipFile(FILES / "guide.docx")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "word/document.xml":
                data = data.replace(b"</w:body>", b" " * (300 << 20) + b"</w:body>")
            bomb.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def plain_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "A zip of notes, not a Word document.")
    return out.getvalue()


def patch_models(monkeypatch: pytest.MonkeyPatch, embedder: FakeEmbedder) -> list[str]:
    """Every model the server loads (to query, to build) is the fake embedder; returns the
    names of the build models loaded."""
    import rag.models.embedder

    loads: list[str] = []

    def from_settings(cls: type[Retriever], settings: Settings) -> Retriever:
        return cls(load_index(Path(settings.index_dir)), embedder)

    def load_embedder(model: str = "", batch_size: int = 64) -> FakeEmbedder:
        loads.append(model)
        return embedder

    monkeypatch.setattr(Retriever, "from_settings", classmethod(from_settings))
    monkeypatch.setattr(rag.models.embedder, "load_embedder", load_embedder)
    return loads


@pytest.fixture
def deployment(
    tmp_path: Path, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> SimpleNamespace:
    """Two collections from a config file, indexed, with keys of every kind."""
    for name, title in (("careers", "Engineer Guide"), ("handbook", "Handbook")):
        (tmp_path / name).mkdir()
        text = GUIDE.format(title=title, pay=f"The {name} pay words are here.")
        (tmp_path / name / "guide.md").write_text(text, encoding="utf-8")
        build_index(tmp_path / name, tmp_path / "index" / name, fake_embedder)
    config = tmp_path / "rag.toml"
    config.write_text(CONFIG, encoding="utf-8")
    loads = patch_models(monkeypatch, fake_embedder)
    settings = Settings(
        config=config, index_dir=tmp_path / "index", data_dir=tmp_path / "data",
        allowed_hosts=["testserver"], rate_limit="off", max_upload_bytes=2 * 1024 * 1024,
    )  # fmt: skip
    keys = KeyStore(settings.data_dir)
    return SimpleNamespace(
        root=tmp_path,
        settings=settings,
        loads=loads,
        uploads=tmp_path / "careers" / "uploads",
        uploader=keys.create("cms", ["careers"], upload=True)[1],
        reader=keys.create("site", ["careers"])[1],
        elsewhere=keys.create("hr", ["handbook"], upload=True)[1],
        admin=keys.create("ops", admin=True)[1],
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(deployment: SimpleNamespace) -> Iterator[TestClient]:
    with TestClient(create_app(deployment.settings)) as c:
        for name in ("careers", "handbook"):
            wait_for(lambda n=name: c.get(f"/c/{n}/ready", headers=bearer(deployment.admin))
                     .status_code == 200)  # fmt: skip
        yield c


def wait_for(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.02)


def files(*named: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes]]]:
    return [("files", (name, data)) for name, data in named]


def fixture(name: str) -> tuple[str, bytes]:
    return name, (FILES / name).read_bytes()


def every_file(root: Path) -> dict[str, int]:
    """Every file under ``root`` (the data folder's SQLite files aside) and its size."""
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*"))
            if p.is_file() and "sqlite" not in p.name}  # fmt: skip


def served(client: TestClient, key: str, collection: str = "careers") -> tuple[str, list[str]]:
    """The build served and its document ids."""
    ready = client.get(f"/c/{collection}/ready", headers=bearer(key)).json()
    docs = client.get(f"/c/{collection}/documents", headers=bearer(key)).json()["documents"]
    return ready["build_id"], [d["id"] for d in docs]


def test_an_upload_answers_201_with_ids_that_are_searchable_at_once(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    page = b"<!DOCTYPE html><html><body><h1>Interview Loop</h1><p>The loop has four talks.</p>"
    sent = files(fixture("guide.pdf"), fixture("ladder.mdx"), ("loop.htm", page),
                 ("relocation notes", b"Relocation\n\nThe relocation allowance covers movers."))  # fmt: skip
    response = client.post("/c/careers/documents", files=sent, headers=bearer(deployment.uploader))
    assert response.status_code == 201, response.text
    body = response.json()
    by_name = {f["name"]: f for f in body["files"]}
    assert {n: (f["file"], f["type"]) for n, f in by_name.items()} == {
        "guide.pdf": ("uploads/guide.pdf", "pdf"), "ladder.mdx": ("uploads/ladder.mdx", "mdx"),
        "loop.htm": ("uploads/loop.html", "html"),
        "relocation notes": ("uploads/relocation-notes.txt", "txt"),
    }  # fmt: skip
    assert all(f["ids"] for f in body["files"])
    assert body["ids"] == [i for f in body["files"] for i in f["ids"]]
    # Searchable as soon as the answer arrived: the new build is the one served.
    build, ids = served(client, deployment.reader)
    assert build == body["build_id"] and set(body["ids"]) <= set(ids)
    hits = client.post("/c/careers/search", json={"query": "relocation allowance movers", "k": 1})
    assert hits.json()["results"][0]["citation"]["doc_id"] in by_name["relocation notes"]["ids"]
    kept = sorted(p.name for p in deployment.uploads.iterdir())
    assert kept == sorted([RECORD, ".rag-uploads.lock", "guide.pdf", "ladder.mdx", "loop.html",
                           "relocation-notes.txt"])  # fmt: skip
    assert (deployment.uploads / "guide.pdf").read_bytes() == (FILES / "guide.pdf").read_bytes()
    assert deployment.loads == ["sentence-transformers/all-MiniLM-L6-v2"]  # loaded once
    # The same text under another name: kept, and said to add no document.
    copy = b"Relocation\n\nThe relocation allowance covers movers."
    again = client.post("/c/careers/documents", files=files(("second relocation.txt", copy)),
                        headers=bearer(deployment.admin))  # fmt: skip
    assert again.status_code == 201, again.text
    (same,) = again.json()["files"]
    assert (same["file"], same["type"], same["ids"]) == ("uploads/second-relocation.txt", "txt", [])
    assert "already indexed" in same["note"]
    assert deployment.loads == ["sentence-transformers/all-MiniLM-L6-v2"]


def test_the_default_collection_takes_uploads_without_a_prefix(
    tmp_path: Path, small_corpus: Path, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index(small_corpus, tmp_path / "index", fake_embedder)
    patch_models(monkeypatch, fake_embedder)
    settings = Settings(corpus_dir=small_corpus, index_dir=tmp_path / "index",
                        data_dir=tmp_path / "data", allowed_hosts=["testserver"])  # fmt: skip
    key = KeyStore(settings.data_dir).create("cms", upload=True, admin=True)[1]
    with TestClient(create_app(settings)) as client:
        wait_for(lambda: client.get("/ready").status_code == 200)
        response = client.post("/documents", files=files(fixture("guide.md")), headers=bearer(key))
        assert response.status_code == 201, response.text
        assert (small_corpus / "uploads" / "guide.md").is_file()
        ids = [d["id"] for d in client.get("/documents").json()["documents"]]
        assert set(response.json()["ids"]) <= set(ids)


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [(None, "/c/careers/documents", 401), ("reader", "/c/careers/documents", 403),
     ("elsewhere", "/c/careers/documents", 403), (None, "/c/handbook/documents", 401),
     ("uploader", "/c/handbook/documents", 403), ("elsewhere", "/c/handbook/documents", 201),
     ("admin", "/c/careers/documents", 201), ("uploader", "/c/careers/documents", 201)],
)  # fmt: skip
def test_only_keys_with_upload_rights_on_the_collection_upload(
    client: TestClient, deployment: SimpleNamespace, who: str | None, path: str, status: int
) -> None:
    headers = bearer(getattr(deployment, who)) if who else {}
    response = client.post(path, files=files(fixture("guide.md")), headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


BAD_FILES = [
    ("photo.pdf", PNG, 415, "Portable Network Graphics"),
    ("notes.docx", plain_zip(), 415, "not a Word document"),
    ("guide.pdf", (FILES / "guide.md").read_bytes(), 415, "named as pdf but its content is text"),
    ("encrypted.pdf", (FILES / "encrypted.pdf").read_bytes(), 422, "encrypted"),
    ("truncated.pdf", (FILES / "truncated.pdf").read_bytes(), 422, "cannot read this PDF"),
    ("truncated.docx", (FILES / "truncated.docx").read_bytes(), 422, "broken ZIP"),
    ("bomb.docx", docx_bomb(), 422, "ZIP bomb"),
    ("empty.md", (FILES / "empty.md").read_bytes(), 422, "no text to index"),
    ("../../x.md", b"# X\n\nA guide trying to land outside.\n", 400, "holds a path"),
    ("..\\..\\x.md", b"# X\n\nA guide trying to land outside.\n", 400, "holds a path"),
    (".env", b"SECRET=1\n", 400, "hidden file"),
    ("huge.md", b"# Huge\n\n" + b"words " * 400_000, 413, "larger than"),
]


@pytest.mark.parametrize(("name", "data", "status", "says"), BAD_FILES,
                         ids=[b[0] for b in BAD_FILES])  # fmt: skip
def test_a_bad_file_is_refused_and_nothing_is_written_or_indexed(
    client: TestClient, deployment: SimpleNamespace, name: str, data: bytes, status: int, says: str
) -> None:
    before_files = every_file(deployment.root)
    before = served(client, deployment.uploader)
    # With a good file beside it: one bad file refuses the request whole.
    sent = files(fixture("guide.md"), (name, data))
    response = client.post("/c/careers/documents", files=sent, headers=bearer(deployment.uploader))
    assert response.status_code == status, response.text
    assert says in response.json()["detail"] and response.json()["field"] in ("files", "body")
    assert every_file(deployment.root) == before_files  # nothing written anywhere
    assert (
        not (deployment.root / "x.md").exists() and not (deployment.root.parent / "x.md").exists()
    )
    assert served(client, deployment.uploader) == before  # nothing indexed
    assert deployment.loads == []  # no build was even started


def test_a_body_that_is_not_a_form_or_has_no_files_is_refused(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    headers = bearer(deployment.uploader)
    as_json = client.post("/c/careers/documents", json={"files": []}, headers=headers)
    assert as_json.status_code == 415 and "multipart/form-data" in as_json.json()["detail"]
    empty = client.post("/c/careers/documents", data={"other": "x"}, files=files(), headers=headers)
    assert empty.status_code in (415, 422)
    no_files = client.post(
        "/c/careers/documents", files={"other": ("a.md", b"# A\n\nB.")}, headers=headers
    )
    assert no_files.status_code == 422 and "files" in no_files.json()["detail"]
    many = files(*[(f"g{i}.md", f"# G{i}\n\nGuide {i}.".encode()) for i in range(21)])
    too_many = client.post("/c/careers/documents", files=many, headers=headers)
    assert too_many.status_code == 400 and "Too many files" in too_many.json()["detail"]


def test_delete_removes_an_uploaded_document_and_only_an_uploaded_one(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    headers = bearer(deployment.uploader)
    sent = files(("pay.md", b"# Pay Bands\n\nPay bands are reviewed every spring by finance.\n"))
    (doc_id,) = client.post("/c/careers/documents", files=sent, headers=headers).json()["ids"]
    response = client.delete(f"/c/careers/documents/{doc_id}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["removed"] == [doc_id] and response.json()["file"] == "uploads/pay.md"
    assert not (deployment.uploads / "pay.md").exists()
    build, ids = served(client, deployment.reader)
    assert doc_id not in ids and build == response.json()["build_id"]
    again = client.delete(f"/c/careers/documents/{doc_id}", headers=headers)
    assert again.status_code == 404
    folder_doc = client.delete("/c/careers/documents/engineer-guide", headers=headers)
    assert folder_doc.status_code == 409 and "not from an upload" in folder_doc.json()["detail"]
    assert (deployment.root / "careers" / "guide.md").is_file()
    assert client.delete(f"/c/careers/documents/{doc_id}").status_code == 401
    reader = client.delete("/c/careers/documents/x", headers=bearer(deployment.reader))
    assert reader.status_code == 403


def test_uploading_a_name_again_replaces_the_file(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    headers = bearer(deployment.uploader)
    first = files(("team.md", b"# Team Notes\n\nThe team meets on Mondays.\n"))
    second = files(("team.md", b"# Team Notes\n\nThe team meets on Thursdays now.\n"))
    assert client.post("/c/careers/documents", files=first, headers=headers).status_code == 201
    assert client.post("/c/careers/documents", files=second, headers=headers).status_code == 201
    assert b"Thursdays" in (deployment.uploads / "team.md").read_bytes()
    docs = client.get("/c/careers/documents", headers=headers).json()["documents"]
    assert [d["source"] for d in docs].count("uploads/team.md") == 1


def test_a_failed_build_keeps_nothing_and_the_previous_index_serves(
    client: TestClient, deployment: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.serve.upkeep

    headers = bearer(deployment.uploader)
    kept = files(("kept.md", b"# Kept\n\nThis upload stays.\n"))
    assert client.post("/c/careers/documents", files=kept, headers=headers).status_code == 201
    before_files, before = every_file(deployment.root), served(client, deployment.uploader)

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rag.serve.upkeep, "build_collection", broken)
    sent = files(("new.md", b"# New\n\nThis upload cannot be indexed.\n"),
                 ("kept.md", b"# Kept\n\nA new version that cannot be indexed.\n"))  # fmt: skip
    response = client.post("/c/careers/documents", files=sent, headers=headers)
    assert response.status_code == 503, response.text
    assert "could not be re-indexed" in response.json()["detail"]
    assert response.headers["retry-after"]
    assert every_file(deployment.root) == before_files  # the replaced file is back, as it was
    assert served(client, deployment.uploader) == before
    doc_id = next(i for i in before[1] if i.startswith("kept"))
    gone = client.delete(f"/c/careers/documents/{doc_id}", headers=headers)
    assert gone.status_code == 503 and (deployment.uploads / "kept.md").is_file()


def test_an_uploads_folder_of_someone_elses_files_is_left_alone(
    client: TestClient, deployment: SimpleNamespace
) -> None:
    deployment.uploads.mkdir()
    (deployment.uploads / "theirs.md").write_text("# Theirs\n\nNot uploaded here.\n")
    response = client.post(
        "/c/careers/documents", files=files(fixture("guide.md")),
        headers=bearer(deployment.uploader),
    )  # fmt: skip
    assert response.status_code == 409 and "were not uploaded here" in response.json()["detail"]
    assert sorted(p.name for p in deployment.uploads.iterdir()) == ["theirs.md"]


def test_uploads_at_once_are_all_indexed_by_one_build_at_a_time(
    deployment: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five clients upload together through a real server; every document is searchable
    when its 201 arrives, and builds never overlap."""
    import rag.serve.upkeep
    from tests.browser_helpers import LiveServer

    real = rag.serve.upkeep.build_collection
    running, overlaps, builds = [0], [0], [0]
    lock = threading.Lock()

    def counted(*args: Any, **kwargs: Any) -> Any:
        with lock:
            running[0] += 1
            builds[0] += 1
            overlaps[0] = max(overlaps[0], running[0])
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(rag.serve.upkeep, "build_collection", counted)
    settings = deployment.settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})
    server = LiveServer(create_app(settings)).start()
    results: dict[int, httpx.Response] = {}
    try:
        wait_for(lambda: httpx.get(f"{server.url}/c/careers/ready").status_code == 200)

        def upload(i: int) -> None:
            body = f"# Guide {i}\n\nWord{i} marks the guide numbered {i}.\n".encode()
            results[i] = httpx.post(
                f"{server.url}/c/careers/documents", files=files((f"g{i}.md", body)),
                headers=bearer(deployment.uploader), timeout=60,
            )  # fmt: skip

        threads = [threading.Thread(target=upload, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sorted(r.status_code for r in results.values()) == [201] * 5
        ids = {d["id"] for d in httpx.get(f"{server.url}/c/careers/documents").json()["documents"]}
        for response in results.values():
            assert set(response.json()["ids"]) <= ids
    finally:
        server.stop()
    assert overlaps[0] == 1 and 1 <= builds[0] <= 5


@pytest.mark.slow
def test_an_upload_to_rag_serve_is_searchable_with_the_real_model(tmp_path: Path) -> None:
    """`rag serve` as shipped: the real model builds the index on upload, and the uploaded
    PDF answers a question straight after the 201."""
    from tests.servers import child_env, rag_serve

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "welcome.md").write_text("# Welcome\n\nNew joiners meet their buddy on day one.\n")
    env = child_env(tmp_path / "index", corpus, tmp_path / "data")
    key = KeyStore(tmp_path / "data").create("cms", admin=True)[1]
    subprocess.run([sys.executable, "-m", "rag", "index"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    with rag_serve(env, tmp_path / "serve.log") as (url, _):
        response = httpx.post(f"{url}/documents", files=files(fixture("guide.pdf")),
                              headers=bearer(key), timeout=300)  # fmt: skip
        assert response.status_code == 201, response.text
        (pdf,) = response.json()["files"]
        assert pdf["type"] == "pdf" and pdf["ids"]
        hits = httpx.post(f"{url}/search", json={"query": "data engineer career guide", "k": 3})
        assert {h["citation"]["doc_id"] for h in hits.json()["results"]} & set(pdf["ids"])
        refused = httpx.post(f"{url}/documents", files=files(fixture("encrypted.pdf")),
                             headers=bearer(key), timeout=60)  # fmt: skip
        assert refused.status_code == 422
        kept = [p.name for p in (corpus / "uploads").iterdir() if not p.name.startswith(".")]
        assert kept == ["guide.pdf"]
