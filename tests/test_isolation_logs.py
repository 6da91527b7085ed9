"""Isolation of what is kept and reported: each collection's query log holds only the questions
asked of it, the coverage report of one collection (``/admin?collection=NAME``, ``rag report
--collection NAME``) only its rows, and the report of all of them keeps each collection's rows
under its own name; the command line's search, ask and documents read one collection only,
whatever the filters. The same two collections as tests/test_isolation.py."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from rag.cli import main
from rag.collections import Catalog
from rag.config import Settings
from rag.errors import ConfigError
from rag.index import load_index
from rag.search.retriever import Retriever
from rag.serve.app import create_app
from tests.collections_helpers import (
    CALLERS,
    OWN,
    PRIVATE,
    SHARED_ID,
    TOKEN,
    Deployment,
    foreign,
    make_deployment,
    wait_ready,
)

pytestmark = pytest.mark.usefixtures("plain_terminal")


@pytest.fixture
def deployment(tmp_path: Path, fake_embedder: Any, monkeypatch: Any) -> Deployment:
    def from_settings(cls: type[Retriever], settings: Settings) -> Retriever:
        return cls(load_index(Path(settings.index_dir)), fake_embedder)

    monkeypatch.setattr(Retriever, "from_settings", classmethod(from_settings))
    return make_deployment(tmp_path, fake_embedder, "careers")


def asked(name: str) -> str:
    """A question that says which collection it was asked of."""
    return f"how are engineers paid, asked-of-{name}"


@pytest.fixture
def logged(deployment: Deployment) -> Iterator[TestClient]:
    """A running server whose collections have each been asked and rated, by every caller
    that may ask them, on every query endpoint (the logs written when it stops)."""
    d = deployment
    with TestClient(create_app(d.settings)) as client:
        wait_ready(client, d)
        for caller in CALLERS:
            for name in d.names:
                if d.status(caller, name) != 200:
                    continue
                headers, path = d.headers(caller), f"/c/{name}"
                for endpoint in ("search", "ask"):
                    body = {"query": asked(name), "filters": {"doc_id": SHARED_ID}}
                    reply = client.post(f"{path}/{endpoint}", json=body, headers=headers)
                    assert reply.status_code == 200, reply.text
                chat = {"messages": [{"role": "user", "content": asked(name)}]}
                reply = client.post(f"{path}/chat", json=chat, headers=headers).json()
                rating = {"query_id": reply["query_id"], "rating": "down",
                          "comment": f"not enough, said-of-{name}"}  # fmt: skip
                assert client.post(f"{path}/feedback", json=rating, headers=headers).is_success
        yield client


def rows_of(d: Deployment, name: str) -> list[str]:
    db = d.settings.data_dir / name / "querylog.sqlite"
    with sqlite3.connect(db) as con:
        return [r[0] for r in con.execute("SELECT query FROM queries")]


def clean(d: Deployment, name: str, text: str) -> list[str]:
    """What of the other collection ``text`` (of ``name``'s) holds: its questions, comments,
    mark, documents."""
    other = PRIVATE if name == d.public else d.public
    found = foreign(d, name, text)
    return found + [w for w in (f"asked-of-{other}", f"said-of-{other}") if w in text]


def test_query_logs_and_admin_reports_keep_to_their_collection(
    logged: TestClient, deployment: Deployment
) -> None:
    d, client = deployment, logged
    admin = {"Authorization": f"Bearer {TOKEN}"}
    for name in d.names:
        report = client.get("/admin/report.json", params={"collection": name}, headers=admin)
        assert report.status_code == 200
        body = report.json()
        assert body["collection"] == name and body["queries"] > 0
        assert body["thumbs_down"]["count"] > 0
        assert not clean(d, name, report.text), name
        cited = {doc["id"] for doc in body["cited"]["documents"]}
        assert SHARED_ID in cited and cited <= {SHARED_ID, OWN[d.side(name)]["id"]}
        page = client.get("/admin", params={"collection": name}, headers=admin).text
        assert not clean(d, name, page)
    every = client.get("/admin/report.json", params={"collection": "all"}, headers=admin).json()
    assert list(every["collections"]) == list(d.names)
    for name, report in every["collections"].items():
        assert report["collection"] == name and not clean(d, name, json.dumps(report))
    table = client.get("/admin/report.csv", params={"collection": "all"}, headers=admin)
    rows = list(csv.DictReader(io.StringIO(table.text.lstrip("\ufeff"))))
    assert {r["collection"] for r in rows} == set(d.names)
    for row in rows:
        assert not clean(d, row["collection"], json.dumps(row)), row
    page = client.get("/admin", params={"collection": "all"}, headers=admin).text
    for name in d.names:
        start = page.index(f'<section class="collection" id="c-{name}">')
        end = page.find('<section class="collection"', start + 1)
        assert not clean(d, name, page[start : end if end > 0 else None]), name
    # The report is the admin's: a key scoped to a collection does not open it.
    for caller in CALLERS:
        status = client.get("/admin/report.json", headers=d.headers(caller)).status_code
        assert status == (200 if caller == "admin_key" else 401), caller
    assert client.get("/admin/report.json?collection=nothing", headers=admin).status_code == 404
    client.__exit__(None, None, None)  # stop the server: every queued log record written
    for name in d.names:
        logged_rows = rows_of(d, name)
        assert logged_rows and all(q == asked(name) for q in logged_rows), (name, logged_rows)


def test_admin_toolbar_links_each_collection_and_all(
    logged: TestClient, deployment: Deployment
) -> None:
    admin = {"Authorization": f"Bearer {TOKEN}"}
    params = {"collection": PRIVATE, "since": "2020-01-01"}
    page = logged.get("/admin", params=params, headers=admin).text
    # The period as the report reads it, carried by every link.
    since = "since=" + quote(
        logged.get("/admin/report.json", params=params, headers=admin).json()["since"], safe=""
    )
    menu = re.search(r'<nav aria-label="Collections">(.*?)</nav>', page)
    assert menu is not None
    links = re.findall(r'<a href="([^"]+)"( aria-current="page")?>([^<]+)</a>', menu.group(1))
    assert links == [
        (f"/admin?{since}&amp;collection={deployment.public}", "", deployment.public),
        (f"/admin?{since}&amp;collection={PRIVATE}", ' aria-current="page"', PRIVATE),
        (f"/admin?{since}&amp;collection=all", "", "All collections"),
    ]
    assert f'href="/admin/report.csv?{since}&amp;collection={PRIVATE}" download' in page
    assert f'<input type="hidden" name="collection" value="{PRIVATE}">' in page
    every = logged.get("/admin", params={"collection": "all"}, headers=admin).text
    assert "Coverage report: every collection" in every
    assert 'aria-current="page">All collections' in every
    assert every.count('<section class="collection"') == 2
    # Each collection's sections keep ids of their own on the one page.
    ids = re.findall(r' id="([^"]+)"', every)
    assert len(ids) == len(set(ids)) and f"{PRIVATE}-never_cited" in ids
    assert 'href="/admin/report.csv?collection=all" download' in every


def test_a_collection_may_not_be_called_all(tmp_path: Path) -> None:
    path = tmp_path / "rag.toml"
    path.write_text("[collections.all]\ncorpus = 'x'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'all' is reserved"):
        Catalog.from_settings(Settings(config=path))


# --------------------------------------------------------------------------- command line


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_command_line_reads_one_collection_whatever_the_filters(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deployment
    common = ["--config", str(d.config), "--index", str(d.root / "index")]
    problems = []
    for name in d.names:
        mine, other = OWN[d.side(name)], OWN["public" if d.side(name) == "private" else "private"]
        flags = [[], ["--doc", SHARED_ID], ["--tag", "eng"], ["--source", "guide"],
                 ["--doc", other["id"]], ["--doc", f"../{PRIVATE}/{SHARED_ID}"],
                 ["--tag", other["tag"]], ["--source", other["folder"]],
                 ["--source", f"../{PRIVATE}/"]]  # fmt: skip
        for command in ("search", "ask"):
            for extra in flags:
                argv = [command, "how are engineers paid", *common, "--collection", name,
                        "--json", *extra]  # fmt: skip
                code, out, err = run(capsys, *argv)
                where = f"{command} --collection {name} {' '.join(extra)}:"
                unknown = extra[:1] == ["--doc"] and extra[1] != SHARED_ID
                if code != (2 if unknown else 0):
                    problems.append(f"{where} exit {code}: {err}")
                if leaked := foreign(d, name, out + err, " ".join(extra)):
                    problems.append(f"{where} carries {leaked}")
                if code == 0 and extra[1:] in ([], [SHARED_ID], ["eng"], ["guide"]):
                    hits = json.loads(out)["results"]
                    if not hits or not all(mine["mark"] in h["text"] for h in hits):
                        problems.append(f"{where} passages {[h['text'] for h in hits]}")
        code, out, err = run(capsys, "documents", *common, "--collection", name, "--json")
        ids = {doc["id"] for doc in json.loads(out)["documents"]}
        if code != 0 or ids != {SHARED_ID, mine["id"]} or foreign(d, name, out):
            problems.append(f"documents --collection {name}: {code} {sorted(ids)}")
    assert not problems, "\n".join(problems)
    code, _, err = run(capsys, "search", "pay", *common)
    assert code == 2 and "choose one of careers, handbook" in err


def test_rag_report_gives_one_collection_or_each_in_turn(
    logged: TestClient, deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deployment
    logged.__exit__(None, None, None)  # the logs written
    common = ["--config", str(d.config), "--index", str(d.root / "index"),
              "--data", str(d.settings.data_dir)]  # fmt: skip
    for name in d.names:
        code, out, _ = run(capsys, "report", *common, "--collection", name, "--json")
        report = json.loads(out)
        assert code == 0 and report["queries"] > 0 and not clean(d, name, out), name
    code, out, _ = run(capsys, "report", *common, "--json")
    every = json.loads(out)["collections"]
    assert code == 0 and list(every) == list(d.names)
    for name, report in every.items():
        assert report["queries"] > 0 and not clean(d, name, json.dumps(report)), name
    code, out, _ = run(capsys, "report", *common)
    assert [line for line in out.splitlines() if line.startswith("== ")] == [
        f"== Collection {name}" for name in d.names
    ]
    html, table = d.root / "all.html", d.root / "all.csv"
    code, _, err = run(capsys, "report", *common, "--html", str(html), "--csv", str(table))
    assert code == 0 and "HTML report of 2 collections written" in err
    assert html.read_text(encoding="utf-8").count('<section class="collection"') == 2
    rows = list(csv.DictReader(io.StringIO(table.read_text(encoding="utf-8").lstrip("\ufeff"))))
    assert {r["collection"] for r in rows} == set(d.names)
    assert all(not clean(d, r["collection"], json.dumps(r)) for r in rows)
