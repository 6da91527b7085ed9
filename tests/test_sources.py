"""The web and folder sources (rag.sources), against a real site served on 127.0.0.1.

tests/websites.py serves a folder over HTTP with ETag and Last-Modified and logs every request,
so each test asserts on what was asked of the site as well as on the mirror it left.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient
from filelock import FileLock

from rag.config import Settings
from rag.errors import BadSourceConfig
from rag.index import build_index, load_index
from rag.index.lock import lock_path
from rag.ingest.loader import parse_file
from rag.ingest.urls import STATE_FILE, file_urls
from rag.present import hits_json
from rag.present import page_url as source_page
from rag.search import Retriever
from rag.serve.app import create_app
from rag.sources import (
    DEFAULT_USER_AGENT,
    FolderSource,
    State,
    SyncReport,
    WebSource,
    documents_dir,
    parse_sources,
    sync,
)
from tests.conftest import ROOT, FakeEmbedder
from tests.websites import Site, page, serve_site, sitemap, sitemap_index

FILES = ROOT / "tests" / "data" / "files"
GUIDES = ["engineer", "designer", "manager"]
NAV = [f"/guides/{name}.html" for name in GUIDES]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with serve_site(tmp_path / "site") as site:
        site.write("/robots.txt", "User-agent: *\nDisallow: /guides/private/\n")
        for name in GUIDES:
            site.write(f"/guides/{name}.html", page(name.title(), NAV))
        site.write("/sitemap.xml", sitemap([site.url(p) for p in NAV]))
        yield site


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    return tmp_path / "corpus" / "careers"


def web(site: Site, path: str, **options: object) -> WebSource:
    """A web source on the test site; no delay, so the tests do not wait on politeness."""
    return WebSource(url=site.url(path), **{"delay_seconds": 0, **options})


def mirrored(mirror: Path) -> dict[str, str]:
    """Each mirrored page's URL and its file's text."""
    state = State.read(mirror)
    return {e.canonical_url: (mirror / n).read_bytes().decode("utf-8", "replace")
            for n, e in state.files.items()}  # fmt: skip


def counts(report: SyncReport) -> dict[str, int]:
    return report.model_dump(include={"fetched", "unchanged", "added", "changed", "removed"})


def test_sitemap_mirrors_the_pages_it_lists(site: Site, mirror: Path) -> None:
    report = sync(web(site, "/sitemap.xml"), mirror)
    assert report.status == "ok", report
    assert counts(report) == {"fetched": 3, "unchanged": 0, "added": 3, "changed": 0,
                              "removed": 0}  # fmt: skip
    pages = mirrored(mirror)
    assert sorted(pages) == sorted(site.url(p) for p in NAV)
    # The main content is kept, the site's header, navigation and footer are not.
    engineer = pages[site.url("/guides/engineer.html")]
    assert "owns the quality of their projects" in engineer
    assert "All rights reserved" not in engineer and "<nav" not in engineer
    # robots.txt, then the sitemap, then its pages, two at a time: in either order.
    paths = site.paths()
    assert paths[:2] == ["/robots.txt", "/sitemap.xml"] and sorted(paths[2:]) == sorted(NAV)
    # Each file reads as a document like any HTML file of a corpus.
    name = next(n for n, e in State.read(mirror).files.items() if "engineer" in e.url)
    (doc,) = parse_file((mirror / name).read_bytes(), name)
    assert doc.title == "Engineer"
    assert [s.path for s in doc.sections][1] == ("Engineer", "Responsibilities")


@pytest.mark.parametrize("layout", ["index", "gzip", "index-of-gzip", "text"])
def test_sitemap_indexes_and_gzipped_sitemaps_are_read(
    site: Site, mirror: Path, layout: str
) -> None:
    first = sitemap([site.url(p) for p in NAV[:2]]).encode()
    second = sitemap([site.url(NAV[2])]).encode()
    if layout == "gzip":
        site.write("/sitemap.xml.gz", gzip.compress(sitemap([site.url(p) for p in NAV]).encode()))
        root = "/sitemap.xml.gz"
    elif layout == "text":  # the protocol's plain-text form: one URL a line
        site.write("/sitemap.txt", "".join(f"{site.url(p)}\n" for p in NAV))
        root = "/sitemap.txt"
    else:
        site.write("/maps/first.xml", first)
        zipped = layout == "index-of-gzip"
        site.write("/maps/second.xml.gz" if zipped else "/maps/second.xml",
                   gzip.compress(second) if zipped else second)  # fmt: skip
        maps = ["/maps/first.xml", "/maps/second.xml.gz" if zipped else "/maps/second.xml"]
        site.write("/sitemap_index.xml", sitemap_index([site.url(m) for m in maps]))
        root = "/sitemap_index.xml"
    report = sync(web(site, root), mirror)
    assert report.status == "ok", report
    assert sorted(mirrored(mirror)) == sorted(site.url(p) for p in NAV)


def test_include_keeps_only_the_listed_prefixes(site: Site, mirror: Path) -> None:
    site.write("/blog/news.html", page("News"))
    site.write("/sitemap.xml", sitemap([site.url(p) for p in [*NAV, "/blog/news.html"]]))
    report = sync(web(site, "/sitemap.xml", include=["/guides/"]), mirror)
    assert report.documents == 3
    assert "/blog/news.html" not in site.paths()


def test_crawl_stays_within_the_start_folder_and_depth(site: Site, mirror: Path) -> None:
    site.write("/guides/index.html", page("Guides", ["/guides/engineer.html", "/about.html",
                                                     "https://elsewhere.invalid/x.html"]))  # fmt: skip
    site.write("/guides/engineer.html", page("Engineer", ["/guides/deep/one.html"]))
    site.write("/guides/deep/one.html", page("One", ["/guides/deep/two.html", "/logo.png"]))
    site.write("/guides/deep/two.html", page("Two"))
    site.write("/about.html", page("About"))
    report = sync(web(site, "/guides/index.html", max_depth=2), mirror)
    assert report.status == "ok", report
    assert site.paths() == ["/robots.txt", "/guides/index.html", "/guides/engineer.html",
                            "/guides/deep/one.html"]  # fmt: skip
    assert sorted(mirrored(mirror)) == sorted(
        site.url(p)
        for p in ["/guides/index.html", "/guides/engineer.html", "/guides/deep/one.html"]
    )


def test_a_start_url_without_a_file_name_crawls_its_section(site: Site, mirror: Path) -> None:
    site.write("/guides/index.html", page("Guides", ["/guides/engineer.html", "/guides-old.html",
                                                     "/about.html"]))  # fmt: skip
    site.write("/guides-old.html", page("Old"))
    site.write("/about.html", page("About"))
    report = sync(web(site, "/guides", max_depth=1), mirror)
    assert report.status == "ok", report
    assert site.paths() == ["/robots.txt", "/guides", "/guides/engineer.html"]


def test_robots_txt_disallowed_paths_are_never_requested(site: Site, mirror: Path) -> None:
    site.write("/guides/private/salaries.html", page("Salaries"))
    site.write("/guides/index.html", page("Guides", [*NAV, "/guides/private/salaries.html"]))
    site.write(
        "/sitemap.xml", sitemap([site.url(p) for p in [*NAV, "/guides/private/salaries.html"]])
    )
    for root in ("/sitemap.xml", "/guides/index.html"):
        report = sync(web(site, root), mirror)
        assert report.skipped_robots == [site.url("/guides/private/salaries.html")]
    assert not [p for p in site.paths() if p.startswith("/guides/private/")]
    # robots.txt is read first, and every request says who is asking.
    assert site.paths()[0] == "/robots.txt"
    assert {r.user_agent for r in site.requested()} == {DEFAULT_USER_AGENT}


def test_robots_txt_crawl_delay_is_taken_when_longer(site: Site, mirror: Path) -> None:
    site.write("/robots.txt", "User-agent: career-rag\nCrawl-delay: 0.2\n")
    report = sync(web(site, "/sitemap.xml", delay_seconds=0.05), mirror)
    assert report.delay_seconds == 0.2


def test_at_most_two_connections_are_open_at_once(site: Site, mirror: Path) -> None:
    many = [f"/guides/role-{i}.html" for i in range(12)]
    for path in many:
        site.write(path, page(path.split("/")[-1]))
    site.write("/sitemap.xml", sitemap([site.url(p) for p in many]))
    report = sync(web(site, "/sitemap.xml"), mirror)
    assert report.documents == 12
    assert 1 <= site.max_in_flight <= 2


@pytest.mark.parametrize("etags", [True, False], ids=["etag", "last-modified"])
def test_resync_asks_conditionally_and_counts_unchanged(
    site: Site, mirror: Path, etags: bool
) -> None:
    site.etags = etags
    sync(web(site, "/sitemap.xml"), mirror)
    files = {p.name: p.stat().st_ino for p in mirror.iterdir()}
    site.clear_log()
    report = sync(web(site, "/sitemap.xml"), mirror)
    assert report.status == "ok"
    assert counts(report) == {"fetched": 0, "unchanged": 3, "added": 0, "changed": 0,
                              "removed": 0}  # fmt: skip
    pages = [r for r in site.requested() if r.path in NAV]
    assert [r.status for r in pages] == [304, 304, 304]
    for request in pages:
        assert request.if_modified_since
        assert (request.if_none_match is not None) == etags
    # Unchanged files are the same files (hard links into the new mirror), not copies.
    kept = {p.name: p.stat().st_ino for p in mirror.iterdir() if p.name in files}
    assert {k: v for k, v in kept.items() if k.endswith(".html")} == {
        k: v for k, v in files.items() if k.endswith(".html")
    }


def test_a_changed_page_is_fetched_again(site: Site, mirror: Path) -> None:
    sync(web(site, "/sitemap.xml"), mirror)
    site.write("/guides/designer.html", page("Designer", NAV, words="Designers now own research."))
    report = sync(web(site, "/sitemap.xml"), mirror)
    assert counts(report) == {"fetched": 1, "unchanged": 2, "added": 0, "changed": 1,
                              "removed": 0}  # fmt: skip
    assert "Designers now own research." in mirrored(mirror)[site.url("/guides/designer.html")]


def test_a_page_changed_only_outside_its_main_content_is_unchanged(
    site: Site, mirror: Path
) -> None:
    sync(web(site, "/sitemap.xml"), mirror)
    name = next(n for n, e in State.read(mirror).files.items() if "designer" in e.url)
    inode = (mirror / name).stat().st_ino
    site.write("/guides/designer.html", page("Designer", [*NAV, "/guides/new-in-the-menu.html"]))
    report = sync(web(site, "/sitemap.xml"), mirror)
    assert counts(report) == {"fetched": 1, "unchanged": 3, "added": 0, "changed": 0,
                              "removed": 0}  # fmt: skip
    assert (mirror / name).stat().st_ino == inode  # the file was not rewritten


def test_noindex_pages_are_not_kept_and_nofollow_links_not_followed(
    site: Site, mirror: Path
) -> None:
    hidden = page("Hidden", ["/guides/only-from-hidden.html"]).replace(
        "<head>", '<head><meta name="robots" content="noindex">'
    )
    site.write("/guides/hidden.html", hidden)
    site.write("/guides/only-from-hidden.html", page("Reached"))
    closed = page("Closed", ["/guides/not-followed.html"]).replace(
        "<head>", '<head><meta name="robots" content="nofollow">'
    )
    site.write("/guides/closed.html", closed)
    site.write("/guides/not-followed.html", page("Not followed"))
    site.write("/guides/index.html", page("Guides", ["/guides/hidden.html", "/guides/closed.html"]))
    report = sync(web(site, "/guides/index.html"), mirror)
    assert report.skipped == {
        site.url("/guides/hidden.html"): "the page asks not to be indexed (noindex)"
    }
    assert sorted(mirrored(mirror)) == sorted(site.url(p) for p in [
        "/guides/index.html", "/guides/closed.html", "/guides/only-from-hidden.html"])  # fmt: skip
    assert "/guides/not-followed.html" not in site.paths()


def test_pages_that_are_gone_are_removed(site: Site, mirror: Path) -> None:
    extra = ["/guides/intern.html", "/guides/lead.html"]
    for path in extra:
        site.write(path, page(path[8:-5].title()))
    site.write("/sitemap.xml", sitemap([site.url(p) for p in [*NAV, *extra]]))
    sync(web(site, "/sitemap.xml"), mirror)
    assert len(mirrored(mirror)) == 5
    site.remove("/guides/engineer.html")  # 404, still listed
    site.answers["/guides/designer.html"] = 410
    site.write("/sitemap.xml", sitemap([site.url(p) for p in [*NAV, extra[0]]]))  # lead unlisted
    report = sync(web(site, "/sitemap.xml"), mirror)
    assert report.status == "ok", report
    assert report.removed == 3
    assert sorted(mirrored(mirror)) == sorted(site.url(p) for p in ["/guides/manager.html",
                                                                     extra[0]])  # fmt: skip
    assert report.skipped == {site.url("/guides/engineer.html"): "HTTP 404",
                              site.url("/guides/designer.html"): "HTTP 410"}  # fmt: skip


def test_a_server_error_or_timeout_keeps_the_previous_copy(site: Site, mirror: Path) -> None:
    sync(web(site, "/sitemap.xml"), mirror)
    before = mirrored(mirror)
    site.answers["/guides/engineer.html"] = 500
    site.answers["/guides/designer.html"] = "stall"
    site.write("/guides/manager.html", page("Manager", NAV, words="Managers hire."))
    report = sync(web(site, "/sitemap.xml", timeout_seconds=2), mirror)
    assert report.status == "partial"
    assert report.errors == {site.url("/guides/engineer.html"): "HTTP 500",
                             site.url("/guides/designer.html"): "no answer within 2 s"}  # fmt: skip
    after = mirrored(mirror)
    for path in ("/guides/engineer.html", "/guides/designer.html"):
        assert after[site.url(path)] == before[site.url(path)]
    assert "Managers hire." in after[site.url("/guides/manager.html")]
    entries = {e.url: e for e in State.read(mirror).files.values()}
    assert entries[site.url("/guides/engineer.html")].status == 500


def test_pages_unreached_after_a_failure_keep_their_copy(site: Site, mirror: Path) -> None:
    site.write("/guides/index.html", page("Guides", NAV))
    sync(web(site, "/guides/index.html"), mirror)
    assert len(mirrored(mirror)) == 4
    site.answers["/guides/engineer.html"] = 503
    site.write("/guides/index.html", page("Guides", NAV[:1]))  # the others only via engineer now
    site.write("/guides/engineer.html", page("Engineer", NAV))
    report = sync(web(site, "/guides/index.html"), mirror)
    # engineer failed; its previous links still lead the crawl to the other two.
    assert report.status == "partial" and report.removed == 0
    assert len(mirrored(mirror)) == 4


def test_redirects_are_followed_within_scope_only(site: Site, mirror: Path) -> None:
    site.write("/guides/new.html", page("New"))
    site.write("/blog/elsewhere.html", page("Elsewhere"))
    site.answers["/guides/old.html"] = ("redirect", 301, "/guides/new.html")
    site.answers["/guides/away.html"] = ("redirect", 302, site.url("/blog/elsewhere.html"))
    site.write("/sitemap.xml", sitemap([site.url("/guides/old.html"),
                                        site.url("/guides/away.html")]))  # fmt: skip
    report = sync(web(site, "/sitemap.xml", include=["/guides/"]), mirror)
    assert list(mirrored(mirror)) == [site.url("/guides/new.html")]
    assert "/blog/elsewhere.html" not in site.paths()
    assert report.skipped == {
        site.url(
            "/guides/away.html"
        ): f"redirected out of scope to {site.url('/blog/elsewhere.html')}"
    }


def test_the_canonical_url_names_the_page(site: Site, mirror: Path) -> None:
    canonical = site.url("/guides/engineer.html")
    site.write("/guides/engineer-print.html", page("Engineer", canonical=canonical))
    site.write("/guides/designer.html", page("Designer", canonical="https://other.example/d"))
    site.write("/sitemap.xml", sitemap([site.url(p) for p in
                                        ["/guides/engineer-print.html", *NAV]]))  # fmt: skip
    report = sync(web(site, "/sitemap.xml"), mirror)
    urls = {e.url: e.canonical_url for e in State.read(mirror).files.values()}
    assert urls[site.url("/guides/engineer-print.html")] == canonical
    # A canonical URL out of scope is not ours to cite.
    assert urls[site.url("/guides/designer.html")] == site.url("/guides/designer.html")
    # The same page under its canonical URL is mirrored once.
    assert report.skipped == {
        canonical: f"the same page as {site.url('/guides/engineer-print.html')}"
    }
    assert report.documents == 3


def test_pdf_and_word_files_linked_in_scope_are_fetched(site: Site, mirror: Path) -> None:
    site.write("/guides/files/guide.pdf", (FILES / "guide.pdf").read_bytes())
    site.write("/guides/files/guide.docx", (FILES / "guide.docx").read_bytes())
    site.write("/other/guide.pdf", (FILES / "guide.pdf").read_bytes())
    links = [*NAV, "/guides/files/guide.pdf", "/guides/files/guide.docx", "/other/guide.pdf"]
    site.write("/guides/engineer.html", page("Engineer", links))
    for root in ("/sitemap.xml", "/guides/engineer.html"):
        report = sync(web(site, root, include=["/guides/"]), mirror)
        assert report.status == "ok", report
        files = {e.url: n for n, e in State.read(mirror).files.items()}
        for path in ("/guides/files/guide.pdf", "/guides/files/guide.docx"):
            name = files[site.url(path)]
            (doc,) = parse_file((mirror / name).read_bytes(), name)
            assert doc.title == "Data Engineer Career Guide"
        assert "/other/guide.pdf" not in site.paths()


def test_max_pages_caps_the_requests(site: Site, mirror: Path) -> None:
    report = sync(web(site, "/sitemap.xml", max_pages=2), mirror)
    assert report.stopped == "max_pages" and report.status == "ok"
    paths = site.paths()  # the two pages are fetched at once, in either order
    assert paths[:2] == ["/robots.txt", "/sitemap.xml"] and sorted(paths[2:]) == sorted(NAV[:2])
    assert report.documents == 2


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_page_over_the_byte_cap_is_not_kept(site: Site, mirror: Path, declared: bool) -> None:
    big = page("Manager", words="Long text. " * 20_000)
    if declared:
        site.write("/guides/manager.html", big)
    else:  # no Content-Length: the cap must hold while the body streams in
        site.answers["/guides/manager.html"] = ("chunked", big)
    report = sync(web(site, "/sitemap.xml", max_bytes_per_page=100_000), mirror)
    reason = f" (Content-Length {len(big.encode())})" if declared else ""
    assert report.errors == {site.url("/guides/manager.html"): f"larger than 100000 bytes{reason}"}
    assert site.url("/guides/manager.html") not in mirrored(mirror)
    assert report.documents == 2


def test_the_time_cap_stops_the_sync_and_keeps_what_was_not_reached(
    site: Site, mirror: Path
) -> None:
    sync(web(site, "/sitemap.xml"), mirror)
    before = mirrored(mirror)
    site.answers["/guides/manager.html"] = "stall"  # answers only when the test ends
    report = sync(web(site, "/sitemap.xml", max_seconds=2), mirror)
    assert report.stopped == "max_seconds" and report.status == "partial"
    # Pages not reached keep their copy, and nothing counts as gone on an unfinished sync.
    assert mirrored(mirror) == before
    assert report.removed == 0


@pytest.mark.parametrize("broken", ["robots", "sitemap", "start"])
def test_a_failed_sync_leaves_the_mirror_as_it_was(site: Site, mirror: Path, broken: str) -> None:
    source = web(site, "/sitemap.xml" if broken != "start" else "/guides/engineer.html")
    sync(source, mirror)
    before = {p.name: p.read_bytes() for p in mirror.iterdir()}
    site.write("/guides/engineer.html", page("Engineer", NAV, words="A change."))
    path = {"robots": "/robots.txt", "sitemap": "/sitemap.xml",
            "start": "/guides/engineer.html"}[broken]  # fmt: skip
    site.answers[path] = 503
    report = sync(source, mirror)
    assert report.status == "failed" and path in (report.error or "")
    assert report.documents == 3
    assert {p.name: p.read_bytes() for p in mirror.iterdir()} == before
    assert not list(mirror.parent.glob(".careers.tmp-*"))


def test_a_folder_that_is_not_a_mirror_is_never_replaced(site: Site, mirror: Path) -> None:
    mirror.mkdir(parents=True)
    (mirror / "notes.md").write_text("# Someone's notes\n")
    report = sync(web(site, "/sitemap.xml"), mirror)
    assert report.status == "failed" and "not a mirror" in (report.error or "")
    assert [p.name for p in mirror.iterdir()] == ["notes.md"]
    assert site.paths() == []


def test_one_sync_per_mirror_at_a_time(site: Site, mirror: Path) -> None:
    mirror.parent.mkdir(parents=True)
    with FileLock(lock_path(mirror.absolute()), timeout=0):
        report = sync(web(site, "/sitemap.xml"), mirror)
    assert report.status == "failed" and "another sync" in (report.error or "")
    assert site.paths() == []


def test_folder_source_reports_what_changed(tmp_path: Path) -> None:
    folder = tmp_path / "extra-guides"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nAlpha.\n")
    (folder / "b.md").write_text("# B\n\nBeta.\n")
    (folder / ".hidden.md").write_text("# H\n")
    source = FolderSource(path=folder)
    state_dir = tmp_path / "state"
    assert documents_dir(source, state_dir) == folder
    assert counts(sync(source, state_dir))["added"] == 2
    (folder / "a.md").write_text("# A\n\nAlpha, changed.\n")
    (folder / "b.md").unlink()
    (folder / "c.md").write_text("# C\n\nGamma.\n")
    report = sync(source, state_dir)
    assert counts(report) == {"fetched": 2, "unchanged": 0, "added": 1, "changed": 1,
                              "removed": 1}  # fmt: skip
    assert sync(FolderSource(path=tmp_path / "missing"), state_dir).status == "failed"


def test_reports_are_json(site: Site, mirror: Path) -> None:
    data = json.loads(sync(web(site, "/sitemap.xml"), mirror).model_dump_json())
    assert {"fetched", "unchanged", "added", "changed", "removed", "skipped_robots",
            "errors", "status"} <= set(data)  # fmt: skip


def test_source_config_as_the_collections_file_writes_it() -> None:
    web_source, folder = parse_sources([
        {"type": "web", "url": "https://careers.example.com/sitemap.xml",
         "include": ["/guides/"], "max_pages": 500},
        {"type": "folder", "path": "extra-guides"},
    ])  # fmt: skip
    assert isinstance(web_source, WebSource) and web_source.include == ["/guides/"]
    assert web_source.user_agent.startswith("career-rag/")
    assert isinstance(folder, FolderSource) and folder.path == Path("extra-guides")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "ftp", "url": "x"}, "sources[0]: type must be 'web' or 'folder'"),
        ({"url": "https://x.example/"}, "sources[0]: needs a type ('web' or 'folder')"),
        ({"type": "web", "url": "ftp://x.example/"},
         "sources[0].url: must be an http:// or https:// URL with a host"),
        ({"type": "web", "url": "https://x.example/", "include": ["guides/"]},
         "sources[0].include: path prefixes start with '/': 'guides/'"),
        ({"type": "web", "url": "https://x.example/", "max_pages": 0},
         "sources[0].max_pages: Input should be greater than or equal to 1"),
        ({"type": "web", "url": "https://x.example/", "connections": 8},
         "sources[0].connections: Input should be less than or equal to 2"),
        ({"type": "folder"}, "sources[0].path: Field required"),
        ({"type": "folder", "path": "x", "url": "y"}, "sources[0].url: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_bad_source_config_is_refused_clearly(raw: dict[str, object], message: str) -> None:
    with pytest.raises(BadSourceConfig) as caught:
        parse_sources([raw])
    assert str(caught.value) == message


def test_indexed_pages_keep_their_url_and_citations_link_to_them(
    site: Site, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    corpus = tmp_path / "corpus"
    site.write("/guides/files/guide.pdf", (FILES / "guide.pdf").read_bytes())
    site.write("/guides/engineer.html", page("Engineer", [*NAV, "/guides/files/guide.pdf"]))
    sync(web(site, "/guides/engineer.html"), corpus / "careers")
    (corpus / "notes.md").write_text("# Notes\n\nA local note about engineers and designers.\n")
    build_index(corpus, tmp_path / "index", fake_embedder)
    index = load_index(tmp_path / "index")
    urls = {d.source: d.meta.get("url") for d in index.documents()}
    assert urls["notes.md"] is None
    by_url = {u: s for s, u in urls.items() if u}
    assert set(by_url) == {site.url(p) for p in [*NAV, "/guides/files/guide.pdf"]}
    assert by_url[site.url("/guides/engineer.html")].startswith("careers/guides-engineer-")

    retriever = Retriever(index, fake_embedder)
    hits = retriever.search("owns the quality of their projects engineer", k=20).hits
    cited = [
        (hit.chunk.text, result["citation"])
        for hit, result in zip(hits, hits_json(hits), strict=True)
    ]
    text, engineer = next((t, c) for t, c in cited if c["title"] == "Engineer")
    link, _, fragment = engineer["source_url"].partition("#:~:text=")
    assert link == site.url("/guides/engineer.html") and engineer["url"].startswith("/view/")
    # The fragment is the passage's first words, as the page shows them.
    assert fragment and " ".join(text.split()).startswith(unquote(fragment))
    assert next(c for _, c in cited if c["source"] == "notes.md")["source_url"] is None
    pdf = [c for _, c in cited if c["source"].endswith(".pdf")]
    assert pdf and all(c["source_url"] == f"{site.url('/guides/files/guide.pdf')}#page={c['page']}"
                       for c in pdf)  # fmt: skip
    # The HTTP API's citations carry it too (its response model names the field).
    settings = Settings(index_dir=tmp_path / "index", corpus_dir=corpus, data_dir=tmp_path / "data",
                        allowed_hosts=["testserver"], rate_limit="off")  # fmt: skip
    with TestClient(create_app(settings, retriever)) as client:
        answer = client.post("/search", json={"query": "owns the quality engineer", "k": 20})
    assert answer.status_code == 200
    links = {r["citation"]["source"]: r["citation"]["source_url"] for r in answer.json()["results"]}
    assert links[by_url[site.url("/guides/engineer.html")]].startswith(
        site.url("/guides/engineer.html") + "#:~:text="
    )
    assert links["notes.md"] is None


@pytest.mark.parametrize(
    ("passage", "kind", "fragment"),
    [
        ("Build ETL pipelines, with Spark & co-workers.", None,
         "#:~:text=Build%20ETL%20pipelines%2C%20with%20Spark%20%26%20co%2Dworkers."),
        ("• Über-café hours: 9–5\nsecond line", None,
         "#:~:text=%C3%9Cber%2Dcaf%C3%A9%20hours%3A%209%E2%80%935"),
        ("one two three four five six seven eight nine ten", None,
         "#:~:text=one%20two%20three%20four%20five%20six%20seven%20eight"),
        ("Senior (L3), Scope: Owns pipelines.", "row", ""),
    ],
)  # fmt: skip
def test_source_url_carries_a_text_fragment(passage: str, kind: str | None, fragment: str) -> None:
    assert source_page("https://x.example/a#top", passage, kind) == f"https://x.example/a{fragment}"
    assert source_page(None, passage, kind) is None


def test_the_loader_ignores_a_damaged_or_hidden_state_file(tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "a.html").write_text(page("Alpha"))
    (tmp_path / "web" / STATE_FILE).write_text("{not json")
    (tmp_path / ".tmp" / "x").mkdir(parents=True)
    (tmp_path / ".tmp" / "x" / STATE_FILE).write_text(
        json.dumps({"files": {"a.html": {"url": "http://x.example/a"}}})
    )
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / STATE_FILE).write_text(json.dumps({"files": {
        "b.html": {"url": "http://x.example/b-old", "canonical_url": "http://x.example/b"},
        "c.html": {"url": None}, "d.html": "nonsense"}}))  # fmt: skip
    assert file_urls(tmp_path) == {"ok/b.html": "http://x.example/b"}
