"""Sources wired into collections: the config file's [[collections.NAME.sources]], the corpus
folder of links a collection is indexed from, `rag sync` against a real site on 127.0.0.1, and
the server's scheduled sync. The slow test at the end syncs a pandoc-rendered handbook with the
real model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from filelock import FileLock

from rag.cli import main
from rag.collections import Catalog
from rag.config import Settings
from rag.errors import ConfigError
from rag.index.manifest import Manifest
from rag.ingest.loader import load_corpus
from rag.sources import FolderSource, WebSource
from tests.conftest import ROOT, FakeEmbedder
from tests.websites import Site, page, serve_site, sitemap

pytestmark = pytest.mark.usefixtures("plain_terminal")

GUIDES = ["engineer", "designer", "manager", "analyst"]
NAV = [f"/guides/{name}.html" for name in GUIDES]
ISSUE_CONFIG = """
[collections.careers]
sync_every = "6h"

[[collections.careers.sources]]
type = "web"
url = "https://careers.example.com/sitemap.xml"   # a sitemap, or a start page to crawl
include = ["/guides/"]                            # path prefixes kept (optional)
max_pages = 500

[[collections.careers.sources]]
type = "folder"
path = "extra-guides"
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with serve_site(tmp_path / "site") as site:
        site.write("/robots.txt", "User-agent: *\nDisallow: /guides/manager.html\n")
        for name in GUIDES:
            site.write(f"/guides/{name}.html", page(name.title(), NAV))
        site.write("/sitemap.xml", sitemap([site.url(p) for p in NAV]))
        yield site


@pytest.fixture
def env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder: FakeEmbedder
) -> SimpleNamespace:
    """The CLI on tmp_path's folders, every model load answered by the fake embedder."""
    import rag.models.embedder
    import rag.models.query

    loads: list[str] = []

    def load_embedder(model: str = "", batch_size: int = 64) -> FakeEmbedder:
        loads.append(model)
        embedder = FakeEmbedder()
        embedder.model_id = model
        return embedder

    monkeypatch.setattr(rag.models.embedder, "load_embedder", load_embedder)
    monkeypatch.setattr(rag.models.query, "load_embedder", load_embedder)
    monkeypatch.setenv("RAG_MODEL", "fake-hash-embedder")
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(tmp_path / "corpus"))
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "oncall.md").write_text(
        "# On-call Guide\n\nOn-call rotations last one week and hand over on Mondays.\n"
    )
    return SimpleNamespace(root=tmp_path, loads=loads, config=tmp_path / "rag.toml")


def write_config(env: SimpleNamespace, site: Site, **extra: str) -> Path:
    lines = [f"{k} = {v}" for k, v in extra.items()]
    env.config.write_text(
        "[collections.careers]\npublic = true\n" + "\n".join(lines) + "\n"
        "[[collections.careers.sources]]\n"
        f'type = "web"\nurl = "{site.url("/sitemap.xml")}"\ninclude = ["/guides/"]\n'
        "max_pages = 500\ndelay_seconds = 0\n"
        '[[collections.careers.sources]]\ntype = "folder"\npath = "extra"\n',
        encoding="utf-8",
    )
    return env.config


def rag_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def by_name(outcome: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["type"]: s for s in outcome["sources"]}


COUNTS = ("fetched", "unchanged", "added", "changed", "removed")


def counts(source: dict[str, Any]) -> dict[str, int]:
    return {k: source[k] for k in COUNTS}


# --------------------------------------------------------------------------- the config file


