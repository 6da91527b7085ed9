"""The chat page, the source viewer and the widget, driven in a real headless Chromium.

One browser per module and a fresh tab per test (the ``browser``, ``sites`` and ``tab`` fixtures
of tests/conftest.py); one real server (uvicorn, real model) per index: the real corpus, and a
small corpus whose guide carries HTML payloads. Host pages for the widget are served from other
origins: one on the CORS allowlist, one off it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.browser_helpers import (
    ROOT,
    LiveServer,
    Sites,
    Tab,
    ask_widget,
    host_page,
    serve_index,
    wait_settled,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Answers come from the real model on a small shared machine: be patient, not flaky.
expect.set_options(timeout=30_000)

XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_SCRIPT = "<script>alert(1)</script>"
# Markdown shows markup as text in code spans (raw HTML in markdown is markup, and dropped).
XSS_GUIDE = f"""# Web Security Analyst

## Overview

A web security analyst reviews suspicious payloads such as `{XSS_IMG}` and `{XSS_SCRIPT}` that
attackers inject into web forms, and explains to developers why they are dangerous.

## Payloads like `{XSS_IMG}`

Analysts keep a catalogue of payloads and test every form of the site against it.

## Salary

Web security analysts earn between $90,000 and $140,000 a year in the United States.
"""
OTHER_GUIDE = """# Data Engineer

## Overview

