"""Read a sitemap's bytes: a ``<urlset>``, a ``<sitemapindex>``, gzipped or not, or plain text.

The XML is parsed by lxml with entity resolution and network access off, so a hostile sitemap
can neither read local files nor make it fetch anything. The well-kept sitemap libraries were
no fit (docs/sources.md says why), and what is left to write is small: pick ``<loc>`` elements.
Sitemaps are fetched through the source's Fetcher, so robots.txt, the User-Agent, the delay and
the byte cap apply to them too.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Literal

from lxml import etree

from rag.sources.fetch import Fetcher, FetchFailed, RedirectRefused
from rag.sources.report import SyncReport
from rag.sources.scope import normalize

# The sitemap protocol's own limit on an uncompressed sitemap; a gzip bomb stops here.
MAX_SITEMAP_BYTES = 50 * 1024 * 1024
# A sitemap index may list indexes (the protocol says it should not; sites do): this deep, and
# this many sitemaps in all, then the rest are left out.
MAX_SITEMAP_NESTING = 3
MAX_SITEMAPS = 1000
_GZIP_MAGIC = b"\x1f\x8b"


class NotASitemap(ValueError):
    """The bytes are neither a sitemap nor a sitemap index."""


@dataclass
class Sitemap:
    """What one sitemap lists: pages (a urlset) or more sitemaps (an index)."""

    kind: Literal["urlset", "index"]
    urls: list[str] = field(default_factory=list)


def is_gzip(data: bytes) -> bool:
    """Whether the bytes are gzip-compressed."""
    return data.startswith(_GZIP_MAGIC)


def gunzip(data: bytes, limit: int = MAX_SITEMAP_BYTES) -> bytes:
    """The uncompressed bytes, refused (NotASitemap) past ``limit``."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise NotASitemap(f"bad gzip data ({exc})") from None
    if len(out) > limit:
        raise NotASitemap(f"larger than {limit} bytes uncompressed")
    return out


def looks_like_sitemap(data: bytes, content_type: str = "") -> bool:
    """Whether an answer is a sitemap: gzip, XML with a sitemap root, or a text list of URLs."""
    if is_gzip(data):
        return True
    head = data[:4096].lstrip().lower()
    if content_type == "text/plain":
        return head.startswith((b"http://", b"https://"))
    if head.startswith((b"<!doctype html", b"<html")):
        return False
    return b"<urlset" in head or b"<sitemapindex" in head


def parse_sitemap(data: bytes) -> Sitemap:
    """The URLs a sitemap lists, in order; raises NotASitemap."""
    if is_gzip(data):
        data = gunzip(data)
    if not data.lstrip().startswith(b"<"):
        # The protocol's text format: one URL a line.
        lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
        urls = [line for line in lines if line.startswith(("http://", "https://"))]
        if not urls:
            raise NotASitemap("neither XML nor a list of URLs")
        return Sitemap("urlset", urls)
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, remove_comments=True, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise NotASitemap(f"not well-formed XML ({exc})") from None
    kind = etree.QName(root).localname
    if kind not in ("urlset", "sitemapindex"):
        raise NotASitemap(f"the root element is <{kind}>, not <urlset> or <sitemapindex>")
    child = "url" if kind == "urlset" else "sitemap"
    urls = []
    for entry in root:
        if not isinstance(entry.tag, str) or etree.QName(entry).localname != child:
            continue
        for loc in entry:
            if isinstance(loc.tag, str) and etree.QName(loc).localname == "loc" and loc.text:
                urls.append(loc.text.strip())
                break
    return Sitemap("urlset" if kind == "urlset" else "index", urls)


async def listed_pages(
    fetcher: Fetcher, url: str, body: bytes, report: SyncReport
) -> tuple[list[str], bool]:
    """The in-scope pages a sitemap lists through its indexes, and whether all could be read."""
    # A sitemap that fails is in report.errors; NotASitemap when ``body`` itself is none.
    scope = fetcher.scope
    pages: list[str] = []
    listed: set[str] = set()
    maps = {url}
    complete = True
    queue: list[tuple[str, bytes, int]] = [(url, body, 0)]
    while queue:
        url, body, nesting = queue.pop(0)
        try:
            sitemap = parse_sitemap(body)
        except NotASitemap as exc:
            if nesting == 0:
                raise
            report.errors[url], complete = f"not a sitemap: {exc}", False
            continue
        if sitemap.kind == "urlset":
            for loc in sitemap.urls:
                page = normalize(loc, url)
                if page and page not in listed and scope.contains(page):
                    listed.add(page)
                    pages.append(page)
            continue
        for loc in sitemap.urls:
            child = normalize(loc, url)
            # Sitemaps may sit anywhere on the site, not only under the included prefixes.
            if child is None or child in maps or not child.startswith(scope.origin + "/"):
                continue
            if nesting >= MAX_SITEMAP_NESTING or len(maps) >= MAX_SITEMAPS:
                report.errors[child], complete = "past the sitemap nesting or count limit", False
                continue
            maps.add(child)
            fetched = await _fetch_sitemap(fetcher, child, report)
            if fetched is None:
                complete = False
            else:
                queue.append((child, fetched, nesting + 1))
    return pages, complete


async def _fetch_sitemap(fetcher: Fetcher, url: str, report: SyncReport) -> bytes | None:
    """A sitemap's bytes, or None with why recorded in the report."""
    if not fetcher.allowed(url):
        report.skipped_robots.append(url)
        return None
    try:
        answer = await fetcher.get(url, lambda _: {}, MAX_SITEMAP_BYTES, scoped=False)
    except (FetchFailed, RedirectRefused) as exc:
        report.errors[url] = str(exc)
        return None
    if answer.status != 200:
        report.errors[url] = f"HTTP {answer.status}"
        return None
    return answer.body