def test_the_config_file_takes_sources_exactly_as_the_issue_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "rag.toml"
    path.write_text(ISSUE_CONFIG, encoding="utf-8")
    settings = Settings(config=path, data_dir=tmp_path / "data", index_dir=tmp_path / "index")
    (careers,) = Catalog.from_settings(settings)
    web, folder = careers.sources
    assert isinstance(web, WebSource) and isinstance(folder, FolderSource)
    assert (web.url, web.include, web.max_pages) == (
        "https://careers.example.com/sitemap.xml", ["/guides/"], 500,
    )  # fmt: skip
    assert folder.path == tmp_path / "extra-guides"  # relative to the config file
    assert careers.settings.sync_every == 6 * 3600
    layout = careers.layout
    assert layout.managed and careers.corpus_dir == tmp_path / "data" / "careers" / "corpus"
    assert [e.name for e in layout.entries] == ["careers.example.com", "extra-guides"]
    assert layout.entries[0].mirror_dir == careers.corpus_dir / "careers.example.com"
    assert layout.entries[1].documents_dir == tmp_path / "extra-guides"
    assert layout.uploads_dir == careers.corpus_dir / "uploads"


def test_corpus_alone_is_one_folder_read_in_place(tmp_path: Path) -> None:
    path = tmp_path / "rag.toml"
    path.write_text('[collections.careers]\ncorpus = "careers"\n', encoding="utf-8")
    (careers,) = Catalog.from_settings(Settings(config=path, data_dir=tmp_path / "data"))
    layout = careers.layout
    assert not layout.managed and layout.corpus_dir == tmp_path / "careers"
    assert careers.sources == (FolderSource(path=tmp_path / "careers"),)
    assert layout.uploads_dir == tmp_path / "careers" / "uploads"
    assert layout.assemble() == [] and not (tmp_path / "data").exists()  # nothing to lay out


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('[[collections.a.sources]]\ntype = "web"\nurl = "ftp://x"\n', "collections.a.sources.0.url"),
        ('[[collections.a.sources]]\ntype = "web"\nurl = "https://x/"\nmax_pages = 0\n',
         "collections.a.sources.0.max_pages"),
        ('[[collections.a.sources]]\ntype = "ftp"\n', "collections.a.sources.0"),
        ('[[collections.a.sources]]\ntype = "folder"\npath = "x"\nkind = 1\n', "kind"),
        ('[collections.a]\nsync_every = "soon"\n', "sync_every"),
        ('[collections.a]\nsync_every = "-1h"\n', "sync_every"),
    ],
)  # fmt: skip
def test_a_bad_source_is_one_clear_config_error(tmp_path: Path, table: str, says: str) -> None:
    path = tmp_path / "rag.toml"
    path.write_text(table, encoding="utf-8")
    with pytest.raises(ConfigError, match=says) as caught:
        Catalog.from_settings(Settings(config=path))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_the_loader_reads_linked_folders_once_and_ends_loops(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "linked.md").write_text("# Linked Guide\n\nRead through a link.\n")
    (outside / "back").symlink_to(tmp_path / "corpus", target_is_directory=True)  # a loop
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "own.md").write_text("# Own Guide\n\nRead in place.\n")
    (corpus / "a-link").symlink_to(outside, target_is_directory=True)
    (corpus / "b-link").symlink_to(outside, target_is_directory=True)  # the same folder again
    docs, sources = load_corpus(corpus)
    assert [s.path for s in sources] == ["a-link/linked.md", "own.md"]
    assert sorted(d.title for d in docs) == ["Linked Guide", "Own Guide"]


# --------------------------------------------------------------------------- rag sync


