"""Collections in a real headless Chromium: the chat page's picker and the widget's
``data-collection``, on a real server (uvicorn, real model) over a config file naming two public
collections and a private one, whose guides share their file name, title, sections and id."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser_helpers import (
    LiveServer,
    Sites,
    Tab,
    ask_widget,
    host_page,
    serve_collections,
    wait_settled,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Answers come from the real model on a small shared machine: be patient, not flaky.
expect.set_options(timeout=30_000)

CONFIG = """
[collections.careers]
public = true

[collections.handbook]
public = true

[collections.payroll]
public = false
"""
GUIDE = "# Engineering Guide\n\n## Pay\n\n{pay}\n\n## Growth\n\n{growth}\n"
GUIDES = {
    "careers": GUIDE.format(
        pay="Engineers joining our company are offered a competitive salary and a signing bonus.",
        growth="Engineers grow through mentoring circles and a yearly conference budget.",
    ),
    "handbook": GUIDE.format(
        pay="Internal pay band seven covers senior engineers between levels IC4 and IC5.",
        growth="Promotion packets of engineers are reviewed by the calibration panel.",
    ),
    "payroll": GUIDE.format(
        pay="Payroll pays engineers on the twenty-fifth through the Westbridge bank transfer.",
        growth="Payroll records of engineers are kept for seven years in the vault archive.",
    ),
}
# Words only one collection's guide has.
ONLY = {"careers": "signing bonus", "handbook": "pay band seven", "payroll": "Westbridge"}
QUESTION = "How are engineers paid?"


@pytest.fixture(scope="module")
def server(
    real_embedder: Any, sites: Sites, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    from rag.index import build_index

    root = tmp_path_factory.mktemp("collections")
    for name, text in GUIDES.items():
        (root / name).mkdir()
        (root / name / "engineering-guide.md").write_text(text, encoding="utf-8")
        build_index(root / name, root / "index" / name, real_embedder)
    config = root / "rag.toml"
    config.write_text(CONFIG, encoding="utf-8")
    with serve_collections(config, root / "index", root / "data", [sites.allowed.origin]) as s:
        sites.allowed.pages["/staff.html"] = host_page(s.url, "Staff portal", collection="handbook")
        sites.allowed.pages["/payroll.html"] = host_page(s.url, "Payroll", collection="payroll")
        yield s


def _sources(turn: Any) -> Any:
    return turn.get_by_role("region", name="Sources").get_by_role("listitem")


def _ask(page: Any, question: str) -> Any:
    """Ask on the chat page; the answer's article once it has settled."""
    box = page.get_by_label("Your question")
    box.fill(question)
    box.press("Enter")
    wait_settled(page.locator("#conversation"))
    return page.locator("article.msg-assistant").last


def _assert_from(turn: Any, name: str) -> None:
    """The turn's passages and links are ``name``'s, and no other collection's words show."""
    expect(turn.locator(".source-snippet").first).to_be_visible()
    shown = turn.inner_text()
    assert ONLY[name] in " ".join(turn.locator(".source-snippet").all_inner_texts()), shown
    for other, words in ONLY.items():
        if other != name:
            assert words not in shown, (other, shown)
    for link in turn.locator("a.source-link, a.cite").all():
        assert f"/c/{name}/view/engineering-guide" in (link.get_attribute("href") or "")


def test_chat_page_picker_switches_the_conversation_to_another_collection(
    tab: Tab, server: LiveServer
) -> None:
    page = tab.page
    with page.expect_response(re.compile(r"/collections$")):
        page.goto(f"{server.url}/")
    picker = page.get_by_role("combobox", name="Collection")
    expect(picker).to_be_visible()
    # The public collections only: the browser sends no key.
    expect(picker.locator("option")).to_have_text(["careers", "handbook"])
    # No collection is called "default": the first is asked, by name.
    expect(picker).to_have_value("careers")
    _assert_from(_ask(page, QUESTION), "careers")

    picker.select_option("handbook")
    expect(page.locator("article.msg-assistant")).to_have_count(0)  # a new conversation
    expect(page).to_have_url(f"{server.url}/c/handbook/")
    turn = _ask(page, QUESTION)
    _assert_from(turn, "handbook")
    turn.get_by_role("button", name="Helpful", exact=True).click()
    expect(turn.get_by_role("status")).to_have_text("Thanks for the feedback.")

    # The collection's own page, as a reload or a shared link opens it, and its viewer.
    page.reload()
    expect(page.get_by_role("combobox", name="Collection")).to_have_value("handbook")
    turn = _ask(page, QUESTION)
    _assert_from(turn, "handbook")
    with page.context.expect_page() as popup:
        turn.locator("a.source-link").first.click()
    viewer = popup.value
    expect(viewer.locator("mark")).to_have_count(1)
    text = viewer.locator("article.doc").inner_text()
    assert ONLY["handbook"] in text and ONLY["careers"] not in text
    assert not tab.dialogs and not tab.errors


def test_widget_with_data_collection_asks_that_collection(
    tab: Tab, server: LiveServer, sites: Sites
) -> None:
    page = tab.page
    page.goto(f"{sites.allowed.origin}/staff.html")
    answer = ask_widget(page, QUESTION)
    wait_settled(answer)
    links = answer.get_by_role("list", name="Sources").get_by_role("link")
    expect(links.first).to_be_visible()
    for href in [a.get_attribute("href") or "" for a in links.all()]:
        assert href.startswith(f"{server.url}/c/handbook/view/engineering-guide"), href
    shown = answer.inner_text()
    assert ONLY["handbook"] in shown and ONLY["careers"] not in shown, shown
    # Rated where it was asked: the server has no default collection behind /feedback.
    answer.get_by_role("button", name="Helpful", exact=True).click()
    expect(answer.get_by_role("status")).to_have_text("Thanks!")
    assert not tab.dialogs and not tab.errors


def test_widget_on_a_private_collection_says_it_needs_a_key(
    tab: Tab, server: LiveServer, sites: Sites
) -> None:
    page = tab.page
    page.goto(f"{sites.allowed.origin}/payroll.html")
    answer = ask_widget(page, QUESTION)
    wait_settled(answer)
    expect(answer.get_by_role("alert")).to_contain_text("collection 'payroll' is private")
    assert ONLY["payroll"] not in answer.inner_text()