A data engineer builds and maintains the pipelines that move data into the warehouse.
"""


@pytest.fixture(scope="module")
def real_server(
    real_index_dir: Path,
    real_retriever: Any,
    sites: Sites,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("data")
    with serve_index(real_index_dir, real_retriever, [sites.allowed.origin], data) as server:
        page = host_page(server.url, "Foreign careers site")
        sites.allowed.pages["/careers.html"] = page
        sites.refused.pages["/careers.html"] = page
        yield server


@pytest.fixture(scope="module")
def xss_server(
    real_embedder: Any, sites: Sites, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    from rag.index import build_index, load_index
    from rag.search.retriever import Retriever

    root = tmp_path_factory.mktemp("xss")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "web-security-analyst.md").write_text(XSS_GUIDE, encoding="utf-8")
    (corpus / "data-engineer.md").write_text(OTHER_GUIDE, encoding="utf-8")
    build_index(corpus, root / "index", real_embedder)
    retriever = Retriever.from_index(load_index(root / "index"))
    with serve_index(
        root / "index", retriever, [sites.allowed.origin], root / "data", corpus_dir=corpus
    ) as server:
        sites.allowed.pages["/xss.html"] = host_page(server.url, "Security blog")
        yield server


def _cited_span(href: str, retriever: Any) -> tuple[str, str]:
    """The document id and the exact passage a viewer link points at."""
    parts = urlsplit(href)
    doc_id = unquote(parts.path.rsplit("/", 1)[-1])
    query = parse_qs(parts.query)
    start, end = int(query["start"][0]), int(query["end"][0])
    doc = retriever.index.document(doc_id)
    return doc_id, doc.text[start - doc.offset : end - doc.offset]


def _count(page: Page, selector: str) -> int:
    """Elements matching ``selector`` in the document and in every open shadow root."""
    return page.evaluate(
        """sel => {
            let n = 0;
            const walk = (root) => {
                n += root.querySelectorAll(sel).length;
                for (const el of root.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot);
            };
            walk(document);
            return n;
        }""",
        selector,
    )


# --------------------------------------------------------------------------- widget


def test_widget_on_allowed_foreign_origin_answers_with_sources(
    tab: Tab, real_server: LiveServer, sites: Sites
) -> None:
    page = tab.page
    page.goto(f"{sites.allowed.origin}/careers.html")
    answer = ask_widget(page, "what skills does an ML fraud engineer need")
    wait_settled(answer)

    expect(answer.locator(".answer")).to_contain_text(re.compile(r"\w{4,}.*\[\d\]"))
    sources = answer.get_by_role("list", name="Sources").get_by_role("listitem")
    expect(sources.first).to_be_visible()
    assert any("ML Fraud Detection Engineer" in t for t in sources.all_inner_texts())
    link = sources.first.get_by_role("link")
    href = link.get_attribute("href") or ""
    assert href.startswith(f"{real_server.url}/view/"), href
    assert any(
        (a.get_attribute("href") or "").startswith(f"{real_server.url}/view/ml-fraud-detection")
        for a in sources.get_by_role("link").all()
    )

    # The host page's `*{color:red}` does not reach into the shadow root.
    color = answer.locator(".answer").evaluate("e => getComputedStyle(e).color")
    assert color != "rgb(255, 0, 0)"

    answer.get_by_role("button", name="Helpful", exact=True).click()
    expect(answer.get_by_role("status")).to_have_text("Thanks!")
    assert not tab.dialogs and not tab.errors


def test_widget_opens_on_ctrl_k_and_closes_on_escape(
    tab: Tab, real_server: LiveServer, sites: Sites
) -> None:
    page = tab.page
    page.goto(f"{sites.allowed.origin}/careers.html")
    launcher = page.get_by_role("button", name=re.compile(r"^Ask"))
    expect(launcher).to_have_attribute("aria-expanded", "false")
    panel = page.get_by_role("dialog")
    expect(panel).to_be_hidden()

    page.keyboard.press("Control+k")
    expect(panel).to_be_visible()
    expect(page.get_by_label("Your question")).to_be_focused()
    expect(launcher).to_have_attribute("aria-expanded", "true")

    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(launcher).to_be_focused()
    expect(launcher).to_have_attribute("aria-expanded", "false")

    launcher.click()
    expect(panel).to_be_visible()
    page.get_by_role("button", name="Close").click()
    expect(panel).to_be_hidden()


def test_widget_follows_its_data_attributes_and_the_colour_scheme(
    tab: Tab, real_server: LiveServer, sites: Sites
) -> None:
    page = tab.page
    sites.allowed.pages["/themed.html"] = host_page(
        real_server.url, "Themed", accent="#ffcc00", position="bottom-left", title="Career help"
    )
    page.goto(f"{sites.allowed.origin}/themed.html")
    launcher = page.get_by_role("button", name=re.compile(r"^Ask"))
    expect(launcher).to_have_accessible_name(re.compile("Career help"))
    box = launcher.bounding_box()
    assert box is not None and box["x"] < 100, box  # bottom-left
    colours = launcher.evaluate(
        "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]"
    )
    # A light accent gets dark text on it, and the host page's `button{background:lime}` and
    # `*{color:red}` stay outside the shadow root.
    assert colours == ["rgb(255, 204, 0)", "rgb(17, 24, 39)"], colours
    launcher.click()
    panel = page.get_by_role("dialog", name="Career help")
    expect(panel).to_be_visible()

    def background() -> str:
        return panel.evaluate("e => getComputedStyle(e).backgroundColor")

    light = background()
    page.emulate_media(color_scheme="dark")
    assert background() != light


def test_widget_source_link_opens_viewer_with_cited_span_highlighted(
    tab: Tab, real_server: LiveServer, sites: Sites, real_retriever: Any
) -> None:
    page = tab.page
    page.goto(f"{sites.allowed.origin}/careers.html")
    answer = ask_widget(page, "what skills does an ML fraud engineer need")
    wait_settled(answer)
    # The last source is the likeliest to sit far down its guide: the viewer must scroll to it.
    link = answer.get_by_role("list", name="Sources").get_by_role("link").last
    href = link.get_attribute("href") or ""
    doc_id, passage = _cited_span(href, real_retriever)

    with page.context.expect_page() as popup:
        link.click()
    viewer = popup.value
    mark = viewer.locator("mark")
    expect(mark).to_have_count(1)
    assert mark.text_content() == passage
    expect(mark).to_be_in_viewport()

    doc = real_retriever.index.document(doc_id)
    expect(viewer.get_by_role("heading", level=1)).to_have_text(doc.title)
    outline = viewer.get_by_role("navigation", name="Sections").get_by_role("link")
    expect(outline).to_have_count(len(doc.outline))
    expect(outline.and_(viewer.locator("[aria-current]"))).to_have_count(1)
    outline.last.click()
    expect(viewer).to_have_url(re.compile(r"#sec-\d+$"))
    assert not tab.dialogs and not tab.errors


def test_widget_on_origin_off_the_allowlist_is_refused(
    tab: Tab, real_server: LiveServer, sites: Sites
) -> None:
    page = tab.page
    page.goto(f"{sites.refused.origin}/careers.html")
    answer = ask_widget(page, "what does a lead data scientist do")
    wait_settled(answer)
    expect(answer.get_by_role("alert")).to_contain_text("can't be reached")
    expect(answer.locator(".answer")).to_have_count(0)
    expect(answer.locator(".sources")).to_have_count(0)


# --------------------------------------------------------------------------- chat page


def test_chat_page_holds_a_two_turn_conversation(tab: Tab, real_server: LiveServer) -> None:
    page = tab.page
    page.goto(f"{real_server.url}/")
    box = page.get_by_label("Your question")
    expect(box).to_be_focused()

    box.type("first line")
    box.press("Shift+Enter")
    box.type("second line")
    assert box.input_value() == "first line\nsecond line"
    expect(page.locator(".msg-user")).to_have_count(0)
    box.fill("")

    for question in ("What does a lead data scientist do?", "How much do they earn?"):
        box.fill(question)
        box.press("Enter")
        wait_settled(page.locator("#conversation"))

    expect(page.locator(".msg-user .bubble")).to_have_text(
        ["What does a lead data scientist do?", "How much do they earn?"]
    )
    answers = page.locator("article.msg-assistant")
    expect(answers).to_have_count(2)
    for i in range(2):
        turn = answers.nth(i)
        expect(turn.locator(".answer")).not_to_be_empty()
        expect(turn.locator("a.cite").first).to_have_attribute("href", re.compile(r"/view/"))
        sources = turn.get_by_role("region", name="Sources").get_by_role("listitem")
        expect(sources.first).to_be_visible()
        # The follow-up is about the same role: "they" resolved from the first turn.
        assert any("Lead Data Scientist" in t for t in sources.all_inner_texts()), i
    second = answers.nth(1).get_by_role("region", name="Sources").get_by_role("listitem")
    assert any("Salary" in t for t in second.all_inner_texts())
    expect(box).to_be_focused()
    assert not tab.dialogs and not tab.errors


def test_chat_page_says_when_nothing_is_found_or_the_request_fails(
    tab: Tab, real_server: LiveServer
) -> None:
    page = tab.page
    page.goto(f"{real_server.url}/")
    box = page.get_by_label("Your question")

    qid = "0" * 32
    empty = "".join(
        f"event: {name}\ndata: {json.dumps(data)}\n\n"
        for name, data in (
            ("sources", {"query": "q", "query_id": qid, "results": []}),
            ("done", {"answer": "", "query_id": qid}),
        )
    )
    page.route(
        "**/chat",
        lambda route: route.fulfill(
            status=200, headers={"Content-Type": "text/event-stream"}, body=empty
        ),
    )
    box.fill("What does a lighthouse keeper do?")
    box.press("Enter")
    wait_settled(page.locator("#conversation"))
    expect(page.locator("article.msg-assistant .notice")).to_contain_text("couldn't find anything")

    page.unroute("**/chat")
    page.route("**/chat", lambda route: route.abort())
    box.fill("What does a lead data scientist do?")
    box.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Could not reach the server")

    page.unroute("**/chat")
    page.get_by_role("button", name="Try again").click()
    wait_settled(page.locator("#conversation"))
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(page.locator("article.msg-assistant .answer")).not_to_be_empty()


def test_chat_page_of_a_server_without_collections_has_no_picker(
    tab: Tab, real_server: LiveServer
) -> None:
    page = tab.page
    with page.expect_response(re.compile(r"/collections$")) as listed:
        page.goto(f"{real_server.url}/")
    assert [c["name"] for c in listed.value.json()["collections"]] == ["default"]
    expect(page.locator("#collection-picker")).to_be_hidden()
    expect(page.get_by_role("combobox")).to_have_count(0)


def test_viewer_unknown_document_is_a_friendly_404(tab: Tab, real_server: LiveServer) -> None:
    page = tab.page
    response = page.goto(f"{real_server.url}/view/no-such-guide?start=0&end=10")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Guide not found")).to_be_visible()
    expect(page.get_by_role("link", name="Back to the chat", exact=True)).to_be_visible()


def test_demo_page_embeds_the_widget_with_one_tag(tab: Tab, real_server: LiveServer) -> None:
    page = tab.page
    page.goto(f"{real_server.url}/demo")
    expect(page.locator("script[src$='widget.js']")).to_have_count(1)
    expect(page.get_by_role("heading", name="Open roles")).to_be_visible()
    answer = ask_widget(page, "What does a lead data scientist do?")
    wait_settled(answer)
    expect(answer.get_by_role("list", name="Sources").get_by_role("listitem").first).to_be_visible()
    assert not tab.dialogs and not tab.errors

    script = page.request.get(f"{real_server.url}/widget.js")
    assert script.ok
    assert script.headers["content-type"].startswith("text/javascript")
    assert "max-age=" in script.headers["cache-control"]
    assert len(script.body()) < 30 * 1024


# --------------------------------------------------------------------------- safety


def test_html_in_a_document_stays_inert_text_everywhere(
    tab: Tab, xss_server: LiveServer, sites: Sites
) -> None:
    question = "What payloads does a web security analyst review?"
    page = tab.page

    # The widget on a foreign page (which has no CSP of its own to hide a mistake).
    page.goto(f"{sites.allowed.origin}/xss.html")
    answer = ask_widget(page, question)
    wait_settled(answer)
    expect(answer.locator(".answer")).to_contain_text(XSS_SCRIPT)
    expect(answer).to_contain_text(XSS_IMG)
    assert _count(page, "img") == 0
    assert _count(page, "script") == 1  # the widget's own tag

    # The chat page: answer text and source snippets.
    page.goto(f"{xss_server.url}/")
    page.get_by_label("Your question").fill(question)
    page.get_by_label("Your question").press("Enter")
    wait_settled(page.locator("#conversation"))
    turn = page.locator("article.msg-assistant")
    expect(turn.locator(".answer")).to_contain_text(XSS_SCRIPT)
    expect(turn.locator(".sources")).to_contain_text(XSS_IMG)
    assert _count(page, "img") == 0
    assert _count(page, "script") == 1  # chat.js

    # The viewer, opened from the answer's first citation.
    with page.context.expect_page() as popup:
        turn.locator("a.cite").first.click()
    viewer = popup.value
    doc = viewer.locator("article.doc")
    expect(viewer.locator("mark")).to_have_count(1)
    expect(doc).to_contain_text(XSS_IMG)
    expect(doc).to_contain_text(XSS_SCRIPT)
    expect(viewer.get_by_role("navigation", name="Sections")).to_contain_text(XSS_IMG)
    assert _count(viewer, "img") == 0
    assert _count(viewer, "script") == 1  # viewer.js

    page.wait_for_timeout(300)  # an onerror handler would have fired by now
    assert tab.dialogs == []
    assert tab.errors == []


def test_pages_are_served_with_a_content_security_policy(real_server: LiveServer) -> None:
    import httpx

    for path in ("/", "/view/lead-data-scientist", "/demo"):
        response = httpx.get(f"{real_server.url}{path}")
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in response.headers["content-security-policy"]
    assert httpx.get(f"{real_server.url}/web/api.py").status_code == 404
    assert httpx.get(f"{real_server.url}/web/..%2Fapi.py").status_code == 404
    assert httpx.get(f"{real_server.url}/web/chat.js").status_code == 200
    assert (ROOT / "rag" / "serve" / "static" / "widget.js").stat().st_size < 30 * 1024


def test_widget_and_chat_page_show_a_question_the_guides_do_not_cover(
    tab: Tab, real_server: LiveServer, sites: Sites
) -> None:
    page = tab.page
    page.goto(f"{sites.allowed.origin}/careers.html")
    answer = ask_widget(page, "How do I make a sourdough starter?")
    wait_settled(answer)
    refusal = answer.locator(".not-covered")
    expect(refusal).to_contain_text("Not covered.")
    expect(refusal).to_contain_text("sourdough")
    expect(answer).to_contain_text("they may not answer your question")
    expect(answer.locator(".answer")).to_have_count(0)

    page.goto(f"{real_server.url}/")
    box = page.get_by_label("Your question")
    box.fill("What is the capital of Australia?")
    box.press("Enter")
    wait_settled(page.locator("#conversation"))
    turn = page.locator("article.msg-assistant").last
    expect(turn.locator(".not-covered-answer")).to_contain_text("don't answer this question")
    expect(turn.locator(".not-covered-answer")).to_contain_text("They cover:")
    expect(turn.locator(".sources-note")).to_be_visible()
    expect(turn.locator(".answer")).to_have_count(0)

    box.fill("What does a lead data scientist do?")
    box.press("Enter")
    wait_settled(page.locator("#conversation"))
    covered = page.locator("article.msg-assistant").last
    expect(covered.locator(".answer")).to_contain_text(re.compile(r"\[\d\]"))
    expect(covered.locator(".not-covered-answer")).to_have_count(0)
    assert not tab.dialogs and not tab.errors
