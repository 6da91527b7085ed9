"""A fetched page's main content, canonical URL and links, and the file the mirror keeps.

trafilatura finds the main content (it drops navigation, headers, footers, cookie banners and
related-link boxes by the page's structure and text density, which our own HTML parser cannot
tell from content on a page it has never seen); it is saved as a small HTML page with the page's
title and canonical link, which rag.ingest.html then reads like any other HTML file. selectolax
reads the links and the ``<link rel="canonical">``, ``<base>`` and ``<meta name="robots">``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import trafilatura
from selectolax.lexbor import LexborHTMLParser

from rag.sources.scope import Scope, normalize


@dataclass
class Page:
    """What one HTML page gives: the file to keep, its URL, its links and robots directives."""

    document: bytes | None  # None when it has no main content
    title: str
    url: str  # its canonical URL when that is in scope, else the URL fetched
    links: list[str] = field(default_factory=list)
    noindex: bool = False
    nofollow: bool = False


def decode(body: bytes, charset: str | None) -> str:
    """The page's text: by its declared charset, else UTF-8 (bad bytes replaced)."""
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return body.decode("utf-8", errors="replace")


def read_page(body: bytes, url: str, scope: Scope, charset: str | None = None) -> Page:
    """Read a page fetched from ``url``: its main content as a document, its URL and links."""
    text = decode(body, charset)
    tree = LexborHTMLParser(text)
    base_node = tree.css_first("base[href]")
    base = normalize(base_node.attributes.get("href") or "", url) if base_node else None
    base = base or url
    directives = _robots_directives(tree)
    canonical = None
    for node in tree.css("link[rel][href]"):
        if "canonical" in (node.attributes.get("rel") or "").lower().split():
            canonical = normalize(node.attributes.get("href") or "", base)
            break
    links: list[str] = []
    seen: set[str] = set()
    for node in tree.css("a[href]"):
        if "nofollow" in (node.attributes.get("rel") or "").lower().split():
            continue
        link = normalize(node.attributes.get("href") or "", base)
        if link and link not in seen and scope.contains(link):
            seen.add(link)
            links.append(link)
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node else ""
    # A canonical URL elsewhere (another site, another section) is not ours to cite or fetch.
    page_url = canonical if canonical and scope.contains(canonical) else url
    document, title = _main_content(text, page_url, title)
    return Page(document, title, page_url, links, "noindex" in directives, "nofollow" in directives)


def _robots_directives(tree: LexborHTMLParser) -> set[str]:
    """The page's ``<meta name="robots">`` directives (noindex, nofollow, none...)."""
    out: set[str] = set()
    for node in tree.css("meta[name][content]"):
        if (node.attributes.get("name") or "").lower() in ("robots", "career-rag"):
            out |= {d.strip().lower() for d in (node.attributes.get("content") or "").split(",")}
    if "none" in out:
        out |= {"noindex", "nofollow"}
    return out


def _main_content(text: str, url: str, page_title: str) -> tuple[bytes | None, str]:
    """The main content saved as a page of its own, and its title; None when there is none."""
    extracted = trafilatura.extract(
        text,
        url=url,
        output_format="html",
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_links=False,
        include_formatting=True,
        # Guides put much of what they say in lists and tables, which precision mode drops.
        favor_recall=True,
    )
    if not extracted:
        return None, page_title
    tree = LexborHTMLParser(extracted)
    meta = {
        (n.attributes.get("name") or ""): (n.attributes.get("content") or "")
        for n in tree.css("head meta[name]")
    }
    title = meta.get("title") or page_title
    body = tree.body
    inner = "".join(child.html or "" for child in body.iter(include_text=True)) if body else ""
    if not inner.strip():
        return None, title
    head = [
        '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f'<link rel="canonical" href="{html.escape(url)}">',
    ]
    for name in ("description", "tags"):
        if meta.get(name):
            key = "keywords" if name == "tags" else name
            head.append(f'<meta name="{key}" content="{html.escape(meta[name])}">')
    page = (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        + "\n".join(head)
        + f"\n</head>\n<body>\n<main>\n{inner.strip()}\n</main>\n</body>\n</html>\n"
    )
    return page.encode("utf-8"), title