def test_rag_sync_indexes_a_site_and_a_folder_and_citations_link_the_pages(
    env: SimpleNamespace, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(env, site)
    code, out, err = rag_json(capsys, "sync", "--config", str(config), "--json")
    assert code == 0, err
    (outcome,) = out["collections"]
    assert (outcome["collection"], outcome["status"]) == ("careers", "ok")
    web, folder = by_name(outcome)["web"], by_name(outcome)["folder"]
    assert counts(web) == {"fetched": 3, "unchanged": 0, "added": 3, "changed": 0, "removed": 0}
    assert web["skipped_robots"] == [site.url("/guides/manager.html")] and web["errors"] == {}
    assert counts(folder) == {"fetched": 1, "unchanged": 0, "added": 1, "changed": 0, "removed": 0}
    assert outcome["index"]["status"] == "built" and outcome["index"]["documents"] == 4
    assert "/guides/manager.html" not in site.paths()  # disallowed: never asked for
    code, found, _ = rag_json(capsys, "search", "designer career growth", "--config", str(config),
                              "--json", "-k", "1")  # fmt: skip
    assert code == 0
    citation = found["results"][0]["citation"]
    assert citation["source"].startswith(
        f"127.0.0.1-{site.base.rsplit(':', 1)[1]}/guides-designer-"
    )
    assert citation["source_url"].startswith(site.url("/guides/designer.html") + "#:~:text=")
    code, found, _ = rag_json(capsys, "search", "on-call rotations", "--config", str(config),
                              "--json", "-k", "1")  # fmt: skip
    assert found["results"][0]["citation"]["source"] == "extra/oncall.md"
    assert found["results"][0]["citation"]["source_url"] is None


def test_a_second_sync_reports_what_changed_and_asks_for_the_rest_conditionally(
    env: SimpleNamespace, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(env, site)
    assert rag_json(capsys, "sync", "--config", str(config), "--json")[0] == 0
    site.write("/guides/engineer.html", page("Engineer", NAV, words="Engineers now pair weekly."))
    site.remove("/guides/designer.html")
    site.clear_log()
    code, out, err = rag_json(capsys, "sync", "--config", str(config), "--json")
    assert code == 0, err
    web = by_name(out["collections"][0])["web"]
    assert counts(web) == {"fetched": 1, "unchanged": 1, "added": 0, "changed": 1, "removed": 1}
    assert web["skipped"] == {site.url("/guides/designer.html"): "HTTP 404"}
    analyst = site.requested("/guides/analyst.html")
    assert [(r.status, r.if_none_match is not None) for r in analyst] == [(304, True)]
    assert site.requested("/guides/engineer.html")[0].if_none_match is not None  # asked too
    index = out["collections"][0]["index"]
    assert index["status"] == "built" and index["changes"]["documents"]["removed"] == 1
    code, docs, _ = rag_json(capsys, "documents", "--config", str(config), "--json")
    titles = sorted(d["title"] for d in docs["documents"])
    assert titles == ["Analyst", "Engineer", "On-call Guide"]


def test_a_sync_with_nothing_changed_leaves_the_index_alone(
    env: SimpleNamespace, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(env, site)
    assert rag_json(capsys, "sync", "--config", str(config), "--json")[0] == 0
    built = Manifest.read(env.root / "index" / "careers").build_id
    env.loads.clear()
    code, out, _ = rag_json(capsys, "sync", "--config", str(config), "--json")
    assert code == 0 and out["collections"][0]["index"]["status"] == "unchanged"
    assert Manifest.read(env.root / "index" / "careers").build_id == built
    assert env.loads == []  # no model loaded when nothing is to be built
    code = main(["sync", "--config", str(config)])
    text = capsys.readouterr().out
    assert code == 0 and "Index: unchanged" in text and "1 skipped by robots.txt" in text


def test_a_failed_sync_keeps_the_previous_index_serving_and_says_why(
    env: SimpleNamespace, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(env, site)
    assert rag_json(capsys, "sync", "--config", str(config), "--json")[0] == 0
    index_dir = env.root / "index" / "careers"
    built = Manifest.read(index_dir).build_id
    site.answers["/robots.txt"] = 503
    (env.root / "extra" / "oncall.md").write_text("# On-call Guide\n\nNow two weeks long.\n")
    code, out, err = rag_json(capsys, "sync", "--config", str(config), "--json")
    assert code == 2
    # One line from rag (the test site's server thread may log a reset connection too).
    (line,) = [ln for ln in err.splitlines() if ln.startswith("rag: ")]
    assert line.startswith("rag: error: collection 'careers': source 127.0.0.1-")
    assert "robots.txt" in line and "still served" in line
    web = by_name(out["collections"][0])["web"]
    assert web["status"] == "failed" and "robots.txt" in web["error"]
    # The folder's change is indexed; the site's pages stay as they were.
    assert out["collections"][0]["index"]["status"] == "built"
    assert Manifest.read(index_dir).build_id != built
    code, docs, _ = rag_json(capsys, "documents", "--config", str(config), "--json")
    assert len(docs["documents"]) == 4


def test_a_failed_build_keeps_the_previous_index(
    env: SimpleNamespace, site: Site, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import rag.models.embedder

    config = write_config(env, site)
    assert rag_json(capsys, "sync", "--config", str(config), "--json")[0] == 0
    built = Manifest.read(env.root / "index" / "careers").build_id

    def no_model(model: str = "", batch_size: int = 64) -> None:
        raise OSError("cannot load the model")

    monkeypatch.setattr(rag.models.embedder, "load_embedder", no_model)
    site.write("/guides/analyst.html", page("Analyst", NAV, words="Analysts now own dashboards."))
    code, out, err = rag_json(capsys, "sync", "--config", str(config), "--json")
    assert code == 2 and "re-index failed" in err and "cannot load the model" in err
    assert out["collections"][0]["index"]["status"] == "failed"
    assert Manifest.read(env.root / "index" / "careers").build_id == built


def test_a_source_taken_out_of_the_config_takes_its_documents_with_it(
    env: SimpleNamespace, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(env, site)
    assert rag_json(capsys, "sync", "--config", str(config), "--json")[0] == 0
    env.config.write_text(
        '[collections.careers]\n[[collections.careers.sources]]\ntype = "folder"\npath = "extra"\n'
        '[[collections.careers.sources]]\ntype = "folder"\npath = "more"\n'
    )
    (env.root / "more").mkdir()
    (env.root / "more" / "perks.md").write_text("# Perks\n\nThe gym is free.\n")
    code, out, _ = rag_json(capsys, "sync", "--config", str(config), "--json")
    assert code == 0 and out["collections"][0]["removed_sources"] == [
        f"127.0.0.1-{site.base.rsplit(':', 1)[1]}"
    ]
    code, docs, _ = rag_json(capsys, "documents", "--config", str(config), "--json")
    assert sorted(d["source"] for d in docs["documents"]) == ["extra/oncall.md", "more/perks.md"]


def test_without_a_config_file_rag_sync_syncs_the_corpus_folder(
    env: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = env.root / "corpus"
    corpus.mkdir()
    (corpus / "guide.md").write_text("# Guide\n\nA guide in the corpus folder.\n")
    code, out, _ = rag_json(capsys, "sync", "--json")
    assert code == 0
    (outcome,) = out["collections"]
    assert outcome["collection"] == "default" and outcome["index"]["status"] == "built"
    assert counts(outcome["sources"][0])["added"] == 1
    assert Manifest.read(env.root / "index").sources == {
        "guide.md": Manifest.read(env.root / "index").sources["guide.md"]
    }
    assert main(["sync", "--collection", "other"]) == 2
    assert "needs a config file" in capsys.readouterr().err


def test_one_sync_of_a_collection_at_a_time(
    env: SimpleNamespace, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(env, site)
    state = env.root / "data" / "careers" / "sources"
    state.mkdir(parents=True)
    with FileLock(state / ".sync.lock"):
        code = main(["sync", "--config", str(config)])
    assert code == 2
    assert "another sync of collection 'careers' is running" in capsys.readouterr().err


# --------------------------------------------------------------------------- rag serve


def test_the_server_syncs_on_schedule_and_serves_the_new_index(
    env: SimpleNamespace, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.index import load_index
    from rag.search.retriever import Retriever
    from rag.serve.app import create_app

    def from_settings(cls: type[Retriever], settings: Settings) -> Retriever:
        return cls(load_index(Path(settings.index_dir)), FakeEmbedder())

    monkeypatch.setattr(Retriever, "from_settings", classmethod(from_settings))
    config = write_config(env, site, sync_every='"1s"')
    settings = Settings(config=config, allowed_hosts=["testserver"], rate_limit="off")

    def titles(client: TestClient) -> list[str]:
        response = client.get("/c/careers/documents")
        return sorted(d["title"] for d in response.json().get("documents", []))

    deadline = time.monotonic() + 60
    with TestClient(create_app(settings)) as client:
        # No index yet: the first scheduled sync builds one, and the server serves it.
        while titles(client) != ["Analyst", "Designer", "Engineer", "On-call Guide"]:
            assert time.monotonic() < deadline, titles(client)
            time.sleep(0.05)
        site.write("/guides/recruiter.html", page("Recruiter", NAV))
        site.write("/sitemap.xml", sitemap([site.url(p) for p in [*NAV, "/guides/recruiter.html"]]))
        while "Recruiter" not in titles(client):
            assert time.monotonic() < deadline, titles(client)
            time.sleep(0.05)
        # The event loop never waited on a sync: the health check answered throughout.
        assert client.get("/health").status_code == 200


# --------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_rag_sync_indexes_a_real_handbook_site_with_the_real_model(tmp_path: Path) -> None:
    """29 pandoc-rendered pages of the interview handbook, a sitemap and a robots.txt that
    disallows one, synced by `rag sync` in a process of its own with the real model."""
    from benchmarks.sources import DEFAULT_CORPUS, build_site, write_sitemap
    from tests.servers import child_env

    root = tmp_path / "site"
    paths, disallowed = build_site(DEFAULT_CORPUS, root)
    assert len(paths) >= 20
    with serve_site(root) as site:
        write_sitemap(root, site.base, paths)
        config = tmp_path / "rag.toml"
        config.write_text(
            "[collections.handbook]\npublic = true\n[[collections.handbook.sources]]\n"
            f'type = "web"\nurl = "{site.url("/sitemap.xml")}"\ndelay_seconds = 0\n'
        )
        env = child_env(tmp_path / "index", tmp_path / "corpus", tmp_path / "data",
                        RAG_CONFIG=str(config))  # fmt: skip

        def rag(*argv: str) -> dict[str, Any]:
            run = subprocess.run([sys.executable, "-m", "rag", *argv, "--json"], env=env,
                                 cwd=ROOT, capture_output=True, text=True, timeout=900)  # fmt: skip
            assert run.returncode == 0, run.stderr[-2000:]
            return json.loads(run.stdout)

        first = rag("sync")["collections"][0]
        (web,) = first["sources"]
        assert web["added"] == len(paths) - 1 == web["documents"]
        assert web["skipped_robots"] == [site.url(disallowed)]
        assert disallowed not in site.paths()
        assert first["index"]["status"] == "built"
        found = rag("search", "how should I negotiate a job offer", "-k", "3")
        for hit in found["results"]:
            assert hit["citation"]["source_url"].startswith(site.url("/handbook/"))
        kept = [p for p in paths if p != disallowed]
        edited, removed = kept[0], kept[1]
        text = (root / edited.lstrip("/")).read_text()
        (root / edited.lstrip("/")).write_text(
            text.replace("</article>", "<p>A paragraph added by the test.</p></article>")
        )
        (root / removed.lstrip("/")).unlink()
        site.clear_log()
        second = rag("sync")["collections"][0]
        (web,) = second["sources"]
        assert (web["changed"], web["removed"], web["added"]) == (1, 1, 0)
        assert web["unchanged"] == len(kept) - 2
        not_modified = [r for r in site.requested() if r.status == 304]
        assert len(not_modified) == len(kept) - 2
        assert all(r.if_none_match for r in not_modified)
        assert second["index"]["status"] == "built"
        assert second["index"]["changes"]["documents"]["removed"] == 1
        assert os.path.basename(removed) not in json.dumps(rag("documents"))
